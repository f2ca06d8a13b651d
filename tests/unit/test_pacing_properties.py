"""Rate caps: the planner and the limiter never let any hour carry more than the cap."""

from __future__ import annotations

import heapq
from bisect import bisect_left
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.calendar import SendingCalendar, Window
from domain.channels import Channel
from domain.pacing import HOUR, admits, next_free, plan_slots, spacing

CHICAGO = ZoneInfo("America/Chicago")
TEXT = Channel.TEXT
US_HOLIDAYS = {datetime(2026, 11, 26).date(), datetime(2026, 12, 25).date()}
MICRO = timedelta(microseconds=1)


def most_in_any_half_open_hour(times: list[datetime]) -> int:
    """Max over t of |{s : t <= s < t + 1h}|. The max is reached with t at a send, so sliding
    t over every send is exhaustive. `times` must be sorted."""
    return max(
        (bisect_left(times, t + HOUR) - i for i, t in enumerate(times)), default=0
    )


@st.composite
def calendars(draw: st.DrawFn) -> SendingCalendar:
    start = draw(st.integers(min_value=0, max_value=22 * 60))
    end = draw(st.integers(min_value=start + 1, max_value=min(start + 12 * 60, 24 * 60 - 1)))
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    window = Window(time(start // 60, start % 60), time(end // 60, end % 60), days)
    return SendingCalendar(CHICAGO, {TEXT: window}, lambda d: d in US_HOLIDAYS)


starts = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


# -- spacing ------------------------------------------------------------------------------

@given(per_hour=st.integers(min_value=1, max_value=100_000))
def test_spacing_is_the_smallest_whole_microsecond_gap_that_keeps_an_hour_under_the_cap(
    per_hour: int,
) -> None:
    # Given a cap, when we space sends `gap` apart, then per_hour of them span under an hour
    # (the next one starts a new hour) and one microsecond less would not
    gap = spacing(per_hour)
    assert gap * per_hour >= HOUR
    assert (gap - MICRO) * per_hour < HOUR


def test_a_cap_below_one_per_hour_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        spacing(0)


# -- the planner ----------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(
    cal=calendars(),
    start=starts,
    count=st.integers(min_value=0, max_value=250),
    per_hour=st.one_of(st.integers(1, 60), st.integers(61, 5000)),
)
def test_planned_slots_respect_windows_order_and_the_hourly_cap(
    cal: SendingCalendar, start: datetime, count: int, per_hour: int
) -> None:
    # Given any window, start instant, audience size and cap
    # When the campaign is planned
    slots = plan_slots(count, start, cal, TEXT, per_hour)
    # Then every patient has exactly one slot
    assert len(slots) == count
    # And every slot lies inside an open window, no earlier than the start
    assert all(cal.is_open(TEXT, s) and s >= start for s in slots)
    # And slots follow the audience order (a campaign resumes with the next patient)
    assert all(a < b for a, b in zip(slots, slots[1:], strict=False))
    # And no half-open hour [t, t+1h) holds more than the cap
    assert most_in_any_half_open_hour(slots) <= per_hour
    # And the first slot is the first open instant (nothing is wasted at the start)
    if slots:
        assert slots[0] == cal.next_open(TEXT, start)


@settings(max_examples=60, deadline=None)
@given(start=starts, per_hour=st.integers(min_value=1, max_value=30))
def test_within_one_window_the_planner_sends_as_fast_as_the_cap_allows(
    start: datetime, per_hour: int
) -> None:
    # Given an always-open calendar
    every_day = frozenset(range(7))
    always = SendingCalendar(CHICAGO, {TEXT: Window(time(0), time(23, 59, 59), every_day)})
    # When 3 hours' worth of sends are planned from a moment just after midnight local
    local = start.astimezone(CHICAGO)
    begin = datetime(local.year, local.month, local.day, 1, tzinfo=CHICAGO).astimezone(UTC)
    slots = plan_slots(3 * per_hour, begin, always, TEXT, per_hour)
    # Then exactly per_hour of them fall in the first hour: the cap is reached, not undershot
    assert sum(1 for s in slots if s < begin + HOUR) == per_hour
    assert all(b - a == spacing(per_hour) for a, b in zip(slots, slots[1:], strict=False))


# -- the limiter --------------------------------------------------------------------------

@st.composite
def request_streams(draw: st.DrawFn) -> tuple[int, list[datetime]]:
    """A cap and a sorted stream of send requests, bursty and sparse alike (µs resolution)."""
    per_hour = draw(st.integers(min_value=1, max_value=50))
    base = datetime(2026, 6, 9, 16, tzinfo=UTC)
    offsets = draw(st.lists(
        st.one_of(
            st.integers(min_value=0, max_value=4 * 3_600_000_000),  # anywhere in 4 hours
            st.sampled_from([0, 3_600_000_000, 3_600_000_001, 3_599_999_999]),  # edges
        ),
        min_size=1, max_size=150,
    ))
    return per_hour, sorted(base + timedelta(microseconds=o) for o in offsets)


@settings(max_examples=200, deadline=None)
@given(stream=request_streams())
def test_the_limiter_never_lets_a_half_open_hour_exceed_the_cap(
    stream: tuple[int, list[datetime]],
) -> None:
    per_hour, requests = stream
    # Given a dispatcher that sends each request when admitted, and otherwise retries it
    # at next_free (as the dispatcher defers a refused communication)
    queue = [(t, i) for i, t in enumerate(requests)]
    heapq.heapify(queue)
    sent: list[datetime] = []
    while queue:
        at, i = heapq.heappop(queue)
        if admits(sent, at, per_hour):
            # When a send is admitted, it is recorded
            sent.append(at)
            continue
        # When it is refused, next_free says when there is room again
        free = next_free(sent, at, per_hour)
        # Then that instant is later, admitted, and the earliest such: just before it, not
        assert free > at
        assert admits(sent, free, per_hour)
        assert not admits(sent, free - MICRO, per_hour)
        heapq.heappush(queue, (free, i))
    # Then every request was sent exactly once
    assert len(sent) == len(requests)
    assert sent == sorted(sent)
    # And no half-open hour holds more than the cap
    assert most_in_any_half_open_hour(sent) <= per_hour


@settings(max_examples=200, deadline=None)
@given(stream=request_streams(), probe=st.integers(min_value=0, max_value=2 * 3_600_000_000))
def test_next_free_is_the_earliest_admitted_instant_for_any_history(
    stream: tuple[int, list[datetime]], probe: int
) -> None:
    per_hour, history = stream
    # Given any sorted history of sends (even one over the cap) and an instant after it
    at = history[-1] + timedelta(microseconds=probe)
    free = next_free(history, at, per_hour)
    # Then next_free is not earlier than the instant and is admitted
    assert free >= at and admits(history, free, per_hour)
    # And when it had to wait, one microsecond earlier was still refused
    if free > at:
        assert not admits(history, at, per_hour)
        assert not admits(history, free - MICRO, per_hour)
    else:
        assert admits(history, at, per_hour)


def test_a_send_exactly_one_hour_after_the_oldest_of_a_full_hour_is_admitted() -> None:
    # Given 2 sends per hour, sent at 16:00 and 16:30
    t0 = datetime(2026, 6, 9, 16, tzinfo=UTC)
    sent = [t0, t0 + timedelta(minutes=30)]
    # When a third asks at 16:45, it is refused
    assert not admits(sent, t0 + timedelta(minutes=45), 2)
    # Then it may go at 17:00: [16:00, 17:00) and [16:30, 17:30) both still hold 2
    assert next_free(sent, t0 + timedelta(minutes=45), 2) == t0 + HOUR
    assert admits(sent, t0 + HOUR, 2)
    assert not admits(sent, t0 + HOUR - MICRO, 2)
