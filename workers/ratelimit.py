"""The campaign rate cap and pacing, enforced across every dispatcher process.

Each admitted send is a row in `send_ledger`; admission reads the campaign's rows of the last
hour under a per-campaign lock (PostgreSQL: a row lock taken with SELECT … FOR UPDATE;
SQLite: the database's write lock, taken by BEGIN IMMEDIATE), so reservations from several
dispatchers are serialised. The arithmetic is domain.pacing's (the hourly cap over closed
spans and the smooth rate with its burst), which the property tests prove.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from domain.pacing import DEFAULT_BURST, HOUR, Pace, next_free
from domain.pacing import room as room_at
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
    def __init__(self, db: Database, per_hour: int, burst: int = DEFAULT_BURST) -> None:
        self.db = db
        self.pace = Pace(per_hour, burst)
        db.migrate(DDL)

    @property
    def per_hour(self) -> int:
        return self.pace.per_hour

    def reserve(
        self, campaign_id: UUID, sends: Sequence[tuple[UUID, int]], at: datetime
    ) -> tuple[list[tuple[UUID, int]], datetime | None]:
        """Admit as many of `sends` (communication id, attempt) as the rule allows at `at`.

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
                " WHERE campaign_id = ? AND sent_at >= ? ORDER BY sent_at",
                (cid, iso(at - HOUR)),
            )
            already = {(r[0], int(r[1])) for r in rows}
            sent = [t for t in (parse_iso(r[2]) for r in rows) if t is not None]
            # Dispatchers' clocks differ a little: never record a send before the latest one
            # already in the ledger, so the ledger's times only grow and the arithmetic
            # (proved for growing times) holds across processes.
            if sent and sent[-1] > at:
                at = sent[-1]
            budget = room_at(sent, at, self.pace)
            new_rows: list[tuple[str, str, int, str | None]] = []
            refused = False
            for comm_id, attempt in sends:
                if (str(comm_id), attempt) in already:
                    admitted.append((comm_id, attempt))
                elif len(new_rows) < budget:
                    new_rows.append((cid, str(comm_id), attempt, iso(at)))
                    admitted.append((comm_id, attempt))
                else:
                    refused = True
            if new_rows:
                tx.executemany(
                    "INSERT INTO send_ledger (campaign_id, communication_id, attempt, sent_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (communication_id, attempt) DO NOTHING",
                    new_rows,
                )
            if not refused:
                return admitted, None
            return admitted, next_free([*sent, *[at] * len(new_rows)], at, self.pace)

    def room(self, campaign_id: UUID, at: datetime, pending: int = 0) -> tuple[int, datetime]:
        """How many more sends the campaign may make at `at` once `pending` ones (intents
        issued, not yet dispatched) have gone, and when it has room again once all the room
        of `at` is used (the scheduler's next due time for a paced or capped campaign).
        A read without the lock: the scheduler uses it to avoid issuing intents the
        dispatchers would only have to defer; `reserve` remains the rule."""
        rows = self.db.fetchall(
            "SELECT sent_at FROM send_ledger WHERE campaign_id = ? AND sent_at >= ?"
            " ORDER BY sent_at", (str(campaign_id), iso(at - HOUR)))
        sent = [t for t in (parse_iso(r[0]) for r in rows) if t is not None]
        at = max(at, sent[-1]) if sent else at
        free = room_at(sent, at, self.pace)
        return max(0, free - pending), next_free([*sent, *[at] * free], at, self.pace)

    def sends_between(self, campaign_id: UUID, start: datetime, end: datetime) -> int:
        row = self.db.fetchone(
            "SELECT COUNT(*) FROM send_ledger WHERE campaign_id = ? AND sent_at >= ?"
            " AND sent_at < ?", (str(campaign_id), iso(start), iso(end)))
        return int(row[0]) if row else 0
