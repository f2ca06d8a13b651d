"""PhoneSender's rules, no I/O: which number a call rings, which patients are skipped and
why, what the gateway is given. The event store is eventsourcing's in-memory one."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from application.ports import PatientContact
from application.settings import Settings
from application.store import EventStore
from domain.campaign import Campaign
from domain.channels import Channel
from domain.communication import Communication, SkipReason
from domain.email import MESSAGE
from domain.preferences import Duration, OptOutType, PatientPreferences
from gateways.simulator_voice import SimulatorVoiceGateway
from gateways.voice import OutboundCall
from workers.senders import Skip
from workers.senders_phone import PhoneSender

NOON = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)  # Tuesday, 12:00 in Chicago
SETTINGS = Settings(database_url="sqlite:///unused.db")
CALENDAR = SETTINGS.calendar
CONTENT: dict[str, Any] = {
    "template": "Ad hoc phone call", "script": "Hello {{ first_name }}.",
    "voicemail": "Please call us back at {{ help_number }}.",
    "callback_number": "(312) 555-0100", "caller_id": None, "provider": "",
    "care_manager": ""}


def contact(mobile: str | None = "+13125550100", home: str | None = None,
            pid: str = "P1") -> PatientContact:
    return PatientContact(patient_id=pid, first_name="Ann", last_name="Lee", status="Active",
                          mobile=mobile, home_phone=home, email=None)


def campaign(**content: Any) -> Campaign:
    return Campaign.draft(name="Flu", description="", channel=Channel.PHONE,
                          content={**CONTENT, **content}, start=date(2026, 11, 24),
                          audience=["P1"], now=NOON, calendar=CALENDAR)


@pytest.fixture
def store() -> EventStore:
    return EventStore(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


@pytest.fixture
def sender(store: EventStore) -> PhoneSender:
    return PhoneSender(SimulatorVoiceGateway(now=lambda: NOON), store, CALENDAR)


def comm_of(camp: Campaign) -> Communication:
    return Communication(campaign_id=camp.id, patient_id="P1", channel=str(Channel.PHONE),
                         sequence=0, due_at=NOON)


def opt_out(store: EventStore, kind: OptOutType, duration: Duration = Duration(),
            protocol: str = "") -> None:
    prefs = PatientPreferences(patient_id="P1")
    prefs.opt_out(kind, duration, CALENDAR.today(NOON), NOON, "asked", protocol=protocol)
    store.save(prefs)


def test_a_patient_with_a_valid_mobile_is_called(sender: PhoneSender) -> None:
    camp = campaign()
    assert sender.decide(comm_of(camp), camp, contact(), NOON) == MESSAGE


def test_a_patient_without_any_phone_number_is_skipped_no_phone(sender: PhoneSender) -> None:
    camp = campaign()
    verdict = sender.decide(comm_of(camp), camp, contact(mobile=None, home=None), NOON)
    assert verdict == Skip(SkipReason.NO_PHONE)


def test_the_home_phone_is_called_when_there_is_no_mobile(sender: PhoneSender) -> None:
    camp = campaign()
    person = contact(mobile=None, home="+13125550177")
    assert sender.decide(comm_of(camp), camp, person, NOON) == MESSAGE
    call = sender.compose(comm_of(camp), 1, camp, person, MESSAGE)
    assert call.to == "+13125550177"


def test_an_invalid_number_is_skipped_invalid_number(sender: PhoneSender) -> None:
    camp = campaign()
    verdict = sender.decide(comm_of(camp), camp, contact(mobile="+15551230001"), NOON)
    assert verdict == Skip(SkipReason.INVALID_NUMBER)


@pytest.mark.parametrize("kind", [OptOutType.GLOBAL, OptOutType.APPT_PHONE])
def test_global_and_appt_conf_phone_opt_outs_skip_the_call(
        store: EventStore, sender: PhoneSender, kind: OptOutType) -> None:
    opt_out(store, kind)
    camp = campaign()
    assert sender.decide(comm_of(camp), camp, contact(), NOON) == Skip(SkipReason.OPTED_OUT)


def test_a_health_reminders_phone_opt_out_skips_only_until_its_last_day(
        store: EventStore, sender: PhoneSender) -> None:
    opt_out(store, OptOutType.HEALTH_PHONE, Duration(days=2))
    camp = campaign()
    assert sender.decide(comm_of(camp), camp, contact(), NOON) == Skip(SkipReason.OPTED_OUT)
    later = NOON + timedelta(days=2)
    assert sender.decide(comm_of(camp), camp, contact(), later) == MESSAGE


def test_opt_outs_of_other_channels_do_not_stop_calls(
        store: EventStore, sender: PhoneSender) -> None:
    opt_out(store, OptOutType.HEALTH_TEXT)
    camp = campaign()
    assert sender.decide(comm_of(camp), camp, contact(), NOON) == MESSAGE


def test_a_protocol_opt_out_skips_that_protocols_calls_only(
        store: EventStore, sender: PhoneSender) -> None:
    opt_out(store, OptOutType.PROTOCOL, protocol="Diabetes")
    diabetes, other = campaign(protocol="Diabetes"), campaign(protocol="Asthma")
    assert sender.decide(comm_of(diabetes), diabetes, contact(), NOON) == \
        Skip(SkipReason.OPTED_OUT)
    assert sender.decide(comm_of(other), other, contact(), NOON) == MESSAGE


def test_the_call_carries_the_reference_and_the_campaigns_caller_id(
        sender: PhoneSender) -> None:
    camp = campaign(caller_id="+13125550199")
    comm = comm_of(camp)
    call = sender.compose(comm, 2, camp, contact(), MESSAGE)
    assert call == OutboundCall(to="+13125550100", from_number="+13125550199",
                                reference=f"{comm.id}:2")
    assert sender.compose(comm, 1, campaign(), contact(), MESSAGE).from_number is None
