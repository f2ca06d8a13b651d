"""Opt-outs and replies as staff see them: current opt-outs per patient, STOP-ed numbers
(by key, never the raw number), and the inbox of patients' texts."""

from __future__ import annotations

from typing import Any

from projections.base import Projection
from projections.db import Tx
from projections.timefmt import iso

# Filled here, read by the patient summary (projections/patients.py creates it too when it
# runs alone, from this same text).
OPT_OUTS_DDL = """
CREATE TABLE IF NOT EXISTS patient_opt_outs (
    patient_id TEXT NOT NULL, type TEXT NOT NULL, last_day TEXT, reason TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '', created_by TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL DEFAULT '', PRIMARY KEY (patient_id, type)
)
"""

# Email: whether a patient had the introductory email and which address (its keyed hash,
# never the address) bounced for good; read by the patient summary (projections/patients.py
# creates it too when it runs alone).
EMAIL_STATES_DDL = """
CREATE TABLE IF NOT EXISTS email_states (
    state_id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, introduced_at TEXT,
    bounced_key TEXT, bounced_at TEXT
);
CREATE INDEX IF NOT EXISTS email_states_patient ON email_states (patient_id)
"""

DDL = """
CREATE TABLE IF NOT EXISTS phone_opt_outs (
    phone_key TEXT PRIMARY KEY, stopped INTEGER NOT NULL, changed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS replies (
    message_ref TEXT PRIMARY KEY, from_number TEXT NOT NULL, body TEXT NOT NULL,
    keyword TEXT NOT NULL, expected INTEGER NOT NULL, received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS replies_received ON replies (received_at)
"""


class PreferencesProjection(Projection):
    name = "preferences"

    def ddl(self) -> str:
        return ";".join((OPT_OUTS_DDL, EMAIL_STATES_DDL, DDL))

    def reset(self, tx: Tx) -> None:
        for table in ("patient_opt_outs", "phone_opt_outs", "replies", "email_states"):
            tx.execute(f"DELETE FROM {table}")

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        name = type(event).__qualname__
        if name == "PatientPreferences.OptedOut":
            key = f"{event.type}:{event.protocol}" if event.protocol else event.type
            tx.execute(
                "INSERT INTO patient_opt_outs (patient_id, type, last_day, reason, comment,"
                " created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (patient_id, type) DO UPDATE SET"
                " last_day = excluded.last_day, reason = excluded.reason,"
                " comment = excluded.comment, created_by = excluded.created_by,"
                " created_at = excluded.created_at",
                (event.patient_id, key, event.last_day, event.reason, event.comment, event.by,
                 iso(event.at)),
            )
        elif name == "PatientPreferences.OptOutsRemoved":
            for key in event.types:
                tx.execute("DELETE FROM patient_opt_outs WHERE patient_id = ? AND type = ?",
                           (event.patient_id, key))
        elif name in ("PhoneOptOut.TextsStopped", "PhoneOptOut.TextsRestarted"):
            tx.execute(
                "INSERT INTO phone_opt_outs (phone_key, stopped, changed_at) VALUES (?, ?, ?)"
                " ON CONFLICT (phone_key) DO UPDATE SET stopped = excluded.stopped,"
                " changed_at = excluded.changed_at",
                (event.key, 1 if name.endswith("Stopped") else 0, iso(event.at)),
            )
        elif name.startswith("EmailState."):
            self._email_state(tx, name, event)
        elif name == "InboundMessage.Received":
            tx.execute(
                "INSERT INTO replies (message_ref, from_number, body, keyword, expected,"
                " received_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_ref) DO NOTHING",
                (event.message_ref, event.from_number, event.body, event.keyword,
                 1 if event.keyword else 0, iso(event.received_at)),
            )

    def _email_state(self, tx: Tx, name: str, event: Any) -> None:
        state_id = str(event.originator_id)
        if name == "EmailState.Registered":
            tx.execute("INSERT INTO email_states (state_id, patient_id) VALUES (?, ?)"
                       " ON CONFLICT (state_id) DO NOTHING", (state_id, event.patient_id))
        elif name == "EmailState.IntroductionSent":
            tx.execute("UPDATE email_states SET introduced_at = ? WHERE state_id = ?",
                       (iso(event.at), state_id))
        elif name == "EmailState.IntroductionUndelivered":
            tx.execute("UPDATE email_states SET introduced_at = NULL WHERE state_id = ?",
                       (state_id,))
        elif name == "EmailState.AddressBounced":
            tx.execute("UPDATE email_states SET bounced_key = ?, bounced_at = ?"
                       " WHERE state_id = ?", (event.address_key, iso(event.at), state_id))
