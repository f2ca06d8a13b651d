"""The voice port on Twilio Programmable Voice, through the official SDK.

A call is created with a URL for its script (our TwiML webhook), status callbacks for every
step, and asynchronous answering-machine detection that waits for the greeting's beep
(DetectMessageEnd): a person hears the live script at once; when the AMD verdict says
machine, the caller swaps in the voicemail script with `play`. Every webhook URL carries
the reference, so each callback finds its communication without a lookup.

Pacing is the caller's (one account-wide calls-per-second budget shared by every
dispatcher): Twilio would queue excess calls itself, but a queue we cannot see may ring a
patient outside the calling window. Nothing here logs a number or a script.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import quote

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.rest import Client

from domain.retry import FailureKind
from gateways import twilio_errors
from gateways.sms import SendResult
from gateways.twilio_sms import _OutreachHttpClient, never_left
from gateways.voice import AMD_PATH, STATUS_PATH, OutboundCall, VoiceGateway

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
#: how long the phone rings before Twilio gives up with no-answer
RING_TIMEOUT_SECONDS = 30
STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
MACHINE_DETECTION = "DetectMessageEnd"
#: a call in these states never reached the patient: reconciliation must not count it
NOT_PLACED_STATUSES = frozenset({"failed", "canceled"})
RECONCILE_LIMIT = 50
# Twilio: "Call is not in-progress. Cannot redirect."
CALL_NOT_IN_PROGRESS = 21220

# Voice codes that twilio_errors (written for SMS) does not know.
VOICE_CODES: dict[int, twilio_errors.Classification] = {
    13223: twilio_errors.Classification(FailureKind.PERMANENT, "invalid phone number format"),
    13224: twilio_errors.Classification(FailureKind.PERMANENT, "invalid phone number"),
    21211: twilio_errors.Classification(FailureKind.PERMANENT, "invalid 'To' phone number"),
    21215: twilio_errors.Classification(
        FailureKind.PERMANENT, "calling this region is not enabled"),
    21216: twilio_errors.Classification(FailureKind.PERMANENT, "the number is blocked"),
    21217: twilio_errors.Classification(FailureKind.PERMANENT, "invalid phone number"),
    # Our caller ID, not the patient: a fixed configuration lets the retries succeed.
    21210: twilio_errors.Classification(
        FailureKind.TRANSIENT, "the caller ID number is not verified with the provider"),
}


TIMEOUT = twilio_errors.Classification(
    FailureKind.TRANSIENT, "provider did not answer in time (the call may have been placed)")
UNREADABLE = twilio_errors.Classification(
    FailureKind.TRANSIENT, "provider answer could not be read (the call may have been placed)")


def classify_error(code: int | str | None, http_status: int | None = None
                   ) -> twilio_errors.Classification:
    """Voice codes first, then the SMS table for the codes both share (20429, 20003, …)."""
    text = str(code).strip() if code is not None else ""
    number = int(text) if text.isdigit() else None
    if number in VOICE_CODES:
        return VOICE_CODES[number]
    return twilio_errors.classify(code, http_status)


class TwilioVoiceGateway(VoiceGateway):
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str,
        callback_base: str | None,
        api_base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        calls_per_second: float = 1.0,
    ) -> None:
        """`callback_base` is our public https URL (TwiML, status, AMD and key-press
        webhooks); None allows only calls with inline TwiML. `api_base_url` points the SDK
        at another server (a local fake). `calls_per_second` is the account's budget, for
        the caller's pacing (workers.provider_pace)."""
        if calls_per_second <= 0:
            raise ValueError("calls per second must be positive")
        self._from_number = from_number
        self._callback_base = callback_base.rstrip("/") if callback_base else None
        self.calls_per_second = calls_per_second
        self._client = Client(
            account_sid, auth_token,
            http_client=_OutreachHttpClient(timeout=timeout, base_url=api_base_url))

    def webhook_url(self, path: str, reference: str) -> str:
        if self._callback_base is None:
            raise ValueError("phone calls need a public callback URL")
        return f"{self._callback_base}{path}?ref={quote(reference, safe='')}"

    def place_call(self, call: OutboundCall) -> SendResult:
        script: dict[str, str] = (
            {"twiml": call.twiml} if call.twiml is not None
            else {"url": self.webhook_url(call.twiml_url_path, call.reference)})
        callbacks: dict[str, object] = {} if self._callback_base is None else {
            "status_callback": self.webhook_url(STATUS_PATH, call.reference),
            "status_callback_event": list(STATUS_EVENTS),
            "status_callback_method": "POST",
            "machine_detection": MACHINE_DETECTION,
            "async_amd": "true",
            "async_amd_status_callback": self.webhook_url(AMD_PATH, call.reference),
            "async_amd_status_callback_method": "POST",
        }
        try:
            created = self._client.calls.create(
                to=call.to, from_=call.from_number or self._from_number,
                timeout=RING_TIMEOUT_SECONDS, **script, **callbacks)  # type: ignore[arg-type]
        except (TwilioRestException, TwilioServiceException) as exc:
            return self._refused(call.reference, exc.code, exc.status)
        except requests.RequestException as exc:
            if never_left(exc):
                return self._trouble(call.reference, "connection", twilio_errors.CONNECTION)
            # The request was written: Twilio may be dialling. Calling again now could
            # ring the patient twice.
            code = "timeout" if isinstance(exc, requests.Timeout) else "connection-lost"
            return self._unknown(call.reference, code, TIMEOUT)
        except (TwilioException, ValueError):  # a 2xx whose body is not Twilio's JSON
            return self._unknown(call.reference, "unreadable", UNREADABLE)
        if not created.sid:
            return self._unknown(call.reference, "unreadable", UNREADABLE)
        log.info("call accepted ref=%s sid=%s", call.reference, created.sid)
        return SendResult.ok(created.sid, str(created.status or "queued"))

    def find_call(self, to: str, since: datetime,
                  from_number: str | None = None) -> SendResult | None:
        """The newest call to `to` (from our caller ID) created at or after `since` that
        Twilio did not fail or cancel.

        The Call resource does not echo our reference (only our webhook URLs carry it), so
        the match is by number and time: sound because a patient's phone number is one bus
        key, so no other call to that number is dispatched while this one is unresolved.
        Two lists, because StartTime filters only calls already dialled (a queued call has
        no start time yet) and Twilio documents it with day granularity: calls started
        since that day, plus calls still queued; `since` itself is applied to DateCreated.

        Raises the builtin ConnectionError when Twilio cannot be asked."""
        if since.tzinfo is None:  # the project's clock is UTC; Twilio's dates are aware
            since = since.replace(tzinfo=UTC)
        floor = since.astimezone(UTC).replace(microsecond=0)
        day = floor.replace(hour=0, minute=0, second=0)
        sender = from_number or self._from_number
        try:
            started = self._client.calls.list(to=to, from_=sender, start_time_after=day,
                                              limit=RECONCILE_LIMIT)
            queued = self._client.calls.list(to=to, from_=sender, status="queued",
                                             limit=RECONCILE_LIMIT)
        except (TwilioException, TwilioServiceException, requests.RequestException,
                ValueError) as exc:
            # `from None`: the SDK's and requests' messages quote the URL, whose query
            # carries To= (PHI), and a traceback would print them.
            raise ConnectionError(
                f"could not list calls at the provider ({type(exc).__name__})") from None
        seen: set[str] = set()
        found = []
        for placed in [*queued, *started]:
            if not placed.sid or placed.sid in seen:
                continue
            seen.add(placed.sid)
            if str(placed.status or "") in NOT_PLACED_STATUSES:
                continue
            if placed.date_created is not None and placed.date_created < floor:
                continue
            found.append(placed)
        if not found:
            return None
        newest = max(found, key=lambda c: c.date_created or floor)
        return SendResult.ok(newest.sid or "", str(newest.status or ""))

    def play(self, call_sid: str, twiml: str) -> bool:
        """Raises ConnectionError when Twilio cannot be asked (the caller may try again:
        replacing a call's TwiML twice plays the same script)."""
        try:
            self._client.calls(call_sid).update(twiml=twiml)
        except TwilioRestException as exc:
            if exc.code == CALL_NOT_IN_PROGRESS or exc.status == 404:
                log.info("call already ended sid=%s", call_sid)
                return False
            raise ConnectionError(f"provider refused to update the call (code {exc.code})"
                                  ) from None
        except (TwilioException, TwilioServiceException, requests.RequestException,
                ValueError) as exc:
            raise ConnectionError(
                f"could not update the call at the provider ({type(exc).__name__})") from None
        return True

    @staticmethod
    def _refused(reference: str, code: int | None, http_status: int | None) -> SendResult:
        verdict = classify_error(code, http_status)
        code_text = str(code if code is not None else http_status or "")
        log.info("call refused ref=%s code=%s kind=%s", reference, code_text, verdict.kind)
        return SendResult.failed(code_text, verdict.reason, verdict.kind)

    @staticmethod
    def _trouble(reference: str, code: str, verdict: twilio_errors.Classification) -> SendResult:
        log.warning("call trouble ref=%s code=%s", reference, code)
        return SendResult.failed(code, verdict.reason, verdict.kind)

    @staticmethod
    def _unknown(reference: str, code: str, verdict: twilio_errors.Classification) -> SendResult:
        log.warning("call outcome unknown ref=%s code=%s", reference, code)
        return SendResult.outcome_unknown(code, verdict.reason)
