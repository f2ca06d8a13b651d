"""The one CSV writer for files staff open in a spreadsheet: formula-safe (CSV injection).

A spreadsheet (Excel, LibreOffice Calc, Google Sheets) opening a CSV evaluates a cell that
begins with `=` `+` `-` `@` as a formula, so a patient imported as `=HYPERLINK("http://x",
"y")` becomes a live link, or worse, in the list or report a staff member downloads.
Following OWASP's CSV Injection page (owasp.org/www-community/attacks/CSV_Injection):

- a cell that begins with `=`, `+`, `-`, `@`, tab (0x09), carriage return (0x0D) or line
  feed (0x0A) gets a single quote `'` in front, which spreadsheets read as "this is text";
- every field is quoted (and its double quotes doubled), so a value cannot bring its own
  separator or quote and start a new cell that begins with a trigger.

Beyond the OWASP list, also prefixed (each costs one visible `'` on a rare value, against
an evaluated formula if some spreadsheet does read it as one):
- NUL (0x00), which OWASP ASVS 5.0 requirement 1.2.10 adds to the list;
- the full-width forms `＝` `＋` `－` `＠` (U+FF1D, U+FF0B, U+FF0D, U+FF20), which East
  Asian input methods type and which some spreadsheets convert to their ASCII forms;
- any of these after leading whitespace (` =1+1`): a spreadsheet that trims the cell first
  would see the formula.

A cell that already begins with `'` is written as it is. Removing the one added `'` gives
back the original value exactly: the importer does so for every cell (a `'` before a
trigger is the spreadsheet's text marker), and the rejects file adds one more `'` to a
value that really begins with `'` + trigger, so a corrected rejects file imports exactly
(application/import_source.py).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO

# What a spreadsheet may read as the start of a formula (see the module docstring).
TRIGGERS = frozenset("=+-@\t\r\n\0" "\uff1d\uff0b\uff0d\uff20")


def needs_quote(cell: str) -> bool:
    """Would a spreadsheet read this cell as a formula? Its first character, or its first
    after leading whitespace, is a trigger."""
    if not cell:
        return False
    if cell[0] in TRIGGERS:
        return True
    rest = cell.lstrip()
    return bool(rest) and rest[0] in TRIGGERS


def neutralise(cell: str) -> str:
    """The cell as text a spreadsheet shows and never evaluates: `'` + cell when needed."""
    return "'" + cell if needs_quote(cell) else cell


def _text(value: object) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


class SafeCsvWriter:
    """`csv.writer` with every field quoted and every cell neutralised; rows may hold
    numbers and None (written as the empty cell)."""

    def __init__(self, out: IO[str]) -> None:
        self._writer = csv.writer(out, quoting=csv.QUOTE_ALL)

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow([neutralise(_text(value)) for value in row])

    def writerows(self, rows: Iterable[Iterable[object]]) -> None:
        for row in rows:
            self.writerow(row)


__all__ = ["TRIGGERS", "SafeCsvWriter", "needs_quote", "neutralise"]
