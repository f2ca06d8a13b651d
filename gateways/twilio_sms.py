"""The SMS port on Twilio's official SDK.

Every provider or network failure becomes a failed SendResult whose kind says whether a
retry can help; nothing here logs a phone number or a body (the SDK's own request log
prints query strings, which carry 'To' when listing messages, so it is replaced).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from gateways import twilio_errors
from gateways.sms import OutboundText, SendResult, SmsGateway

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
# A message in these states never reached the patient: reconciliation must not count it.
NOT_SENT_STATUSES = frozenset({"failed", "undelivered", "canceled"})
RECONCILE_LIMIT = 50


class _OutreachHttpClient(TwilioHttpClient):
    """The SDK's HTTP client with PHI-free logging and, for tests and local runs, every
    request sent to another scheme/host/port (path and query kept)."""

    def __init__(self, timeout: float, base_url: str | None = None) -> None:
        super().__init__(timeout=timeout)
        self._target = urlsplit(base_url) if base_url else None

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if self._target is not None:
            parts = urlsplit(url)
            url = urlunsplit(
                (self._target.scheme, self._target.netloc, parts.path, parts.query, ""))
        return super().request(method, url, params=params, data=data, headers=headers,
                               auth=auth, timeout=timeout, allow_redirects=allow_redirects)

    def log_request(self, kwargs: dict[str, Any]) -> None:
        # Path only: query parameters (To=…) and bodies are PHI.
        log.debug("twilio request %s %s", kwargs["method"], urlsplit(kwargs["url"]).path)

    def log_response(self, status_code: int, response: Any) -> None:
        log.debug("twilio response %s", status_code)


class TwilioSmsGateway(SmsGateway):
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        status_callback_base: str | None = None,
        api_base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        """`status_callback_base` is our public https URL; None means no delivery receipts.
        `api_base_url` points the SDK at another server (a local fake) instead of Twilio."""
        if not (from_number or messaging_service_sid):
            raise ValueError("a Twilio sender needs from_number or messaging_service_sid")
        self._from_number = from_number
        self._messaging_service_sid = messaging_service_sid
        self._callback_base = status_callback_base.rstrip("/") if status_callback_base else None
        self._client = Client(
            account_sid, auth_token,
            http_client=_OutreachHttpClient(timeout=timeout, base_url=api_base_url))

    def status_callback_url(self, reference: str) -> str | None:
        """Where Twilio reports this message's delivery; the reference finds its
        communication even when the send's own outcome was never recorded."""
        if self._callback_base is None:
            return None
        return f"{self._callback_base}/webhooks/twilio/status?ref={quote(reference, safe='')}"

    def send(self, message: OutboundText) -> SendResult:
        sender: dict[str, str] = (
            {"messaging_service_sid": self._messaging_service_sid}
            if self._messaging_service_sid else {"from_": self._from_number or ""})
        callback = self.status_callback_url(message.reference)
        try:
            created = self._client.messages.create(
                to=message.to, body=message.body,
                **({"status_callback": callback} if callback else {}), **sender)
        except (TwilioRestException, TwilioServiceException) as exc:
            return self._refused(message.reference, exc.code, exc.status)
        except requests.RequestException as exc:
            if never_left(exc):
                return self._trouble(message.reference, "connection", twilio_errors.CONNECTION)
            # The request was written: Twilio may have taken the message and we did not
            # hear it. A second send now could text the patient twice.
            code = "timeout" if isinstance(exc, requests.Timeout) else "connection-lost"
            return self._unknown(message.reference, code, twilio_errors.TIMEOUT)
        except (TwilioException, ValueError):  # a 2xx whose body is not Twilio's JSON
            return self._unknown(message.reference, "unreadable", twilio_errors.UNREADABLE)
        if not created.sid:  # a 2xx that names no message: taken or not, we cannot tell
            return self._unknown(message.reference, "unreadable", twilio_errors.UNREADABLE)
        segments = num_segments(created.num_segments)
        log.info("sms accepted ref=%s sid=%s segments=%s", message.reference, created.sid,
                 segments)
        return SendResult.ok(created.sid, str(created.status or "queued"), segments)

    def find_sent(self, to: str, body: str, since: datetime) -> SendResult | None:
        """The newest message to `to` with exactly this body, created at or after `since`,
        that did not fail. Filters on the creation time ourselves: Twilio's DateSent filter
        has day granularity and skips messages still queued (no sent date yet), which are
        exactly the ones a crashed dispatcher may have left behind.

        Raises the builtin ConnectionError when the provider cannot be asked: answering
        "not sent" without knowing would invite a duplicate text."""
        sender = {"from_": self._from_number} if self._from_number else {}
        try:
            candidates = self._client.messages.list(to=to, limit=RECONCILE_LIMIT, **sender)
        except (TwilioException, TwilioServiceException, requests.RequestException,
                ValueError) as exc:
            # `from None`: the chained error's text holds the request URL, and its `To=`
            # is a patient's number; only its type is worth keeping.
            raise ConnectionError("could not list messages at the provider "
                                  f"({type(exc).__name__})") from None
        if since.tzinfo is None:  # the project's clock is UTC; Twilio's dates are aware
            since = since.replace(tzinfo=UTC)
        floor = since.replace(microsecond=0)  # Twilio's dates have whole seconds
        for sent in candidates:
            if sent.body != body or str(sent.status or "") in NOT_SENT_STATUSES:
                continue
            if (self._messaging_service_sid and sent.messaging_service_sid
                    and sent.messaging_service_sid != self._messaging_service_sid):
                continue
            if sent.date_created is not None and sent.date_created < floor:
                continue
            return SendResult.ok(sent.sid or "", str(sent.status or ""),
                                 num_segments(sent.num_segments))
        return None

    @staticmethod
    def _refused(reference: str, code: int | None, http_status: int | None) -> SendResult:
        verdict = twilio_errors.classify(code, http_status)
        code_text = str(code if code is not None else http_status or "")
        log.info("sms refused ref=%s code=%s kind=%s", reference, code_text, verdict.kind)
        return SendResult.failed(code_text, verdict.reason, verdict.kind)

    @staticmethod
    def _trouble(reference: str, code: str, verdict: twilio_errors.Classification) -> SendResult:
        log.warning("sms send trouble ref=%s code=%s", reference, code)
        return SendResult.failed(code, verdict.reason, verdict.kind)

    @staticmethod
    def _unknown(reference: str, code: str, verdict: twilio_errors.Classification) -> SendResult:
        log.warning("sms send outcome unknown ref=%s code=%s", reference, code)
        return SendResult.outcome_unknown(code, verdict.reason)


def num_segments(value: object) -> int | None:
    """Twilio's num_segments (a string in the Message resource: "2"), or None when absent
    or unreadable: a count we cannot read must not fail a send Twilio accepted."""
    try:
        count = int(str(value))
    except ValueError:
        return None
    return count if count >= 0 else None


def never_left(exc: BaseException) -> bool:
    """Did the request certainly not reach the provider? True only for failures before a
    byte was sent: no connection (refused, DNS, connect timeout) or a failed TLS handshake.
    Anything else (read timeout, connection reset or closed after the body was written)
    leaves the outcome unknown."""
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.SSLError):
        return True
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, NewConnectionError | ConnectTimeoutError):
            return True
        # requests wraps urllib3's MaxRetryError (whose `reason` is the real cause) in args.
        linked = [getattr(current, "reason", None), current.__cause__, current.__context__,
                  *current.args]
        pending.extend(e for e in linked if isinstance(e, BaseException))
    return False
