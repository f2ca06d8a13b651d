"""Import chunks are bounded in rows AND in bytes: no RowsImported event is large, whatever
the width of the rows (an event goes whole onto the Kafka events topic)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from domain.patients import (
    CHUNK_BYTES,
    CHUNK_ROWS,
    SPECS,
    ImportKind,
    PatientImport,
    bounded_chunks,
    row_bytes,
)

STARTED = datetime(2025, 3, 10, 15, 0, tzinfo=UTC)
# Cells as the row checks leave them: no control characters (JSON would escape those).
text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)
cells = st.one_of(st.none(), text, st.text(alphabet="é漢😀\"\\", max_size=10))
rows = st.lists(st.lists(cells, min_size=1, max_size=4), max_size=60)


def _json(value: object) -> bytes:
    # As the store and the wire write it (compact, UTF-8 as is).
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@given(rows=rows, max_rows=st.integers(1, 8), max_bytes=st.integers(1, 200))
def test_chunks_keep_every_row_in_order_within_both_bounds_and_close_only_when_full(
        rows: list[list[str | None]], max_rows: int, max_bytes: int) -> None:
    chunks = list(bounded_chunks(rows, max_rows, max_bytes))
    # every row once, in order, no empty chunk
    assert [r for c in chunks for r in c] == rows
    assert all(chunks)
    for n, chunk in enumerate(chunks):
        size = sum(row_bytes(r) for r in chunk)
        # within both bounds (a single row over the byte budget goes alone)
        assert len(chunk) <= max_rows
        assert size <= max_bytes or len(chunk) == 1
        # and a chunk closed early only because the next row would not fit
        if n + 1 < len(chunks):
            following = chunks[n + 1][0]
            assert len(chunk) == max_rows or size + row_bytes(following) > max_bytes


@given(st.lists(st.lists(cells, min_size=1, max_size=6), min_size=1, max_size=5))
def test_a_rows_size_is_its_utf8_text_plus_json_punctuation_and_bounds_its_json(
        rows: list[list[str | None]]) -> None:
    for row in rows:
        text_bytes = sum(len(v.encode("utf-8")) for v in row if v)
        assert row_bytes(row) == text_bytes + 5 * len(row) + 3
    # never less than the rows' compact JSON (in the event's list: 2 brackets), once the
    # escapes are counted (only `"` and `\` need one: the row checks refuse control characters)
    escapes = sum(v.count('"') + v.count("\\") for row in rows for v in row if v)
    assert len(_json(rows)) <= 2 + sum(row_bytes(r) for r in rows) + escapes


def test_an_import_of_wide_rows_records_several_bounded_events_that_replay_to_the_same_rows(
) -> None:
    # given 1,000 appointment rows with ~2 KB of notes each (~2 MB: over a broker's 1 MB)
    columns = SPECS[ImportKind.APPOINTMENTS].column_names
    wide = [[f"A{n}", f"P{n}", "2025-03-12T10:00", "D1", "Main", "Visit", "Scheduled",
             f"note {n} " + "é" * 1000] for n in range(CHUNK_ROWS)]
    imported = PatientImport("appointments", "appointments.csv", STARTED)
    # when they are recorded as one chunk of the file
    recorded = imported.record_rows(columns, wide)
    events = imported.collect_events()[1:]
    # then they go in several events, each within the byte budget even as JSON
    assert recorded == len(events) > 1
    for e in events:
        assert sum(row_bytes(r) for r in e.rows) <= CHUNK_BYTES  # type: ignore[attr-defined]
        assert len(_json(e.rows)) <= CHUNK_BYTES + 2  # type: ignore[attr-defined]
    # and together they hold every row once, in order
    assert [r for e in events for r in e.rows] == wide  # type: ignore[attr-defined]
    assert imported.rows_recorded == CHUNK_ROWS and imported.chunks == recorded


def test_narrow_rows_still_go_a_thousand_to_an_event() -> None:
    imported = PatientImport("patients", "patients.csv", STARTED)
    assert imported.record_rows(("patient_id",), [[f"P{n}"] for n in range(CHUNK_ROWS)]) == 1
