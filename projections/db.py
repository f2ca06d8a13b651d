"""Read-model database: the same SQL on SQLite and PostgreSQL.

SQL is written with `?` placeholders and portable upserts (ON CONFLICT … DO UPDATE). Each
projection updates its tables and its tracking position in one transaction, so a crash can
never apply an event twice or skip one.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Row = tuple[Any, ...]


class Tx(ABC):
    """One open transaction."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    @abstractmethod
    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None


# Marks a DDL statement that only PostgreSQL runs (see Database.migrate).
POSTGRES_ONLY = "/* postgres only */"


class Database(ABC):
    dialect: str

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[Tx]: ...

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self.transaction() as tx:
            return tx.fetchall(sql, params)

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.transaction() as tx:
            tx.execute(sql, params)

    def migrate(self, ddl: str) -> None:
        """Run `;`-separated CREATE … IF NOT EXISTS statements. A statement that starts
        with POSTGRES_ONLY is skipped on SQLite (index kinds SQLite does not have)."""
        with self.transaction() as tx:
            for statement in ddl.split(";"):
                if statement.strip().startswith(POSTGRES_ONLY) and self.dialect != "postgres":
                    continue
                if statement.strip():
                    tx.execute(self.adapt_ddl(statement))

    def adapt_ddl(self, statement: str) -> str:
        return statement

    @abstractmethod
    def close(self) -> None: ...


class _SqliteTx(Tx):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, (tuple(r) for r in rows))

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(self.conn.execute(sql, tuple(params)).fetchall())


class SqliteDatabase(Database):
    """One connection shared by the threads of one process, serialised by a lock."""

    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()


_QMARK = re.compile(r"\?")


def to_pyformat(sql: str) -> str:
    """`?` → `%s` (our SQL never has a literal question mark; `%` is doubled)."""
    return _QMARK.sub("%s", sql.replace("%", "%%"))


class _PostgresTx(Tx):
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(to_pyformat(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(to_pyformat(sql), [tuple(r) for r in rows])

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(self.conn.execute(to_pyformat(sql), tuple(params)).fetchall())


class PostgresDatabase(Database):
    dialect = "postgres"

    def __init__(self, url: str, max_size: int = 5, connect_timeout_s: int = 3) -> None:
        from psycopg_pool import ConnectionPool

        self.url = url
        # Surviving a server restart: each connection is checked as it leaves the pool, so
        # a dead one is replaced rather than failing its transaction; and a caller waits at
        # most `connect_timeout_s` for one, then gets PoolTimeout (an OperationalError) and
        # can report the database unavailable (workers.resilience).
        self._pool = ConnectionPool(
            url, min_size=1, max_size=max_size, open=True, timeout=connect_timeout_s,
            check=ConnectionPool.check_connection,
            kwargs={"connect_timeout": connect_timeout_s})

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._pool.connection() as conn, conn.transaction():
            yield _PostgresTx(conn)

    def adapt_ddl(self, statement: str) -> str:
        return (
            statement.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
            .replace(" BLOB", " BYTEA")
            .replace(" REAL", " DOUBLE PRECISION")
        )

    def close(self) -> None:
        self._pool.close()


def open_database(url: str, pool_size: int = 5, connect_timeout_s: int = 3) -> Database:
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url, max_size=pool_size, connect_timeout_s=connect_timeout_s)
    path = url.removeprefix("sqlite:///")
    if path != ":memory:":
        # The read models live beside the event store in their own file, so a long
        # projection transaction never holds the event store's lock.
        p = Path(path)
        path = str(p.with_name(p.stem + "-read" + p.suffix))
    return SqliteDatabase(path)
