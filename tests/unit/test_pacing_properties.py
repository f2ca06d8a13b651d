"""Rate caps: the planner and the limiter never let any hour (closed at both ends) carry more
than the cap, and the limiter paces a backlog at the cap's rate with a small burst."""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.calendar import SendingCalendar, Window
from domain.channels import Channel
from domain.pacing import HOUR, Pace, admits, next_free, plan_slots, room, spacing

CHICAGO = ZoneInfo("America/Chicago")
TEXT = Channel.TEXT
US_HOLIDAYS = {datetime(2026, 11, 26).date(), datetime(2026, 12, 25).date()}
MICRO = timedelta(microseconds=1)
MINUTE = timedelta(minutes=1)


def most_in_any_closed_span(times: list[datetime], length: timedelta = HOUR) -> int:
    """Max over t of |{s : t <= s <= t + length}|: both ends count (sends at t and t + 1h
    are in one hour). The max is reached with t at a send, so sliding t over every send is
    exhaustive. `times` must be sorted."""
    return max(
        (bisect_right(times, t + length) - i for i, t in enumerate(times)), default=0
    )


def minute_bound(pace: Pace) -> int:
    """What the pacing promises for any closed minute."""
    return math.ceil(pace.per_hour / 60) + pace.burst


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
def test_spacing_is_the_smallest_whole_microsecond_gap_that_keeps_a_closed_hour_under_the_cap(
    per_hour: int,
) -> None:
    # Given a cap, when we space sends `gap` apart, then per_hour + 1 of them span more than
    # an hour (never all inside one closed hour) and one microsecond less would not
    gap = spacing(per_hour)
    assert gap * per_hour > HOUR
    assert (gap - MICRO) * per_hour <= HOUR


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
    # And no closed hour [t, t+1h] holds more than the cap
    assert most_in_any_closed_span(slots) <= per_hour
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

BASE = datetime(2026, 6, 9, 16, tzinfo=UTC)
paces = st.builds(
    Pace,
    per_hour=st.one_of(st.integers(1, 60), st.integers(61, 5000)),
    burst=st.one_of(st.integers(1, 12), st.integers(13, 400)),
)


@st.composite
def request_streams(draw: st.DrawFn) -> tuple[Pace, list[datetime]]:
    """A pace and a sorted stream of send requests, bursty and sparse alike (µs resolution),
    with requests on the edges of an hour and of an emission interval."""
    pace = draw(paces)
    t = pace.interval // MICRO
    offsets = draw(st.lists(
        st.one_of(
            st.integers(min_value=0, max_value=4 * 3_600_000_000),  # anywhere in 4 hours
            st.sampled_from([0, 3_600_000_000, 3_600_000_001, 3_599_999_999, t, t - 1]),
        ),
        min_size=1, max_size=150,
    ))
    return pace, sorted(BASE + timedelta(microseconds=o) for o in offsets)


def assert_paced(sent: list[datetime], pace: Pace) -> None:
    """The two promises: the cap over any closed hour, the pacing over any closed minute."""
    assert most_in_any_closed_span(sent, HOUR) <= pace.per_hour
    assert most_in_any_closed_span(sent, MINUTE) <= minute_bound(pace)


@settings(max_examples=200, deadline=None)
@given(stream=request_streams())
def test_the_limiter_never_lets_a_closed_hour_exceed_the_cap_nor_a_minute_its_pace(
    stream: tuple[Pace, list[datetime]],
) -> None:
    pace, requests = stream
    # Given a dispatcher that sends each request when admitted, and otherwise retries it
    # at next_free (as the dispatcher defers a refused communication)
    queue = [(t, i) for i, t in enumerate(requests)]
    heapq.heapify(queue)
    sent: list[datetime] = []
    while queue:
        at, i = heapq.heappop(queue)
        if admits(sent, at, pace):
            # When a send is admitted, it is recorded
            sent.append(at)
            continue
        # When it is refused, next_free says when there is room again
        free = next_free(sent, at, pace)
        # Then that instant is later, admitted, and the earliest such: just before it, not
        assert free > at
        assert admits(sent, free, pace)
        assert not admits(sent, free - MICRO, pace)
        heapq.heappush(queue, (free, i))
    # Then every request was sent exactly once
    assert len(sent) == len(requests)
    assert sent == sorted(sent)
    # And no closed hour holds more than the cap, no closed minute more than its pace
    assert_paced(sent, pace)


@settings(max_examples=200, deadline=None)
@given(stream=request_streams(), probe=st.integers(min_value=0, max_value=2 * 3_600_000_000))
def test_next_free_is_the_earliest_admitted_instant_for_any_history(
    stream: tuple[Pace, list[datetime]], probe: int
) -> None:
    pace, history = stream
    # Given any sorted history of sends (even one over the cap) and an instant after it
    at = history[-1] + timedelta(microseconds=probe)
    free = next_free(history, at, pace)
    # Then next_free is not earlier than the instant and is admitted
    assert free >= at and admits(history, free, pace)
    # And when it had to wait, one microsecond earlier was still refused
    if free > at:
        assert not admits(history, at, pace)
        assert not admits(history, free - MICRO, pace)
    else:
        assert admits(history, at, pace)


@settings(max_examples=200, deadline=None)
@given(stream=request_streams(), probe=st.integers(min_value=0, max_value=2 * 3_600_000_000))
def test_room_is_how_many_sends_in_a_row_are_admitted_at_one_instant(
    stream: tuple[Pace, list[datetime]], probe: int
) -> None:
    pace, history = stream
    at = history[-1] + timedelta(microseconds=probe)
    # When sends are admitted one after another at the same instant
    sent, admitted = list(history), 0
    while admits(sent, at, pace):
        sent.append(at)
        admitted += 1
    # Then room said how many, and never more than the burst
    assert room(history, at, pace) == admitted <= pace.burst


def run_worker(slots: list[datetime], attempts: list[datetime], pace: Pace,
               stopped: tuple[datetime, datetime] | None = None) -> list[datetime]:
    """A worker sending a planned campaign. At each attempt instant, in time order, it
    reserves every slot due and not yet sent, in order, as many as the limiter admits; when
    some are refused it comes back at next_free (as the scheduler's next_due makes it).
    While `stopped` (a pause, an outage) it makes no attempt and resumes at the end."""
    def running(t: datetime) -> datetime:
        return stopped[1] if stopped and stopped[0] <= t < stopped[1] else t

    queue = sorted({running(t) for t in attempts})
    queued = set(queue)  # one wake-up per instant, as the scheduler has one next_due
    sent: list[datetime] = []
    while queue:
        t = heapq.heappop(queue)
        due = bisect_right(slots, t) - len(sent)
        if due <= 0:
            continue
        admitted = min(room(sent, t, pace), due)
        sent.extend([t] * admitted)
        if admitted < due:
            again = running(next_free(sent, t, pace))
            if again not in queued:
                queued.add(again)
                heapq.heappush(queue, again)
    return sent


@st.composite
def paused_campaigns(draw: st.DrawFn) -> tuple[Pace, list[datetime], list[datetime],
                                               tuple[datetime, datetime]]:
    """A planned campaign, workers stopped for a while (slots become overdue), and a worker
    that tries at every slot it is up for plus at any other instants."""
    pace = draw(paces)
    slots = plan_slots(draw(st.integers(1, 200)), draw(starts), draw(calendars()), TEXT,
                       pace.per_hour)
    span = (slots[-1] - slots[0]) // MICRO + 1
    stop_at = slots[0] + timedelta(microseconds=draw(st.integers(0, span)))
    stopped = (stop_at, stop_at + timedelta(
        microseconds=draw(st.integers(0, 6 * 3_600_000_000))))
    extra = draw(st.lists(st.integers(0, span + 3_600_000_000), max_size=60))
    attempts = slots + [slots[0] + timedelta(microseconds=o) for o in extra]
    return pace, slots, attempts, stopped


@settings(max_examples=300, deadline=None)
@given(campaign=paused_campaigns())
def test_a_backlog_after_a_pause_is_paced_and_never_bunched_over_the_cap(
    campaign: tuple[Pace, list[datetime], list[datetime], tuple[datetime, datetime]],
) -> None:
    # Given any cap and burst, any plan, and workers stopped for any span (slots overdue)
    pace, slots, attempts, stopped = campaign
    # When a worker resumes and reserves as it can, at any instants, in time order
    sent = run_worker(slots, attempts, pace, stopped)
    # Then everything went, in order, none before its slot, none while stopped
    assert len(sent) == len(slots)
    assert all(s >= slot for s, slot in zip(sent, slots, strict=True))
    assert not any(stopped[0] <= s < stopped[1] for s in sent)
    # And no closed hour holds more than the cap, no closed minute more than its pace
    assert_paced(sent, pace)


def test_workers_started_fifty_minutes_late_send_ten_then_one_every_interval() -> None:
    # Given the report's campaign: 2,000 slots from 11:00 Central at 1,000 an hour, burst 10
    pace = Pace(1000, burst=10)
    opened = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)
    slots = [opened + pace.interval * k for k in range(2000)]
    # When the workers start at 11:50 (834 slots overdue) and then keep time
    started = opened + timedelta(minutes=50)
    sent = run_worker(slots, [started, *slots], pace, stopped=(opened, started))
    # Then ten leave at 11:50, then one every 3.6 s (not 834 at once)
    assert sent[:10] == [started] * 10
    assert sent[10:100] == [started + pace.interval * k for k in range(1, 91)]
    # And all 2,000 went, with no closed hour over 1,000 and no minute over 17 + 10
    assert len(sent) == 2000
    assert most_in_any_closed_span(sent, HOUR) == 1000
    assert most_in_any_closed_span(sent, MINUTE) <= 27


def test_a_send_exactly_one_hour_after_the_oldest_of_a_full_hour_is_refused() -> None:
    # Given 2 sends per hour, sent at 16:00 and 16:30
    pace = Pace(2, burst=10)
    t0 = datetime(2026, 6, 9, 16, tzinfo=UTC)
    sent = [t0, t0 + timedelta(minutes=30)]
    # When a third asks at 16:45, it is refused
    assert not admits(sent, t0 + timedelta(minutes=45), pace)
    # Then at 17:00 it is still refused: [16:00, 17:00] closed would hold 3
    assert not admits(sent, t0 + HOUR, pace)
    # And one microsecond later, once 16:00 has left the hour, it may go
    assert next_free(sent, t0 + timedelta(minutes=45), pace) == t0 + HOUR + MICRO
    assert admits(sent, t0 + HOUR + MICRO, pace)


def test_after_the_burst_the_next_send_waits_one_emission_interval() -> None:
    # Given 60 an hour (one a minute) and a burst of 3, with nothing sent for a while
    pace = Pace(60, burst=3)
    t0 = datetime(2026, 6, 9, 16, tzinfo=UTC)
    # When a backlog asks at once, three go, and the fourth may go one interval later
    assert room([], t0, pace) == 3
    sent = [t0] * 3
    assert next_free(sent, t0, pace) == t0 + pace.interval == t0 + MINUTE + MICRO
    # And the credit comes back at one per interval, up to the burst
    assert room(sent, t0 + pace.interval * 2, pace) == 2
    assert room(sent, t0 + pace.interval * 10, pace) == 3


def test_a_burst_as_large_as_the_cap_leaves_only_the_hourly_cap() -> None:
    pace = Pace(50, burst=50)
    t0 = datetime(2026, 6, 9, 16, tzinfo=UTC)
    assert room([], t0, pace) == 50
    assert next_free([t0] * 50, t0, pace) == t0 + HOUR + MICRO


def test_a_pace_below_one_per_hour_or_with_no_burst_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 per hour"):
        Pace(0)
    with pytest.raises(ValueError, match="burst must be at least 1"):
        Pace(10, burst=0)
