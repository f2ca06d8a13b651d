"""Reading and checking the rows of an import file, beside the importing thread.

Reading CSV and checking each cell is pure Python (about 40 µs a patient row); comparing,
recording and projecting mostly wait on the databases. The two overlap:

- a large file is checked in a child process, which has its own interpreter: the importing
  thread never waits for the GIL after a database round trip (with a thread, each of the
  dozen round trips per chunk could wait up to the 5 ms switch interval);
- a small file is checked in a thread: starting an interpreter (~0.3 s) would cost more
  than it saves.

Either way the importing thread receives `CheckedChunk`s in file order, through a queue of
a few chunks: memory stays bounded whatever the file size. Rejected rows travel with their
original cells (for the rejects file); valid ones travel as canonical records only.

The reader also keeps each key to its first row (application/import_keys.py): a later row
with the same key and other data is rejected ("duplicate id, first seen on line N"), one
that repeats it exactly is counted (`repeated`) and dropped. So every key reaches the
importer at most once per file.
"""

from __future__ import annotations

import csv
import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

from application.import_keys import FirstRows
from application.import_source import Source, restore_cell
from domain.patients import (
    CHUNK_ROWS,
    SPECS,
    ImportKind,
    ImportSpec,
    Record,
    RowRejected,
    duplicate_reason,
    map_header,
    row_hash,
    validate_row,
)

FIELD_SIZE_LIMIT = 1 << 20  # a 1 MB cell is a broken file, not a note
# Files at least this big are checked in a child process (about 20,000 patient rows).
PROCESS_MIN_BYTES = 4 << 20
QUEUE_CHUNKS = 4


@dataclass
class CheckedChunk:
    """Up to CHUNK_ROWS valid rows, and the rows rejected among them, in file order;
    `repeated`: rows that repeated an earlier row of the file exactly (dropped)."""

    valid: list[tuple[int, Record]] = field(default_factory=list)  # (line, record)
    rejected: list[tuple[int, list[str], str]] = field(default_factory=list)  # line, cells, why
    repeated: int = 0

    @property
    def rows(self) -> int:
        return len(self.valid) + len(self.rejected) + self.repeated


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


def restore_cells(cells: list[str]) -> list[str]:
    """Cells without the `'` a formula-safe writer added (see import_source.restore_cell)."""
    for cell in cells:
        if cell[:1] == "'":
            return [restore_cell(c) for c in cells]
    return cells


def check_file(path: Path, kind: ImportKind, today: date, source: Source
               ) -> Iterator[CheckedChunk]:
    """The file's rows after its header, checked, in chunks. The header was checked by the
    caller (map_header raised nothing there, so it raises nothing here)."""
    csv.field_size_limit(min(FIELD_SIZE_LIMIT, sys.maxsize))
    spec = SPECS[kind]
    first_rows = FirstRows()
    try:
        with source.open(path) as text:
            reader = csv.reader(text, delimiter=source.delimiter)
            header_map = map_header(spec, restore_cells(next(reader)))
            chunk = CheckedChunk()
            cells_of: dict[int, list[str]] = {}  # line → cells, of this chunk's valid rows
            for line, cells, error in read_rows(reader):
                if cells is None:
                    chunk.rejected.append((line, [], str(error)))
                    continue
                cells = restore_cells(cells)
                try:
                    chunk.valid.append((line, validate_row(header_map, cells, today)))
                except RowRejected as exc:
                    chunk.rejected.append((line, cells, str(exc)))
                    continue
                cells_of[line] = cells
                if len(chunk.valid) >= CHUNK_ROWS:
                    yield _first_of_each_key(chunk, cells_of, spec, first_rows)
                    chunk, cells_of = CheckedChunk(), {}
            if chunk.rows:
                yield _first_of_each_key(chunk, cells_of, spec, first_rows)
    finally:
        first_rows.close()


def _first_of_each_key(chunk: CheckedChunk, cells_of: dict[int, list[str]], spec: ImportSpec,
                       first_rows: FirstRows) -> CheckedChunk:
    """The chunk with only the first row of each key in the file: a later row with other
    data is rejected, an exact repeat counted and dropped."""
    seen = [(line, "\x1f".join(spec.key(record)), row_hash(record))
            for line, record in chunk.valid]
    earlier = first_rows.earlier(seen)
    if not any(earlier):
        return chunk
    kept = CheckedChunk(rejected=chunk.rejected, repeated=chunk.repeated)
    for (line, record), (_, _, digest), first in zip(chunk.valid, seen, earlier, strict=True):
        if first is None:
            kept.valid.append((line, record))
        elif first[1] == digest:
            kept.repeated += 1
        else:
            kept.rejected.append((line, cells_of[line], duplicate_reason(spec, first[0])))
    kept.rejected.sort(key=lambda r: r[0])  # the summary lists rejections in file order
    return kept


class ImportReadError(Exception):
    """Checking the rows failed in the reader (not a bad row: a bug or an I/O error)."""


def _feed(chunks: Iterator[CheckedChunk], put: Callable[[Any], bool]) -> None:
    """Send every chunk, then None; a failure is sent as its description."""
    try:
        for chunk in chunks:
            if not put(chunk):
                return
        put(None)
    except BaseException as exc:  # noqa: BLE001 - reported to the importing thread
        put(f"{type(exc).__name__}: {exc}")


class CheckedRows:
    """Iterate over the checked chunks of a file; `close()` stops the reader early.

    The child process is a fresh interpreter running this module (`python -m
    application.import_rows FILE KIND DAY CODEC DELIMITER`) that writes pickled chunks to
    its stdout: no multiprocessing start method, so a caller's script needs no `__main__`
    guard, and the pipe's own buffer bounds memory (the child waits while the importer is
    busy).
    """

    def __init__(self, path: Path, kind: ImportKind, today: date, source: Source,
                 in_process: bool | None = None) -> None:
        if in_process is None:
            in_process = path.stat().st_size >= PROCESS_MIN_BYTES
        self.in_process = in_process
        self._closed = threading.Event()
        self._child: subprocess.Popen[Any] | None = None
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_CHUNKS)
        if in_process:
            self._child, self._errors = start_child(
                __name__, [str(path), kind.value, today.isoformat(), source.codec,
                           source.delimiter],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        else:
            self._thread = threading.Thread(
                target=_feed, args=(check_file(path, kind, today, source), self._put_local),
                name="patients-import-reader", daemon=True)
            self._thread.start()

    def _put_local(self, item: Any) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self) -> Any:
        if self._child is None:
            return self._queue.get()
        assert self._child.stdout is not None
        try:
            return pickle.load(self._child.stdout)
        except (EOFError, pickle.UnpicklingError):
            raise ImportReadError(child_failure(self._child, self._errors, "reader")) from None

    def __iter__(self) -> Iterator[CheckedChunk]:
        while True:
            item = self._get()
            if item is None:
                return
            if isinstance(item, str):
                raise ImportReadError(item)
            yield item if isinstance(item, CheckedChunk) else CheckedChunk(*item)

    def close(self) -> None:
        self._closed.set()
        if self._child is not None:
            if self._child.poll() is None:
                self._child.kill()
            self._child.wait()
            if self._child.stdout is not None:
                self._child.stdout.close()
            self._errors.close()
        elif self._thread is not None:
            self._thread.join()


def start_child(module: str, args: list[str], **options: Any
                ) -> tuple[subprocess.Popen[Any], IO[bytes]]:
    """`python -m module args…` in a fresh interpreter that finds this package, its error
    output kept in a temporary file (for child_failure; the caller closes it)."""
    errors = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
    child = subprocess.Popen([sys.executable, "-m", module, *args], stderr=errors,
                             env={**os.environ, "PYTHONPATH": python_path()}, **options)
    return child, errors


def child_failure(child: subprocess.Popen[Any], errors: IO[bytes], role: str) -> str:
    """Why a child process stopped: its exit code and the last line of its error output."""
    code = child.wait()
    errors.seek(0)
    last = errors.read().decode("utf-8", "replace").strip().splitlines()[-1:]
    return f"the {role} process ended unexpectedly (exit code {code})" + (
        f": {last[0]}" if last else "")


def python_path() -> str:
    """The parent's import path, so the child finds this package however it was installed."""
    root = str(Path(__file__).resolve().parents[1])
    return os.pathsep.join(dict.fromkeys([root, *(p for p in sys.path if p)]))


def _child_main(argv: list[str]) -> int:
    path, kind, day, codec, delimiter = argv
    out = sys.stdout.buffer

    def put(item: Any) -> bool:
        # A chunk travels as plain lists: its class here would be __main__.CheckedChunk.
        if isinstance(item, CheckedChunk):
            item = (item.valid, item.rejected, item.repeated)
        pickle.dump(item, out, protocol=pickle.HIGHEST_PROTOCOL)
        return True

    try:
        _feed(check_file(Path(path), ImportKind(kind), date.fromisoformat(day),
                         Source(codec, delimiter)), put)
        out.flush()
    except BrokenPipeError:  # the importer stopped early (an error, or close())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
