"""The pacing rule over one campaign's recent sends, kept as they happen.

`pacing.room` and `pacing.next_free` read every send of the last hour. A limiter asking them
once per send pays for the whole hour each time: a campaign at 36,000 an hour is 36,000
sends per question, and a simulated day of many campaigns never ends. A PaceWindow keeps
the sends in time order and, beside each, the quantity both answers are maxima of, so a
question costs a binary search and a range maximum (over blocks, in C). The answers are
`pacing.room` and `pacing.next_free`'s, exactly: a property test compares them.

Why a maximum: GCRA's theoretical arrival time after sends s_0..s_{n-1} is
max_i (s_i + (n - i)·T); with g the send's running index, s_g + (end - g)·T =
u_g + end·T where u_g = s_g - g·T depends on the send alone. next_free's terms are of the
same shape over a range of the window, plus `s + 1 h` for the old sends whose span has left
the hour — which, sends being sorted, is largest at the last of them.

Times are whole microseconds since 1970 (datetime's resolution), held as ints.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import UTC, datetime, timedelta

from domain.pacing import HOUR, MICROSECOND, Pace

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Sends per block of the range maximum: a query reads two partial blocks and the blocks'
#: maxima between them.
BLOCK = 64


def to_us(at: datetime) -> int:
    return (at - EPOCH) // MICROSECOND


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


class PaceWindow:
    """A campaign's sends (appended in time order) and the pacing rule's answers over them.

    Sends older than an hour before the last one can never matter again (every question is
    asked at or after the last send): `forget_before` drops them, a block at a time."""

    def __init__(self, pace: Pace) -> None:
        self.pace = pace
        self._t = pace.interval // MICROSECOND
        self._hour = HOUR // MICROSECOND
        # The smallest k with k·T ≥ 1 h + 1 µs: a send k or more places from the end is
        # bounded by its hour, not by the rate.
        self._k = -(-(self._hour + 1) // self._t)
        self._s: list[int] = []  # send times
        self._u: list[int] = []  # u_g = s_g - g·T, g = self._first + list index
        self._blocks: list[int] = []  # max of _u per BLOCK sends
        self._first = 0  # running index of _s[0]

    def __len__(self) -> int:
        return len(self._s)

    @property
    def last(self) -> datetime | None:
        return from_us(self._s[-1]) if self._s else None

    def append(self, at: datetime) -> None:
        self._append(to_us(at))

    def _append(self, us: int) -> None:
        if self._s and us < self._s[-1]:
            raise ValueError("sends are appended in time order")
        index = len(self._s)
        u = us - (self._first + index) * self._t
        self._s.append(us)
        self._u.append(u)
        if index % BLOCK == 0:
            self._blocks.append(u)
        elif u > self._blocks[-1]:
            self._blocks[-1] = u

    def _truncate(self, length: int) -> None:
        del self._s[length:], self._u[length:]
        blocks = -(-length // BLOCK)
        del self._blocks[blocks:]
        if length % BLOCK:
            self._blocks[-1] = max(self._u[(blocks - 1) * BLOCK:length])

    def forget_before(self, at: datetime) -> None:
        """Drop sends before `at` (whole blocks, and only when they are most of the list:
        amortised O(1) per send). The caller keeps every send of the hour before the last."""
        cut = bisect_left(self._s, to_us(at))
        cut -= cut % BLOCK
        if cut and cut * 2 >= len(self._s):
            del self._s[:cut], self._u[:cut], self._blocks[:cut // BLOCK]
            self._first += cut

    def _max_u(self, lo: int, hi: int) -> int | None:
        """max(_u[lo..hi]), both ends included; None for an empty range."""
        if lo > hi:
            return None
        first, last = lo // BLOCK, hi // BLOCK
        if first == last:
            return max(self._u[lo:hi + 1])
        best = max(max(self._u[lo:(first + 1) * BLOCK]), max(self._u[last * BLOCK:hi + 1]))
        if last > first + 1:
            best = max(best, max(self._blocks[first + 1:last]))
        return best

    def _window(self, at: int) -> tuple[int, int]:
        """List indices [lo, hi) of the sends in [at - 1 h, at], both ends closed."""
        return bisect_left(self._s, at - self._hour), bisect_right(self._s, at)

    def room(self, at: datetime) -> int:
        """pacing.room(sends, at, pace)."""
        a = to_us(at)
        lo, hi = self._window(a)
        n, pace = hi - lo, self.pace
        smooth = pace.burst
        best = self._max_u(lo, hi - 1)
        if best is not None:
            tat = best + (self._first + hi) * self._t
            if tat > a:
                smooth = pace.burst + (a - tat) // self._t
        return max(0, min(pace.per_hour - n, smooth))

    def next_free(self, at: datetime, extra: int = 0) -> datetime:
        """pacing.next_free(sends + [at] * extra, at, pace): with `extra` sends at `at`
        counted as made (a limiter's admitted ones, or the room a scheduler leaves to
        intents in flight) without keeping them."""
        a = to_us(at)
        if extra <= 0:
            return from_us(self._next_free(a))
        if self._s and self._s[-1] > a:
            raise ValueError("extra sends at `at` must come after every recorded send")
        length = len(self._s)
        try:
            for _ in range(extra):
                self._append(a)
            return from_us(self._next_free(a))
        finally:
            self._truncate(length)

    def _next_free(self, a: int) -> int:
        lo, hi = self._window(a)
        n, pace, t, hour = hi - lo, self.pace, self._t, self._hour
        free = a
        if n >= pace.per_hour:
            # The closed hour is full until the send that made it full is more than 1 h old.
            free = max(free, self._s[lo + n - pace.per_hour] + hour + 1)
        # pacing.next_free: for window position i < c, a span from s_i would hold too many
        # sends until min(s_i + (c - i)·T, s_i + 1 h + 1 µs).
        c = n + 1 - pace.burst
        if c > 0:
            j = c - self._k  # the last position bounded by its hour
            if j >= 0:
                free = max(free, self._s[lo + j] + hour + 1)
            best = self._max_u(lo + max(0, j + 1), lo + c - 1)
            if best is not None:
                free = max(free, best + (self._first + lo + c) * t)
        return free
