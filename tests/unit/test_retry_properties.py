"""At most five attempts: transient failures retry (backoff ± jitter), permanent ones end at
once, and the fifth failure ends with "Unsuccessful - Communication Retries Exceeded"."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.channels import Channel
from domain.communication import CommStatus, Communication
from domain.errors import DomainError
from domain.retry import MAX_ATTEMPTS, POLICIES, RETRIES_EXCEEDED, FailureKind, RetryPolicy

CAMPAIGN = UUID("6f1c1c9e-3a55-4d0e-9a53-0c1b7f9d2a10")
T0 = datetime(2026, 6, 9, 16, tzinfo=UTC)


def planned(channel: Channel = Channel.TEXT, patient: str = "p-1") -> Communication:
    return Communication(
        campaign_id=CAMPAIGN, patient_id=patient, channel=str(channel), sequence=0, due_at=T0
    )


def event_names(comm: Communication) -> list[str]:
    return [type(e).__name__ for e in comm.collect_events()]


# Outcomes of one attempt, as the dispatcher and the receipts report them.
ACCEPTED = "accepted"  # the provider took it (and no failure receipt follows)
TRANSIENT = "transient"  # refused for now (busy, timeout, 5xx)
UNDELIVERED = "undelivered"  # accepted, then a receipt says it failed (transient)
PERMANENT = "permanent"  # refused for good (invalid number, landline, blocked)


def run_attempts(comm: Communication, outcomes: list[str], channel: Channel) -> int:
    """Drive attempts through the aggregate as the dispatcher would; returns attempts made."""
    policy = POLICIES[channel]
    at = T0
    for outcome in outcomes:
        if not comm.may_attempt(comm.attempts + 1):
            break
        attempt = comm.attempts + 1
        comm.start_attempt(attempt, at)
        if outcome == ACCEPTED:
            comm.accept(attempt, at, provider_ref=f"SM{attempt}")
            continue
        if outcome == UNDELIVERED:
            comm.accept(attempt, at, provider_ref=f"SM{attempt}")
        kind = FailureKind.PERMANENT if outcome == PERMANENT else FailureKind.TRANSIENT
        next_at = policy.next_attempt_at(attempt, at, kind, key=str(comm.id))
        comm.fail(attempt, at, reason="carrier trouble", code="30003", kind=kind,
                  next_attempt_at=next_at)
        at = next_at or at
    return comm.attempts


channels = st.sampled_from([Channel.TEXT, Channel.PHONE, Channel.EMAIL])


@settings(max_examples=150, deadline=None)
@given(channel=channels, outcomes=st.lists(st.sampled_from([TRANSIENT, UNDELIVERED]),
                                           min_size=MAX_ATTEMPTS, max_size=8))
def test_five_transient_failures_end_as_retries_exceeded_and_a_sixth_attempt_is_refused(
    channel: Channel, outcomes: list[str]
) -> None:
    # Given a planned communication
    comm = planned(channel)
    # When every attempt fails transiently (refused, or accepted then undelivered)
    made = run_attempts(comm, outcomes, channel)
    # Then exactly five attempts were made (the Phytel rule, not just whatever the constant is)
    assert made == MAX_ATTEMPTS == 5
    # And it ends Unsuccessful because the retries are exceeded
    assert comm.status == CommStatus.UNSUCCESSFUL
    assert comm.reason == RETRIES_EXCEEDED == "Unsuccessful - Communication Retries Exceeded"
    assert comm.due_at is None
    names = event_names(comm)
    assert names.count("AttemptStarted") == MAX_ATTEMPTS
    assert names.count("AttemptFailed") == MAX_ATTEMPTS
    assert names[-1] == "RetriesExceeded" and names.count("RetriesExceeded") == 1
    # And a sixth attempt cannot start
    assert not comm.may_attempt(MAX_ATTEMPTS + 1)
    with pytest.raises(DomainError):
        comm.start_attempt(MAX_ATTEMPTS + 1, T0 + timedelta(days=1))


@settings(max_examples=100, deadline=None)
@given(channel=channels, failures=st.integers(min_value=0, max_value=MAX_ATTEMPTS - 1))
def test_before_the_fifth_failure_the_communication_waits_for_its_next_attempt(
    channel: Channel, failures: int
) -> None:
    # Given k < 5 transient failures
    comm = planned(channel)
    run_attempts(comm, [TRANSIENT] * failures, channel)
    # Then it is not final: it waits for attempt k+1 (or, with none yet, for the first)
    assert not comm.is_final
    assert comm.may_attempt(failures + 1)
    assert not comm.may_attempt(failures + 2)
    if failures:
        assert comm.status == CommStatus.RETRY_PENDING
        assert comm.due_at is not None and comm.due_at > T0


@settings(max_examples=150, deadline=None)
@given(channel=channels, before=st.integers(min_value=0, max_value=MAX_ATTEMPTS - 1),
       undelivered=st.booleans())
def test_a_permanent_failure_at_any_attempt_ends_the_communication_at_once(
    channel: Channel, before: int, undelivered: bool
) -> None:
    # Given some transient failures, then a permanent one
    comm = planned(channel)
    run_attempts(comm, [UNDELIVERED if undelivered else TRANSIENT] * before + [PERMANENT],
                 channel)
    # Then it ends at that attempt, Unsuccessful with the provider's reason, and no retry
    assert comm.attempts == before + 1
    assert comm.status == CommStatus.UNSUCCESSFUL
    assert comm.reason == "Unsuccessful - carrier trouble"
    assert comm.due_at is None
    names = event_names(comm)
    assert names[-1] == "FailedPermanently" and "RetriesExceeded" not in names
    with pytest.raises(DomainError):
        comm.start_attempt(before + 2, T0 + timedelta(days=1))


@settings(max_examples=100, deadline=None)
@given(channel=channels, k=st.integers(min_value=1, max_value=MAX_ATTEMPTS))
def test_accepted_at_any_attempt_up_to_the_fifth_ends_sent(channel: Channel, k: int) -> None:
    # Given k-1 transient failures, then the provider accepts attempt k
    comm = planned(channel)
    run_attempts(comm, [TRANSIENT] * (k - 1) + [ACCEPTED], channel)
    # Then it is Sent after k attempts, with no further attempt possible
    assert comm.attempts == k
    assert comm.status == CommStatus.SENT and comm.is_final
    assert not comm.may_attempt(k + 1)


def test_a_permanent_failure_ends_even_when_the_caller_offers_a_retry_time() -> None:
    # Given an attempt under way
    comm = planned()
    comm.start_attempt(1, T0)
    # When it fails permanently but a next attempt time is (wrongly) passed
    comm.fail(1, T0, reason="invalid number", code="21211", kind=FailureKind.PERMANENT,
              next_attempt_at=T0 + timedelta(hours=1))
    # Then it ends now
    assert comm.status == CommStatus.UNSUCCESSFUL and comm.due_at is None


def test_the_fifth_transient_failure_ends_even_when_a_retry_time_is_offered() -> None:
    comm = planned()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        comm.start_attempt(attempt, T0)
        comm.fail(attempt, T0, reason="busy", code="30001", kind=FailureKind.TRANSIENT,
                  next_attempt_at=T0 + timedelta(hours=attempt))
    assert (comm.status, comm.reason) == (CommStatus.UNSUCCESSFUL, RETRIES_EXCEEDED)


# -- the policy ---------------------------------------------------------------------------

@st.composite
def policies(draw: st.DrawFn) -> RetryPolicy:
    base = timedelta(seconds=draw(st.integers(min_value=1, max_value=6 * 3600)))
    ceiling = timedelta(seconds=draw(st.integers(min_value=1, max_value=24 * 3600)))
    return RetryPolicy(
        base=base,
        factor=draw(st.floats(min_value=1.0, max_value=5.0)),
        ceiling=ceiling,
        jitter=draw(st.floats(min_value=0.0, max_value=0.5)),
    )


any_policy = st.one_of(st.sampled_from(list(POLICIES.values())), policies())
keys = st.text(min_size=1, max_size=40)
attempts = st.integers(min_value=1, max_value=MAX_ATTEMPTS)
# One microsecond of slack for timedelta * float rounding.
ROUNDING = timedelta(microseconds=1)


def nominal(policy: RetryPolicy, attempt: int) -> timedelta:
    return replace(policy, jitter=0.0).delay(attempt, "any key")


@given(policy=any_policy, key=keys, attempt=attempts)
def test_the_delay_is_deterministic_per_communication_and_attempt(
    policy: RetryPolicy, key: str, attempt: int
) -> None:
    # Given the same communication and attempt, when asked twice (or after a replay)
    # Then the delay is the same
    assert policy.delay(attempt, key) == policy.delay(attempt, key)
    assert replace(policy).delay(attempt, key) == policy.delay(attempt, key)


@given(policy=any_policy, key=keys, attempt=attempts)
def test_the_delay_is_within_the_jitter_of_the_nominal_backoff(
    policy: RetryPolicy, key: str, attempt: int
) -> None:
    # Given the nominal delay min(base * factor^(n-1), ceiling)
    expected = min(policy.base * policy.factor ** (attempt - 1), policy.ceiling)
    assert abs(nominal(policy, attempt) - expected) <= ROUNDING
    # Then the real delay is within ± jitter of it, and positive
    delay = policy.delay(attempt, key)
    assert delay > timedelta(0)
    low, high = expected * (1 - policy.jitter), expected * (1 + policy.jitter)
    assert low - ROUNDING <= delay <= high + ROUNDING


@given(policy=any_policy, attempt=st.integers(min_value=1, max_value=MAX_ATTEMPTS - 1))
def test_nominal_delays_never_decrease_and_never_pass_the_ceiling(
    policy: RetryPolicy, attempt: int
) -> None:
    assert nominal(policy, attempt) <= nominal(policy, attempt + 1)
    assert nominal(policy, attempt + 1) <= policy.ceiling


def test_the_delay_does_not_depend_on_the_process_so_a_replay_gives_the_same_schedule() -> None:
    # Given fixed communication keys, then the delays are the recorded ones (a hash seeded per
    # process, or a random generator, would change them from run to run)
    assert POLICIES[Channel.TEXT].delay(1, "comm-1") == timedelta(seconds=989, microseconds=395913)
    assert POLICIES[Channel.PHONE].delay(1, "comm-1") == timedelta(
        seconds=11068, microseconds=187738)


def test_jitter_spreads_a_crowd_of_failures_instead_of_retrying_in_lockstep() -> None:
    # Given 200 communications that failed at the same instant
    policy = POLICIES[Channel.TEXT]
    delays = {policy.delay(1, f"comm-{i}") for i in range(200)}
    # Then their retries are spread out
    assert len(delays) > 150
    assert max(delays) - min(delays) > policy.base * policy.jitter


@given(key=keys, attempt=st.integers(min_value=1, max_value=4))
def test_the_next_phone_attempt_comes_no_earlier_than_three_hours_after_the_last(
        key: str, attempt: int) -> None:
    # Given a phone call whose attempt failed transiently (busy, no answer) at 12:00
    policy = POLICIES[Channel.PHONE]
    following = policy.next_attempt_at(attempt, T0, FailureKind.TRANSIENT, key)
    # Then the next one is three hours later or a little more (the jitter only adds)
    assert following is not None
    assert timedelta(hours=3) <= following - T0 <= timedelta(hours=3, minutes=9)


@given(policy=any_policy, key=keys, attempt=attempts)
def test_the_policy_never_offers_a_retry_after_a_permanent_failure_or_the_fifth_attempt(
    policy: RetryPolicy, key: str, attempt: int
) -> None:
    assert policy.next_attempt_at(attempt, T0, FailureKind.PERMANENT, key) is None
    transient = policy.next_attempt_at(attempt, T0, FailureKind.TRANSIENT, key)
    assert (transient is None) == (attempt >= MAX_ATTEMPTS)
    if transient is not None:
        assert transient == T0 + policy.delay(attempt, key)


def test_attempts_are_numbered_from_one() -> None:
    with pytest.raises(ValueError):
        POLICIES[Channel.TEXT].delay(0, "k")
