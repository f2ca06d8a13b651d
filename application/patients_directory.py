"""The PatientDirectory port over the patient read model (SQL, both databases)."""

from __future__ import annotations

from collections.abc import Sequence

from application.ports import PatientContact, PatientDirectory
from domain.channels import Channel
from projections.db import Database
from projections.patients import ID_BATCH, batches, placeholders

# What "has the channel's contact" means in SQL (letters need a full postal address).
CONTACT_PRESENT: dict[Channel, str] = {
    Channel.TEXT: "p.mobile IS NOT NULL",
    Channel.EMAIL: "p.email IS NOT NULL",
    Channel.PHONE: "(p.mobile IS NOT NULL OR p.home_phone IS NOT NULL)",
    Channel.LETTER: "p.has_address = 1",
}

_CONTACT_COLUMNS = ("p.patient_id, p.first_name, p.last_name, p.status, p.mobile,"
                    " p.home_phone, p.email, p.appointment_reminders_only, p.pcp_name,"
                    " p.address_line1, p.address_line2, p.city, p.state, p.postal_code")


def postal_lines(line1: str | None, line2: str | None, city: str | None, state: str | None,
                 postal: str | None) -> tuple[str, ...]:
    """The address as a letter prints it: street lines, then "City, ST 12345"."""
    last = f"{city or ''}, {state or ''} {postal or ''}".strip(" ,")
    return tuple(line for line in (line1, line2, last) if line and line.strip())


class SqlPatientDirectory(PatientDirectory):
    def __init__(self, db: Database) -> None:
        self.db = db

    def contacts(self, patient_ids: Sequence[str]) -> dict[str, PatientContact]:
        found: dict[str, PatientContact] = {}
        with self.db.transaction() as tx:
            for chunk in batches(list(dict.fromkeys(patient_ids)), ID_BATCH):
                for row in tx.fetchall(
                        f"SELECT {_CONTACT_COLUMNS} FROM patients p"
                        f" WHERE p.patient_id IN ({placeholders(len(chunk))})", chunk):
                    found[str(row[0])] = PatientContact(
                        patient_id=str(row[0]), first_name=str(row[1]), last_name=str(row[2]),
                        status=str(row[3]), mobile=row[4], home_phone=row[5], email=row[6],
                        appointment_reminders_only=bool(row[7]), provider=str(row[8] or ""),
                        postal_address=postal_lines(*row[9:14]))
        return found

    def default_audience(self, channel: Channel) -> list[str]:
        rows = self.db.fetchall(
            f"SELECT p.patient_id FROM patients p WHERE p.status = 'Active'"
            f" AND {CONTACT_PRESENT[Channel(channel)]} ORDER BY p.patient_id")
        return [str(r[0]) for r in rows]

    def patients_with_mobile(self, e164: str) -> list[str]:
        rows = self.db.fetchall(
            "SELECT patient_id FROM patients WHERE mobile = ? ORDER BY patient_id", (e164,))
        return [str(r[0]) for r in rows]
