"""Rate caps: a campaign never sends more than `per_hour` messages in any hour.

Two pieces: the planner spaces a campaign's communications at least 3600/per_hour seconds
apart inside the windows (so the schedule is visible before anything is sent), and the
limiter re-checks just before each provider call against what was really sent, so retries
and several dispatchers can never push an hour over the cap.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime, timedelta

from domain.calendar import SendingCalendar
from domain.channels import Channel

HOUR = timedelta(hours=1)


def spacing(per_hour: int) -> timedelta:
    """Smallest gap that keeps any half-open hour at or under the cap (rounded up to 1 µs)."""
    if per_hour < 1:
        raise ValueError("rate cap must be at least 1 per hour")
    micros = -(-3_600_000_000 // per_hour)  # ceiling division
    return timedelta(microseconds=micros)


def plan_slots(
    count: int,
    start: datetime,
    calendar: SendingCalendar,
    channel: Channel,
    per_hour: int,
) -> list[datetime]:
    """Planned send times for `count` communications, in order, from `start`.

    A campaign that does not finish inside a window resumes at the next window's start
    with the next patient: order is kept, and every slot lies inside an open window.
    """
    gap = spacing(per_hour)
    slots: list[datetime] = []
    t = calendar.next_open(channel, start)
    for _ in range(count):
        slots.append(t)
        t = calendar.next_open(channel, t + gap)
    return slots


def admits(sent: Sequence[datetime], at: datetime, per_hour: int) -> bool:
    """May one more message go at `at`, given the sorted send times already recorded?

    Counts sends in (at - 1h, at]; admitting only while that count is under the cap means no
    half-open hour [t, t+1h) can ever hold more than `per_hour` sends.
    """
    lo = bisect_right(sent, at - HOUR)
    hi = bisect_right(sent, at)
    return hi - lo < per_hour


def next_free(sent: Sequence[datetime], at: datetime, per_hour: int) -> datetime:
    """The earliest instant ≥ `at` at which `admits` becomes true again."""
    if admits(sent, at, per_hour):
        return at
    hi = bisect_right(sent, at)
    # The span (at - 1h, at] is full; once sent[hi - per_hour] leaves it, there is room. It
    # leaves at exactly +1h, since the span excludes its left end.
    oldest_to_leave = sent[hi - per_hour]
    return max(at, oldest_to_leave + HOUR)
