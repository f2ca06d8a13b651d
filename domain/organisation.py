"""The organisation's settings as administrators changed them (issue 13): sending windows and
days, holidays and closed dates, caps, the text footer and help number, email sender, return
addresses and logos.

One aggregate with a fixed id (like the follow-ups campaign): every change is one `Changed`
event naming the keys and values set, who set them and when. The environment gives the
defaults (application/settings.py); the values stored here override them. Which keys may be
changed, and whether a value is valid, is the application's to decide (it builds the
settings to check them): this aggregate only keeps what was decided, in order.
"""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import DomainError

ORGANISATION_SETTINGS_ID = uuid5(NAMESPACE_URL, "outreach:organisation-settings")


class OrganisationSettings(Aggregate):
    """The stored values, and for each key who changed it last and when."""

    @staticmethod
    def create_id() -> UUID:  # type: ignore[override]
        return ORGANISATION_SETTINGS_ID

    @event("Created")
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.changed_by: dict[str, str] = {}
        self.changed_at: dict[str, datetime] = {}

    @event("Changed")
    def change(self, values: dict[str, str], by: str, at: datetime) -> None:
        for key, value in values.items():
            self.values[key] = value
            self.changed_by[key] = by
            self.changed_at[key] = at


class InvalidSetting(DomainError):
    """A value an organisation setting cannot take (the message names the key)."""
