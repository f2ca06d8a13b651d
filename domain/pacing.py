"""Rate caps: a campaign never sends more than `per_hour` messages in any 60 minutes, and a
backlog goes out at the cap's rate, not in one burst.

Two pieces: the planner spaces a campaign's communications 3600/per_hour seconds apart
inside the windows (so the schedule is visible before anything is sent), and the limiter
re-checks just before each provider call against what was really sent, so a backlog (workers
started late, a pause, an outage), retries and several dispatchers can never bunch sends up.

The limiter's rule, over the sends of the last hour, both ends included:
- at most `per_hour` in any 60-minute span closed at both ends (a send at t and one at
  t + 1h are in the same hour: patients calling back do not care about half-open spans);
- a smooth rate (GCRA, the generic cell rate algorithm): at most `burst` + L/T sends in any
  span of length L up to an hour, T = the emission interval 3600 s / per_hour. A backlog
  thus leaves `burst` at once and then one every T, and no closed minute holds more than
  ceil(per_hour / 60) + burst. A `burst` of `per_hour` or more leaves the hourly cap alone.
All instants are whole microseconds (datetime's resolution), which the edges rely on.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.calendar import SendingCalendar
from domain.channels import Channel

HOUR = timedelta(hours=1)
MICROSECOND = timedelta(microseconds=1)
#: Sends that may leave together. Ten covers the workers' one-second tick up to 36,000 an
#: hour, and at the default 1,000 an hour keeps any minute at 27 texts at most: under half of
#: the 60 a long code takes (1 a second), and a handful of calls back at once for a clinic.
DEFAULT_BURST = 10


def spacing(per_hour: int) -> timedelta:
    """Smallest whole-microsecond gap g with per_hour * g > 1 h: sends g apart never put
    per_hour + 1 of them inside one closed hour (3600/per_hour s, plus at most 1 µs)."""
    if per_hour < 1:
        raise ValueError("rate cap must be at least 1 per hour")
    return timedelta(microseconds=3_600_000_000 // per_hour + 1)


@dataclass(frozen=True)
class Pace:
    """A campaign's rate: `per_hour` in any closed hour, at most `burst` together."""

    per_hour: int
    burst: int = DEFAULT_BURST

    def __post_init__(self) -> None:
        if self.per_hour < 1:
            raise ValueError("rate cap must be at least 1 per hour")
        if self.burst < 1:
            raise ValueError("rate burst must be at least 1")

    @property
    def interval(self) -> timedelta:
        """The emission interval T: one send every T keeps any closed hour under the cap."""
        return spacing(self.per_hour)


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
    Slots are one emission interval apart, so sends on time are never held by the limiter.
    """
    gap = spacing(per_hour)
    slots: list[datetime] = []
    t = calendar.next_open(channel, start)
    for _ in range(count):
        slots.append(t)
        t = calendar.next_open(channel, t + gap)
    return slots


def _last_hour(sent: Sequence[datetime], at: datetime) -> Sequence[datetime]:
    """The sends in [at - 1h, at] (closed): the only ones the rule looks at."""
    return sent[bisect_left(sent, at - HOUR):bisect_right(sent, at)]


def _theoretical_arrival(window: Sequence[datetime], interval: timedelta) -> datetime | None:
    """GCRA's theoretical arrival time after `window`: max over i of s_i + (n - i) * T,
    i.e. when the sends of the window would have finished at one per T."""
    tat: datetime | None = None
    for s in window:
        tat = (s if tat is None or s > tat else tat) + interval
    return tat


def room(sent: Sequence[datetime], at: datetime, pace: Pace) -> int:
    """How many sends may go together at `at`, given the sorted send times recorded so far
    (none later than `at`)."""
    window = _last_hour(sent, at)
    hourly = pace.per_hour - len(window)
    tat = _theoretical_arrival(window, pace.interval)
    # GCRA admits while TAT - (burst - 1) * T <= at; each admission moves TAT on by T.
    smooth = pace.burst if tat is None or tat <= at else pace.burst + (at - tat) // pace.interval
    return max(0, min(hourly, smooth))


def admits(sent: Sequence[datetime], at: datetime, pace: Pace) -> bool:
    """May one more message go at `at`, given the sorted send times already recorded?"""
    return room(sent, at, pace) > 0


def next_free(sent: Sequence[datetime], at: datetime, pace: Pace) -> datetime:
    """The earliest instant ≥ `at` at which `admits` becomes true again (no sends between).

    Every condition of the rule is met from some instant on, and stays met while nothing
    more is sent, so the answer is the latest of those instants."""
    window = _last_hour(sent, at)
    n, interval = len(window), pace.interval
    free = at
    if n >= pace.per_hour:
        # The closed hour is full until the send that makes it full is more than 1h old.
        free = max(free, window[n - pace.per_hour] + HOUR + MICROSECOND)
    for i, s in enumerate(window):
        # Span [s, t] would hold n - i + 1 sends: it needs t - s >= (n - i + 1 - burst) * T,
        # unless s has left the last hour by then.
        needed = n - i + 1 - pace.burst
        if needed > 0:
            free = max(free, min(s + interval * needed, s + HOUR + MICROSECOND))
    return free
