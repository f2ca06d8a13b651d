"""The segments Twilio bills, recorded on each send: from the Message resource's
num_segments (the fake answers with its own count, tests/fakes/twilio_segments.py), through
the official SDK and our adapter, onto the stored Accepted event and the public topic."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from application.bootstrap import Outreach, build
from application.clock import SimulatedClock
from application.settings import Settings
from bus.public_events import CommunicationContexts, public_message
from domain.communication import Communication, communication_id
from domain.sms import compose
from gateways.sms import OutboundText
from gateways.twilio_sms import TwilioSmsGateway, num_segments
from tests.fakes.twilio_server import FakeTwilioServer
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from workers.runner import EmbeddedRunner

SENDER = "+15005550006"
PATIENT = "+13125550100"
ONE_SEGMENT = "Your flu shot is due."
# 152 'a', a euro sign (an escape pair, 2 septets), 129 'a' and the footer: 306 septets,
# which Twilio sends as 3 segments (the euro cannot straddle the first boundary)
ISSUE_BODY = compose("a" * 152 + "€" + "a" * 129)
# UCS-2: an emoji that would straddle the first 67-unit boundary opens segment 2
EMOJI_AT_BOUNDARY = "’" + "a" * 65 + "😀" + "a" * 66


@pytest.fixture
def twilio() -> Iterator[FakeTwilioServer]:
    with FakeTwilioServer() as fake:
        yield fake


def gateway(twilio: FakeTwilioServer) -> TwilioSmsGateway:
    return TwilioSmsGateway(twilio.account_sid, twilio.auth_token, from_number=SENDER,
                            api_base_url=twilio.url)


@pytest.mark.parametrize(("body", "segments"), [
    (ONE_SEGMENT, 1), ("a" * 161, 2), (ISSUE_BODY, 3), (EMOJI_AT_BOUNDARY, 3)])
def test_the_send_result_carries_the_segments_twilio_counted(
    twilio: FakeTwilioServer, body: str, segments: int
) -> None:
    result = gateway(twilio).send(OutboundText(PATIENT, body, "comm-1:1"))
    assert result.accepted and result.segments == segments


def test_a_message_found_after_a_crash_carries_its_segments_too(
    twilio: FakeTwilioServer,
) -> None:
    sms = gateway(twilio)
    sent = sms.send(OutboundText(PATIENT, ISSUE_BODY, "comm-1:1"))
    found = sms.find_sent(PATIENT, ISSUE_BODY, twilio.messages()[0].date_created)
    assert found is not None and (found.provider_ref, found.segments) == (sent.provider_ref, 3)


@pytest.fixture
def outreach(stack: str, twilio: FakeTwilioServer) -> Iterator[Outreach]:
    settings = Settings(
        database_url=stack, twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token, twilio_from_number=SENDER,
        twilio_api_base_url=twilio.url, public_url="https://outreach.example.org")
    o = build(settings, clock=SimulatedClock(TUESDAY_9AM))
    yield o
    o.close()


def is_accepted(event: object) -> bool:
    return type(event).__qualname__ == "Communication.Accepted"


def accepted_events(o: Outreach, campaign_id: Any, patient_id: str) -> list[Any]:
    stored = o.store.events.get(communication_id(campaign_id, patient_id))
    return [e for e in stored if is_accepted(e)]


def test_each_send_records_the_segments_twilio_bills_on_accepted_and_publishes_them(
        outreach: Outreach, twilio: FakeTwilioServer, tmp_path: Path) -> None:
    # Given a campaign whose body with its footer takes two segments
    import_patients(outreach, tmp_path, [patient_row("P1", PATIENT)])
    body = "Flu shots are here. " * 12  # 240 characters, 263 with the footer
    cid = outreach.campaigns.create(name="Flu", body=body, help_number="555-0100",
                                    active=True)
    # When it is sent through Twilio
    EmbeddedRunner(outreach).run_simulated(TUESDAY_9AM + timedelta(hours=3))
    # Then the stored Accepted event says how many segments Twilio counted
    [accepted] = accepted_events(outreach, cid, "P1")
    assert accepted.segments == 2 == int(twilio.messages()[0].as_json()["num_segments"])
    # And the public topic carries it
    message = public_message(accepted, 1, outreach.contact_keys,
                             context=CommunicationContexts(outreach.store))
    assert message is not None and message["data"]["segments"] == 2


def test_an_accepted_event_stored_before_segments_existed_still_loads_and_publishes(
        outreach: Outreach) -> None:
    # Given a communication whose Accepted event was stored by the code before `segments`
    comm = Communication(campaign_id=uuid4(), patient_id="P1", channel="text", sequence=0,
                         due_at=TUESDAY_9AM)
    comm.start_attempt(1, TUESDAY_9AM)
    comm.accept(1, TUESDAY_9AM, "SM" + "1" * 32, segments=2)
    *earlier, accepted = comm.collect_events()
    legacy = object.__new__(type(accepted))  # what the old code's event held: no segments
    object.__setattr__(legacy, "__dict__",
                       {k: v for k, v in vars(accepted).items() if k != "segments"})
    outreach.store.recorder.insert_events(
        [outreach.store.mapper.to_stored_event(e) for e in (*earlier, legacy)])
    # Then it loads: the communication is Sent with its provider reference
    loaded: Communication = outreach.store.repository.get(comm.id)
    assert (loaded.status, loaded.provider_ref) == ("Sent", "SM" + "1" * 32)
    # And its public message simply has no segments (an optional field of the schema)
    [stored_accepted] = [e for e in outreach.store.events.get(comm.id) if is_accepted(e)]
    message = public_message(stored_accepted, 1, outreach.contact_keys,
                             context=CommunicationContexts(outreach.store))
    assert message is not None and "segments" not in message["data"]
    assert message["data"]["provider_ref"] == "SM" + "1" * 32


@pytest.mark.parametrize(("value", "count"), [
    ("2", 2), (3, 3), (None, None), ("", None), ("two", None), ("-1", None)])
def test_a_num_segments_we_cannot_read_is_recorded_as_unknown_not_as_a_failure(
    value: object, count: int | None
) -> None:
    assert num_segments(value) == count
