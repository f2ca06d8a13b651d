"""A local fake of Twilio's Calls REST API and of the webhooks a call makes, over real HTTP.

Point the official SDK at `.url`. It answers like Twilio: form-encoded POST
/2010-04-01/Accounts/{sid}/Calls.json → 201 JSON (sid "CA…", status "queued"); GET lists in
Twilio's paged shape with To / From / Status / StartTime (=, >, <) filters as the SDK encodes
them; GET/POST Calls/{sid}.json to fetch or update a call (new TwiML, cancel); Basic auth;
Twilio error bodies for the test numbers; forced answers (429, 500, slow or silent ones).

`complete(sid, …)` plays a call: it posts, signed with the auth token as Twilio signs, the
requests Twilio would make to the URLs the call was created with — the TwiML fetch, status
callbacks (initiated, ringing, in-progress, then the final status), the async AMD verdict,
a key press to the <Gather> action found in the TwiML we were served — in their natural
order, or in any order an `order` function returns (a late "ringing" after "completed").

    with FakeTwilioVoiceServer() as twilio:
        gateway = TwilioVoiceGateway(twilio.account_sid, twilio.auth_token,
                                     from_number="+15005550006", callback_base=public,
                                     api_base_url=twilio.url)
        result = gateway.place_call(OutboundCall("+15551230001", None, "c1:1"))
        twilio.complete(result.provider_ref, answered_by="human", digits="9",
                        base_url=app_url)
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode, urljoin

from twilio.request_validator import RequestValidator

from tests.fakes.twilio_server import (
    API_VERSION,
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DROP_CONNECTION,
    E164,
    ForcedResponse,
    RecordedRequest,
    api_handler_for,
)
from tests.fakes.twilio_voice_calls import (
    FINAL,
    Callback,
    Delivery,
    FakeCall,
    error,
    gather_action,
    matches,
    post_form,
    rebase,
)

CALLS_PATH = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Calls(?:/(?P<sid>[^/]+))?\.json$")
# Twilio's magic 'To' numbers for calls; messages quote the number, as Twilio's do.
TEST_NUMBER_ERRORS: dict[str, tuple[int, str]] = {
    "+15005550001": (21217, "The phone number {to} is invalid."),
    "+15005550003": (21215, "Account not authorized to call {to}."),
    "+15005550004": (21216, "Call blocked: {to} is on a blocklist."),
}


class FakeTwilioVoiceServer:
    def __init__(self, account_sid: str = DEFAULT_ACCOUNT_SID,
                 auth_token: str = DEFAULT_AUTH_TOKEN,
                 now: Callable[[], datetime] | None = None) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._calls: list[FakeCall] = []
        self._forced: deque[ForcedResponse] = deque()
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeTwilioVoiceServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), api_handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-twilio-voice",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeTwilioVoiceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Twilio voice server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- programming failures --------------------------------------------------------------
    def force(self, *responses: ForcedResponse) -> None:
        with self._lock:
            self._forced.extend(responses)

    def fail_next(self, n: int = 1, *, status: int = 429, code: int | None = 20429,
                  message: str = "Too Many Requests", method: str | None = None) -> None:
        self.force(*[ForcedResponse(status, code, message, method=method)] * n)

    def answer_late_next(self, seconds: float, *, n: int = 1) -> None:
        """Create the next n calls at once but answer only `seconds` later."""
        self.force(*[ForcedResponse(None, delay=seconds, method="POST", accept_first=True)] * n)

    def drop_after_accept_next(self, n: int = 1) -> None:
        """Create the next n calls, then close the connection without a word."""
        self.force(*[ForcedResponse(None, method="POST", accept_first=True, drop=True)] * n)

    def drop_without_accepting_next(self, n: int = 1) -> None:
        self.force(*[ForcedResponse(None, method="POST", drop=True)] * n)

    # -- what happened ---------------------------------------------------------------------
    def calls(self) -> list[FakeCall]:
        with self._lock:
            return list(self._calls)

    def call(self, sid: str) -> FakeCall:
        for placed in self.calls():
            if placed.sid == sid:
                return placed
        raise KeyError("no such call")

    def placed(self, to: str) -> list[FakeCall]:
        return [c for c in self.calls() if c.to == to]

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def set_status(self, sid: str, status: str, answered_by: str | None = None) -> None:
        """Move a call on without any webhook (Twilio dialled; nothing reached us)."""
        with self._lock:
            call = next(c for c in self._calls if c.sid == sid)
            call.status = status
            if status != "queued" and call.start_time is None:
                call.start_time = self._now()
            if status in FINAL:
                call.end_time = self._now()
            call.answered_by = answered_by or call.answered_by

    # -- playing a call --------------------------------------------------------------------
    def plan(self, sid: str, *, answered_by: str | None = "human",
             status: str = "completed", digits: str | None = None) -> list[Callback]:
        """The requests Twilio would make for this call, in the order it makes them, each
        status callback numbered (SequenceNumber) and stamped in that order."""
        call = self.call(sid)
        if status not in FINAL:
            raise ValueError("a call ends in a final status")
        events = set(call.status_callback_events) if call.status_callback else set()
        steps: list[Callback] = []
        number = 0

        def status_step(value: str) -> None:
            nonlocal number
            steps.append(Callback("status", value, number, self._now()))
            number += 1

        if "initiated" in events:
            status_step("initiated")
        if "ringing" in events and status != "failed":
            status_step("ringing")
        if status == "completed":
            if call.url:
                steps.append(Callback("twiml", "in-progress", timestamp=self._now()))
            if "answered" in events:
                status_step("in-progress")
            if call.async_amd and call.amd_callback and answered_by:
                steps.append(Callback("amd", timestamp=self._now()))
            if digits is not None:
                steps.append(Callback("gather", "in-progress", timestamp=self._now()))
        if "completed" in events:  # Twilio reports every end under the completed event
            status_step(status)
        return steps

    def complete(
        self, sid: str, answered_by: str | None = "human", status: str = "completed",
        digits: str | None = None, *, order: Callable[[list[Callback]], Sequence[Callback]]
        | None = None, base_url: str | None = None, error_code: int | None = None,
        duration: int = 12,
    ) -> list[Delivery]:
        """Play the call to its end and post what Twilio would. `base_url` replaces the
        scheme/host/port of our public callback URLs for delivery (as a proxy would); the
        signature covers the public URL. Returns each delivery with our app's answer."""
        steps = self.plan(sid, answered_by=answered_by, status=status, digits=digits)
        natural = {id(step): i for i, step in enumerate(steps)}
        reached = -1
        deliveries = []
        for step in (order(list(steps)) if order else steps):
            reached = max(reached, natural[id(step)])
            self._advance(sid, steps[reached], answered_by, error_code, duration)
            deliveries.append(self._deliver(sid, step, answered_by, digits, error_code,
                                            duration, base_url))
        return deliveries

    def _advance(self, sid: str, step: Callback, answered_by: str | None,
                 error_code: int | None, duration: int) -> None:
        """Twilio's own view of the call: as far as the furthest step sent."""
        with self._lock:
            call = next(c for c in self._calls if c.sid == sid)
            if call.status in FINAL or step.status is None:
                if step.kind == "amd":
                    call.answered_by = answered_by
                return
            if call.start_time is None and step.status != "queued":
                call.start_time = step.timestamp
            call.status = step.status
            if step.status in FINAL:
                call.end_time = step.timestamp
                call.duration = duration if step.status == "completed" else 0
                if step.status == "completed":
                    call.answered_by = answered_by

    def _deliver(self, sid: str, step: Callback, answered_by: str | None, digits: str | None,
                 error_code: int | None, duration: int, base_url: str | None) -> Delivery:
        call = self.call(sid)
        params = {
            "AccountSid": call.account_sid, "ApiVersion": API_VERSION, "CallSid": call.sid,
            "Called": call.to, "Caller": call.from_, "Direction": "outbound-api",
            "From": call.from_, "To": call.to, "CallStatus": step.status or "in-progress",
        }
        if step.kind == "status":
            url = call.status_callback or ""
            params.update({"CallbackSource": "call-progress-events",
                           "SequenceNumber": str(step.sequence_number),
                           "Timestamp": format_datetime(step.timestamp or self._now())})
            if step.status == "completed":
                params.update({"CallDuration": str(duration), "Duration": "1"})
                if answered_by:
                    params["AnsweredBy"] = answered_by
            if step.status == "failed" and error_code is not None:
                params["ErrorCode"] = str(error_code)
        elif step.kind == "twiml":
            url = call.url or ""
        elif step.kind == "amd":
            url = call.amd_callback or ""
            params = {"AccountSid": call.account_sid, "CallSid": call.sid,
                      "AnsweredBy": answered_by or "unknown",
                      "MachineDetectionDuration": "4200"}
        else:
            if call.gather_action is None:
                raise RuntimeError("no <Gather action> served yet: fetch the TwiML first")
            url = call.gather_action
            params.update({"Digits": digits or "", "FinishedOnKey": "", "msg": "Gather End"})
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        http_status, body = post_form(rebase(url, base_url), params,
                                       {"X-Twilio-Signature": signature})
        if step.kind in {"twiml", "gather"} and http_status == 200:
            action = gather_action(body)
            with self._lock:
                call.gather_action = urljoin(url, action) if action else None
        return Delivery(step, url, params, signature, http_status, body)

    # -- request handling (called from server threads) -------------------------------------
    def _handle(self, method: str, path: str, query: dict[str, list[str]],
                form: dict[str, list[str]], authorization: str | None) -> tuple[int, Any]:
        with self._lock:
            self._requests.append(RecordedRequest(method, path, query, form))
        match = CALLS_PATH.match(path)
        if match is None:
            return error(404, 20404, "The requested resource was not found")
        if not self._authorised(authorization):
            return error(401, 20003, "Authenticate")
        if match["account"] != self.account_sid:
            return error(404, 20404, "The requested resource was not found")
        forced = self._next_forced(method)
        if forced is not None and (forced.accept_first or forced.drop) and method == "POST":
            answer = self._create(form) if forced.accept_first else (DROP_CONNECTION, None)
            self._stopping.wait(forced.delay)
            return (DROP_CONNECTION, None) if forced.drop else answer
        if forced is not None:
            if forced.delay:
                self._stopping.wait(forced.delay)
            if forced.status is not None:
                return error(forced.status, forced.code, forced.message)
        sid = match["sid"]
        if method == "POST":
            return self._create(form) if sid is None else self._update(sid, form)
        if method == "GET":
            return self._list(path, query) if sid is None else self._fetch(sid)
        return error(405, 20004, "Method not allowed")

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
        to, sender = one.get("To", ""), one.get("From", "")
        if not to:
            return error(400, 21201, "No 'To' number is specified")
        if not sender:
            return error(400, 21213, "No 'From' number is specified")
        if not (one.get("Url") or one.get("Twiml") or one.get("ApplicationSid")):
            return error(400, 21205, "Url parameter is required.")
        if to in TEST_NUMBER_ERRORS:
            code, text = TEST_NUMBER_ERRORS[to]
            return error(400, code, text.format(to=to))
        if not E164.match(to):
            return error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if one.get("AsyncAmd") == "true" and not one.get("MachineDetection"):
            return error(400, 21260, "AsyncAmd requires MachineDetection")
        call = FakeCall(
            sid="CA" + secrets.token_hex(16), account_sid=self.account_sid, to=to,
            from_=sender, url=one.get("Url"), twiml=one.get("Twiml"),
            status_callback=one.get("StatusCallback"),
            status_callback_events=[e for v in form.get("StatusCallbackEvent", [])
                                    for e in v.split()] or ["completed"],
            machine_detection=one.get("MachineDetection"),
            async_amd=one.get("AsyncAmd") == "true",
            amd_callback=one.get("AsyncAmdStatusCallback"),
            ring_timeout=int(one["Timeout"]) if one.get("Timeout") else None,
            date_created=self._now())
        with self._lock:
            self._calls.append(call)
        return 201, call.as_json()

    def _update(self, sid: str, form: dict[str, list[str]]) -> tuple[int, Any]:
        one = {name: values[0] for name, values in form.items()}
        with self._lock:
            call = next((c for c in self._calls if c.sid == sid), None)
            if call is None:
                return error(404, 20404, f"The requested resource /Calls/{sid}.json was not "
                                          "found")
            if call.status in FINAL:
                return error(400, 21220, "Call is not in-progress. Cannot redirect.")
            if one.get("Twiml"):
                call.twiml_updates.append(one["Twiml"])
            if one.get("Status") in {"canceled", "completed"}:
                call.status = one["Status"]
                call.end_time = self._now()
            return 200, call.as_json()

    def _fetch(self, sid: str) -> tuple[int, Any]:
        for call in self.calls():
            if call.sid == sid:
                return 200, call.as_json()
        return error(404, 20404, f"The requested resource /Calls/{sid}.json was not found")

    def _list(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        one = {name: values[0] for name, values in query.items()}
        try:
            page_size = min(int(one.get("PageSize", "50")), 1000)
            page = int(one.get("Page", "0"))
            found = [c for c in reversed(self.calls()) if matches(c, one)]  # newest first
        except ValueError:
            return error(400, 20001, "Invalid query parameter")
        chunk = found[page * page_size:(page + 1) * page_size]
        filters = {k: v for k, v in one.items() if k not in {"Page", "PageSize", "PageToken"}}

        def page_uri(number: int) -> str:
            return f"{path}?{urlencode({**filters, 'PageSize': page_size, 'Page': number})}"

        more = len(found) > (page + 1) * page_size
        return 200, {
            "calls": [c.as_json() for c in chunk],
            "start": page * page_size, "end": page * page_size + max(len(chunk) - 1, 0),
            "page": page, "page_size": page_size, "uri": page_uri(page),
            "first_page_uri": page_uri(0), "previous_page_uri": page_uri(page - 1) if page
            else None, "next_page_uri": page_uri(page + 1) if more else None,
        }
