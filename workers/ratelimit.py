"""The campaign rate cap, enforced across every dispatcher process.

Each admitted send is a row in `send_ledger`; admission counts the campaign's rows in the last
hour under a per-campaign lock (PostgreSQL: a row lock taken with SELECT … FOR UPDATE;
SQLite: the database's write lock, taken by BEGIN IMMEDIATE). The arithmetic is
domain.pacing's, which the property tests prove never lets any hour exceed the cap.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from domain.pacing import HOUR, admits, next_free
from projections.db import Database
from projections.timefmt import iso, parse_iso

DDL = """
CREATE TABLE IF NOT EXISTS send_ledger (
    campaign_id TEXT NOT NULL, communication_id TEXT NOT NULL, attempt INTEGER NOT NULL,
    sent_at TEXT NOT NULL, PRIMARY KEY (communication_id, attempt)
);
CREATE INDEX IF NOT EXISTS send_ledger_campaign ON send_ledger (campaign_id, sent_at);
CREATE TABLE IF NOT EXISTS rate_locks (campaign_id TEXT PRIMARY KEY)
"""


class RateLimiter:
    def __init__(self, db: Database, per_hour: int) -> None:
        self.db = db
        self.per_hour = per_hour
        db.migrate(DDL)

    def reserve(
        self, campaign_id: UUID, sends: Sequence[tuple[UUID, int]], at: datetime
    ) -> tuple[list[tuple[UUID, int]], datetime | None]:
        """Admit as many of `sends` (communication id, attempt) as the cap allows at `at`.

        Returns the admitted ones (in order) and, when some were refused, the instant the
        campaign has room again. A (communication, attempt) already in the ledger is
        admitted again without counting twice: redelivered intents are harmless.
        """
        cid = str(campaign_id)
        admitted: list[tuple[UUID, int]] = []
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO rate_locks (campaign_id) VALUES (?)"
                       " ON CONFLICT (campaign_id) DO NOTHING", (cid,))
            if self.db.dialect == "postgres":
                tx.execute("SELECT campaign_id FROM rate_locks WHERE campaign_id = ? FOR UPDATE",
                           (cid,))
            rows = tx.fetchall(
                "SELECT communication_id, attempt, sent_at FROM send_ledger"
                " WHERE campaign_id = ? AND sent_at > ? ORDER BY sent_at",
                (cid, iso(at - HOUR)),
            )
            already = {(r[0], int(r[1])) for r in rows}
            sent = [t for t in (parse_iso(r[2]) for r in rows) if t is not None]
            # Dispatchers' clocks differ a little: never record a send before the latest one
            # already in the ledger, so the ledger's times only grow and the sliding-window
            # arithmetic (proved for growing times) holds across processes.
            if sent and sent[-1] > at:
                at = sent[-1]
            new_rows: list[tuple[str, str, int, str | None]] = []
            for comm_id, attempt in sends:
                if (str(comm_id), attempt) in already:
                    admitted.append((comm_id, attempt))
                    continue
                if not admits(sent, at, self.per_hour):
                    return self._commit(tx, new_rows, admitted, next_free(sent, at, self.per_hour))
                insort(sent, at)
                new_rows.append((cid, str(comm_id), attempt, iso(at)))
                admitted.append((comm_id, attempt))
            return self._commit(tx, new_rows, admitted, None)

    @staticmethod
    def _commit(tx, new_rows, admitted, retry_at):  # type: ignore[no-untyped-def]
        if new_rows:
            tx.executemany(
                "INSERT INTO send_ledger (campaign_id, communication_id, attempt, sent_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (communication_id, attempt) DO NOTHING",
                new_rows,
            )
        return admitted, retry_at

    def room(self, campaign_id: UUID, at: datetime) -> tuple[int, datetime | None]:
        """How many more sends the campaign may make at `at`, and when room frees up if none.
        A read without the lock: the scheduler uses it to avoid issuing intents the
        dispatchers would only have to defer; `reserve` remains the rule."""
        row = self.db.fetchone(
            "SELECT COUNT(*), MAX(sent_at) FROM send_ledger WHERE campaign_id = ?"
            " AND sent_at > ?", (str(campaign_id), iso(at - HOUR)))
        used, latest = (int(row[0]), parse_iso(row[1])) if row else (0, None)
        if used < self.per_hour and (latest is None or latest <= at):
            return self.per_hour - used, None
        rows = self.db.fetchall(
            "SELECT sent_at FROM send_ledger WHERE campaign_id = ? AND sent_at > ?"
            " ORDER BY sent_at", (str(campaign_id), iso(at - HOUR)))
        sent = [t for t in (parse_iso(r[0]) for r in rows) if t is not None]
        at = max(at, sent[-1]) if sent else at
        if admits(sent, at, self.per_hour):
            return self.per_hour - sum(1 for t in sent if t > at - HOUR), None
        return 0, next_free(sent, at, self.per_hour)

    def sends_between(self, campaign_id: UUID, start: datetime, end: datetime) -> int:
        row = self.db.fetchone(
            "SELECT COUNT(*) FROM send_ledger WHERE campaign_id = ? AND sent_at >= ?"
            " AND sent_at < ?", (str(campaign_id), iso(start), iso(end)))
        return int(row[0]) if row else 0
