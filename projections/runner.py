"""Follow the event store's notification log into projections, exactly once.

Each projection's position lives in `projection_tracking` and is written in the same
transaction as the rows the events produced, so a crash replays nothing twice and skips
nothing. Positions mean "the last notification id seen": ids can have gaps on PostgreSQL,
so we always read after the last id, never count.

Two processes may catch up the same projection at once (a CLI import and a projector
worker): the tracking row is locked for the whole batch (SELECT … FOR UPDATE on PostgreSQL;
SQLite's BEGIN IMMEDIATE already serialises writers), and the position is read inside
that lock, so the second process waits and then starts where the first stopped.

Optional projection attributes, read with getattr so any Projection works:
- `topics`: event topics the projection cares about; others are filtered out by the
  recorder instead of being decoded and ignored;
- `batch_size`: notifications per transaction (projections with big events, like the
  patient import chunks, use a small one to bound memory);
- `schema_version` and `own_tables`: when the version differs from the one the database
  was built with, the tables are dropped and rebuilt from the history.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from projections.base import Projection
from projections.db import Database, Tx

TRACKING_DDL = """
CREATE TABLE IF NOT EXISTS projection_tracking (name TEXT PRIMARY KEY, position BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS projection_schema (name TEXT PRIMARY KEY, version INTEGER NOT NULL)
"""
DEFAULT_BATCH = 1000

# Which projections' tables a database already has (migrations are idempotent but not free).
_prepared: weakref.WeakKeyDictionary[Database, set[str]] = weakref.WeakKeyDictionary()


def prepare(db: Database, projections: Sequence[Projection]) -> None:
    """Create the tracking table and each projection's tables (once per database object)."""
    done = _prepared.setdefault(db, set())
    if "" not in done:
        db.migrate(TRACKING_DDL)
        done.add("")
    for projection in projections:
        if projection.name not in done:
            version = getattr(projection, "schema_version", None)
            if version is not None:
                _rebuild_if_schema_changed(db, projection, int(version))
            db.migrate(projection.ddl())
            done.add(projection.name)


def _rebuild_if_schema_changed(db: Database, projection: Projection, version: int) -> None:
    """A projection whose tables changed shape (`schema_version`, `own_tables`) starts over:
    its tables are dropped and its position forgotten, so catching up rebuilds them from the
    whole history — read models are disposable, events are not. A database from before
    versioning counts as version 1."""
    lock = " FOR UPDATE" if db.dialect == "postgres" else ""
    with db.transaction() as tx:
        row = tx.fetchone(f"SELECT version FROM projection_schema WHERE name = ?{lock}",
                          (projection.name,))
        stored = int(row[0]) if row else 1
        if stored == version:
            return
        for table in getattr(projection, "own_tables", ()):
            tx.execute(f"DROP TABLE IF EXISTS {table}")
        tx.execute("DELETE FROM projection_tracking WHERE name = ?", (projection.name,))
        tx.execute("DELETE FROM projection_schema WHERE name = ?", (projection.name,))
        tx.execute("INSERT INTO projection_schema (name, version) VALUES (?, ?)",
                   (projection.name, version))


def position(db: Database, name: str) -> int:
    row = db.fetchone("SELECT position FROM projection_tracking WHERE name = ?", (name,))
    return int(row[0]) if row else 0


def _lock_position(tx: Tx, dialect: str, name: str) -> int:
    tx.execute(
        "INSERT INTO projection_tracking (name, position) VALUES (?, 0)"
        " ON CONFLICT (name) DO NOTHING", (name,))
    lock = " FOR UPDATE" if dialect == "postgres" else ""
    row = tx.fetchone(f"SELECT position FROM projection_tracking WHERE name = ?{lock}", (name,))
    return int(row[0]) if row else 0


def _step(store: Any, db: Database, projection: Projection, batch: int) -> tuple[int, bool]:
    """One transaction: apply up to `batch` notifications. Returns (applied, caught up)."""
    topics = tuple(getattr(projection, "topics", ()))
    with db.transaction() as tx:
        last = _lock_position(tx, db.dialect, projection.name)
        # Read the high-water mark before selecting: with a topic filter, everything up to it
        # that we did not get back is of no interest, so the position may jump to it.
        high = store.recorder.max_notification_id() if topics else None
        notifications = store.recorder.select_notifications(
            start=last + 1, limit=batch, topics=topics)
        for notification in notifications:
            projection.apply(tx, store.mapper.to_domain_event(notification), notification.id)
        caught_up = len(notifications) < batch
        new_position = notifications[-1].id if notifications else last
        if topics and caught_up and high:
            new_position = max(new_position, int(high))
        if new_position != last:
            tx.execute("UPDATE projection_tracking SET position = ? WHERE name = ?",
                       (new_position, projection.name))
    return len(notifications), caught_up


def catch_up(
    store: Any, db: Database, projections: Sequence[Projection], batch: int = DEFAULT_BATCH
) -> int:
    """Apply every stored event not yet seen by each projection. Returns events applied.

    `store` is the EventStore (an eventsourcing Application): its `recorder` and `mapper`.
    """
    prepare(db, projections)
    applied = 0
    for projection in projections:
        size = int(getattr(projection, "batch_size", batch))
        while True:
            count, caught_up = _step(store, db, projection, size)
            applied += count
            if caught_up:
                break
    return applied


def rebuild(store: Any, db: Database, projections: Sequence[Projection]) -> int:
    """Empty the projections and replay the whole history into them."""
    prepare(db, projections)
    with db.transaction() as tx:
        for projection in projections:
            projection.reset(tx)
            tx.execute("DELETE FROM projection_tracking WHERE name = ?", (projection.name,))
    return catch_up(store, db, projections)
