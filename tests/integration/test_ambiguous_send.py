"""A provider call whose outcome is unknown is never answered with a second text.

The real Twilio adapter (official SDK) in the whole pipeline, against the local fake Twilio:
a Twilio that takes the message and answers after our timeout, or closes the connection
after the body was written, must not get the same text twice; the provider is asked first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from application.bootstrap import Outreach, build
from application.clock import SimulatedClock
from application.settings import Settings
from tests.fakes.twilio_server import FakeTwilioServer
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from workers.runner import EmbeddedRunner

BODY = "Flu shots are here. Call (555) 010-0100 to book."
MOBILE = "+13125550100"
ELEVEN_AM = TUESDAY_9AM + timedelta(hours=2)


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(ELEVEN_AM)


@pytest.fixture
def twilio(clock: SimulatedClock) -> Iterator[FakeTwilioServer]:
    # The fake stamps messages with the application's clock, as reconciliation compares them.
    with FakeTwilioServer(now=clock.now) as fake:
        yield fake


@pytest.fixture
def outreach(stack: str, twilio: FakeTwilioServer, clock: SimulatedClock,
             tmp_path: Path) -> Iterator[Outreach]:
    settings = Settings(
        database_url=stack, twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token, twilio_from_number="+15005550006",
        twilio_api_base_url=twilio.url, twilio_timeout_seconds=0.3)
    o = build(settings, clock=clock)
    import_patients(o, tmp_path, [patient_row("P1", MOBILE)])
    yield o
    o.close()


def events_of(o: Outreach, name: str) -> list[Any]:
    return [e for e in (o.store.mapper.to_domain_event(n) for n in
                        o.store.recorder.select_notifications(start=1, limit=10_000))
            if type(e).__qualname__ == name]


def run_campaign(o: Outreach) -> Any:
    cid = o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    EmbeddedRunner(o).run_simulated(ELEVEN_AM + timedelta(hours=3))
    (row,) = o.campaigns.report(cid)
    return row


@pytest.mark.parametrize("lose_the_answer", [
    pytest.param(lambda t: t.answer_late_next(1.0), id="answer-after-our-timeout"),
    pytest.param(lambda t: t.drop_after_accept_next(), id="connection-reset-after-the-body"),
])
def test_a_message_the_provider_took_without_our_hearing_it_is_not_sent_again(
        outreach: Outreach, twilio: FakeTwilioServer,
        lose_the_answer: Callable[[FakeTwilioServer], None]) -> None:
    # Given a Twilio that takes the first message but whose answer never reaches us
    lose_the_answer(twilio)
    # When the campaign runs through the day
    row = run_campaign(outreach)
    # Then Twilio holds exactly one message, found by asking it, and the attempt counted once
    assert twilio.accepted_count_by_number() == {MOBILE: 1}
    assert (row.status, row.attempts) == ("Sent", 1)
    assert len(events_of(outreach, "Communication.OutcomeUnknown")) == 1
    assert events_of(outreach, "Communication.AttemptFailed") == []
    (accepted,) = events_of(outreach, "Communication.Accepted")
    assert accepted.provider_ref == twilio.accepted(MOBILE)[0].sid


def test_a_lost_answer_for_a_message_the_provider_never_took_counts_as_a_failed_attempt(
        outreach: Outreach, twilio: FakeTwilioServer) -> None:
    # Given a Twilio that reads the first request, takes nothing and hangs up
    twilio.drop_without_accepting_next()
    # When the campaign runs through the day
    row = run_campaign(outreach)
    # Then the provider was asked first, had no record, and the next attempt went once
    assert twilio.accepted_count_by_number() == {MOBILE: 1}
    assert (row.status, row.attempts) == ("Sent", 2)
    (failed,) = events_of(outreach, "Communication.AttemptFailed")
    assert (failed.attempt, failed.code, failed.kind) == (1, "not-found", "transient")
    lists = [r for r in twilio.requests if r.method == "GET"]
    assert lists, "the provider must be asked before the second attempt"
