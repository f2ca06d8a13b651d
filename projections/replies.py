"""The replies inbox read model: one row per text a patient sent us.

Only what the InboundMessage events say is stored here (number, time, text, keyword, the
flag, who handled it). The patient and the campaign a reply answers are NOT stored: they
are resolved when the inbox is read (application/replies.py), by joining the patients and
communications read models. Projections run one after another in notification order, so a
reply projected before its patient was imported, or before the campaign's attempt was
projected, would otherwise keep a NULL patient for ever; resolved at read time it is
always the current answer, and a rebuild gives the same.

The table is `reply_inbox`: projections/preferences.py already keeps an older `replies`
table (by message_ref, written and never read), left alone so existing databases need no
migration.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.utils import get_topic

from domain.replies import InboundMessage
from domain.reply_flags import is_unexpected, response_sort_key
from projections.base import Projection
from projections.db import Tx
from projections.timefmt import iso

DDL = """
CREATE TABLE IF NOT EXISTS reply_inbox (
    message_id TEXT PRIMARY KEY, message_ref TEXT NOT NULL, from_number TEXT NOT NULL,
    received_at TEXT NOT NULL, keyword TEXT NOT NULL, body TEXT NOT NULL,
    response_sort TEXT NOT NULL, unexpected INTEGER NOT NULL,
    handled_by TEXT, handled_at TEXT
);
CREATE INDEX IF NOT EXISTS reply_inbox_received ON reply_inbox (received_at, message_id);
CREATE INDEX IF NOT EXISTS reply_inbox_from ON reply_inbox (from_number, received_at)
"""

# Declared by the @event decorator at class creation: mypy cannot see them.
RECEIVED: type = InboundMessage.Received  # type: ignore[attr-defined]
HANDLED: type = InboundMessage.Handled  # type: ignore[attr-defined]


class RepliesProjection(Projection):
    name = "reply_inbox"
    schema_version = 1
    own_tables = ("reply_inbox",)
    topics = (get_topic(RECEIVED), get_topic(HANDLED))

    def ddl(self) -> str:
        return DDL

    def reset(self, tx: Tx) -> None:
        tx.execute("DELETE FROM reply_inbox")

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        name = type(event).__qualname__
        if name == "InboundMessage.Received":
            tx.execute(
                "INSERT INTO reply_inbox (message_id, message_ref, from_number, received_at,"
                " keyword, body, response_sort, unexpected) VALUES (?,?,?,?,?,?,?,?)"
                " ON CONFLICT (message_id) DO NOTHING",
                (str(event.originator_id), event.message_ref, event.from_number,
                 iso(event.received_at), event.keyword or "", event.body,
                 response_sort_key(event.body),
                 1 if is_unexpected(event.body, event.keyword or "") else 0))
        elif name == "InboundMessage.Handled":
            # The aggregate records only the first mark; the guard keeps a replay honest too.
            tx.execute("UPDATE reply_inbox SET handled_by = ?, handled_at = ?"
                       " WHERE message_id = ? AND handled_at IS NULL",
                       (event.by, iso(event.at), str(event.originator_id)))
