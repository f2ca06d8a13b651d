"""The embedded bus: follow the event store's notification log into the projections.

Each projection keeps its own position in `projection_tracking`, written in the same
transaction as its rows: a crash between two batches replays nothing twice and skips
nothing (exactly once). Positions are read "after the last id seen", because notification
ids can have gaps on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

from application.store import EventStore
from projections.base import Projection
from projections.db import Database

TRACKING_DDL = """
CREATE TABLE IF NOT EXISTS projection_tracking (name TEXT PRIMARY KEY, position BIGINT NOT NULL)
"""


def prepare(db: Database, projections: Sequence[Projection]) -> None:
    db.migrate(TRACKING_DDL)
    for projection in projections:
        db.migrate(projection.ddl())


def position(db: Database, name: str) -> int:
    row = db.fetchone("SELECT position FROM projection_tracking WHERE name = ?", (name,))
    return int(row[0]) if row else 0


def catch_up(
    store: EventStore, db: Database, projections: Sequence[Projection], batch: int = 1000
) -> int:
    """Apply every stored event not yet seen by each projection. Returns events applied."""
    applied = 0
    for projection in projections:
        while True:
            last = position(db, projection.name)
            notifications = store.recorder.select_notifications(
                start=last, limit=batch, inclusive_of_start=False)
            if not notifications:
                break
            with db.transaction() as tx:
                for notification in notifications:
                    projection.apply(tx, store.mapper.to_domain_event(notification),
                                     notification.id)
                tx.execute(
                    "INSERT INTO projection_tracking (name, position) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                    (projection.name, notifications[-1].id),
                )
            applied += len(notifications)
            if len(notifications) < batch:
                break
    return applied


def rebuild(store: EventStore, db: Database, projections: Sequence[Projection]) -> int:
    """Empty the projections and replay the whole history into them (audits, new columns)."""
    with db.transaction() as tx:
        for projection in projections:
            projection.reset(tx)
            tx.execute("DELETE FROM projection_tracking WHERE name = ?", (projection.name,))
    return catch_up(store, db, projections)
