"""Campaign read models: campaign list + progress, per-patient communications (the report),
patients' communication history and last-contacted dates, the send schedule."""

from __future__ import annotations

from typing import Any

from projections.base import Projection
from projections.db import Tx
from projections.timefmt import iso

DDL = """
CREATE TABLE IF NOT EXISTS campaigns (
    campaign_id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL,
    channel TEXT NOT NULL, status TEXT NOT NULL, start_date TEXT NOT NULL,
    requested_start TEXT NOT NULL, audience_size INTEGER NOT NULL, created_by TEXT NOT NULL,
    created_at TEXT NOT NULL, activated_at TEXT, finished_at TEXT, test_sends INTEGER NOT NULL,
    help_number TEXT NOT NULL DEFAULT '', scope_groups TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS communications (
    communication_id TEXT PRIMARY KEY, campaign_id TEXT NOT NULL, patient_id TEXT NOT NULL,
    channel TEXT NOT NULL, sequence INTEGER NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL, due_at TEXT, last_outcome TEXT NOT NULL, last_code TEXT NOT NULL,
    reason TEXT NOT NULL, provider_ref TEXT NOT NULL, first_attempt_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS communications_due ON communications (status, due_at);
CREATE INDEX IF NOT EXISTS communications_campaign ON communications (campaign_id, sequence);
CREATE INDEX IF NOT EXISTS communications_patient ON communications (patient_id);
CREATE INDEX IF NOT EXISTS communications_open ON communications (campaign_id, status, due_at);
CREATE INDEX IF NOT EXISTS communications_changed ON communications (campaign_id, updated_at);
CREATE TABLE IF NOT EXISTS campaign_progress (
    campaign_id TEXT PRIMARY KEY, total INTEGER NOT NULL, open INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS campaign_counts (
    campaign_id TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, status)
)
"""

#: A communication in one of these is not finished: the campaign cannot complete yet.
OPEN_STATUSES = ("Planned", "Retry Pending", "Sending")

# Filled here, read by the patient summary and search (projections/patients.py creates them
# too when it runs alone, from this same text).
HISTORY_DDL = """
CREATE TABLE IF NOT EXISTS communication_history (
    communication_id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, campaign_name TEXT NOT NULL,
    campaign_description TEXT NOT NULL, channel TEXT NOT NULL, status TEXT NOT NULL,
    reason TEXT NOT NULL, attempts INTEGER NOT NULL, first_attempt_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS communication_history_patient
    ON communication_history (patient_id, updated_at);
CREATE TABLE IF NOT EXISTS patient_contacts (
    patient_id TEXT PRIMARY KEY, last_contacted_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS patient_contacts_when ON patient_contacts (last_contacted_at)
"""

# Event → the communication status it leads to (mirrors domain.communication.CommStatus).
STATUS_AFTER = {
    "Communication.Planned": "Planned",
    "Communication.AttemptStarted": "Sending",
    "Communication.Accepted": "Sent",
    "Communication.IntroductionSent": "Introductory email needed",
    "Communication.Delivered": "Delivered",
    "Communication.AttemptFailed": "Retry Pending",
    "Communication.RetriesExceeded": "Unsuccessful",
    "Communication.FailedPermanently": "Unsuccessful",
    "Communication.RetryNotPossible": "Unsuccessful",
    "Communication.Skipped": "Skipped",
    "Communication.Cancelled": "Cancelled",
}


def scope_text(groups: list[str] | None) -> str:
    """A campaign's groups as stored in campaigns.scope_groups: folded, one per line, with a
    line break at both ends so `LIKE '%\ngroup\n%'` matches one whole name."""
    names = sorted({str(g).strip().casefold() for g in groups or () if str(g).strip()})
    return "\n" + "\n".join(names) + "\n" if names else ""


def kind(event: Any) -> str:
    return type(event).__qualname__


class CampaignProjection(Projection):
    name = "campaigns"
    # 2: campaigns.scope_groups, the creator's subscriber groups (issue 12).
    # 3: campaign_progress and campaign_counts, so the scheduler never scans (issue 14).
    schema_version = 3
    own_tables = ("campaigns", "communications", "communication_history", "patient_contacts",
                  "campaign_progress", "campaign_counts")

    def ddl(self) -> str:
        return DDL + ";" + HISTORY_DDL

    def reset(self, tx: Tx) -> None:
        for table in self.own_tables:
            tx.execute(f"DELETE FROM {table}")

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        name = kind(event)
        if name.startswith("Campaign."):
            self._campaign(tx, name, event)
        elif name.startswith("Communication."):
            self._communication(tx, name, event)

    # -- campaigns ----------------------------------------------------------------------
    def _campaign(self, tx: Tx, name: str, e: Any) -> None:
        cid = str(e.originator_id)
        if name == "Campaign.Created":
            tx.execute(
                "INSERT INTO campaigns (campaign_id, name, description, channel, status,"
                " start_date, requested_start, audience_size, created_by, created_at,"
                " test_sends, help_number, scope_groups) VALUES (?,?,?,?,?,?,?,?,?,?,0,?,?)"
                " ON CONFLICT (campaign_id) DO NOTHING",
                (cid, e.name, e.description, e.channel, "Inactive", e.start_date,
                 e.requested_start, len(e.audience), e.created_by, iso(e.created_at),
                 str(e.content.get("help_number", "")), scope_text(getattr(e, "groups", None))),
            )
        elif name == "Campaign.Edited":
            changes = dict(e.changes)
            if "audience" in changes:
                changes["audience_size"] = len(changes.pop("audience"))
            if "content" in changes:
                changes["help_number"] = str(changes.pop("content").get("help_number", ""))
            allowed = {"name", "description", "start_date", "requested_start", "audience_size",
                       "help_number"}
            sets = [(k, v) for k, v in changes.items() if k in allowed]
            if sets:
                tx.execute(
                    "UPDATE campaigns SET " + ", ".join(f"{k} = ?" for k, _ in sets)
                    + " WHERE campaign_id = ?",
                    [v for _, v in sets] + [cid],
                )
            if "name" in changes or "description" in changes:
                row = tx.fetchone("SELECT name, description FROM campaigns WHERE campaign_id = ?",
                                  (cid,))
                if row:
                    tx.execute(
                        "UPDATE communication_history SET campaign_name = ?,"
                        " campaign_description = ? WHERE communication_id IN"
                        " (SELECT communication_id FROM communications WHERE campaign_id = ?)",
                        (row[0], row[1], cid),
                    )
        elif name == "Campaign.Activated":
            tx.execute("UPDATE campaigns SET status = 'Pending', activated_at = ?"
                       " WHERE campaign_id = ?", (iso(e.at), cid))
        elif name == "Campaign.Inactivated":
            tx.execute("UPDATE campaigns SET status = 'Inactive' WHERE campaign_id = ?", (cid,))
        elif name in ("Campaign.Stopped", "Campaign.Completed"):
            status = "Stopped" if name == "Campaign.Stopped" else "Completed"
            tx.execute("UPDATE campaigns SET status = ?, finished_at = ? WHERE campaign_id = ?",
                       (status, iso(e.at), cid))
        elif name == "Campaign.TestSent":
            tx.execute("UPDATE campaigns SET test_sends = test_sends + 1 WHERE campaign_id = ?",
                       (cid,))

    # -- communications -----------------------------------------------------------------
    def _communication(self, tx: Tx, name: str, e: Any) -> None:
        comm_id = str(e.originator_id)
        at = iso(getattr(e, "at", None) or e.timestamp)
        # Where the communication stood before this event: the campaign's counts move with it.
        before = tx.fetchone("SELECT campaign_id, status FROM communications"
                             " WHERE communication_id = ?", (comm_id,))
        if name == "Communication.Planned":
            if before is not None:
                return  # planned once (a replay of the same event changes nothing)
            tx.execute(
                "INSERT INTO communications (communication_id, campaign_id, patient_id, channel,"
                " sequence, status, attempts, due_at, last_outcome, last_code, reason,"
                " provider_ref, updated_at) VALUES (?,?,?,?,?,'Planned',0,?,'','','','',?)"
                " ON CONFLICT (communication_id) DO NOTHING",
                (comm_id, str(e.campaign_id), e.patient_id, e.channel, e.sequence,
                 iso(e.due_at), iso(e.timestamp)),
            )
            self._count(tx, str(e.campaign_id), None, "Planned")
            return
        sets: dict[str, Any] = {"updated_at": at}
        if name in STATUS_AFTER:
            sets["status"] = STATUS_AFTER[name]
        if name == "Communication.Rescheduled":
            sets.update(due_at=iso(e.due_at), sequence=e.sequence)
        elif name == "Communication.Deferred":
            sets.update(due_at=iso(e.until), reason=e.reason)
        elif name == "Communication.AttemptStarted":
            sets.update(attempts=e.attempt, due_at=None)
        elif name == "Communication.OutcomeUnknown":
            sets.update(last_outcome=e.reason, last_code=e.code)
        elif name == "Communication.Accepted":
            sets.update(provider_ref=e.provider_ref, last_outcome="accepted", reason="")
        elif name == "Communication.IntroductionSent":
            sets.update(provider_ref=e.provider_ref, last_outcome="introductory email sent",
                        reason="Introductory email needed")
        elif name == "Communication.Delivered":
            sets.update(last_outcome=getattr(e, "outcome", "") or "delivered")
        elif name == "Communication.AttemptFailed":
            sets.update(last_outcome=e.reason, last_code=e.code, due_at=iso(e.next_attempt_at))
        elif name == "Communication.RetriesExceeded":
            sets.update(reason="Unsuccessful - Communication Retries Exceeded", due_at=None)
        elif name == "Communication.FailedPermanently":
            sets.update(reason=f"Unsuccessful - {e.reason}", due_at=None)
        elif name == "Communication.RetryNotPossible":
            # A transient failure after the campaign ended: say so, never "permanent".
            sets.update(reason=f"Unsuccessful - retry not possible: {e.reason}", due_at=None)
        elif name in ("Communication.Skipped", "Communication.Cancelled"):
            sets.update(reason=e.reason, due_at=None)
        tx.execute(
            "UPDATE communications SET " + ", ".join(f"{k} = ?" for k in sets)
            + " WHERE communication_id = ?",
            [*sets.values(), comm_id],
        )
        if before is not None:
            self._count(tx, str(before[0]), str(before[1]), str(sets.get("status", before[1])))
        if name == "Communication.Accepted":
            # A letter is "sent" when printed for its mail date (which file and place: its
            # provider_ref, as `campaign attempts` shows).
            tx.execute("UPDATE communications SET last_outcome = 'letter printed'"
                       " WHERE communication_id = ? AND channel = 'letter'", (comm_id,))
        if name == "Communication.AttemptStarted" and e.attempt == 1:
            tx.execute("UPDATE communications SET first_attempt_at = ? WHERE communication_id = ?",
                       (at, comm_id))
        if name in ("Communication.Rescheduled", "Communication.Deferred"):
            return  # still only a plan: not yet part of the patient's history
        self._history(tx, comm_id)
        if name in ("Communication.Accepted", "Communication.Delivered",
                    "Communication.IntroductionSent"):
            row = tx.fetchone("SELECT patient_id FROM communications WHERE communication_id = ?",
                              (comm_id,))
            if row:
                tx.execute(
                    "INSERT INTO patient_contacts (patient_id, last_contacted_at) VALUES (?, ?)"
                    " ON CONFLICT (patient_id) DO UPDATE SET last_contacted_at ="
                    " excluded.last_contacted_at",
                    (row[0], at),
                )

    def _history(self, tx: Tx, comm_id: str) -> None:
        """A communication appears in the patient's history once something happened to it."""
        tx.execute(
            "INSERT INTO communication_history (communication_id, patient_id, campaign_name,"
            " campaign_description, channel, status, reason, attempts, first_attempt_at,"
            " updated_at)"
            " SELECT m.communication_id, m.patient_id, c.name, c.description, m.channel,"
            " m.status, m.reason, m.attempts, m.first_attempt_at, m.updated_at"
            " FROM communications m JOIN campaigns c ON c.campaign_id = m.campaign_id"
            " WHERE m.communication_id = ?"
            " ON CONFLICT (communication_id) DO UPDATE SET status = excluded.status,"
            " reason = excluded.reason, attempts = excluded.attempts,"
            " first_attempt_at = excluded.first_attempt_at, updated_at = excluded.updated_at",
            (comm_id,),
        )

    def _count(self, tx: Tx, campaign_id: str, old: str | None, new: str) -> None:
        """Keep the campaign's counts beside its communications, in the same transaction:
        how many of each status and how many still open — what the scheduler's completion
        and due checks read instead of every communication. (Its last change is read by
        index, communications_changed: a running maximum would be wrong, as a communication's
        time can go back — planned at the wall clock's time, sent at a simulated one.)"""
        if old == new:
            return
        opened = int(new in OPEN_STATUSES) - int(old in OPEN_STATUSES)
        tx.execute(
            "INSERT INTO campaign_progress (campaign_id, total, open) VALUES (?, ?, ?)"
            " ON CONFLICT (campaign_id) DO UPDATE SET"
            " total = campaign_progress.total + excluded.total,"
            " open = campaign_progress.open + excluded.open",
            (campaign_id, 1 if old is None else 0, opened))
        if old is not None:
            tx.execute("UPDATE campaign_counts SET n = n - 1 WHERE campaign_id = ?"
                       " AND status = ?", (campaign_id, old))
        tx.execute(
            "INSERT INTO campaign_counts (campaign_id, status, n) VALUES (?, ?, 1)"
            " ON CONFLICT (campaign_id, status) DO UPDATE SET n = campaign_counts.n + 1",
            (campaign_id, new))
