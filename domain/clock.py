"""The one clock. Everything asks a Clock for the time; adapters live outside the domain."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime


class Clock(ABC):
    """Aware UTC datetimes only, so comparisons never mix naive and aware times."""

    @abstractmethod
    def now(self) -> datetime: ...

    @abstractmethod
    def sleep_until(self, when: datetime) -> None:
        """Let time pass until `when` (a provider's pacing): real time sleeps, simulated
        time jumps."""
