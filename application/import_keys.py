"""The first row of each key in one import file, so a repeated id is caught wherever it is.

"Re-importing the same file changes nothing" needs each key (a patient id, an appointment
id, a patient's care-gap measure…) at most once per file: two rows for one id, different,
would each replace the other on every run. The first valid row of a key is kept; a later
row with the same key and the same data repeats it (nothing to do), one with other data is
rejected, naming the first row's line.

The keys of a million-row file would take a Python dict over 100 MB, and an import's memory
must not grow with the file: they go to a private SQLite database in a temporary file
(deleted when closed), whose page cache stays at a couple of MB. One insert statement per
chunk of rows (a lookup only when the chunk repeats an earlier key): a few µs a row, beside
the ~40 µs the row checks take.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

_BATCH = 500  # keys per lookup statement (SQLite allows far more parameters; plans stay small)


class FirstRows:
    """(line, key, row hash) of the first row of each key seen so far."""

    def __init__(self) -> None:
        # "": a private temporary database on disk, removed on close.
        self._db = sqlite3.connect("", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("PRAGMA cache_size=-2048")  # KiB
        self._db.execute("CREATE TABLE first_rows (key TEXT PRIMARY KEY, line INTEGER NOT NULL,"
                         " digest TEXT NOT NULL) WITHOUT ROWID")

    def earlier(self, rows: Sequence[tuple[int, str, str]]) -> list[tuple[int, str] | None]:
        """For each (line, key, digest), in file order: the (line, digest) of the first row
        with that key, or None when this row is the first (it is remembered)."""
        firsts: dict[str, tuple[int, str]] = {}  # the first row of each key in `rows`
        answers: list[tuple[int, str] | None] = []
        for line, key, digest in rows:
            first = firsts.get(key)
            if first is None:
                firsts[key] = (line, digest)
            answers.append(first)
        # Repeats are rare: insert every key, and only when some insert was ignored (the key
        # came in an earlier chunk) look up which.
        before = self._db.total_changes
        self._db.execute("BEGIN")
        self._db.executemany("INSERT INTO first_rows VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                             ((key, line, digest) for key, (line, digest) in firsts.items()))
        self._db.execute("COMMIT")
        if self._db.total_changes - before == len(firsts):
            return answers
        keys = list(firsts)
        older: dict[str, tuple[int, str]] = {}
        for start in range(0, len(keys), _BATCH):
            batch = keys[start:start + _BATCH]
            older.update(
                (key, (int(line), str(digest))) for key, line, digest in self._db.execute(
                    f"SELECT key, line, digest FROM first_rows WHERE key IN"
                    f" ({', '.join('?' * len(batch))})", batch)
                if int(line) != firsts[key][0])
        return [older.get(key, first) for (_, key, _), first in zip(rows, answers, strict=True)]

    def close(self) -> None:
        self._db.close()
