"""Importing one CSV file: stream, check, compare with the read model, record what changed.

Memory stays bounded whatever the file size: rows are read with the csv module and handled
`CHUNK_ROWS` at a time; rejected rows go straight to the rejects file; only the first
`REPORTED_REJECTIONS` reasons are kept for the summary.

Each chunk's valid rows are compared with the read model by row hash; only new or changed
rows become a `PatientImport.RowsImported` event. Every `WINDOW_CHUNKS` chunks the events
are saved together and the projection catches up; until then the hashes of rows recorded
but not yet projected are remembered, so a patient repeated later in the same file is
compared with its own earlier row. Re-importing a file therefore records nothing.
"""

from __future__ import annotations

import csv
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from uuid import UUID

import structlog

from domain.patients import (
    CHUNK_ROWS,
    SPECS,
    HeaderError,
    HeaderMap,
    ImportKind,
    PatientImport,
    Record,
    RowRejected,
    map_header,
    row_hash,
    validate_row,
)
from projections.db import Database
from projections.patients import existing_hashes

log = structlog.get_logger(__name__)

REPORTED_REJECTIONS = 1000
# Chunks recorded per save and catch-up: fewer, bigger transactions (an index insert is
# far cheaper when its page is already dirty in this transaction). The hashes of rows
# recorded but not yet projected are kept in memory meanwhile: at most this many chunks.
WINDOW_CHUNKS = 10
FIELD_SIZE_LIMIT = 1 << 20  # a 1 MB cell is a broken file, not a note


class ImportFileError(Exception):
    """The file cannot be imported at all (missing, unreadable, wrong header)."""


@dataclass(frozen=True)
class RowRejection:
    line: int
    reason: str


@dataclass
class ImportSummary:
    kind: str
    source: str
    rows: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejections: list[RowRejection] = field(default_factory=list)  # the first 1,000
    rejects_file: Path | None = None
    ignored_columns: tuple[str, ...] = ()
    import_id: UUID | None = None  # None when nothing changed (nothing was recorded)
    seconds: float = 0.0
    # Where the time went: read+check, compare, record (event store), project (read model).
    phases: dict[str, float] = field(default_factory=dict)

    def _timed(self, phase: str, started: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + time.perf_counter() - started

    @property
    def accepted(self) -> int:
        """Valid rows: new, updated or unchanged."""
        return self.new + self.updated + self.unchanged

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def _open_text(path: Path, mode: str) -> IO[str]:
    # utf-8-sig drops a BOM if there is one; surrogateescape turns bytes that are not UTF-8
    # into markers the row check rejects, so one bad row never stops the file, and the
    # rejects file gets the original bytes back.
    return open(path, mode, encoding="utf-8-sig" if "r" in mode else "utf-8",  # noqa: SIM115
                errors="surrogateescape", newline="")


class RejectsFile:
    """The rejected rows: original columns, then `line` and `reason`. Opened on first use."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self.header = header
        self._file: IO[str] | None = None
        self._writer: Any = None

    def write(self, line: int, cells: list[str], reason: str) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = _open_text(self.path, "w")
            self._writer = csv.writer(self._file)
            self._writer.writerow([*self.header, "line", "reason"])
        padded = cells + [""] * (len(self.header) - len(cells))
        self._writer.writerow([*padded, line, reason])

    @property
    def used(self) -> bool:
        return self._writer is not None

    def __enter__(self) -> RejectsFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._file is not None:
            self._file.close()


def read_rows(reader: Any) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(first line of the record, cells or None, csv error or None); blank lines skipped."""
    last_line = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield last_line + 1, None, f"unreadable CSV: {exc}"
            last_line = reader.line_num
            continue
        start, last_line = last_line + 1, reader.line_num
        if cells and any(c.strip() for c in cells):
            yield start, cells, None


@dataclass
class _Chunk:
    rows: list[tuple[int, list[str], Record]] = field(default_factory=list)


class _Pipe:
    """Chunks from the reader thread to the importing thread: bounded, and closable so a
    failing import never leaves the reader blocked."""

    def __init__(self, size: int = 3) -> None:
        self._queue: queue.Queue[_Chunk | BaseException | None] = queue.Queue(maxsize=size)
        self._closed = threading.Event()

    def put(self, item: _Chunk | BaseException | None) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        self._closed.set()

    def __iter__(self) -> Iterator[_Chunk]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class FileImport:
    """One run of one file. `catch_up` brings the patient projection up to date."""

    def __init__(self, store: Any, db: Database, catch_up: Callable[[], Any], kind: ImportKind,
                 path: Path, rejects_dir: Path | None, today: date, now: datetime) -> None:
        self.store = store
        self.db = db
        self.catch_up = catch_up
        self.spec = SPECS[kind]
        self.path = path
        self.rejects_path = (rejects_dir or path.parent) / f"{path.stem}.rejects.csv"
        self.today = today
        self.now = now
        self.summary = ImportSummary(kind.value, path.name)
        self.aggregate: PatientImport | None = None
        self.unsaved_chunks = 0
        self.pending: dict[tuple[str, ...], str] = {}  # recorded, not yet in the read model

    def run(self) -> ImportSummary:
        started = time.perf_counter()
        csv.field_size_limit(min(FIELD_SIZE_LIMIT, sys.maxsize))
        self.catch_up()  # compare with everything recorded so far
        try:
            source = _open_text(self.path, "r")
        except OSError as exc:
            raise ImportFileError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        with source, RejectsFile(self.rejects_path, []) as rejects:
            reader = csv.reader(source)
            rejects.header, header_map = self._header(reader)
            checked = _Pipe()
            # Reading and checking rows is pure Python; comparing, recording and projecting
            # mostly waits on the databases (which release the GIL). Overlapping the two in a
            # reader thread uses both. The pipe holds at most a few chunks: memory stays bounded.
            reader_thread = threading.Thread(
                target=self._read, args=(reader, header_map, rejects, checked),
                name="patients-import-reader", daemon=True)
            reader_thread.start()
            try:
                for chunk in checked:
                    self._record(chunk)
                self._flush()
            finally:
                checked.close()
                reader_thread.join()
        self._finish(rejects.used)
        self.summary.seconds = time.perf_counter() - started
        log.info("patients.import.finished", kind=self.spec.kind.value, rows=self.summary.rows,
                 new=self.summary.new, updated=self.summary.updated,
                 unchanged=self.summary.unchanged, rejected=self.summary.rejected,
                 seconds=round(self.summary.seconds, 2))
        return self.summary

    def _read(self, reader: Any, header_map: HeaderMap, rejects: RejectsFile,
              checked: _Pipe) -> None:
        """The reader thread: rows → checked chunks (rejected rows go to the rejects file)."""
        try:
            chunk = _Chunk()
            for line, cells, error in read_rows(reader):
                self.summary.rows += 1
                if cells is None:
                    self._reject(rejects, line, [], str(error))
                    continue
                try:
                    record = validate_row(header_map, cells, self.today)
                except RowRejected as exc:
                    self._reject(rejects, line, cells, str(exc))
                    continue
                chunk.rows.append((line, cells, record))
                if len(chunk.rows) >= CHUNK_ROWS:
                    if not checked.put(chunk):
                        return
                    chunk = _Chunk()
            if chunk.rows:
                checked.put(chunk)
            checked.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the importing thread
            checked.put(exc)

    def _header(self, reader: Any) -> tuple[list[str], HeaderMap]:
        try:
            header = next(reader)
        except StopIteration:
            raise ImportFileError(f"{self.path.name} is empty") from None
        except csv.Error as exc:
            raise ImportFileError(f"{self.path.name}: unreadable header: {exc}") from None
        try:
            mapped = map_header(self.spec, header)
        except HeaderError as exc:
            raise ImportFileError(f"{self.path.name}: {exc}") from None
        self.summary.ignored_columns = mapped.ignored
        return header, mapped

    def _reject(self, rejects: RejectsFile, line: int, cells: list[str], reason: str) -> None:
        self.summary.rejected += 1
        if len(self.summary.rejections) < REPORTED_REJECTIONS:
            self.summary.rejections.append(RowRejection(line, reason))
        rejects.write(line, cells, reason)

    def _record(self, chunk: _Chunk) -> None:
        """Compare one chunk with the read model and record its new and changed rows."""
        if not chunk.rows:
            return
        started = time.perf_counter()
        spec = self.spec
        lookup = spec.key_columns[0]
        with self.db.transaction() as tx:
            known = existing_hashes(tx, spec.kind, (str(r[2][lookup]) for r in chunk.rows))
        changed: dict[tuple[str, ...], Record] = {}
        for _line, _cells, record in chunk.rows:
            key = spec.key(record)
            digest = row_hash(record)
            before = self.pending.get(key) or known.get(key)
            if before == digest:
                self.summary.unchanged += 1
                continue
            if before is None:
                self.summary.new += 1
            else:
                self.summary.updated += 1
            known[key] = digest
            changed.pop(key, None)
            changed[key] = record
        self.summary._timed("compare", started)
        if not changed:
            return
        started = time.perf_counter()
        if self.aggregate is None:
            self.aggregate = PatientImport(spec.kind.value, self.path.name, self.now)
            self.summary.import_id = self.aggregate.id
        self.aggregate.record_rows(spec.column_names, list(changed.values()))
        self.pending.update((key, row_hash(record)) for key, record in changed.items())
        self.unsaved_chunks += 1
        self.summary._timed("record", started)
        if self.unsaved_chunks >= WINDOW_CHUNKS:
            self._flush()

    def _flush(self) -> None:
        """Store the recorded chunks in one go, then bring the read model up to date."""
        if self.aggregate is not None and self.unsaved_chunks:
            started = time.perf_counter()
            self.store.save(self.aggregate)
            self.summary._timed("record", started)
            started = time.perf_counter()
            self.catch_up()
            self.summary._timed("project", started)
        self.unsaved_chunks = 0
        self.pending.clear()

    def _finish(self, wrote_rejects: bool) -> None:
        if not wrote_rejects and self.rejects_path.exists():
            self.rejects_path.unlink()  # a stale file from an earlier run would mislead
        self.summary.rejects_file = self.rejects_path if wrote_rejects else None
        if self.aggregate is not None:
            s = self.summary
            self.aggregate.finish(rows=s.rows, new=s.new, updated=s.updated,
                                  unchanged=s.unchanged, rejected=s.rejected,
                                  finished_at=self.now)
            self.store.save(self.aggregate)
            self.catch_up()
