"""One-to-one follow-up texts ("Follow up"): staff answer a patient from the conversation.
A follow-up goes the way every text goes (window, STOP, retries, receipts) and is never a
campaign: not listed, not counted, never completed. On SQLite and PostgreSQL alike."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from application.follow_ups import FollowUps
from application.replies import ReplyInbox
from application.staff_base import MemoryAudit
from application.staff_replies import RepliesFacade
from domain.access import ALL_SUBSCRIBERS, AccessDenied, Actor, Role
from domain.errors import InvalidContent, NotFound
from domain.follow_ups import FOLLOW_UPS_CAMPAIGN_ID
from domain.inbound import InboundText
from projections.runner import catch_up
from tests.fixtures_app import import_patients, patient_row
from tests.patient_data import PROVIDER_HEADER, write_csv
from workers.runner import EmbeddedRunner

ANN, BOB = "+13125550101", "+13125550102"
FOOTER = "Reply STOP to opt out."
# 11:00 in Chicago on the fixtures' Tuesday: the text window opens.
WINDOW_OPENS = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)
_sids = itertools.count(1)


class Desk:
    """A staff member's desk: the conversation and the follow-up box."""

    def __init__(self, o: Any) -> None:
        self.o = o
        self.inbox = ReplyInbox(o.store, o.db, o.clock, o.settings, self._catch_up)
        self.audit = MemoryAudit()
        self.facade = RepliesFacade(self.audit, self.inbox,
                                    FollowUps(o.store, o.db, o.clock, o.settings, o.catch_up))

    def _catch_up(self) -> int:
        return self.o.catch_up() + catch_up(self.o.store, self.o.db, self.inbox.projections)

    def run(self, hours: int = 24) -> None:
        EmbeddedRunner(self.o).run_simulated(self.o.clock.now() + timedelta(hours=hours))

    def texts_to(self, number: str) -> list[Any]:
        return [m for m in self.o.gateway.sent if m.to == number]

    def patient_texts(self, number: str, body: str) -> None:
        self.o.clock.advance_to(self.o.clock.now() + timedelta(minutes=1))
        self.o.inbound.on_text(InboundText(f"SM{next(_sids):032d}", number, "+15005550006",
                                           body, self.o.clock.now()))


@pytest.fixture
def desk(make_outreach: Any, tmp_path: Path) -> Desk:
    o = make_outreach()
    o.patients.import_file("providers", write_csv(tmp_path / "providers.csv", PROVIDER_HEADER, [
        ["D1", "Dr. North", "North", "Yes"], ["D2", "Dr. South", "South", "Yes"]]))
    import_patients(o, tmp_path, [
        {**patient_row("P1", ANN, first="Ann"), "PCP Provider ID": "D1"},
        {**patient_row("P2", BOB, first="Bob"), "PCP Provider ID": "D2"}])
    return Desk(o)


NORA = Actor(user_id="u1", username="nora", roles=frozenset({Role.CAMPAIGNS}),
             groups=(ALL_SUBSCRIBERS,))


def test_a_follow_up_waits_for_the_text_window_then_goes_with_its_own_words(desk: Desk) -> None:
    # Given 9:00 in the morning, before the text window opens at 11:00
    sent = desk.facade.follow_up(NORA, "P1", "Yes, Tuesday at 3pm works. See you then!")
    assert sent.status == "Planned"
    assert desk.texts_to(ANN) == []
    # When the workers run through the day
    desk.run()
    # Then it went once, at the window's opening, with its words and the footer
    [text] = desk.texts_to(ANN)
    assert text.body == f"Yes, Tuesday at 3pm works. See you then!\n{FOOTER}"
    assert text.at >= WINDOW_OPENS
    assert text.reference.startswith(sent.communication_id)


def test_a_follow_up_to_a_number_that_texted_stop_is_never_sent(desk: Desk) -> None:
    desk.patient_texts(ANN, "STOP")
    desk.facade.follow_up(NORA, "P1", "Sorry to see you go. Call us any time.")
    desk.run()
    assert desk.texts_to(ANN) == []
    [item] = [i for i in desk.inbox.thread("P1") if i.direction == "out"]
    assert item.status == "Skipped"


def test_follow_ups_are_never_a_campaign(desk: Desk) -> None:
    # Given a real campaign and two follow-ups to the same patient
    flu = desk.o.campaigns.create(name="Flu", body="Flu shots are here.",
                                  help_number="555-0100", active=True, audience=["P1", "P2"])
    first = desk.facade.follow_up(NORA, "P1", "First note")
    second = desk.facade.follow_up(NORA, "P1", "Second note")
    progress = EmbeddedRunner(desk.o).run_simulated(desk.o.clock.now() + timedelta(days=1))
    # Then each follow-up is its own text (not one per campaign and patient) and both went
    assert first.communication_id != second.communication_id
    assert len(desk.texts_to(ANN)) == 3
    # And the run's progress and the campaign list know only the campaign
    assert (progress.to_contact, progress.completed, progress.campaigns) == (2, 2, 1)
    assert [c.campaign_id for c in desk.o.campaigns.campaigns()] == [str(flu)]
    # And the follow-ups never complete: a later one still goes
    assert desk.o.campaigns.get(FOLLOW_UPS_CAMPAIGN_ID).is_active
    desk.facade.follow_up(NORA, "P1", "Third note")
    desk.run()
    assert desk.texts_to(ANN)[-1].body.startswith("Third note")


def test_the_conversation_shows_the_reply_and_the_follow_up_in_order(desk: Desk) -> None:
    desk.patient_texts(ANN, "Can I come Tuesday?")
    desk.facade.follow_up(NORA, "P1", "Yes, 3pm.")
    desk.run()
    thread = desk.facade.thread(NORA, "P1")
    assert [(i.direction, i.body, i.status) for i in thread] == [
        ("in", "Can I come Tuesday?", "New"), ("out", f"Yes, 3pm.\n{FOOTER}", "Sent")]
    # A reply to the follow-up belongs to it, and is listed in the inbox as such
    desk.patient_texts(ANN, "Thanks!")
    newest = desk.inbox.list().rows[0]
    assert (newest.body, newest.campaign_id, newest.unexpected) == (
        "Thanks!", str(FOLLOW_UPS_CAMPAIGN_ID), False)


def test_a_follow_up_needs_words_a_known_patient_and_one_of_your_groups(desk: Desk) -> None:
    with pytest.raises(InvalidContent):
        desk.facade.follow_up(NORA, "P1", "   ")
    with pytest.raises(InvalidContent):  # more than two segments with the footer
        desk.facade.follow_up(NORA, "P1", "word " * 80)
    with pytest.raises(NotFound):
        desk.facade.follow_up(NORA, "P404", "hello")
    north = Actor(user_id="u2", username="omar", roles=frozenset({Role.CAMPAIGNS}),
                  groups=("North",))
    with pytest.raises(AccessDenied):
        desk.facade.follow_up(north, "P2", "hello Bob")
    sent = desk.facade.follow_up(north, "P1", "hello Ann")
    desk.run()
    assert [t.body for t in desk.texts_to(BOB)] == []
    assert [t.body for t in desk.texts_to(ANN)] == [f"hello Ann\n{FOOTER}"]
    outcomes = [(r[0], r[1], r[2]) for r in desk.audit.records]
    assert ("omar", "reply.follow_up", "denied") in outcomes
    assert ("omar", "reply.follow_up", "allowed", ("P1",), "P1",
            f"communication {sent.communication_id}") in desk.audit.records
    assert outcomes.count(("nora", "reply.follow_up", "failed")) == 3


def test_a_follow_up_needs_the_campaigns_role(desk: Desk) -> None:
    viewer = Actor(user_id="u3", username="vic", roles=frozenset({Role.OPT_OUTS}),
                   groups=(ALL_SUBSCRIBERS,))
    with pytest.raises(AccessDenied):
        desk.facade.follow_up(viewer, "P1", "hello")
    desk.run()
    assert desk.texts_to(ANN) == []
