"""Communication windows: which days and hours a channel may reach patients.

Defaults come from the Phytel guide: text and phone 11:00-20:00, email 09:00-22:45,
Monday-Saturday except holidays, US Central. Every value is an organisation setting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from domain.channels import Channel

MONDAY_TO_SATURDAY = frozenset(range(6))  # Monday=0 … Saturday=5


@dataclass(frozen=True)
class Window:
    """Daily opening hours [start, end) on the given weekdays, local time."""

    start: time
    end: time
    weekdays: frozenset[int] = MONDAY_TO_SATURDAY

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError(f"window start {self.start} must be before end {self.end}")
        if not self.weekdays or not self.weekdays <= frozenset(range(7)):
            raise ValueError("window weekdays must be a non-empty subset of 0..6 (Monday=0)")

    @classmethod
    def parse(cls, text: str, weekdays: frozenset[int] = MONDAY_TO_SATURDAY) -> Window:
        """'11:00-20:00' → Window."""
        try:
            a, b = text.split("-")
            return cls(time.fromisoformat(a.strip()), time.fromisoformat(b.strip()), weekdays)
        except ValueError as exc:
            raise ValueError(f"window {text!r} is not HH:MM-HH:MM: {exc}") from None


DEFAULT_WINDOWS: Mapping[Channel, Window] = {
    Channel.TEXT: Window(time(11), time(20)),
    Channel.PHONE: Window(time(11), time(20)),
    Channel.EMAIL: Window(time(9), time(22, 45)),
    Channel.LETTER: Window(time(0), time(23, 59, 59)),
}


def _no_holidays(_: date) -> bool:
    return False


@dataclass(frozen=True)
class SendingCalendar:
    """Answers 'may channel X send at instant T?' and 'when next?' for one organisation."""

    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("America/Chicago"))
    windows: Mapping[Channel, Window] = field(default_factory=lambda: dict(DEFAULT_WINDOWS))
    is_holiday: Callable[[date], bool] = _no_holidays

    def local(self, at: datetime) -> datetime:
        return at.astimezone(self.timezone)

    def today(self, at: datetime) -> date:
        return self.local(at).date()

    def is_sending_day(self, day: date, channel: Channel = Channel.TEXT) -> bool:
        return day.weekday() in self.windows[channel].weekdays and not self.is_holiday(day)

    def next_sending_day(self, day: date, channel: Channel = Channel.TEXT) -> date:
        """The day itself when it is a sending day, else the next one (Sunday → Monday)."""
        for offset in range(0, 366):
            candidate = day + timedelta(days=offset)
            if self.is_sending_day(candidate, channel):
                return candidate
        raise ValueError("no sending day within a year: check windows and holidays")

    def _bounds(self, day: date, channel: Channel) -> tuple[datetime, datetime]:
        w = self.windows[channel]
        start = datetime.combine(day, w.start, self.timezone)
        end = datetime.combine(day, w.end, self.timezone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def is_open(self, channel: Channel, at: datetime) -> bool:
        day = self.today(at)
        if not self.is_sending_day(day, channel):
            return False
        start, end = self._bounds(day, channel)
        return start <= at < end

    def next_open(self, channel: Channel, at: datetime) -> datetime:
        """`at` itself if the window is open, else the start of the next window (UTC)."""
        if self.is_open(channel, at):
            return at
        day = self.today(at)
        for offset in range(0, 367):
            candidate = day + timedelta(days=offset)
            if not self.is_sending_day(candidate, channel):
                continue
            start, _ = self._bounds(candidate, channel)
            if start > at:
                return start
        raise ValueError("no open window within a year: check windows and holidays")

    def closes_at(self, channel: Channel, at: datetime) -> datetime:
        """End of the window that contains `at` (which must be open)."""
        _, end = self._bounds(self.today(at), channel)
        return end

    def midnight_before(self, day: date) -> datetime:
        """The instant a campaign starting on `day` freezes: 00:00 local of that day."""
        return datetime.combine(day, time(0), self.timezone).astimezone(UTC)
