"""Reading and checking an import file beside the importer: the child process and the thread
give the same chunks, and stopping early never leaves a reader behind."""

from __future__ import annotations

import csv
import signal
from datetime import date
from pathlib import Path

import pytest

from application.import_rows import CheckedRows, ImportReadError
from application.import_source import Source
from domain.patients import CHUNK_ROWS, ImportKind

TODAY = date(2025, 3, 10)
HEADER = ["Patient ID", "First Name", "Last Name", "DOB", "Mobile"]
UTF8 = Source("utf-8-sig", ",")


def _file(path: Path, rows: int) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for n in range(rows):
            # every 7th row has an impossible date: rejected with its line number
            born = "1970-02-30" if n % 7 == 3 else "1970-01-01"
            writer.writerow([f"P{n}", "Ann", "Lee", born, f"512-555-{n % 10000:04d}"])
    return path


@pytest.mark.parametrize("in_process", [False, True])
def test_chunks_hold_every_row_once_in_file_order(tmp_path: Path, in_process: bool) -> None:
    # given a file of 2,500 rows, some of them bad
    path = _file(tmp_path / "patients.csv", 2500)
    # when its rows are checked in a thread or in a child process
    reader = CheckedRows(path, ImportKind.PATIENTS, TODAY, UTF8, in_process)
    try:
        chunks = list(reader)
    finally:
        reader.close()
    # then valid rows come in full chunks, every row exactly once, lines in file order
    assert reader.in_process is in_process
    assert [len(c.valid) for c in chunks] == [CHUNK_ROWS, CHUNK_ROWS, 2500 - 2 * CHUNK_ROWS
                                              - sum(len(c.rejected) for c in chunks)]
    lines = sorted([line for c in chunks for line, _ in c.valid]
                   + [line for c in chunks for line, _, _ in c.rejected])
    assert lines == list(range(2, 2502))
    first_bad = chunks[0].rejected[0]
    assert first_bad[0] == 5 and first_bad[1][0] == "P3" and "not a real date" in first_bad[2]


def test_closing_early_stops_the_child_process(tmp_path: Path) -> None:
    # given a child process checking a file far larger than the pipe holds
    path = _file(tmp_path / "big.csv", 30_000)
    reader = CheckedRows(path, ImportKind.PATIENTS, TODAY, UTF8, in_process=True)
    # when the importer takes one chunk and stops (as it does when the database fails)
    next(iter(reader))
    reader.close()
    # then the child was stopped (killed mid-file), not left blocked on a full pipe
    assert reader._child is not None and reader._child.returncode == -signal.SIGKILL


def test_a_reader_that_fails_is_reported_not_waited_for(tmp_path: Path) -> None:
    # given a child process asked to read something that is not a file
    reader = CheckedRows(tmp_path, ImportKind.PATIENTS, TODAY, UTF8, in_process=True)
    # when the importer reads from it, then it hears why, at once
    with pytest.raises(ImportReadError, match="IsADirectoryError"):
        list(reader)
    reader.close()


def test_a_reader_process_that_dies_is_reported_with_its_exit_code(tmp_path: Path) -> None:
    # given a child process checking a large file
    path = _file(tmp_path / "big.csv", 30_000)
    reader = CheckedRows(path, ImportKind.PATIENTS, TODAY, UTF8, in_process=True)
    chunks = iter(reader)
    next(chunks)
    # when it is killed mid-file (kill -9)
    assert reader._child is not None
    reader._child.kill()
    # then the importer hears that the reader died and how, instead of a truncated file
    try:
        with pytest.raises(ImportReadError,
                           match=r"reader process ended unexpectedly \(exit code -9\)"):
            list(chunks)
    finally:
        reader.close()


@pytest.mark.parametrize("in_process", [False, True])
def test_a_windows_1252_tab_separated_file_is_read_the_same_in_a_child_process(
        tmp_path: Path, in_process: bool) -> None:
    # given a Windows-1252, tab-separated file whose second row repeats the first's id
    path = tmp_path / "patients.tsv"
    path.write_bytes("Patient ID\tFirst Name\tLast Name\tDOB\n"
                     "P1\tMaría\tGarcía\t1970-01-01\n"
                     "P1\tMaría\tGarcía\t1971-01-01\n".encode("cp1252"))
    # when its rows are checked with that encoding and delimiter
    reader = CheckedRows(path, ImportKind.PATIENTS, TODAY, Source("cp1252", "\t"), in_process)
    try:
        chunks = list(reader)
    finally:
        reader.close()
    # then the names are the sender's and the repeated id is rejected, in both readers
    assert [record[1:4] for c in chunks for _, record in c.valid] == [
        ("María", None, "García")]
    assert [(line, reason) for c in chunks for line, _, reason in c.rejected] == [
        (3, "duplicate id, first seen on line 2")]
