"""The Twilio Voice gateway on the official SDK against a local fake of the Calls API, and the
webhooks that fake posts (as Twilio would) to a small app that checks signatures, parses
them with our parsers and answers with our TwiML."""

from __future__ import annotations

import socket
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest

from domain.retry import FailureKind
from domain.voice import (
    OPTED_OUT,
    CallOutcome,
    CallProgress,
    gather_reply_twiml,
    live_twiml,
    voicemail_twiml,
)
from gateways.twilio_voice import TwilioVoiceGateway
from gateways.twilio_voice_webhooks import (
    AmdResult,
    CallStatus,
    GatherResult,
    parse_amd,
    parse_call_status,
    parse_gather,
)
from gateways.twilio_webhooks import WebhookError, signed_url, verify_signature
from gateways.voice import AMD_PATH, GATHER_PATH, STATUS_PATH, TWIML_PATH, OutboundCall
from tests.fakes.twilio_voice_server import FakeTwilioVoiceServer

PUBLIC = "https://outreach.example.org"
CALLER_ID = "+15005550006"
PATIENT = "+15551230001"
SCRIPT = "Hello, this is Dr. Lee's office with a reminder."
VOICEMAIL = "This is Dr. Lee's office. Please call us back at 555-010-2030."
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@dataclass
class Received:
    path: str
    query: str
    form: list[tuple[str, str]]
    signed: bool
    parsed: CallStatus | AmdResult | GatherResult | None


class App:
    """What `outreach serve` does with Twilio's voice webhooks, cut to the bone."""

    def __init__(self, auth_token: str) -> None:
        self.auth_token = auth_token
        self.received: list[Received] = []
        self.gateway: TwilioVoiceGateway | None = None
        self.played: list[bool] = []
        self.lock = threading.Lock()

    def answer(self, path: str, query: str, body: str, signature: str | None) -> tuple[int, str]:
        form = parse_qsl(body, keep_blank_values=True)
        signed = verify_signature(self.auth_token, signed_url(PUBLIC, path, query), form,
                                  signature)
        ref = parse_qs(query).get("ref", [None])[0]
        parsed: CallStatus | AmdResult | GatherResult | None = None
        reply = ""
        if signed:
            action = f"{PUBLIC}{GATHER_PATH}?{query}"
            if path == STATUS_PATH:
                parsed = parse_call_status(form, ref, NOW)
            elif path == AMD_PATH:
                parsed = parse_amd(form, ref, NOW)
                if parsed.answered_by.startswith("machine_end") and self.gateway is not None:
                    twiml = voicemail_twiml(VOICEMAIL, "alice", "en-US")
                    self.played.append(self.gateway.play(parsed.call_sid, twiml))
            elif path == GATHER_PATH:
                parsed = parse_gather(form, ref, NOW)
                reply = gather_reply_twiml(parsed.digits, SCRIPT, "alice", "en-US", action)
            elif path == TWIML_PATH:
                reply = live_twiml(SCRIPT, "alice", "en-US", action)
        with self.lock:
            self.received.append(Received(path, query, form, signed, parsed))
        return (200 if signed else 403), reply

    def statuses(self) -> list[CallStatus]:
        return [r.parsed for r in self.received if isinstance(r.parsed, CallStatus)]


def _serve_app(app: App) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            status, reply = app.answer(parts.path, parts.query, body,
                                       self.headers.get("X-Twilio-Signature"))
            data = reply.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    return server, f"http://{host!s}:{port}"


@pytest.fixture
def twilio() -> Iterator[FakeTwilioVoiceServer]:
    clock = iter(NOW + timedelta(seconds=i) for i in range(10_000))
    with FakeTwilioVoiceServer(now=lambda: next(clock)) as fake:
        yield fake


@pytest.fixture
def gateway(twilio: FakeTwilioVoiceServer) -> TwilioVoiceGateway:
    return TwilioVoiceGateway(twilio.account_sid, twilio.auth_token, from_number=CALLER_ID,
                              callback_base=PUBLIC + "/", api_base_url=twilio.url, timeout=2)


@pytest.fixture
def app(twilio: FakeTwilioVoiceServer, gateway: TwilioVoiceGateway) -> Iterator[tuple[App, str]]:
    served = App(twilio.auth_token)
    served.gateway = gateway
    server, url = _serve_app(served)
    yield served, url
    server.shutdown()
    server.server_close()


def _call(gateway: TwilioVoiceGateway, to: str = PATIENT, ref: str = "comm-1:2") -> str:
    result = gateway.place_call(OutboundCall(to, None, ref))
    assert result.accepted, result
    return result.provider_ref


# -- placing calls ---------------------------------------------------------------------------

def test_a_call_is_created_with_our_webhooks_events_and_answering_machine_detection(
        twilio, gateway):
    result = gateway.place_call(OutboundCall(PATIENT, "+15005550010", "comm-1:2"))
    assert result.accepted and result.status == "queued"
    assert result.provider_ref.startswith("CA")
    [call] = twilio.calls()
    assert call.sid == result.provider_ref
    assert (call.to, call.from_) == (PATIENT, "+15005550010")
    assert call.url == f"{PUBLIC}{TWIML_PATH}?ref=comm-1%3A2"
    assert call.status_callback == f"{PUBLIC}{STATUS_PATH}?ref=comm-1%3A2"
    assert call.amd_callback == f"{PUBLIC}{AMD_PATH}?ref=comm-1%3A2"
    assert call.status_callback_events == ["initiated", "ringing", "answered", "completed"]
    assert call.machine_detection == "DetectMessageEnd" and call.async_amd
    assert call.ring_timeout == 30
    form = twilio.requests[-1].form
    assert form["StatusCallbackMethod"] == ["POST"]
    assert form["AsyncAmdStatusCallbackMethod"] == ["POST"]


def test_the_configured_caller_id_is_used_when_the_campaign_gives_none(twilio, gateway):
    _call(gateway)
    assert twilio.calls()[0].from_ == CALLER_ID


@pytest.mark.parametrize(("to", "code", "kind"), [
    ("+15005550001", "21217", FailureKind.PERMANENT),
    ("+15005550003", "21215", FailureKind.PERMANENT),
    ("12345", "21211", FailureKind.PERMANENT),
])
def test_a_number_twilio_cannot_call_is_a_permanent_failure_without_the_number(
        gateway, to, code, kind):
    result = gateway.place_call(OutboundCall(to, None, "comm-1:1"))
    assert not result.accepted and not result.unknown
    assert (result.error_code, result.kind) == (code, kind)
    assert to not in result.error_message


def test_an_unverified_caller_id_is_ours_to_fix_so_the_patient_is_retried(twilio, gateway):
    twilio.fail_next(status=400, code=21210, message="The source phone number provided, "
                     "+15005550010, is not yet verified for your account.")
    result = gateway.place_call(OutboundCall(PATIENT, "+15005550010", "comm-1:1"))
    assert (result.error_code, result.kind) == ("21210", FailureKind.TRANSIENT)
    assert "caller ID" in result.error_message and "+1500" not in result.error_message


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (500, None), (503, None)])
def test_rate_limits_and_server_errors_are_transient(twilio, gateway, status, code):
    twilio.fail_next(status=status, code=code, message="busy")
    result = gateway.place_call(OutboundCall(PATIENT, None, "comm-1:1"))
    assert not result.accepted and result.kind is FailureKind.TRANSIENT
    assert twilio.calls() == []


def test_no_answer_after_the_request_left_is_unknown_not_a_failure(twilio):
    slow = TwilioVoiceGateway(twilio.account_sid, twilio.auth_token, from_number=CALLER_ID,
                              callback_base=PUBLIC, api_base_url=twilio.url, timeout=0.3)
    twilio.answer_late_next(1.0)
    result = slow.place_call(OutboundCall(PATIENT, None, "comm-1:1"))
    assert result.unknown and not result.accepted and result.kind is None
    assert len(twilio.placed(PATIENT)) == 1  # Twilio did take it


def test_a_connection_dropped_after_sending_is_unknown(twilio, gateway):
    twilio.drop_after_accept_next()
    result = gateway.place_call(OutboundCall(PATIENT, None, "comm-1:1"))
    assert result.unknown


def test_an_unreachable_provider_is_a_transient_failure_not_unknown():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = TwilioVoiceGateway("AC" + "1" * 32, "t", from_number=CALLER_ID,
                                callback_base=PUBLIC, api_base_url=f"http://127.0.0.1:{port}")
    result = closed.place_call(OutboundCall(PATIENT, None, "comm-1:1"))
    assert not result.unknown and result.kind is FailureKind.TRANSIENT


# -- reconciliation --------------------------------------------------------------------------

def test_find_call_finds_a_queued_call_placed_since(gateway):
    sid = _call(gateway)
    found = gateway.find_call(PATIENT, NOW - timedelta(minutes=1))
    assert found is not None and found.provider_ref == sid and found.status == "queued"


def test_find_call_finds_a_call_that_already_started(twilio, gateway):
    sid = _call(gateway)
    twilio.set_status(sid, "no-answer")  # dialled, and no webhook reached us
    found = gateway.find_call(PATIENT, NOW)
    assert found is not None and (found.provider_ref, found.status) == (sid, "no-answer")
    lists = [r.query for r in twilio.requests if r.method == "GET"]
    assert any("StartTime>" in q and q["To"] == [PATIENT] for q in lists)


def test_find_call_ignores_calls_before_since_other_numbers_and_cancelled_ones(
        twilio, gateway):
    _call(gateway)
    _call(gateway, to="+15551230002")
    assert gateway.find_call(PATIENT, NOW + timedelta(hours=1)) is None
    assert gateway.find_call("+15551230003", NOW) is None
    twilio.set_status(twilio.placed(PATIENT)[0].sid, "canceled")
    assert gateway.find_call(PATIENT, NOW) is None


def test_find_call_raises_when_twilio_cannot_be_asked(twilio, gateway):
    twilio.fail_next(status=500, code=None, method="GET")
    with pytest.raises(ConnectionError):
        gateway.find_call(PATIENT, NOW)


def test_find_calls_error_and_its_traceback_carry_no_phone_number():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = TwilioVoiceGateway("AC" + "1" * 32, "t", from_number=CALLER_ID,
                                callback_base=PUBLIC, api_base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(ConnectionError) as raised:
        closed.find_call(PATIENT, NOW)
    printed = "".join(traceback.format_exception(raised.value))
    assert "5551230001" not in printed and "5005550006" not in printed


# -- the call's webhooks ---------------------------------------------------------------------

def test_every_request_the_call_makes_is_signed_and_parses(twilio, gateway, app):
    served, url = app
    sid = _call(gateway)
    deliveries = twilio.complete(sid, answered_by="human", digits="9", base_url=url)
    assert [d.http_status for d in deliveries] == [200] * len(deliveries)
    assert all(r.signed for r in served.received)
    assert [r.path for r in served.received] == [
        STATUS_PATH, STATUS_PATH, TWIML_PATH, STATUS_PATH, AMD_PATH, GATHER_PATH, STATUS_PATH]
    statuses = served.statuses()
    assert [s.status for s in statuses] == ["initiated", "ringing", "in-progress", "completed"]
    assert [s.sequence_number for s in statuses] == [0, 1, 2, 3]
    assert {s.call_sid for s in statuses} == {sid}
    assert {s.reference for s in statuses} == {"comm-1:2"}
    assert statuses[-1].duration == 12 and statuses[-1].answered_by == "human"
    assert statuses[0].timestamp == NOW + timedelta(seconds=1)  # Twilio's Timestamp
    [gather] = [r.parsed for r in served.received if isinstance(r.parsed, GatherResult)]
    assert gather.digits == "9"
    assert OPTED_OUT in deliveries[5].body


def test_the_fake_answers_to_the_gather_action_our_twiml_named(twilio, gateway, app):
    served, url = app
    sid = _call(gateway, ref="comm-7:1")
    deliveries = twilio.complete(sid, digits="1", base_url=url)
    gather = next(d for d in deliveries if d.callback.kind == "gather")
    assert gather.url == f"{PUBLIC}{GATHER_PATH}?ref=comm-7%3A1"
    assert SCRIPT in gather.body


def test_a_tampered_callback_fails_the_signature_check(twilio, gateway, app):
    served, url = app
    sid = _call(gateway)
    [delivery] = twilio.complete(sid, status="busy", base_url=url,
                                 order=lambda steps: [steps[-1]])
    assert served.received[0].signed
    public = signed_url(PUBLIC, STATUS_PATH, urlsplit(delivery.url).query)
    form = dict(delivery.params)
    assert verify_signature(twilio.auth_token, public, list(form.items()), delivery.signature)
    form["CallStatus"] = "completed"
    assert not verify_signature(twilio.auth_token, public, list(form.items()),
                                delivery.signature)


def test_a_machine_gets_the_voicemail_script_after_the_beep(twilio, gateway, app):
    served, url = app
    sid = _call(gateway)
    twilio.complete(sid, answered_by="machine_end_beep", base_url=url)
    assert served.played == [True]
    [update] = twilio.call(sid).twiml_updates
    assert VOICEMAIL in update and "<Gather" not in update
    progress = CallProgress()
    for status in served.statuses():
        progress = progress.with_status(status.status, status.answered_by)
    assert progress.outcome() == (CallOutcome.MACHINE, None)


def test_swapping_the_script_of_a_call_that_ended_says_so(twilio, gateway):
    sid = _call(gateway)
    twilio.set_status(sid, "busy")
    assert gateway.play(sid, voicemail_twiml(VOICEMAIL, "alice", "en-US")) is False


def test_callbacks_out_of_order_still_end_in_the_final_outcome(twilio, gateway, app):
    served, url = app
    sid = _call(gateway)
    twilio.complete(sid, answered_by="human", base_url=url,
                    order=lambda steps: list(reversed(steps)))
    statuses = served.statuses()
    assert statuses[0].status == "completed"  # the end arrived before the ringing
    assert statuses[0].sequence_number == max(s.sequence_number or 0 for s in statuses)
    progress = CallProgress()
    for status in statuses:
        progress = progress.with_status(status.status, status.answered_by)
    assert progress.outcome() == (CallOutcome.LIVE_ANSWER, None)


def test_a_busy_line_reports_busy_without_fetching_the_script(twilio, gateway, app):
    served, url = app
    sid = _call(gateway)
    twilio.complete(sid, status="busy", base_url=url)
    assert [r.path for r in served.received] == [STATUS_PATH] * 3
    assert [s.status for s in served.statuses()] == ["initiated", "ringing", "busy"]


def test_a_failed_call_carries_its_error_code_to_the_outcome(twilio, gateway, app):
    served, url = app
    sid = _call(gateway)
    twilio.complete(sid, status="failed", error_code=13224, base_url=url)
    final = served.statuses()[-1]
    assert (final.status, final.error_code) == ("failed", "13224")
    progress = CallProgress().with_status(final.status, None, final.error_code)
    assert progress.outcome() == (CallOutcome.DIAL_ERROR, FailureKind.PERMANENT)


# -- parsers ---------------------------------------------------------------------------------

def test_parsers_refuse_bad_payloads_naming_fields_not_values():
    sid = "CA" + "a" * 32
    with pytest.raises(WebhookError, match="missing ref"):
        parse_call_status({"CallSid": sid, "CallStatus": "ringing"}, None, NOW)
    with pytest.raises(WebhookError, match="CallStatus has an unknown value") as bad:
        parse_call_status({"CallSid": sid, "CallStatus": "+15551230001"}, "r", NOW)
    assert "+1555" not in str(bad.value)
    with pytest.raises(WebhookError, match="CallSid is not a call id"):
        parse_amd({"CallSid": "+15551230001", "AnsweredBy": "human"}, "r", NOW)
    with pytest.raises(WebhookError, match="missing field AnsweredBy"):
        parse_amd({"CallSid": sid}, "r", NOW)
    with pytest.raises(WebhookError, match="Digits"):
        parse_gather({"CallSid": sid, "Digits": "my secret"}, "r", NOW)
    with pytest.raises(WebhookError, match="repeated"):
        parse_call_status([("CallSid", sid), ("CallStatus", "busy"),
                           ("CallStatus", "completed")], "r", NOW)


def test_an_answered_by_twilio_adds_later_reads_as_unknown():
    amd = parse_amd({"CallSid": "CA" + "b" * 32, "AnsweredBy": "machine_new_thing",
                     "MachineDetectionDuration": "3100"}, "r", NOW)
    assert (amd.answered_by, amd.machine_detection_duration) == ("unknown", 3100)
