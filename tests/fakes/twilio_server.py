"""A local fake of Twilio's Messages REST API, speaking its wire format over real HTTP.

Start it (context manager, or start()/stop()), point the official SDK at `.url`, and assert
on what it accepted. It answers like Twilio: form-encoded POST /2010-04-01/Accounts/{sid}/
Messages.json → 201 JSON; GET lists in Twilio's paged shape with To / From / DateSent
filters as the SDK encodes them; Basic auth; Twilio error bodies for the test numbers;
a queue of forced answers (429, 500, slow answers) to exercise failure handling; and signed
status callbacks to each message's StatusCallback URL.

    with FakeTwilioServer() as twilio:
        gateway = TwilioSmsGateway(twilio.account_sid, twilio.auth_token,
                                   from_number="+15005550006", api_base_url=twilio.url)
        twilio.fail_next(1, status=429, code=20429)
        ...
        assert twilio.accepted_count_by_number() == {"+15551230001": 1}
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from twilio.request_validator import RequestValidator

from tests.fakes.twilio_segments import num_segments

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "f" * 32
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token"
MAX_BODY_CHARS = 1600
DROP_CONNECTION = -1  # _handle's answer: close the socket without a response
E164 = re.compile(r"^\+[1-9]\d{7,14}$")
MESSAGES_PATH = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages(?:/(?P<sid>[^/]+))?\.json$")

# Twilio's magic 'To' numbers; messages quote the number, as Twilio's do, so tests can check
# that the adapter never passes provider words (PHI) through.
TEST_NUMBER_ERRORS: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550007": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550008": (21612, "The 'To' phone number: {to}, is not currently reachable "
                            "using the 'From' phone number via SMS."),
    "+15005550009": (21614, "'To' number {to} is not a mobile number"),
}


@dataclass
class FakeMessage:
    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status_callback: str | None
    date_created: datetime
    status: str = "queued"
    date_sent: datetime | None = None  # Twilio sets it only once the message leaves
    error_code: int | None = None

    def as_json(self) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"
        return {
            "account_sid": self.account_sid, "api_version": API_VERSION, "body": self.body,
            "date_created": format_datetime(self.date_created),
            "date_sent": format_datetime(self.date_sent) if self.date_sent else None,
            "date_updated": format_datetime(self.date_sent or self.date_created),
            "direction": "outbound-api", "error_code": self.error_code, "error_message": None,
            "from": self.from_, "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0", "num_segments": str(num_segments(self.body)), "price": None,
            "price_unit": "USD",
            "sid": self.sid, "status": self.status, "to": self.to, "uri": uri,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
        }


@dataclass(frozen=True)
class ForcedResponse:
    """One programmed answer. status None = answer normally, after `delay` seconds (a slow
    Twilio that still takes the message: the client's timeout is then ambiguous)."""

    status: int | None = None
    code: int | None = None
    message: str = "forced by the test"
    delay: float = 0.0
    method: str | None = None  # None: the next request whatever its method
    #: create the message first, then wait `delay` (Twilio took it; its answer is late)
    accept_first: bool = False
    #: close the connection without an answer (after accepting, when accept_first)
    drop: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]] = field(default_factory=dict)


class FakeTwilioServer:
    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        """`now`: pass the application's simulated clock when the test uses one, so
        date_created and reconciliation's `since` live on the same timeline."""
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._messages: list[FakeMessage] = []
        self._forced: deque[ForcedResponse] = deque()
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeTwilioServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), api_handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-twilio",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping on a forced delay
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeTwilioServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Twilio server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- programming failures --------------------------------------------------------------
    def force(self, *responses: ForcedResponse) -> None:
        with self._lock:
            self._forced.extend(responses)

    def fail_next(self, n: int = 1, *, status: int = 429, code: int | None = 20429,
                  message: str = "Too Many Requests", method: str | None = None) -> None:
        self.force(*[ForcedResponse(status, code, message, method=method)] * n)

    def delay_next(self, seconds: float, *, n: int = 1, method: str | None = None) -> None:
        """Answer the next n requests late, yet accept them (as a slow Twilio would)."""
        self.force(*[ForcedResponse(None, delay=seconds, method=method)] * n)

    def answer_late_next(self, seconds: float, *, n: int = 1) -> None:
        """Take the next n messages at once but answer only `seconds` later: a client whose
        timeout is shorter cannot know that the message went."""
        self.force(*[ForcedResponse(None, delay=seconds, method="POST", accept_first=True)] * n)

    def drop_after_accept_next(self, n: int = 1) -> None:
        """Take the next n messages, then close the connection without answering."""
        self.force(*[ForcedResponse(None, method="POST", accept_first=True, drop=True)] * n)

    def drop_without_accepting_next(self, n: int = 1) -> None:
        """Read the next n message requests, take none, and close without answering."""
        self.force(*[ForcedResponse(None, method="POST", drop=True)] * n)

    # -- what happened ---------------------------------------------------------------------
    def messages(self) -> list[FakeMessage]:
        with self._lock:
            return list(self._messages)

    def accepted(self, to: str) -> list[FakeMessage]:
        return [m for m in self.messages() if m.to == to]

    def accepted_count_by_number(self) -> dict[str, int]:
        return dict(Counter(m.to for m in self.messages()))

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def wait_for_accepted(self, to: str, count: int = 1, timeout: float = 2.0) -> bool:
        """For slow (delayed) answers that finish after the client gave up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.accepted(to)) >= count:
                return True
            time.sleep(0.01)
        return False

    def set_status(self, sid: str, status: str, error_code: int | None = None) -> None:
        with self._lock:
            for message in self._messages:
                if message.sid == sid:
                    self._move(message, status, error_code)

    # -- status callbacks ------------------------------------------------------------------
    def fire_callbacks(
        self,
        base_url: str | None = None,
        auth_token: str | None = None,
        status: str = "delivered",
        error_code: int | None = None,
        to: str | None = None,
    ) -> list[int]:
        """POST a signed status callback for every accepted message (to `to` only, if given)
        that has a StatusCallback. The signature covers the StatusCallback URL as given to
        Twilio (our public URL); `base_url` replaces its scheme/host/port for delivery, as a
        proxy in front of the app would. Returns the HTTP statuses received."""
        validator = RequestValidator(auth_token or self.auth_token)
        answers: list[int] = []
        for message in self.messages():
            if message.status_callback is None or (to is not None and message.to != to):
                continue
            with self._lock:
                self._move(message, status, error_code)
            params = self._callback_params(message, status, error_code)
            signature = validator.compute_signature(message.status_callback, params)
            answers.append(_post_form(_rebase(message.status_callback, base_url), params,
                                      {"X-Twilio-Signature": signature}))
        return answers

    def _callback_params(self, message: FakeMessage, status: str,
                         error_code: int | None) -> dict[str, str]:
        params = {
            "AccountSid": message.account_sid, "ApiVersion": API_VERSION,
            "From": message.from_ or "+15005550006", "To": message.to,
            "MessageSid": message.sid, "SmsSid": message.sid,
            "MessageStatus": status, "SmsStatus": status,
        }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        return params

    def _move(self, message: FakeMessage, status: str, error_code: int | None) -> None:
        message.status = status
        message.error_code = error_code
        if status in {"sent", "delivered", "undelivered"} and message.date_sent is None:
            message.date_sent = self._now()

    # -- request handling (called from server threads) -------------------------------------
    def _handle(self, method: str, path: str, query: dict[str, list[str]],
                form: dict[str, list[str]], authorization: str | None) -> tuple[int, Any]:
        with self._lock:
            self._requests.append(RecordedRequest(method, path, query, form))
        match = MESSAGES_PATH.match(path)
        if match is None:
            return _error(404, 20404, "The requested resource was not found")
        if not self._authorised(authorization):
            return _error(401, 20003, "Authenticate")
        if match["account"] != self.account_sid:
            return _error(404, 20404, "The requested resource was not found")
        forced = self._next_forced(method)
        if forced is not None and (forced.accept_first or forced.drop) and method == "POST":
            answer = self._create(form) if forced.accept_first else (DROP_CONNECTION, None)
            self._stopping.wait(forced.delay)
            return (DROP_CONNECTION, None) if forced.drop else answer
        if forced is not None:
            if forced.delay:
                self._stopping.wait(forced.delay)
            if forced.status is not None:
                return _error(forced.status, forced.code, forced.message)
        if method == "POST" and match["sid"] is None:
            return self._create(form)
        if method == "GET" and match["sid"] is None:
            return self._list(path, query)
        if method == "GET":
            return self._fetch(match["sid"])
        return _error(405, 20004, "Method not allowed")

    def _authorised(self, header: str | None) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return header == f"Basic {expected}"

    def _next_forced(self, method: str) -> ForcedResponse | None:
        with self._lock:
            for forced in self._forced:
                if forced.method is None or forced.method == method:
                    self._forced.remove(forced)
                    return forced
        return None

    def _create(self, form: dict[str, list[str]]) -> tuple[int, Any]:
        one = {name: values[0] for name, values in form.items()}
        to, body = one.get("To", ""), one.get("Body")
        sender, service = one.get("From"), one.get("MessagingServiceSid")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not (sender or service):
            return _error(400, 21603, "A 'From' phone number is required.")
        if body is None or body == "":
            return _error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY_CHARS:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 "
                                      "character limit.")
        if to in TEST_NUMBER_ERRORS:
            code, text = TEST_NUMBER_ERRORS[to]
            return _error(400, code, text.format(to=to))
        if not E164.match(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        message = FakeMessage(
            sid="SM" + secrets.token_hex(16), account_sid=self.account_sid, to=to,
            from_=None if service else sender, messaging_service_sid=service, body=body,
            status_callback=one.get("StatusCallback"), date_created=self._now(),
            status="accepted" if service else "queued")
        with self._lock:
            self._messages.append(message)
        return 201, message.as_json()

    def _fetch(self, sid: str) -> tuple[int, Any]:
        for message in self.messages():
            if message.sid == sid:
                return 200, message.as_json()
        return _error(404, 20404, f"The requested resource /Messages/{sid}.json was not found")

    def _list(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        one = {name: values[0] for name, values in query.items()}
        try:
            page_size = min(int(one.get("PageSize", "50")), 1000)
            page = int(one.get("Page", "0"))
            found = [m for m in reversed(self.messages()) if _matches(m, one)]  # newest first
        except ValueError:
            return _error(400, 20001, "Invalid query parameter")
        chunk = found[page * page_size:(page + 1) * page_size]
        filters = {k: v for k, v in one.items() if k not in {"Page", "PageSize", "PageToken"}}

        def page_uri(number: int) -> str:
            return f"{path}?{urlencode({**filters, 'PageSize': page_size, 'Page': number})}"

        more = len(found) > (page + 1) * page_size
        return 200, {
            "messages": [m.as_json() for m in chunk],
            "start": page * page_size, "end": page * page_size + max(len(chunk) - 1, 0),
            "page": page, "page_size": page_size, "uri": page_uri(page),
            "first_page_uri": page_uri(0), "previous_page_uri": page_uri(page - 1) if page
            else None, "next_page_uri": page_uri(page + 1) if more else None,
        }


def _matches(message: FakeMessage, filters: dict[str, str]) -> bool:
    if "To" in filters and message.to != filters["To"]:
        return False
    if "From" in filters and message.from_ != filters["From"]:
        return False
    for key, keep in (("DateSent", lambda a, b: a == b), ("DateSent>", lambda a, b: a >= b),
                      ("DateSent<", lambda a, b: a <= b)):
        if key in filters:
            # Twilio filters on the sent date: a message still queued has none.
            if message.date_sent is None:
                return False
            sent, bound = _comparable(message.date_sent, filters[key])
            if not keep(sent, bound):
                return False
    return True


def _comparable(sent: datetime, text: str) -> tuple[Any, Any]:
    """'YYYY-MM-DD' compares days (Twilio's documented form); the SDK's datetimes compare
    to the second."""
    if len(text) == 10:
        return sent.date(), date.fromisoformat(text)
    return sent.replace(microsecond=0), datetime.fromisoformat(text.replace("Z", "+00:00"))


def _error(status: int, code: int | None, message: str) -> tuple[int, Any]:
    return status, {"code": code, "message": message, "status": status,
                    "more_info": f"https://www.twilio.com/docs/errors/{code}"}


def _rebase(url: str, base_url: str | None) -> str:
    if base_url is None:
        return url
    target, parts = urlsplit(base_url), urlsplit(url)
    return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, ""))


def _post_form(url: str, params: dict[str, str], headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        url, data=urlencode(params).encode(), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


def api_handler_for(fake: Any) -> type[BaseHTTPRequestHandler]:
    """The HTTP side of a fake Twilio API: each request to `fake._handle(method, path,
    query, form, authorization)`, its (status, payload) answered as JSON (or the socket
    dropped for DROP_CONNECTION). Shared by the Messages and the Calls fakes."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            status, payload = fake._handle(
                method, parts.path, parse_qs(parts.query, keep_blank_values=True),
                parse_qs(raw, keep_blank_values=True), self.headers.get("Authorization"))
            if status == DROP_CONNECTION:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left: that was the point of the delay

        def log_message(self, format: str, *args: Any) -> None:
            pass  # request lines carry To= numbers; tests keep stderr quiet

    return Handler
