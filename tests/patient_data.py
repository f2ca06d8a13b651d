"""Helpers shared by the patient tests: a real PatientService on SQLite or PostgreSQL, CSV
files, and loading `PatientFacts` into the read model through the projection's writers."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from application.clock import SimulatedClock
from application.patients import PatientService
from application.settings import Settings
from application.store import open_event_store
from domain.lists_facts import PatientFacts
from domain.patients import ImportKind, Record
from projections.db import Database, Tx, open_database
from projections.patients import PatientsProjection

# 09:00 in Chicago on Monday 10 March 2025: "today" for every list test.
NOW = datetime(2025, 3, 10, 14, 0, tzinfo=UTC)


@dataclass
class Backend:
    service: PatientService
    db: Database
    store: Any
    clock: SimulatedClock

    def close(self) -> None:
        self.db.close()
        self.store.close()


def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'db' / 'outreach.db'}"


@contextmanager
def open_backend(url: str, **settings: Any) -> Iterator[Backend]:
    config = Settings(database_url=url, **settings)
    store = open_event_store(config)
    db = open_database(url)
    clock = SimulatedClock(NOW)
    backend = Backend(PatientService(store, db, clock, config), db, store, clock)
    try:
        yield backend
    finally:
        backend.close()


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]],
              bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


PROVIDER_HEADER = ["Provider ID", "Name", "Group", "Active"]
PATIENT_HEADER = ["Patient ID", "First Name", "Middle Name", "Last Name", "DOB", "Mobile",
                  "Home Phone", "Email", "Status", "PCP", "Payor", "Care Manager", "Language",
                  "Groups", "Appointment Reminders Only", "Address", "City", "State", "Zip"]
APPOINTMENT_HEADER = ["Appointment ID", "Patient ID", "Date/Time", "Provider", "Facility",
                      "Type", "Status", "Notes"]


def patient_row(pid: str, first: str, last: str, dob: str = "1970-01-01", *,
                middle: str = "", mobile: str = "", home: str = "", email: str = "",
                status: str = "Active", pcp: str = "D1", payor: str = "", care_manager: str = "",
                language: str = "", groups: str = "", reminders_only: str = "",
                address: tuple[str, str, str, str] = ("", "", "", "")) -> list[str]:
    return [pid, first, middle, last, dob, mobile, home, email, status, pcp, payor,
            care_manager, language, groups, reminders_only, *address]


# -- loading facts straight into the read model ----------------------------------------------


def load_facts(tx: Tx, facts: Sequence[PatientFacts], providers: dict[str, tuple[str, bool]]
               ) -> None:
    """Write facts the way imports would (same writers, canonical records). Here `pcp` and
    appointments' `provider` are provider ids; `providers` maps id → (name, active)."""
    projection = PatientsProjection()
    projection.write(tx, ImportKind.PROVIDERS, [
        (pid, name, None, "1" if active else "0") for pid, (name, active) in providers.items()])
    patients: list[Record] = []
    appointments: list[Record] = []
    gaps: list[Record] = []
    conditions: list[Record] = []
    for f in facts:
        patients.append((
            f.patient_id, f.first_name, f.middle_name, f.last_name, f.date_of_birth, f.mobile,
            f.home_phone, f.email, f.status, f.pcp, f.payor, f.care_manager, f.language, "0",
            None, None, f.city, f.state, f.postal_code, "; ".join(f.groups) or None))
        for a in f.appointments:
            appointments.append((a.appointment_id, f.patient_id, a.starts_at,
                                 a.provider or "D1", a.facility, a.type, a.status, a.notes))
        for measure in f.open_care_gaps:
            gaps.append((f.patient_id, measure, "2024-01-01", None))
        for measure in f.closed_care_gaps:
            gaps.append((f.patient_id, measure, "2024-01-01", "2024-06-01"))
        for condition in f.conditions:
            conditions.append((f.patient_id, condition))
        if f.last_contacted_at:
            tx.execute("INSERT INTO patient_contacts (patient_id, last_contacted_at)"
                       " VALUES (?, ?)", (f.patient_id, f.last_contacted_at))
    for kind, records in ((ImportKind.PATIENTS, patients), (ImportKind.APPOINTMENTS,
                          appointments), (ImportKind.CARE_GAPS, gaps),
                          (ImportKind.CONDITIONS, conditions)):
        if records:
            projection.write(tx, kind, records)


def as_displayed(facts: PatientFacts, providers: dict[str, tuple[str, bool]]
                 ) -> PatientFacts:
    """The same facts with provider ids replaced by names where known (what lists show and
    filters match: a provider's name, or its id when it is not in the providers file)."""
    def name(provider_id: str | None) -> str | None:
        return providers[provider_id][0] if provider_id in providers else provider_id

    return replace(facts, pcp=name(facts.pcp), appointments=tuple(
        replace(a, provider=name(a.provider)) for a in facts.appointments))


def subscribed(facts: PatientFacts, providers: dict[str, tuple[str, bool]]) -> bool:
    """Who shows up under All Subscribers: PCP or an appointment with an active provider."""
    ids = [facts.pcp, *(a.provider for a in facts.appointments)]
    return any(i in providers and providers[i][1] for i in ids if i)


def clear_read_model(tx: Tx) -> None:
    PatientsProjection().reset(tx)
    tx.execute("DELETE FROM patient_contacts")


def dump_tables(db: Database, tables: Sequence[str]) -> dict[str, list[tuple[Any, ...]]]:
    dumped = {}
    for table in tables:
        rows = db.fetchall(f"SELECT * FROM {table}")
        dumped[table] = sorted(tuple(r) for r in rows)
    return dumped


def write_rows_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    return write_csv(path, header, rows)


def count_events(store: Any) -> int:
    top = store.recorder.max_notification_id()
    return int(top or 0)


def pick(rows: Sequence[dict[str, Any]], key: str) -> list[Any]:
    return [row[key] for row in rows]


def csv_rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        return list(csv.reader(f))
