"""Phone campaigns on the send path, driven piece by piece on both stacks: the dispatcher with
the PhoneSender places calls on the voice simulator, whose callbacks (status steps, the
answering-machine verdict, key presses) the VoiceEventService applies as `outreach serve`
applies Twilio's webhooks; and those webhooks over HTTP."""

from __future__ import annotations

import socket
import threading
import time as time_module
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from eventsourcing.application import AggregateNotFoundError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.testclient import TestClient

from api.webhooks_voice import add_voice_routes
from application.bootstrap import Outreach
from application.clock import SimulatedClock
from application.voice_events import VoiceEventService
from bus.intents import SendIntent
from domain.campaign import Campaign
from domain.channels import Channel
from domain.communication import CommStatus, Communication, communication_id
from domain.preferences import OptOutType, PatientPreferences, patient_preferences_id
from domain.retry import FailureKind
from domain.voice import CallOutcome
from gateways.simulator_voice import SimulatorVoiceGateway
from gateways.twilio_voice import TwilioVoiceGateway
from gateways.twilio_voice_webhooks import CallStatus, GatherResult
from gateways.twilio_webhooks import signed_url, verify_signature
from gateways.voice import OutboundCall
from tests.fakes.twilio_voice_server import FakeTwilioVoiceServer
from tests.fixtures_app import import_patients, patient_row
from workers.dispatcher import Dispatcher
from workers.senders_phone import PhoneSender

CHICAGO = ZoneInfo("America/Chicago")
NOON = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)  # Tuesday 12:00 in Chicago: window open
CONTENT: dict[str, Any] = {
    "template": "Ad hoc phone call",
    "script": "Hello {{ first_name }}, {{ provider }} reminds you of your flu shot.",
    "voicemail": "Hello, this message is for {{ first_name }}. Please call us back at "
                 "{{ help_number }}.",
    "callback_number": "(312) 555-0100", "help_number": "(312) 555-0100", "caller_id": None,
    "provider": "Dr Ruiz", "care_manager": ""}
OPT_OUT_DAYS = 30

LIVE, MACHINE, BUSY, NO_ANSWER, PRESSES_9 = (
    "+13125550100", "+13125550101", "+13125550102", "+13125550103", "+13125550109")
INVALID = "+15005550001"


@dataclass
class Phone:
    """The phone channel's pieces around one application, as the lead wires them."""

    o: Outreach
    gateway: SimulatorVoiceGateway
    service: VoiceEventService
    dispatcher: Dispatcher

    @classmethod
    def build(cls, make_outreach: Callable[..., Outreach], patients: dict[str, str],
              tmp_path: Any, start: datetime = NOON) -> Phone:
        clock = SimulatedClock(start)
        gateway = SimulatorVoiceGateway(now=clock.now)
        o = make_outreach(clock=clock, voice_gateway=gateway,
                          phone_opt_out_days=OPT_OUT_DAYS, public_url="https://clinic.test")
        import_patients(o, tmp_path, [
            patient_row(pid, number, first=f"Pat{pid}") for pid, number in patients.items()])
        o.catch_up()
        calendar = o.settings.calendar
        dispatcher = Dispatcher(
            store=o.store, directory=o.directory,
            senders={Channel.PHONE: PhoneSender(gateway, o.store, calendar)},
            limiter=o.limiter, calendar=calendar, clock=o.clock,
            contact_keys=o.contact_keys)
        service = VoiceEventService(o.store, o.directory, o.clock, o.settings, gateway)
        return cls(o, gateway, service, dispatcher)

    def campaign(self, patient_ids: list[str], **content: Any) -> Campaign:
        now = self.o.clock.now()
        camp = Campaign.draft(name="Flu calls", description="", channel=Channel.PHONE,
                              content={**CONTENT, **content},
                              start=self.o.settings.calendar.today(now),
                              audience=patient_ids, now=now, calendar=self.o.settings.calendar)
        camp.activate(now=now, calendar=self.o.settings.calendar)
        comms = [Communication(campaign_id=camp.id, patient_id=pid, channel=str(Channel.PHONE),
                               sequence=n, due_at=now) for n, pid in enumerate(patient_ids)]
        self.o.store.save(camp, *comms)
        return camp

    def comm(self, camp: Campaign, pid: str) -> Communication:
        found: Communication = self.o.store.repository.get(communication_id(camp.id, pid))
        return found

    def dispatch_attempt(self, camp: Campaign, pid: str, attempt: int) -> None:
        comm = self.comm(camp, pid)
        self.dispatcher.handle([SendIntent(comm.id, camp.id, attempt, pid,
                                           self.o.clock.now())])

    def dispatch(self, camp: Campaign, *pids: str) -> None:
        intents = []
        for pid in pids:
            comm = self.comm(camp, pid)
            intents.append(SendIntent(comm.id, camp.id, comm.attempts + 1, pid,
                                      self.o.clock.now()))
        self.dispatcher.handle(intents)

    def apply_callbacks(self) -> list[Any]:
        events = self.gateway.drain_events()
        for event in events:
            apply(self.service, event)
        return events


def apply(service: VoiceEventService, event: Any) -> None:
    if isinstance(event, CallStatus):
        service.on_status(event)
    elif hasattr(event, "digits"):
        service.on_gather(event)
    else:
        service.on_amd(event)


def versions(phone: Phone, *ids: Any) -> list[int]:
    return [phone.o.store.repository.get(i).version for i in ids]


# -- outcomes --------------------------------------------------------------------------------

def test_a_live_answer_is_delivered_live_answer(make_outreach, tmp_path) -> None:
    phone = Phone.build(make_outreach, {"P1": LIVE}, tmp_path)
    camp = phone.campaign(["P1"])
    phone.dispatch(camp, "P1")
    assert phone.comm(camp, "P1").status == CommStatus.SENT
    phone.apply_callbacks()
    comm = phone.comm(camp, "P1")
    assert (comm.status, comm.last_outcome) == (CommStatus.DELIVERED, CallOutcome.LIVE_ANSWER)
    assert phone.gateway.calls[0].played == []  # a person hears the live script only


def test_a_machine_gets_the_voicemail_and_is_delivered_message_left(
        make_outreach, tmp_path) -> None:
    phone = Phone.build(make_outreach, {"P1": MACHINE}, tmp_path)
    camp = phone.campaign(["P1"])
    phone.dispatch(camp, "P1")
    phone.apply_callbacks()
    comm = phone.comm(camp, "P1")
    assert (comm.status, comm.last_outcome) == (CommStatus.DELIVERED, CallOutcome.MACHINE)
    [played] = phone.gateway.calls[0].played
    assert "this message is for PatP1" in played and "(312) 555-0100" in played
    assert "flu" not in played  # the voicemail, not the script with its health words


def test_a_busy_line_is_retried_three_hours_later_inside_the_phone_window(
        make_outreach, tmp_path) -> None:
    # 18:30 in Chicago: three hours on is after the window closes (20:00).
    late = datetime(2026, 11, 24, 18, 30, tzinfo=CHICAGO).astimezone(UTC)
    phone = Phone.build(make_outreach, {"P1": BUSY}, tmp_path, start=late)
    camp = phone.campaign(["P1"])
    phone.dispatch(camp, "P1")
    [*_, busy] = phone.apply_callbacks()
    comm = phone.comm(camp, "P1")
    assert (comm.status, comm.last_outcome) == (CommStatus.RETRY_PENDING, CallOutcome.BUSY)
    assert comm.due_at is not None and comm.due_at >= busy.timestamp + timedelta(hours=3)
    local = comm.due_at.astimezone(CHICAGO)
    assert local.date() == date(2026, 11, 25) and time(11) <= local.time() < time(20)
    phone.o.clock.advance_to(comm.due_at)  # type: ignore[attr-defined]
    phone.dispatch(camp, "P1")
    phone.apply_callbacks()
    comm = phone.comm(camp, "P1")
    assert (comm.status, comm.last_outcome, comm.attempts) == (
        CommStatus.DELIVERED, CallOutcome.LIVE_ANSWER, 2)


def test_no_answer_is_retried_and_an_invalid_number_ends_as_a_dial_error(
        make_outreach, tmp_path) -> None:
    phone = Phone.build(make_outreach, {"P1": NO_ANSWER, "P2": INVALID}, tmp_path)
    camp = phone.campaign(["P1", "P2"])
    phone.dispatch(camp, "P1", "P2")
    phone.apply_callbacks()
    first, second = phone.comm(camp, "P1"), phone.comm(camp, "P2")
    assert (first.status, first.last_outcome) == (CommStatus.RETRY_PENDING,
                                                  CallOutcome.NO_ANSWER)
    assert (second.status, second.reason, second.last_code) == (
        CommStatus.UNSUCCESSFUL, f"Unsuccessful - {CallOutcome.DIAL_ERROR}", "21211")


def test_pressing_9_opts_out_for_the_set_days_and_the_next_call_is_skipped(
        make_outreach, tmp_path) -> None:
    phone = Phone.build(make_outreach, {"P1": PRESSES_9}, tmp_path)
    camp = phone.campaign(["P1"])
    phone.dispatch(camp, "P1")
    phone.apply_callbacks()
    assert phone.comm(camp, "P1").last_outcome == CallOutcome.LIVE_ANSWER
    prefs: PatientPreferences = phone.o.store.repository.get(patient_preferences_id("P1"))
    today = phone.o.settings.calendar.today(phone.o.clock.now())
    last_day = prefs.opt_outs[str(OptOutType.HEALTH_PHONE)]
    assert last_day == (today + timedelta(days=OPT_OUT_DAYS - 1)).isoformat()  # not None
    again = phone.campaign(["P1"])
    phone.dispatch(again, "P1")
    skipped = phone.comm(again, "P1")
    assert (skipped.status, skipped.reason) == (CommStatus.SKIPPED, "opted out")
    assert len(phone.gateway.calls) == 1



def test_a_9_pressed_in_an_earlier_attempts_call_still_opts_out(make_outreach, tmp_path) -> None:
    phone = Phone.build(make_outreach, {"P1": BUSY}, tmp_path)
    camp = phone.campaign(["P1"])
    comm = phone.comm(camp, "P1")
    ref = f"{comm.id}:1"
    comm.start_attempt(1, NOON)
    comm.accept(1, NOON, "CA" + "3" * 32)
    comm.fail(1, NOON, "Busy", "busy", FailureKind.TRANSIENT, NOON + timedelta(hours=3))
    comm.start_attempt(2, NOON + timedelta(hours=3))  # the next call is under way
    phone.o.store.save(comm)
    phone.service.on_gather(GatherResult("CA" + "3" * 32, ref, "9", NOON))
    prefs: PatientPreferences = phone.o.store.repository.get(patient_preferences_id("P1"))
    assert str(OptOutType.HEALTH_PHONE) in prefs.opt_outs
    assert phone.comm(camp, "P1").status == CommStatus.SENDING  # attempt 2 untouched

# -- order and repeats -----------------------------------------------------------------------

def test_callbacks_out_of_order_never_overwrite_the_final_outcome(
        make_outreach, tmp_path) -> None:
    phone = Phone.build(make_outreach, {"P1": LIVE}, tmp_path)
    camp = phone.campaign(["P1"])
    phone.dispatch(camp, "P1")
    events = phone.gateway.drain_events()
    completed = next(e for e in events if isinstance(e, CallStatus) and e.status == "completed")
    phone.service.on_status(completed)  # the final status first
    settled = versions(phone, phone.comm(camp, "P1").id)
    for event in events:  # then everything before it, late
        apply(phone.service, event)
    late_busy = replace(completed, status="busy", answered_by=None,
                        timestamp=completed.timestamp + timedelta(seconds=5))
    phone.service.on_status(late_busy)  # even a second, different end
    phone.service.on_status(replace(completed, status="ringing"))
    comm = phone.comm(camp, "P1")
    assert (comm.status, comm.last_outcome) == (CommStatus.DELIVERED, CallOutcome.LIVE_ANSWER)
    assert versions(phone, comm.id) == settled


def test_a_final_status_without_answered_by_uses_the_verdict_heard_before(
        make_outreach, tmp_path) -> None:
    phone = Phone.build(make_outreach, {"P1": MACHINE}, tmp_path)
    camp = phone.campaign(["P1"])
    phone.dispatch(camp, "P1")
    for event in phone.gateway.drain_events():
        if isinstance(event, CallStatus) and event.status == "completed":
            event = replace(event, answered_by=None)
        apply(phone.service, event)
    assert phone.comm(camp, "P1").last_outcome == CallOutcome.MACHINE


def test_duplicate_callbacks_change_nothing(make_outreach, tmp_path) -> None:
    phone = Phone.build(make_outreach, {"P1": PRESSES_9, "P2": MACHINE}, tmp_path)
    camp = phone.campaign(["P1", "P2"])
    phone.dispatch(camp, "P1", "P2")
    events = phone.apply_callbacks()
    ids = [phone.comm(camp, "P1").id, phone.comm(camp, "P2").id, patient_preferences_id("P1")]
    before = versions(phone, *ids)
    for event in events:
        apply(phone.service, event)
    assert versions(phone, *ids) == before
    assert len(phone.gateway.calls[1].played) == 1  # the voicemail is not started again


def test_a_callback_arriving_before_the_dispatcher_recorded_the_call_accepts_it(
        make_outreach, tmp_path) -> None:
    phone = Phone.build(make_outreach, {"P1": LIVE}, tmp_path)
    camp = phone.campaign(["P1"])
    comm = phone.comm(camp, "P1")
    comm.start_attempt(1, phone.o.clock.now())
    phone.o.store.save(comm)
    phone.service.on_status(CallStatus("CA" + "0" * 32, f"{comm.id}:1", "completed", "human",
                                       None, 20, 3, phone.o.clock.now()))
    comm = phone.comm(camp, "P1")
    assert (comm.status, comm.provider_ref) == (CommStatus.DELIVERED, "CA" + "0" * 32)


# -- the webhooks over HTTP ------------------------------------------------------------------

def client_for(service: VoiceEventService) -> TestClient:
    app = FastAPI()

    async def read_form(request: Request) -> list[tuple[str, str]] | JSONResponse:
        return parse_qsl((await request.body()).decode(), keep_blank_values=True)

    add_voice_routes(app, read_form, service)
    return TestClient(app)


def test_the_webhooks_answer_twiml_and_204_and_apply_what_twilio_posts(
        make_outreach, tmp_path) -> None:
    phone = Phone.build(make_outreach, {"P1": LIVE}, tmp_path)
    camp = phone.campaign(["P1"])
    phone.dispatch(camp, "P1")
    phone.gateway.drain_events()  # Twilio's own posts are below, over HTTP
    ref = f"{phone.comm(camp, 'P1').id}:1"
    sid = phone.gateway.calls[0].sid
    http = client_for(phone.service)
    script = http.post("/webhooks/twilio/voice/twiml", params={"ref": ref},
                       data={"CallSid": sid, "CallStatus": "in-progress"})
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("application/xml")
    assert "Hello PatP1, Dr Ruiz reminds you" in script.text
    assert f"https://clinic.test/webhooks/twilio/voice/gather?ref={ref.replace(':', '%3A')}" \
        in script.text
    machine = http.post("/webhooks/twilio/voice/twiml", params={"ref": ref},
                        data={"CallSid": sid, "AnsweredBy": "machine_end_beep"})
    assert "call us back" in machine.text and "flu" not in machine.text
    assert http.post("/webhooks/twilio/voice/amd", params={"ref": ref},
                     data={"CallSid": sid, "AnsweredBy": "human"}).status_code == 204
    keys = http.post("/webhooks/twilio/voice/gather", params={"ref": ref},
                     data={"CallSid": sid, "Digits": "9"})
    assert keys.status_code == 200 and "You will not receive these calls" in keys.text
    done = http.post("/webhooks/twilio/voice/status", params={"ref": ref},
                     data={"CallSid": sid, "CallStatus": "completed", "AnsweredBy": "human"})
    assert done.status_code == 204
    assert phone.comm(camp, "P1").last_outcome == CallOutcome.LIVE_ANSWER
    prefs: PatientPreferences = phone.o.store.repository.get(patient_preferences_id("P1"))
    assert str(OptOutType.HEALTH_PHONE) in prefs.opt_outs


def test_unknown_references_hear_a_polite_goodbye_and_bad_forms_get_400(
        make_outreach, tmp_path) -> None:
    phone = Phone.build(make_outreach, {"P1": LIVE}, tmp_path)
    http = client_for(phone.service)
    sid = "CA" + "1" * 32
    unknown = http.post("/webhooks/twilio/voice/twiml", params={"ref": "nobody:1"},
                        data={"CallSid": sid})
    assert unknown.status_code == 200 and "<Hangup" in unknown.text and "<Say" in unknown.text
    bad = http.post("/webhooks/twilio/voice/status", params={"ref": "x:1"},
                    data={"CallSid": sid, "CallStatus": "exploded"})
    assert bad.status_code == 400
    assert http.post("/webhooks/twilio/voice/amd", params={"ref": "x:1"},
                     data={"CallSid": "not-a-sid", "AnsweredBy": "human"}).status_code == 400


def test_a_test_calls_key_presses_opt_nobody_out(make_outreach, tmp_path) -> None:
    phone = Phone.build(make_outreach, {"P1": PRESSES_9}, tmp_path)
    camp = phone.campaign(["P1"])
    sid = "CA" + "2" * 32
    replay = phone.service.on_gather(GatherResult(sid, f"{camp.id}:test", "1", NOON))
    assert "Hello Pat, Dr Ruiz reminds you" in replay and "{{" not in replay
    out = phone.service.on_gather(GatherResult(sid, f"{camp.id}:test", "9", NOON))
    assert "You will not receive these calls" in out
    with pytest.raises(AggregateNotFoundError):
        phone.o.store.repository.get(patient_preferences_id("P1"))


def test_a_call_whose_answer_was_lost_is_found_at_the_provider_not_placed_again(
        make_outreach, tmp_path) -> None:
    phone = Phone.build(make_outreach, {"P1": LIVE}, tmp_path)
    camp = phone.campaign(["P1"])
    comm = phone.comm(camp, "P1")
    comm.start_attempt(1, phone.o.clock.now())  # then the dispatcher died mid-call
    phone.o.store.save(comm)
    placed = phone.gateway.place_call(OutboundCall(LIVE, None, f"{comm.id}:1"))
    phone.o.clock.advance_to(NOON + timedelta(minutes=5))  # type: ignore[attr-defined]
    phone.dispatch_attempt(camp, "P1", 1)
    comm = phone.comm(camp, "P1")
    assert (comm.status, comm.provider_ref) == (CommStatus.SENT, placed.provider_ref)
    assert len(phone.gateway.calls) == 1


# -- the official SDK against a local fake of Twilio, its signed callbacks over HTTP ----------

PUBLIC = "https://clinic.test"


@contextmanager
def serving(service: VoiceEventService, auth_token: str) -> Iterator[str]:
    """The voice routes behind a signature check as api.http's, on a real HTTP server."""
    app = FastAPI()

    async def read_verified_form(request: Request) -> list[tuple[str, str]] | JSONResponse:
        pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        url = signed_url(PUBLIC, request.url.path, request.url.query)
        if not verify_signature(auth_token, url, pairs,
                                request.headers.get("X-Twilio-Signature")):
            return JSONResponse({"error": "invalid signature"}, status_code=403)
        return pairs

    add_voice_routes(app, read_verified_form, service)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time_module.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def twilio_phone(phone: Phone, twilio: FakeTwilioVoiceServer) -> TwilioVoiceGateway:
    gateway = TwilioVoiceGateway(twilio.account_sid, twilio.auth_token,
                                 from_number="+15005550006", callback_base=PUBLIC,
                                 api_base_url=twilio.url, timeout=2)
    phone.service.gateway = gateway
    phone.dispatcher.senders[Channel.PHONE] = PhoneSender(gateway, phone.o.store,
                                                          phone.o.settings.calendar)
    return gateway


def test_calls_through_the_sdk_settle_from_twilios_signed_callbacks_in_any_order(
        make_outreach, tmp_path) -> None:
    phone = Phone.build(make_outreach, {"P1": MACHINE, "P2": PRESSES_9, "P3": LIVE}, tmp_path)
    with FakeTwilioVoiceServer(now=phone.o.clock.now) as twilio, \
            serving(phone.service, twilio.auth_token) as app_url:
        twilio_phone(phone, twilio)
        camp = phone.campaign(["P1", "P2", "P3"])
        phone.dispatch(camp, "P1", "P2", "P3")
        sids = {pid: phone.comm(camp, pid).provider_ref for pid in ("P1", "P2", "P3")}
        machine = twilio.complete(sids["P1"], answered_by="machine_end_beep", base_url=app_url)
        pressed = twilio.complete(sids["P2"], answered_by="human", digits="9",
                                  base_url=app_url)
        # The final status first, the rest (a late "ringing" among them) after it.
        late = twilio.complete(sids["P3"], answered_by="human", base_url=app_url,
                               order=lambda steps: [steps[-1], *steps[:-1]])
    assert all(d.http_status in (200, 204) for d in [*machine, *pressed, *late])
    [voicemail] = twilio.call(sids["P1"]).twiml_updates
    assert "this message is for PatP1" in voicemail and "flu" not in voicemail
    assert "You will not receive these calls" in next(
        d.body for d in pressed if d.callback.kind == "gather")
    outcomes = {pid: phone.comm(camp, pid).last_outcome for pid in ("P1", "P2", "P3")}
    assert outcomes == {"P1": CallOutcome.MACHINE, "P2": CallOutcome.LIVE_ANSWER,
                        "P3": CallOutcome.LIVE_ANSWER}
    prefs: PatientPreferences = phone.o.store.repository.get(patient_preferences_id("P2"))
    assert str(OptOutType.HEALTH_PHONE) in prefs.opt_outs
