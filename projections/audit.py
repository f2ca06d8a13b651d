"""The audit trail's read model: one `audit_log` row per recorded entry, and one
`audit_patients` row per patient id it names, for the filters an auditor uses (by user, by
patient, by action, by time).

Rows are only ever inserted (an entry is never changed: domain/audit.py), and an insert
that finds its row already there does nothing, so a replay is harmless.
"""

from __future__ import annotations

from typing import Any

from projections.base import Projection
from projections.db import Tx
from projections.timefmt import iso

RECORDED_TOPIC = "domain.audit:AuditEntry.Recorded"

# `at` is the fixed-width UTC text of projections/timefmt.py: text order is time order.
# `position` (the notification id) breaks ties between entries of the same instant.
# `audit_patients.seq` keeps the order the call showed the patients in.
DDL = """
CREATE TABLE IF NOT EXISTS audit_log (
    entry_id TEXT PRIMARY KEY, position BIGINT NOT NULL, at TEXT NOT NULL,
    user_id TEXT NOT NULL, username TEXT NOT NULL, roles TEXT NOT NULL, via TEXT NOT NULL,
    source TEXT NOT NULL, action TEXT NOT NULL, outcome TEXT NOT NULL, target TEXT NOT NULL,
    detail TEXT NOT NULL, patient_count INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at, position);
CREATE INDEX IF NOT EXISTS audit_log_user ON audit_log (user_id, at);
CREATE INDEX IF NOT EXISTS audit_log_username ON audit_log (username, at);
CREATE INDEX IF NOT EXISTS audit_log_action ON audit_log (action, at);
CREATE INDEX IF NOT EXISTS audit_log_outcome ON audit_log (outcome, at);
CREATE TABLE IF NOT EXISTS audit_patients (
    entry_id TEXT NOT NULL, seq INTEGER NOT NULL, patient_id TEXT NOT NULL,
    PRIMARY KEY (entry_id, seq)
);
CREATE INDEX IF NOT EXISTS audit_patients_patient ON audit_patients (patient_id, entry_id)
"""


class AuditProjection(Projection):
    name = "audit"
    schema_version = 1
    own_tables = ("audit_log", "audit_patients")
    # Only audit entries are decoded: the recorder filters the rest of the log out.
    topics = (RECORDED_TOPIC,)

    def ddl(self) -> str:
        return DDL

    def reset(self, tx: Tx) -> None:
        tx.execute("DELETE FROM audit_patients")
        tx.execute("DELETE FROM audit_log")

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        if type(event).__qualname__ != "AuditEntry.Recorded":
            return
        entry_id = str(event.originator_id)
        tx.execute(
            "INSERT INTO audit_log (entry_id, position, at, user_id, username, roles, via,"
            " source, action, outcome, target, detail, patient_count)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (entry_id) DO NOTHING",
            (entry_id, position, iso(event.at), event.user_id, event.username, event.roles,
             event.via, event.source, event.action, event.outcome, event.target,
             event.detail, int(event.patient_count)))
        ids = list(event.patient_ids or ())
        if ids:
            tx.executemany(
                "INSERT INTO audit_patients (entry_id, seq, patient_id) VALUES (?,?,?)"
                " ON CONFLICT (entry_id, seq) DO NOTHING",
                [(entry_id, seq, pid) for seq, pid in enumerate(ids)])
