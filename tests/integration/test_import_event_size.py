"""An import of wide rows records events small enough for a Kafka broker, and imports exactly
what it did before — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.patients import CHUNK_BYTES, PatientImport
from projections.patients import OWN_TABLES
from projections.runner import rebuild
from tests.patient_data import APPOINTMENT_HEADER, Backend, database_url, open_backend, write_csv

ROWS = 1_500  # 1.5 chunks of the file; ~3 MB of notes


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(database_url(request, tmp_path)) as opened:
        yield opened


def _note(n: int) -> str:
    # ~2 KB (the notes column allows 2,000 characters), some of it two bytes a character
    return (f"Visit {n}: bring the \"blue\" form; " + "café au lait, " * 140)[:2000].strip()


def test_appointments_with_long_notes_are_recorded_in_events_under_the_byte_budget(
        backend: Backend, tmp_path: Path) -> None:
    # given an appointments file whose rows carry ~2 KB of notes each (a 1,000-row chunk of
    # it is ~2 MB: more than a broker's default 1 MB record limit)
    rows = [[f"A{n:05}", f"P{n % 300:04}", "2025-03-12 10:00", "D1", "Main", "Visit",
             "Scheduled", _note(n)] for n in range(ROWS)]
    path = write_csv(tmp_path / "appointments.csv", APPOINTMENT_HEADER, rows)
    # when it is imported
    summary = backend.service.import_file("appointments", path)
    # then the import's result is as always: every row new, every note whole in the read model
    assert (summary.rows, summary.new, summary.updated, summary.rejected) == (ROWS, ROWS, 0, 0)
    stored = dict(backend.db.fetchall("SELECT appointment_id, notes FROM appointments"))
    assert stored == {r[0]: r[7] for r in rows}
    # and every RowsImported event is under the byte budget, even as the JSON that is stored
    # and published (so it fits a 1 MB Kafka record with room to spare)
    assert summary.import_id is not None
    events = list(backend.store.repository.event_store.get(summary.import_id))
    chunks = [e for e in events if isinstance(e, PatientImport.RowsImported)]
    assert sum(len(e.rows) for e in chunks) == ROWS and len(chunks) > 2
    for chunk in chunks:
        payload = json.dumps(chunk.rows, separators=(",", ":"), ensure_ascii=False).encode()
        assert len(payload) <= CHUNK_BYTES * 1.1, len(payload)
    # and replaying them rebuilds the same read model
    before = {t: backend.db.fetchall(f"SELECT * FROM {t} ORDER BY 1, 2") for t in OWN_TABLES}
    rebuild(backend.store, backend.db, [backend.service.patients_projection])
    assert {t: backend.db.fetchall(f"SELECT * FROM {t} ORDER BY 1, 2")
            for t in OWN_TABLES} == before
