"""A provider's own sending quota (SES: MaxSendRate emails per second), shared by every
dispatcher process: each send takes the next free slot of the provider's timeline, kept in
one row per provider under a lock (PostgreSQL: SELECT … FOR UPDATE; SQLite: the write lock),
so two dispatchers together never go faster than the quota. It sits beside the campaign's
hourly cap (workers.ratelimit), which is the clinic's rule; this one is the provider's.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from projections.db import Database
from projections.timefmt import iso, parse_iso

DDL = """
CREATE TABLE IF NOT EXISTS provider_pace (provider TEXT PRIMARY KEY, next_at TEXT NOT NULL)
"""


class ProviderPace:
    def __init__(self, db: Database, provider: str, per_second: float) -> None:
        if per_second <= 0:
            raise ValueError("a provider's send rate must be positive")
        self.db = db
        self.provider = provider
        self.gap = timedelta(seconds=1 / per_second)
        db.migrate(DDL)

    def reserve(self, count: int, now: datetime) -> list[datetime]:
        """`count` slots, one `gap` apart, starting no earlier than `now`: when each send
        may go. The timeline only moves forward, so slots never overlap across processes."""
        if count <= 0:
            return []
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO provider_pace (provider, next_at) VALUES (?, ?)"
                       " ON CONFLICT (provider) DO NOTHING", (self.provider, iso(now)))
            lock = " FOR UPDATE" if self.db.dialect == "postgres" else ""
            row = tx.fetchone(f"SELECT next_at FROM provider_pace WHERE provider = ?{lock}",
                              (self.provider,))
            last = parse_iso(row[0]) if row else None
            start = max(now, last) if last is not None else now
            slots = [start + self.gap * n for n in range(count)]
            tx.execute("UPDATE provider_pace SET next_at = ? WHERE provider = ?",
                       (iso(slots[-1] + self.gap), self.provider))
        return slots
