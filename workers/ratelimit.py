"""The campaign rate cap and pacing, enforced across every dispatcher process.

Each admitted send is a row in `send_ledger`; admission reads the campaign's rows of the last
hour under a per-campaign lock (PostgreSQL: a row lock taken with SELECT … FOR UPDATE;
SQLite: the database's write lock, taken by BEGIN IMMEDIATE), so reservations from several
dispatchers are serialised. The arithmetic is domain.pacing's (the hourly cap over closed
spans and the smooth rate with its burst), which the property tests prove.

Each process keeps, per campaign, the ledger's last hour in a PaceWindow
(domain/pacing_window.py) and reads from the ledger only the rows newer than the last it
saw: rows are written in time order (each reservation is at or after the latest send, under
the lock), so nothing can appear behind it. The window is filled from the ledger alone,
never from what this process meant to write, so it is always the committed ledger.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.pacing import DEFAULT_BURST, HOUR, Pace
from domain.pacing_window import PaceWindow, to_us
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


#: Campaigns whose window is kept when more are asked about: the ones idle longest go.
KEPT_CAMPAIGNS = 2_000


@dataclass
class _Recent:
    """One campaign's ledger rows from an hour before its last send on, as committed."""

    window: PaceWindow
    #: (communication, attempt) → send time in µs, in time order (for redelivered intents)
    keys: dict[tuple[str, int], int] = field(default_factory=dict)
    #: the latest sent_at read, as stored: the next read starts there (equal times included)
    last_text: str | None = None


class RateLimiter:
    def __init__(self, db: Database, per_hour: int, burst: int = DEFAULT_BURST) -> None:
        self.db = db
        self._pace = Pace(per_hour, burst)
        self._recent: dict[str, _Recent] = {}
        self._lock = threading.Lock()
        db.migrate(DDL)

    @property
    def pace(self) -> Pace:
        return self._pace

    @pace.setter
    def pace(self, pace: Pace) -> None:
        """A changed rate (organisation settings): the windows' sums depend on it."""
        with self._lock:
            self._pace = pace
            self._recent.clear()

    @property
    def per_hour(self) -> int:
        return self.pace.per_hour

    def _read(self, reader: Any, cid: str, at: datetime) -> _Recent:
        """The campaign's window brought up to the committed ledger: only rows at or after
        the last one read (a row at that same instant may be new: known ones are skipped).
        A campaign idle for over an hour starts again from the hour before `at`."""
        recent = self._recent.pop(cid, None)  # re-inserted last: the dict is kept in use order
        hour_ago = at - HOUR
        last = recent.window.last if recent else None
        if recent is None or last is None or last < hour_ago:
            recent = _Recent(PaceWindow(self.pace))
        since = recent.last_text if recent.last_text is not None else iso(hour_ago)
        rows = reader.fetchall(
            "SELECT communication_id, attempt, sent_at FROM send_ledger"
            " WHERE campaign_id = ? AND sent_at >= ? ORDER BY sent_at", (cid, since))
        for comm_id, attempt, sent_text in rows:
            key = (str(comm_id), int(attempt))
            if key in recent.keys:
                continue
            sent = parse_iso(sent_text)
            if sent is None:
                continue
            recent.window.append(sent)
            recent.keys[key] = to_us(sent)
            recent.last_text = sent_text
        self._forget_old(recent)
        self._recent[cid] = recent
        while len(self._recent) > KEPT_CAMPAIGNS:
            del self._recent[next(iter(self._recent))]
        return recent

    @staticmethod
    def _forget_old(recent: _Recent) -> None:
        """Every question is asked at or after the last send: what is over an hour older
        can never count again."""
        last = recent.window.last
        if last is None:
            return
        cutoff = last - HOUR
        recent.window.forget_before(cutoff)
        old = to_us(cutoff)
        keys = recent.keys
        while keys:
            first = next(iter(keys))
            if keys[first] >= old:
                break
            del keys[first]

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
        with self._lock, self.db.transaction() as tx:
            tx.execute("INSERT INTO rate_locks (campaign_id) VALUES (?)"
                       " ON CONFLICT (campaign_id) DO NOTHING", (cid,))
            if self.db.dialect == "postgres":
                tx.execute("SELECT campaign_id FROM rate_locks WHERE campaign_id = ? FOR UPDATE",
                           (cid,))
            recent = self._read(tx, cid, at)
            hour_ago = to_us(at - HOUR)
            # Dispatchers' clocks differ a little: never record a send before the latest one
            # already in the ledger, so the ledger's times only grow and the arithmetic
            # (proved for growing times) holds across processes.
            last = recent.window.last
            if last is not None and last > at:
                at = last
            budget = recent.window.room(at)
            new_rows: list[tuple[str, str, int, str | None]] = []
            refused = False
            for comm_id, attempt in sends:
                if recent.keys.get((str(comm_id), attempt), -1) >= hour_ago:
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
            # The new rows count as sent; the window learns them from the ledger next time.
            return admitted, recent.window.next_free(at, extra=len(new_rows))

    def room(self, campaign_id: UUID, at: datetime, pending: int = 0) -> tuple[int, datetime]:
        """How many more sends the campaign may make at `at` once `pending` ones (intents
        issued, not yet dispatched) have gone, and when it has room again once all the room
        of `at` is used (the scheduler's next due time for a paced or capped campaign).
        A read without the lock: the scheduler uses it to avoid issuing intents the
        dispatchers would only have to defer; `reserve` remains the rule."""
        with self._lock:
            recent = self._read(self.db, str(campaign_id), at)
            last = recent.window.last
            at = max(at, last) if last is not None else at
            free = recent.window.room(at)
            return max(0, free - pending), recent.window.next_free(at, extra=free)

    def sends_between(self, campaign_id: UUID, start: datetime, end: datetime) -> int:
        row = self.db.fetchone(
            "SELECT COUNT(*) FROM send_ledger WHERE campaign_id = ? AND sent_at >= ?"
            " AND sent_at < ?", (str(campaign_id), iso(start), iso(end)))
        return int(row[0]) if row else 0
