"""Email's rules as properties, no I/O: the two-day rule with the email window, EmailState as a
state machine (introduction, bounces by address key), and a Communication whose attempt is
the introductory email."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from domain.calendar import SendingCalendar
from domain.channels import Channel
from domain.communication import CommStatus, Communication
from domain.email import INTRODUCTION, INTRODUCTION_LEAD, MESSAGE, EmailState, Readiness
from domain.errors import DomainError
from domain.retry import MAX_ATTEMPTS, RETRIES_EXCEEDED, FailureKind

CHICAGO = ZoneInfo("America/Chicago")
START = datetime(2026, 1, 1, tzinfo=UTC)
instants = st.integers(min_value=0, max_value=2 * 365 * 24 * 3600).map(
    lambda s: START + timedelta(seconds=s))
offsets = st.one_of(
    st.integers(min_value=-3 * 24 * 3600, max_value=6 * 24 * 3600),
    # near the two days, where an off-by-a-little rule would show
    st.integers(min_value=2 * 24 * 3600 - 7200, max_value=2 * 24 * 3600 + 7200),
).map(lambda s: timedelta(seconds=s))
KEYS = ("key-a", "key-b", "key-c")
keys = st.sampled_from(KEYS)


def introduced_at(at: datetime) -> EmailState:
    state = EmailState(patient_id="P1")
    state.introduction_sent(at, uuid4())
    return state


def inside_email_window(at: datetime) -> bool:
    local = at.astimezone(CHICAGO)
    return local.weekday() <= 5 and time(9) <= local.time() < time(22, 45)


# -- the two-day rule, with windows -----------------------------------------------------------

@given(intro=instants, offset=offsets, key=keys)
def test_a_campaign_email_is_ready_exactly_two_days_after_the_introduction(intro, offset, key):
    state = introduced_at(intro)
    now = intro + offset
    readiness, ready_at = state.readiness(key, now)
    if now >= intro + timedelta(days=2):
        assert (readiness, ready_at) == (Readiness.READY, None)
    else:
        assert (readiness, ready_at) == (Readiness.WAIT, intro + timedelta(days=2))


@given(intro=instants, offset=offsets, holidays=st.sets(
    st.dates(min_value=date(2026, 1, 1), max_value=date(2028, 2, 1)), max_size=40))
def test_a_waiting_email_is_deferred_to_an_open_window_never_before_two_days(
        intro, offset, holidays):
    calendar = SendingCalendar(is_holiday=holidays.__contains__)
    now = intro + offset
    readiness, ready_at = introduced_at(intro).readiness("key-a", now)
    if readiness != Readiness.WAIT:
        return
    assert ready_at is not None
    # What the dispatcher defers a Wait to (workers/dispatcher.py: next_open of `until`)
    goes_at = calendar.next_open(Channel.EMAIL, ready_at)
    assert goes_at >= ready_at >= intro + INTRODUCTION_LEAD
    assert inside_email_window(goes_at)
    assert calendar.is_open(Channel.EMAIL, goes_at)
    assert calendar.today(goes_at) not in holidays
    # …and at the first moment it could: either at once, or when a window opens
    assert goes_at == ready_at or goes_at.astimezone(CHICAGO).time() == time(9)
    # By then the email is ready
    assert introduced_at(intro).readiness("key-a", goes_at)[0] == Readiness.READY


@given(now=instants, key=keys)
def test_a_patient_never_introduced_needs_the_introduction(now, key):
    assert EmailState(patient_id="P1").readiness(key, now) == (
        Readiness.NEEDS_INTRODUCTION, None)


# -- EmailState as a state machine ------------------------------------------------------------

class EmailStateMachine(RuleBasedStateMachine):
    """Random introductions, undelivered introductions and bounces on a few address keys,
    against a two-field model; every command repeated emits nothing new; the events replay
    to the same state."""

    def __init__(self) -> None:
        super().__init__()
        self.state = EmailState(patient_id="P1")
        self.events: list[Any] = list(self.state.collect_events())
        self.clock = START
        self.model_introduced: datetime | None = None
        self.model_bounced: str | None = None

    def _tick(self, seconds: int) -> datetime:
        self.clock += timedelta(seconds=seconds)
        return self.clock

    def _apply_twice(self, command: Any, *args: Any) -> None:
        command(*args)
        self.events.extend(self.state.collect_events())
        command(*args)
        assert self.state.collect_events() == []  # a repeated command changes nothing

    @rule(seconds=st.integers(1, 4 * 24 * 3600))
    def introduction_sent(self, seconds: int) -> None:
        at = self._tick(seconds)
        if self.model_introduced is None:
            self.model_introduced = at
        self._apply_twice(self.state.introduction_sent, at, uuid4())

    @rule(seconds=st.integers(1, 3600))
    def introduction_undelivered(self, seconds: int) -> None:
        self.model_introduced = None
        self._apply_twice(self.state.introduction_undelivered, self._tick(seconds), uuid4())

    @rule(key=keys, seconds=st.integers(1, 3600))
    def bounced(self, key: str, seconds: int) -> None:
        self.model_bounced = key
        self._apply_twice(self.state.bounced, key, self._tick(seconds), "Permanent/General")

    @precondition(lambda self: self.model_bounced is not None)
    @rule(seconds=st.integers(1, 3600))
    def the_bounced_address_bounces_again(self, seconds: int) -> None:
        assert self.model_bounced is not None
        self.state.bounced(self.model_bounced, self._tick(seconds), "Permanent/General")
        assert self.state.collect_events() == []

    @invariant()
    def readiness_follows_the_model(self) -> None:
        for key in KEYS:
            readiness, _ = self.state.readiness(key, self.clock)
            # BOUNCED iff this key is the last one that bounced
            assert (readiness == Readiness.BOUNCED) == (key == self.model_bounced)
            if readiness == Readiness.BOUNCED:
                continue
            if self.model_introduced is None:
                assert readiness == Readiness.NEEDS_INTRODUCTION
            elif self.clock >= self.model_introduced + timedelta(days=2):
                assert readiness == Readiness.READY
            else:
                assert readiness == Readiness.WAIT

    @invariant()
    def the_events_replay_to_the_same_state(self) -> None:
        replayed: Any = None
        for domain_event in self.events:
            replayed = domain_event.mutate(replayed)
        assert replayed.introduced_at == self.state.introduced_at
        assert replayed.bounced_key == self.state.bounced_key
        assert replayed.version == self.state.version


TestEmailStateMachine = EmailStateMachine.TestCase
TestEmailStateMachine.settings = settings(max_examples=150, stateful_step_count=30,
                                          deadline=None)


@given(first=keys, second=keys)
def test_a_new_address_after_a_bounce_is_not_bounced(first, second):
    state = introduced_at(START)
    state.bounced(first, START + timedelta(hours=1), "Permanent/General")
    later = START + timedelta(days=3)
    readiness, _ = state.readiness(second, later)
    assert (readiness == Readiness.BOUNCED) == (first == second)
    if first != second:
        assert readiness == Readiness.READY


# -- a Communication whose attempt is the introductory email ---------------------------------

def communication() -> Communication:
    return Communication(campaign_id=UUID(int=1), patient_id="P1", channel=str(Channel.EMAIL),
                         sequence=0, due_at=START)


def introducing(attempt: int = 1) -> Communication:
    comm = communication()
    for n in range(1, attempt):
        comm.start_attempt(n, START, INTRODUCTION)
        comm.fail(n, START, "soft bounce", "bounce:Transient", FailureKind.TRANSIENT,
                  START + timedelta(hours=n))
    comm.start_attempt(attempt, START, INTRODUCTION)
    return comm


@given(attempt=st.integers(1, MAX_ATTEMPTS))
def test_an_accepted_introduction_is_final_as_introductory_email_needed(attempt):
    comm = introducing(attempt)
    comm.accept(attempt, START + timedelta(seconds=1), "ses-1")
    assert comm.status == CommStatus.INTRODUCED == "Introductory email needed"
    assert comm.is_final and comm.introduced and comm.reason == "Introductory email needed"
    # Final: nothing more starts, skips or cancels it; a delivery receipt changes nothing
    assert not comm.may_attempt(attempt + 1)
    with pytest.raises(DomainError):
        comm.skip(START, "opted out")
    assert comm.cancel(START, "campaign stopped") is False
    assert comm.confirm_delivery(START) is False


def test_an_accepted_campaign_message_is_sent_not_introduced():
    comm = communication()
    comm.start_attempt(1, START, MESSAGE)
    comm.accept(1, START, "ses-1")
    assert comm.status == CommStatus.SENT and not comm.introduced


@given(attempt=st.integers(1, MAX_ATTEMPTS))
def test_a_hard_bounce_after_an_introduction_ends_it_unsuccessful(attempt):
    comm = introducing(attempt)
    comm.accept(attempt, START, "ses-1")
    comm.fail(attempt, START + timedelta(minutes=1), "Email Bounced", "bounce:Permanent",
              FailureKind.PERMANENT, None)
    assert comm.status == CommStatus.UNSUCCESSFUL
    assert comm.reason == "Unsuccessful - Email Bounced"
    assert comm.due_at is None


@given(attempt=st.integers(1, MAX_ATTEMPTS), delay=st.integers(60, 6 * 3600))
def test_a_soft_bounce_after_an_introduction_retries_until_the_fifth(attempt, delay):
    comm = introducing(attempt)
    comm.accept(attempt, START, "ses-1")
    retry_at = START + timedelta(seconds=delay)
    comm.fail(attempt, START, "soft bounce", "bounce:Transient", FailureKind.TRANSIENT,
              retry_at)
    if attempt < MAX_ATTEMPTS:
        assert comm.status == CommStatus.RETRY_PENDING
        assert comm.due_at == retry_at and comm.may_attempt(attempt + 1)
    else:
        assert comm.status == CommStatus.UNSUCCESSFUL and comm.reason == RETRIES_EXCEEDED


def test_a_retried_attempt_may_be_the_campaign_message_once_introduced():
    comm = introducing(1)
    comm.fail(1, START, "soft bounce", "bounce:Transient", FailureKind.TRANSIENT,
              START + timedelta(hours=1))
    comm.start_attempt(2, START + timedelta(hours=1), MESSAGE)
    assert comm.purpose == MESSAGE
    comm.accept(2, START + timedelta(hours=1), "ses-2")
    assert comm.status == CommStatus.SENT
