"""The event store: one eventsourcing Application holding every aggregate of outreach.

SQLite file by default, PostgreSQL when the database URL says so. One application means one
notification log, which the projections, the scheduler and the Kafka relay all follow.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import groupby
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import Compressor, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder
from eventsourcing.utils import get_topic
from psycopg.conninfo import conninfo_to_dict
from psycopg.sql import SQL, Identifier

from application.settings import Settings


class EventStore(Application[UUID]):
    name = "Outreach"
    log_section_size = 1000

    #: ids per query: SQLite's default limit on bound parameters is 999 in older builds;
    #: PostgreSQL takes one array, kept to a size whose answer fits comfortably in memory
    GET_MANY_CHUNK = {"sqlite": 500, "postgres": 1000}

    def get_many(self, ids: Iterable[UUID]) -> dict[UUID, Any]:
        """The current state of many aggregates, read in one query per chunk of ids instead
        of one per aggregate (a dispatcher's batch of 500 communications: 25–100× cheaper).
        Ids with no events are absent from the answer (repository.get would raise
        AggregateNotFoundError). Each aggregate is rebuilt exactly as repository.get rebuilds
        it: the same mapper (decompression, decryption) and the same projector. With
        snapshots or an aggregate cache configured (neither is used by outreach) the
        repository's own path is taken, one id at a time, so nothing is ever skipped."""
        wanted = list(dict.fromkeys(ids))
        repo = self.repository
        if repo.snapshot_store is not None or repo.cache is not None:
            return self._get_each(wanted)
        recorder = self.recorder
        if isinstance(recorder, PostgresAggregateRecorder):
            fetch, size = self._select_postgres, self.GET_MANY_CHUNK["postgres"]
        elif isinstance(recorder, SQLiteAggregateRecorder):
            fetch, size = self._select_sqlite, self.GET_MANY_CHUNK["sqlite"]
        else:  # another persistence module (POPO in a library test): the plain path
            return self._get_each(wanted)
        found: dict[UUID, Any] = {}
        for start in range(0, len(wanted), size):
            rows = fetch(wanted[start:start + size])
            # Rows come ordered by (originator_id, originator_version): one run per aggregate.
            for originator_id, stored in groupby(rows, key=lambda r: r.originator_id):
                aggregate = _project(self.mapper.to_domain_event(s) for s in stored)
                if aggregate is not None:
                    found[_as_uuid(originator_id)] = aggregate
        return found

    def _get_each(self, ids: list[UUID]) -> dict[UUID, Any]:
        found: dict[UUID, Any] = {}
        for aggregate_id in ids:
            try:
                found[aggregate_id] = self.repository.get(aggregate_id)
            except AggregateNotFoundError:
                continue
        return found

    def _select_postgres(self, ids: list[UUID]) -> list[StoredEvent]:
        recorder = self.recorder
        assert isinstance(recorder, PostgresAggregateRecorder)
        # The ids as one array literal: psycopg adapts a list of UUIDs element by element,
        # which cost more than the query itself for a batch's 1,500 opt-out ids.
        statement = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{table}"
            " WHERE originator_id = ANY(%s::uuid[]) ORDER BY originator_id, originator_version"
        ).format(schema=Identifier(recorder.datastore.schema),
                 table=Identifier(recorder.events_table_name))
        with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, ("{" + ",".join(i.hex for i in ids) + "}",))
            return [StoredEvent(originator_id=row["originator_id"],
                                originator_version=row["originator_version"],
                                topic=row["topic"], state=bytes(row["state"]))
                    for row in curs.fetchall()]

    def _select_sqlite(self, ids: list[UUID]) -> list[StoredEvent]:
        recorder = self.recorder
        assert isinstance(recorder, SQLiteAggregateRecorder)
        # Stored as hex text, as the recorder writes them (SQLiteAggregateRecorder).
        statement = (
            "SELECT originator_id, originator_version, topic, state"
            f" FROM {recorder.events_table_name}"
            f" WHERE originator_id IN ({', '.join('?' * len(ids))})"
            " ORDER BY originator_id, originator_version")
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(statement, [i.hex for i in ids])
            return [StoredEvent(originator_id=recorder.convert_originator_id(
                                    row["originator_id"]),
                                originator_version=row["originator_version"],
                                topic=row["topic"], state=row["state"])
                    for row in c.fetchall()]


def _project(events: Iterable[Any]) -> Any:
    """eventsourcing's project_aggregate (what repository.get folds events with), without
    its per-event isinstance check against a runtime Protocol, which cost more than
    decoding the event: each event's own mutate, in version order."""
    aggregate = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def _as_uuid(originator_id: UUID | str) -> UUID:
    return originator_id if isinstance(originator_id, UUID) else UUID(originator_id)


class EventCompressor(Compressor):
    """zlib (level 1: fast) for event states of 1 kB or more, such as an import's chunks of
    1,000 rows: about 5× less to send, store, log in the WAL and read back, and far less for
    the driver to escape. Small states (most events) are stored as they are. Reading tells
    the two apart by the first byte (a zlib stream starts 0x78, a JSON state with `{`), so
    events stored before compression existed stay readable."""

    MIN_SIZE = 1024

    def compress(self, data: bytes) -> bytes:
        return zlib.compress(data, 1) if len(data) >= self.MIN_SIZE else data

    def decompress(self, data: bytes) -> bytes:
        return zlib.decompress(data) if data[:1] == b"\x78" else data


def store_env(settings: Settings) -> dict[str, str]:
    env: dict[str, str] = {}
    if settings.is_postgres:
        info = conninfo_to_dict(settings.database_url)
        env.update(
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_DBNAME=str(info.get("dbname", "postgres")),
            POSTGRES_HOST=str(info.get("host", "127.0.0.1")),
            POSTGRES_PORT=str(info.get("port", "5432")),
            POSTGRES_USER=str(info.get("user", "postgres")),
            POSTGRES_PASSWORD=str(info.get("password", "")),
            POSTGRES_POOL_SIZE=str(settings.db_pool_size),
            POSTGRES_MAX_OVERFLOW=str(settings.db_pool_size),
            # Inserting through a database function: without it eventsourcing sends a big
            # save as one pipelined statement, and psycopg deadlocks once that statement
            # outgrows the socket buffer (a 4,000-patient activation over a unix socket).
            POSTGRES_ENABLE_DB_FUNCTIONS="y",
            # After a server restart the pool's connections are dead: check each one before
            # use (a cheap round trip) so it is replaced, and give up waiting for one soon
            # enough for the caller to report the outage (workers.resilience).
            POSTGRES_PRE_PING="y",
            POSTGRES_CONNECT_TIMEOUT=str(settings.db_connect_timeout_seconds),
        )
    else:
        path = settings.sqlite_path
        path.parent.mkdir(parents=True, exist_ok=True)
        env.update(PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=str(path))
    env.update(COMPRESSOR_TOPIC=get_topic(EventCompressor))
    if settings.cipher_key:
        env.update(CIPHER_TOPIC="eventsourcing.cryptography:AESCipher",
                   CIPHER_KEY=settings.cipher_key)
    return env


def open_event_store(settings: Settings, **extra: Any) -> EventStore:
    return EventStore(env={**store_env(settings), **extra})


# Any fixed number: the key of the advisory lock that serialises schema set-up.
SCHEMA_LOCK_KEY = 0x0_07_2E_AC_4D


@contextmanager
def schema_lock(settings: Settings) -> Iterator[None]:
    """Serialise schema creation across processes starting at once. On PostgreSQL, two
    processes running eventsourcing's CREATE OR REPLACE FUNCTION (or our CREATE TABLE IF NOT
    EXISTS) together can fail with 'tuple concurrently updated'; SQLite needs no lock."""
    if not settings.is_postgres:
        yield
        return
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))
