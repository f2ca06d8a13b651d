"""Clock adapters: the real one, and a simulated one that jumps over idle time."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from domain.clock import Clock


class SystemClock(Clock):
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep_until(self, when: datetime) -> None:
        wait = (when - self.now()).total_seconds()
        if wait > 0:
            time.sleep(wait)


class SimulatedClock(Clock):
    """Time moves only when told to, so a week of windows runs in seconds."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("simulated time must be timezone-aware")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def sleep_until(self, when: datetime) -> None:
        self.advance_to(when)

    def advance_to(self, when: datetime) -> None:
        with self._lock:
            if when > self._now:
                self._now = when.astimezone(UTC)
