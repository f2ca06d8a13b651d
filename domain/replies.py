"""A text a patient sent us, recorded once: the id is uuid5 of the provider's message id, so a
webhook delivered twice finds the message already recorded and changes nothing."""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

REPLY_NAMESPACE = uuid5(NAMESPACE_URL, "outreach:inbound-message")


def inbound_message_id(message_ref: str) -> UUID:
    return uuid5(REPLY_NAMESPACE, message_ref)


class InboundMessage(Aggregate):
    @staticmethod
    def create_id(message_ref: str) -> UUID:  # type: ignore[override]
        return inbound_message_id(message_ref)

    @event("Received")
    def __init__(
        self, message_ref: str, from_number: str, to_number: str, body: str, keyword: str,
        received_at: datetime,
    ) -> None:
        self.message_ref = message_ref
        self.from_number = from_number
        self.body = body
        self.keyword = keyword
        self.received_at = received_at
        self.handled_by = ""
        self.handled_at: datetime | None = None

    # -- the inbox (issue 12) ------------------------------------------------------------
    def mark_handled(self, by: str, at: datetime) -> bool:
        """A user dealt with this reply. The first mark stands: marking it again (a second
        user, a double click) changes nothing and returns False."""
        if self.handled_at is not None:
            return False
        self._handled(by=by, at=at)
        return True

    @event("Handled")
    def _handled(self, by: str, at: datetime) -> None:
        self.handled_by = by
        self.handled_at = at
