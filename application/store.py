"""The event store: one eventsourcing Application holding every aggregate of outreach.

SQLite file by default, PostgreSQL when the database URL says so. One application means one
notification log, which the projections, the scheduler and the Kafka relay all follow.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import Compressor
from eventsourcing.utils import get_topic
from psycopg.conninfo import conninfo_to_dict

from application.settings import Settings


class EventStore(Application[UUID]):
    name = "Outreach"
    log_section_size = 1000


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
