"""Saved page views as users pick them: name, owner, definition, who it is shared with."""

from __future__ import annotations

import json
from typing import Any

from domain.patients_fields import fold
from projections.base import Projection
from projections.db import Tx

DDL = """
CREATE TABLE IF NOT EXISTS page_views (
    view_id TEXT PRIMARY KEY, name TEXT NOT NULL, name_f TEXT NOT NULL, owner TEXT NOT NULL,
    focus TEXT NOT NULL, definition TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS page_views_owner ON page_views (owner, name_f);
CREATE TABLE IF NOT EXISTS page_view_shares (
    view_id TEXT NOT NULL, user_name TEXT NOT NULL, PRIMARY KEY (view_id, user_name)
);
CREATE INDEX IF NOT EXISTS page_view_shares_user ON page_view_shares (user_name)
"""

TOPIC_PREFIX = "domain.lists_views:PageView."


def _iso(at: Any) -> str:
    return at.isoformat() if hasattr(at, "isoformat") else str(at)


class PageViewsProjection(Projection):
    name = "page_views"
    topics = tuple(TOPIC_PREFIX + e for e in ("Saved", "Updated", "Shared", "Unshared",
                                              "Deleted"))

    def ddl(self) -> str:
        return DDL

    def reset(self, tx: Tx) -> None:
        tx.execute("DELETE FROM page_view_shares")
        tx.execute("DELETE FROM page_views")

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        name = type(event).__qualname__
        if not name.startswith("PageView."):
            return
        view_id = str(event.originator_id)
        if name in ("PageView.Saved", "PageView.Updated"):
            definition = event.definition
            tx.execute(
                "INSERT INTO page_views (view_id, name, name_f, owner, focus, definition,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (view_id) DO UPDATE SET"
                " name = excluded.name, name_f = excluded.name_f, focus = excluded.focus,"
                " definition = excluded.definition, updated_at = excluded.updated_at",
                (view_id, event.name, fold(event.name), getattr(event, "owner", ""),
                 str(definition.get("focus", "patient")), json.dumps(definition, sort_keys=True),
                 _iso(event.at)))
        elif name == "PageView.Shared":
            for user in event.users:
                tx.execute("INSERT INTO page_view_shares (view_id, user_name) VALUES (?, ?)"
                           " ON CONFLICT (view_id, user_name) DO NOTHING", (view_id, user))
        elif name == "PageView.Unshared":
            for user in event.users:
                tx.execute("DELETE FROM page_view_shares WHERE view_id = ? AND user_name = ?",
                           (view_id, user))
        elif name == "PageView.Deleted":
            tx.execute("DELETE FROM page_view_shares WHERE view_id = ?", (view_id,))
            tx.execute("DELETE FROM page_views WHERE view_id = ?", (view_id,))
