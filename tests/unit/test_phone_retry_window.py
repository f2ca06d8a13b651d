"""The guide's phone rule over random failures: after a busy line or no answer, the next
call comes no earlier than three hours later, and only inside the phone window (11:00-20:00
Monday-Saturday, holidays skipped), whatever the time of the failure."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from domain.calendar import SendingCalendar
from domain.channels import Channel
from domain.retry import POLICIES, FailureKind

HOLIDAYS = {date(2026, 11, 26), date(2026, 12, 25)}
CALENDAR = SendingCalendar(is_holiday=lambda d: d in HOLIDAYS)

failures = st.datetimes(min_value=datetime(2026, 11, 1), max_value=datetime(2026, 12, 31),
                        timezones=st.just(UTC))


@given(failed_at=failures, attempt=st.integers(1, 4), key=st.text(min_size=1, max_size=20))
def test_the_next_call_is_three_hours_or_more_later_and_inside_the_window(
        failed_at: datetime, attempt: int, key: str) -> None:
    policy = POLICIES[Channel.PHONE]
    proposed = policy.next_attempt_at(attempt, failed_at, FailureKind.TRANSIENT, key)
    assert proposed is not None
    # What the dispatcher and the call-events service plan: the policy, then the window
    planned = CALENDAR.next_open(Channel.PHONE, proposed)
    assert planned - failed_at >= timedelta(hours=3)
    assert CALENDAR.is_open(Channel.PHONE, planned)
    local = planned.astimezone(CALENDAR.timezone)
    assert local.weekday() < 6 and local.date() not in HOLIDAYS
    assert 11 <= local.hour < 20


@given(failed_at=failures, key=st.text(min_size=1, max_size=20))
def test_the_fifth_failed_call_ends_the_communication(failed_at: datetime, key: str) -> None:
    assert POLICIES[Channel.PHONE].next_attempt_at(
        5, failed_at, FailureKind.TRANSIENT, key) is None
