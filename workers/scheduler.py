"""The scheduler: turns due communications into send-intents, and finished campaigns into
Completed. It reads the communications read model (caught up first) and is idempotent:
an intent already issued for (communication, attempt) is re-issued only when nothing came
of it for a while (its dispatcher died, or the bus lost it)."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError

from application.ports import PatientDirectory
from application.store import EventStore
from bus.intents import IntentPublisher, SendIntent
from domain.campaign import Campaign
from domain.clock import Clock
from domain.follow_ups import FOLLOW_UPS_CAMPAIGN_ID
from domain.preferences import ContactKeys, keyed_hash
from projections.db import Database
from projections.timefmt import iso, parse_iso
from workers.metrics import Metrics
from workers.ratelimit import RateLimiter

log = structlog.get_logger("scheduler")

DDL = """
CREATE TABLE IF NOT EXISTS issued_intents (
    communication_id TEXT NOT NULL, attempt INTEGER NOT NULL, due_at TEXT NOT NULL,
    issued_at TEXT NOT NULL, PRIMARY KEY (communication_id, attempt)
);
CREATE INDEX IF NOT EXISTS issued_intents_when ON issued_intents (issued_at)
"""
#: The bookkeeping tables are pruned at most this often (of the app's clock): a DELETE of
#: old rows on every tick would read the whole send ledger each time.
PRUNE_EVERY = timedelta(minutes=10)
#: A campaign's last change (of `c`): one look at the end of an index, only asked of the
#: few campaigns whose counts say nothing is open.
LAST_CHANGE = ("(SELECT MAX(m.updated_at) FROM communications m"
               " WHERE m.campaign_id = c.campaign_id)")

def routing_key(mobile: str | None, patient_id: str, keys: ContactKeys) -> str:
    """Same number → same key → same partition → in order. Keyed (HMAC-SHA256 of
    "route:+E164" under the contact-key secret): a bare hash of a number on the bus would be
    reversed by trying every number."""
    return keyed_hash(keys.secret, f"route:{mobile or f'patient:{patient_id}'}")[:32]


class Scheduler:
    def __init__(
        self,
        db: Database,
        store: EventStore,
        directory: PatientDirectory,
        publisher: IntentPublisher,
        clock: Clock,
        contact_keys: ContactKeys,
        limiter: RateLimiter | None = None,
        reissue_after: timedelta = timedelta(minutes=2),
        receipt_grace: timedelta = timedelta(minutes=10),
        batch: int = 2000,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics or Metrics()  # the process's (workers.metrics)
        self.store = store
        self.directory = directory
        self.publisher = publisher
        self.clock = clock
        self.contact_keys = contact_keys
        self.limiter = limiter
        #: campaigns at their rate cap → when the cap frees up (from the last tick)
        self.blocked_until: dict[str, datetime] = {}
        #: per campaign, this tick: when the limiter has room again once the tick's is used
        self._frees_at: dict[str, datetime] = {}
        self.reissue_after = reissue_after
        #: a campaign completes only this long after its last change, so a delivery
        #: failure reported soon after the send can still get another attempt
        self.receipt_grace = receipt_grace
        self.batch = batch
        self._pruned_at: datetime | None = None
        db.migrate(DDL)

    def tick(self) -> int:
        """Publish intents for every communication due now. Returns how many."""
        now = self.clock.now()
        # An intent counts as in flight for (communication, attempt, due time) until
        # `reissue_after`: a deferred communication has a new due time and so gets a new
        # intent when that time comes. Filtering in SQL (not after the LIMIT) keeps a backlog
        # larger than one batch moving.
        rows = self.db.fetchall(
            "SELECT m.communication_id, m.campaign_id, m.patient_id, m.attempts, m.status,"
            " m.due_at FROM communications m JOIN campaigns c ON c.campaign_id = m.campaign_id"
            # Letters are made by the letter worker, all at once (application/letters.py).
            " WHERE c.status = 'Pending' AND m.channel <> 'letter' AND ("
            "  (m.status IN ('Planned', 'Retry Pending') AND m.due_at <= ?)"
            "  OR (m.status = 'Sending' AND m.updated_at <= ?))"
            " AND NOT EXISTS (SELECT 1 FROM issued_intents i"
            "  WHERE i.communication_id = m.communication_id"
            "  AND i.attempt = CASE WHEN m.status = 'Sending' THEN m.attempts"
            "   ELSE m.attempts + 1 END"
            "  AND i.due_at = COALESCE(m.due_at, '') AND i.issued_at > ?)"
            " ORDER BY m.due_at, m.sequence LIMIT ?",
            (iso(now), iso(now - self.reissue_after), iso(now - self.reissue_after),
             self.batch),
        )
        if not rows:
            return 0
        in_flight = self._in_flight_per_campaign(now)
        intents: list[SendIntent] = []
        issued: list[tuple[str, int, str, str | None]] = []
        room: dict[str, int] = {}
        self.blocked_until, self._frees_at = {}, {}
        # Paced or over the cap: wait, in order, instead of deferring. Room first, contacts
        # after: a paced backlog of thousands looks up only the few it may issue now.
        rows = [r for r in rows
                if r[4] == "Sending" or self._has_room(r[1], now, room, in_flight)]
        contacts = self.directory.contacts([r[2] for r in rows])
        for comm_id, campaign_id, patient_id, attempts, status, due_at in rows:
            attempt = int(attempts) if status == "Sending" else int(attempts) + 1
            issued.append((comm_id, attempt, due_at or "", iso(now)))
            contact = contacts.get(patient_id)
            intents.append(SendIntent(
                communication_id=UUID(comm_id), campaign_id=UUID(campaign_id), attempt=attempt,
                routing_key=routing_key(contact.mobile if contact else None, patient_id,
                                        self.contact_keys),
                due_at=parse_iso(due_at) or now,
            ))
        if not intents:
            return 0
        self.publisher.publish(intents)
        self.metrics.intents_published.inc(len(intents))
        self._prune(now)
        with self.db.transaction() as tx:
            tx.executemany(
                "INSERT INTO issued_intents (communication_id, attempt, due_at, issued_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (communication_id, attempt)"
                " DO UPDATE SET due_at = excluded.due_at, issued_at = excluded.issued_at",
                issued,
            )
        log.info("intents_issued", count=len(intents))
        return len(intents)

    def _prune(self, now: datetime) -> None:
        """The bookkeeping tables only matter for a while; keep them small. Rows pruned
        later than they could be are never read again (every read looks at recent ones)."""
        if self._pruned_at is not None and self._pruned_at <= now < self._pruned_at + PRUNE_EVERY:
            return
        self._pruned_at = now
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM issued_intents WHERE issued_at < ?",
                       (iso(now - max(self.reissue_after * 2, timedelta(hours=1))),))
            tx.execute("DELETE FROM send_ledger WHERE sent_at < ?",
                       (iso(now - timedelta(days=7)),))

    def _in_flight_per_campaign(self, now: datetime) -> dict[str, int]:
        """Intents issued but not yet taken by a dispatcher will each use the cap. Such an
        intent's communication is still due (its due time is the intent's, issued at or
        after it): only the due ones of active campaigns are looked at, by index."""
        rows = self.db.fetchall(
            "SELECT m.campaign_id, COUNT(*) FROM campaigns c JOIN communications m"
            " ON m.campaign_id = c.campaign_id JOIN issued_intents i"
            " ON i.communication_id = m.communication_id AND i.attempt = m.attempts + 1"
            " WHERE c.status = 'Pending' AND m.status IN ('Planned', 'Retry Pending')"
            " AND m.due_at <= ? AND i.issued_at > ? AND i.due_at = COALESCE(m.due_at, '')"
            " GROUP BY m.campaign_id",
            (iso(now), iso(now - self.reissue_after)))
        return {r[0]: int(r[1]) for r in rows}

    def _has_room(self, campaign_id: str, now: datetime, room: dict[str, int],
                  in_flight: dict[str, int]) -> bool:
        """Count one send against the campaign's room under its rate cap this tick."""
        if self.limiter is None:
            return True
        if campaign_id not in room:
            # Intents in flight will each use the room; the rest may be issued now.
            room[campaign_id], self._frees_at[campaign_id] = self.limiter.room(
                UUID(campaign_id), now, pending=in_flight.get(campaign_id, 0))
        if room[campaign_id] <= 0:
            # Paced or at the cap: this campaign is next due when the limiter has room again
            # (so simulated time jumps there, neither spinning nor stalling).
            self.blocked_until[campaign_id] = self._frees_at[campaign_id]
            return False
        room[campaign_id] -= 1
        return True

    def next_due(self) -> datetime | None:
        """The earliest instant something of an active campaign is due (for simulated time).
        Per active campaign with open communications (the projection's counts), three
        indexed MIN look-ups; finished ones by their last change: nothing scans."""
        rows = self.db.fetchall(
            "SELECT c.campaign_id,"
            " (SELECT MIN(m.due_at) FROM communications m WHERE m.campaign_id = c.campaign_id"
            "  AND m.status = 'Planned'),"
            " (SELECT MIN(m.due_at) FROM communications m WHERE m.campaign_id = c.campaign_id"
            "  AND m.status = 'Retry Pending'),"
            " (SELECT MIN(m.updated_at) FROM communications m"
            "  WHERE m.campaign_id = c.campaign_id AND m.status = 'Sending')"
            " FROM campaigns c JOIN campaign_progress p ON p.campaign_id = c.campaign_id"
            # Letters count too: at their planned time the letter worker makes them.
            " WHERE c.status = 'Pending' AND p.open > 0")
        candidates: list[datetime] = []
        for campaign_id, planned_text, retry_text, stuck_text in rows:
            dues = [d for d in (parse_iso(planned_text), parse_iso(retry_text)) if d]
            stuck = parse_iso(stuck_text)
            if dues:
                due = min(dues)
                # A campaign at its cap is next due when the cap frees up, not before.
                blocked = self.blocked_until.get(campaign_id)
                candidates.append(max(due, blocked) if blocked else due)
            if stuck is not None:
                # An attempt left without an outcome is due again when it may be re-issued.
                candidates.append(stuck + self.reissue_after)
        finished = self.db.fetchone(
            f"SELECT MIN({LAST_CHANGE}) FROM campaigns c JOIN campaign_progress p"
            " ON p.campaign_id = c.campaign_id WHERE c.status = 'Pending'"
            " AND c.campaign_id <> ? AND p.open = 0 AND p.total > 0",  # follow-ups never end
            (str(FOLLOW_UPS_CAMPAIGN_ID),))
        last_change = parse_iso(finished[0]) if finished else None
        if last_change is not None:
            candidates.append(last_change + self.receipt_grace)
        return min(candidates) if candidates else None

    def complete_finished(self) -> int:
        """Mark Completed every active campaign whose communications have all ended
        (the projection's counts: no communication is read)."""
        rows = self.db.fetchall(
            "SELECT c.campaign_id FROM campaigns c JOIN campaign_progress p"
            " ON p.campaign_id = c.campaign_id"
            " WHERE c.status = 'Pending' AND c.campaign_id <> ?"  # follow-ups never complete
            " AND p.open = 0 AND p.total > 0 AND p.total >= c.audience_size"
            f" AND {LAST_CHANGE} <= ?", (str(FOLLOW_UPS_CAMPAIGN_ID),
                                        iso(self.clock.now() - self.receipt_grace)))
        done = 0
        for (campaign_id,) in rows:
            counts = {str(status): int(n) for status, n in self.db.fetchall(
                "SELECT status, n FROM campaign_counts WHERE campaign_id = ?", (campaign_id,))}
            try:
                campaign: Campaign = self.store.repository.get(UUID(campaign_id))
            except AggregateNotFoundError:
                continue
            if campaign.is_active:
                # Sent (accepted, no receipt) and Delivered (receipt) are counted apart: the
                # Completed event (version 2) reports them separately.
                campaign.complete(now=self.clock.now(), sent=counts.get("Sent", 0),
                                  delivered=counts.get("Delivered", 0),
                                  unsuccessful=counts.get("Unsuccessful", 0)
                                  + counts.get("Skipped", 0),
                                  introduced=counts.get("Introductory email needed", 0))
                self.store.save(campaign)
                done += 1
        return done
