"""The one clock. Everything asks a Clock for the time; adapters live outside the domain."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime


class Clock(ABC):
    """Aware UTC datetimes only, so comparisons never mix naive and aware times."""

    @abstractmethod
    def now(self) -> datetime: ...
