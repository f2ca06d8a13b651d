"""Event states are compressed when large (import chunks), kept as they are when small, and
events stored before compression existed stay readable — on SQLite and PostgreSQL."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from application.settings import Settings
from application.store import EventCompressor, EventStore, open_event_store
from domain.patients import SPECS, ImportKind, PatientImport
from tests.patient_data import database_url

COLUMNS = SPECS[ImportKind.PATIENTS].column_names
STARTED = datetime(2025, 3, 10, 15, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url(request, tmp_path))


@pytest.fixture
def stores(settings: Settings) -> Iterator[list[EventStore]]:
    opened: list[EventStore] = []
    yield opened
    for store in opened:
        store.close()


def _chunk(rows: int) -> list[list[str | None]]:
    return [[f"P{n}", "Ann", None, "Lee", "1950-02-03", "+15125550101", None,
             f"ann{n}@example.org", "Active", "D1", "Medicare", None, "English", "0",
             "1 Main St", None, "Austin", "TX", "78701", None] for n in range(rows)]


def _stored_state(store: EventStore, import_id: object, version: int) -> bytes:
    for stored in store.recorder.select_events(import_id):  # type: ignore[arg-type]
        if stored.originator_version == version:
            return bytes(stored.state)
    raise AssertionError(f"no version {version}")


def test_large_states_are_compressed_and_small_ones_kept_as_they_are(
        settings: Settings, stores: list[EventStore]) -> None:
    # given an import with a chunk of 500 rows
    store = open_event_store(settings)
    stores.append(store)
    imported = PatientImport("patients", "patients.csv", STARTED)
    imported.record_rows(COLUMNS, _chunk(500))
    store.save(imported)
    # then the chunk is stored compressed, the small Started event as it is
    chunk_state = _stored_state(store, imported.id, 2)
    assert chunk_state[:1] == b"\x78" and b"Medicare" in zlib.decompress(chunk_state)
    assert _stored_state(store, imported.id, 1)[:1] == b"{"
    # and both read back whole
    events = list(store.events.get(imported.id))  # type: ignore[attr-defined]
    assert len(events[1].rows) == 500 and events[1].rows[499][0] == "P499"


def test_events_stored_before_compression_stay_readable(
        settings: Settings, stores: list[EventStore]) -> None:
    # given a large chunk stored by a version without compression
    before = open_event_store(settings, COMPRESSOR_TOPIC="")
    stores.append(before)
    imported = PatientImport("patients", "patients.csv", STARTED)
    imported.record_rows(COLUMNS, _chunk(200))
    before.save(imported)
    assert _stored_state(before, imported.id, 2)[:1] == b"{"
    # when the store is opened with compression
    after = open_event_store(settings)
    stores.append(after)
    # then the old event reads as it was written
    again: PatientImport = after.repository.get(imported.id)
    assert again.rows_recorded == 200


def test_the_compressor_round_trips_any_state() -> None:
    compressor = EventCompressor()
    for state in (b"{}", b'{"a":1}', b"{" + b"x" * 5000 + b"}"):
        assert compressor.decompress(compressor.compress(state)) == state
