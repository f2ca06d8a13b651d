"""Importing one CSV file: stream, check, compare with the read model, record what changed.

Memory stays bounded whatever the file size: rows are read and checked beside the importing
thread (application/import_rows.py) and handled `CHUNK_ROWS` at a time; rejected rows go
straight to the rejects file; only the first `REPORTED_REJECTIONS` reasons are kept for the
summary.

Each chunk's valid rows are compared with the read model by row hash; only new or changed
rows become `PatientImport.RowsImported` events (one, or more when the rows are wide: each
holds at most `CHUNK_BYTES` of text). Every `WINDOW_CHUNKS` events are saved together and a
background thread brings the projection up to date while the next window is compared and
recorded. The reader passes on only the first row of each key (application/import_rows.py:
a later row with other data is rejected as a duplicate), so a key is compared once per file
and re-importing a file records nothing.

The file's encoding and delimiter are chosen or detected first (application/import_source.py):
a file that is not text in the encoding asked imports nothing.
"""

from __future__ import annotations

import csv
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol
from uuid import UUID

import structlog

from application.csv_safe import SafeCsvWriter
from application.import_rows import FIELD_SIZE_LIMIT, CheckedRows, ImportReadError, restore_cells
from application.import_source import (
    Encoding,
    SourceError,
    choose_source,
    escape_undecodable,
    protect_cell,
)
from domain.patients import (
    SPECS,
    HeaderError,
    ImportKind,
    PatientImport,
    Record,
    map_header,
    row_hash,
)
from projections.db import Database
from projections.patients import existing_hashes

log = structlog.get_logger(__name__)

REPORTED_REJECTIONS = 1000
# Chunks (RowsImported events) recorded per save and catch-up: fewer, bigger transactions
# (an index insert is far cheaper when its page is already dirty in this transaction). The
# hashes of rows recorded but not yet projected are kept in memory meanwhile: at most two
# windows.
WINDOW_CHUNKS = 10


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
    read_as: str = ""  # how the file was read: "UTF-8, comma-separated"
    import_id: UUID | None = None  # None when nothing changed (nothing was recorded)
    seconds: float = 0.0
    # Where the importing thread spent its time: compare (with the read model), record (the
    # event store), project (waiting for the background projection to catch up).
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


class RejectsFile:
    """The rejected rows: the file's columns, then `line` and `reason`. Opened on first use.

    Staff open it in a spreadsheet to fix the rows and import it again, so:
    - it is valid UTF-8 (whatever the source's encoding), comma-separated, formula-safe
      (application/csv_safe.py), and a corrected file imports exactly what it shows (the
      importer removes the `'` the writer adds, see import_source.restore_cell);
    - `line` and `reason` stay under their headers: a row with more fields than the header
      has its extra fields joined, with the source's delimiter, onto its last column (as if
      the row had been split only as many times as the header); a short row is padded;
    - bytes that were not UTF-8 are written as `\\xNN` text (the reason names the column)."""

    def __init__(self, path: Path, header: list[str], delimiter: str = ",") -> None:
        self.path = path
        self.header = header
        self.delimiter = delimiter
        self._file: IO[str] | None = None
        self._writer: SafeCsvWriter | None = None

    def _cells(self, cells: list[str]) -> list[str]:
        """Exactly the header's width: extra fields joined onto the last column (empty ones
        dropped), missing ones empty; each cell readable back (see the class doc)."""
        width = len(self.header)
        if len(cells) > width:
            last = cells[width - 1:]
            if not any(c.strip() for c in last[1:]):
                last = last[:1]
            cells = [*cells[:width - 1], self.delimiter.join(last)]
        cells = cells + [""] * (width - len(cells))
        return [protect_cell(escape_undecodable(c)) for c in cells]

    def write(self, line: int, cells: list[str], reason: str) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self._writer = SafeCsvWriter(self._file)
            self._writer.writerow([*self._cells(self.header), "line", "reason"])
        self._writer.writerow([*self._cells(cells), line, reason])

    @property
    def used(self) -> bool:
        return self._writer is not None

    def __enter__(self) -> RejectsFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._file is not None:
            self._file.close()


class Projector(Protocol):
    """Brings the read model up to date with saved windows, beside the importing thread."""

    @property
    def done(self) -> int: ...
    def request(self, window: int) -> None: ...
    def wait_for(self, window: int) -> None: ...
    def close(self) -> None: ...


class BackgroundCatchUp:
    """Brings the read model up to date in a thread of its own while the importing thread
    goes on comparing and recording the next window: the two mostly wait on the databases,
    and overlapping them keeps both the database and Python busy. `catch_up` must be safe
    to call from another thread (projections/runner.py locks its tracking row)."""

    def __init__(self, catch_up: Callable[[], Any]) -> None:
        self._catch_up = catch_up
        self._changed = threading.Condition()
        self._requested = 0  # windows saved and asked for
        self._done = 0  # windows whose events are in the read model
        self._error: BaseException | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="patients-import-projector",
                                        daemon=True)
        self._thread.start()

    @property
    def done(self) -> int:
        with self._changed:
            return self._done

    def request(self, window: int) -> None:
        with self._changed:
            self._requested = max(self._requested, window)
            self._changed.notify_all()

    def wait_for(self, window: int) -> None:
        """Until window `window` is projected; re-raises a failure of the projecting thread."""
        with self._changed:
            while self._done < window and self._error is None:
                self._changed.wait()
            if self._error is not None:
                raise self._error

    def close(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._requested <= self._done and not self._stopping:
                    self._changed.wait()
                if self._requested <= self._done:
                    return
                target = self._requested
            try:
                self._catch_up()
            except BaseException as exc:  # noqa: BLE001 - raised in the importing thread
                with self._changed:
                    self._error = exc
                    self._changed.notify_all()
                return
            with self._changed:
                self._done = target
                self._changed.notify_all()


class FileImport:
    """One run of one file. `catch_up` brings the patient projection up to date; windows
    are projected by `projector()` if given (application/import_projector.py), else by a
    BackgroundCatchUp thread calling `catch_up`."""

    def __init__(self, store: Any, db: Database, catch_up: Callable[[], Any], kind: ImportKind,
                 path: Path, rejects_dir: Path | None, today: date, now: datetime,
                 in_process: bool | None = None,
                 projector: Callable[[], Projector] | None = None,
                 encoding: Encoding = Encoding.AUTO, delimiter: str = "", by: str = "") -> None:
        self.store = store
        self.by = by  # the signed-in user who imports (recorded on PatientImport.Started)
        self.db = db
        self.catch_up = catch_up
        self.spec = SPECS[kind]
        self.path = path
        self.rejects_path = (rejects_dir or path.parent) / f"{path.stem}.rejects.csv"
        self.today = today
        self.now = now
        self.summary = ImportSummary(kind.value, path.name)
        self.in_process = in_process  # None: by file size (see application/import_rows.py)
        self.encoding = encoding
        self.delimiter = delimiter  # "": detected from the header line
        self.aggregate: PatientImport | None = None
        self.unsaved_chunks = 0
        self.windows = 0
        self.start_projector = projector or (lambda: BackgroundCatchUp(self.catch_up))
        self.projector: Projector | None = None

    def run(self) -> ImportSummary:
        started = time.perf_counter()
        csv.field_size_limit(min(FIELD_SIZE_LIMIT, sys.maxsize))
        self.catch_up()  # compare with everything recorded so far
        try:
            source = choose_source(self.path, self.spec, self.encoding, self.delimiter)
            text = source.open(self.path)
        except OSError as exc:
            raise ImportFileError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        except SourceError as exc:
            raise ImportFileError(str(exc)) from None
        self.summary.read_as = source.description
        with text:
            header = self._header(csv.reader(text, delimiter=source.delimiter))
        with RejectsFile(self.rejects_path, header, source.delimiter) as rejects:
            checked = CheckedRows(self.path, self.spec.kind, self.today, source, self.in_process)
            self.projector = self.start_projector()
            try:
                for chunk in checked:
                    self.summary.rows += chunk.rows
                    self.summary.unchanged += chunk.repeated
                    for line, cells, reason in chunk.rejected:
                        self._reject(rejects, line, cells, reason)
                    self._record(chunk.valid)
                self._flush(last=True)
            except ImportReadError as exc:
                raise ImportFileError(f"{self.path.name}: {exc}") from None
            finally:
                checked.close()
                self.projector.close()
        self._finish(rejects.used)
        self.summary.seconds = time.perf_counter() - started
        log.info("patients.import.finished", kind=self.spec.kind.value, read_as=source.description,
                 rows=self.summary.rows,
                 new=self.summary.new, updated=self.summary.updated,
                 unchanged=self.summary.unchanged, rejected=self.summary.rejected,
                 seconds=round(self.summary.seconds, 2), checked_in_process=checked.in_process)
        return self.summary

    def _header(self, reader: Any) -> list[str]:
        try:
            header = next(reader)
        except StopIteration:
            raise ImportFileError(f"{self.path.name} is empty") from None
        except csv.Error as exc:
            raise ImportFileError(f"{self.path.name}: unreadable header: {exc}") from None
        header = restore_cells(header)
        try:
            mapped = map_header(self.spec, header)
        except HeaderError as exc:
            raise ImportFileError(f"{self.path.name}: {exc}") from None
        self.summary.ignored_columns = mapped.ignored
        return header

    def _reject(self, rejects: RejectsFile, line: int, cells: list[str], reason: str) -> None:
        self.summary.rejected += 1
        if len(self.summary.rejections) < REPORTED_REJECTIONS:
            self.summary.rejections.append(RowRejection(line, reason))
        rejects.write(line, cells, reason)

    def _record(self, rows: list[tuple[int, Record]]) -> None:
        """Compare one chunk with the read model and record its new and changed rows."""
        if not rows:
            return
        started = time.perf_counter()
        spec = self.spec
        lookup = spec.key_columns[0]
        with self.db.transaction() as tx:
            known = existing_hashes(tx, spec.kind, (str(r[1][lookup]) for r in rows))
        # Each key comes once per file (the reader keeps the first row of each).
        changed: list[Record] = []
        for _line, record in rows:
            before = known.get(spec.key(record))
            if before == row_hash(record):
                self.summary.unchanged += 1
                continue
            if before is None:
                self.summary.new += 1
            else:
                self.summary.updated += 1
            changed.append(record)
        self.summary._timed("compare", started)
        if not changed:
            return
        started = time.perf_counter()
        if self.aggregate is None:
            self.aggregate = PatientImport(spec.kind.value, self.path.name, self.now,
                                           by=self.by)
            self.summary.import_id = self.aggregate.id
        # One event per CHUNK_BYTES of text (domain.patients.bounded_chunks): a window is
        # counted in events, so a save of wide rows stays a few MB, not 10 × 1,000 rows.
        self.unsaved_chunks += self.aggregate.record_rows(spec.column_names, changed)
        self.summary._timed("record", started)
        if self.unsaved_chunks >= WINDOW_CHUNKS:
            self._flush()

    def _flush(self, last: bool = False) -> None:
        """Store the recorded chunks in one go and have them projected in the background;
        wait only when the projecting thread is a whole window behind (or at the end)."""
        assert self.projector is not None
        if self.aggregate is not None and self.unsaved_chunks:
            started = time.perf_counter()
            self.store.save(self.aggregate)
            self.summary._timed("record", started)
            self.windows += 1
            self.projector.request(self.windows)
        self.unsaved_chunks = 0
        started = time.perf_counter()
        self.projector.wait_for(self.windows if last else self.windows - 1)
        self.summary._timed("project", started)  # the time spent waiting for it

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
