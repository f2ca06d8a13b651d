"""The formula-safe CSV writer: whatever a hostile value holds, a spreadsheet opening the
file sees text, never a formula, and the value comes back exactly (less the one `'`)."""

from __future__ import annotations

import csv
import io

from hypothesis import example, given
from hypothesis import strategies as st

from application.csv_safe import SafeCsvWriter, neutralise

# What a spreadsheet may start a formula with: OWASP's list (= + - @ tab CR LF), NUL from
# ASVS 1.2.10, and the full-width = + - @. Spelled out here, not imported, so the test
# states the rule rather than repeating the code's constant.
TRIGGERS = "=+-@\t\r\n\0\uff1d\uff0b\uff0d\uff20"
# Hostile values are built mostly from what breaks CSV and spreadsheets: triggers,
# separators, quotes, line ends and whitespace, with some ordinary text around them.
HOSTILE_ALPHABET = TRIGGERS + ",;|\"' \u00a0\u3000\x0bAb1(!)"
hostile = st.text(alphabet=HOSTILE_ALPHABET, max_size=12) | st.text(max_size=12)
rows = st.lists(hostile, min_size=1, max_size=6)


def written_and_read_back(row: list[str]) -> list[str]:
    out = io.StringIO()
    SafeCsvWriter(out).writerow(row)
    read = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert len(read) == 1, "a value never ends its row or starts another"
    return read[0]


def formula_start(cell: str) -> bool:
    """Does the cell begin with a trigger, or with one after leading whitespace?"""
    stripped = cell.lstrip()
    return (bool(cell) and cell[0] in TRIGGERS) or (bool(stripped) and stripped[0] in TRIGGERS)


@given(row=rows)
@example(row=['=HYPERLINK("http://x","y")', "+1 312 555 0100", "@SUM(A1:A9)", "-2+3"])
@example(row=['=1+2";=1+2', "=1+2'\" ;,=1+2"])  # OWASP's two separator examples
@example(row=["\t=1+1", "\r=1+1", "\n=1+1", " =1+1", "\uff1d1+1", "'=1+1", ""])
def test_no_cell_read_back_starts_a_formula_and_each_value_survives_exactly(row: list[str]
                                                                            ) -> None:
    cells = written_and_read_back(row)
    assert len(cells) == len(row), "a separator inside a value never starts a new cell"
    for value, cell in zip(row, cells, strict=True):
        assert not cell or cell[0] not in TRIGGERS, (value, cell)
        assert not formula_start(cell) or cell.startswith("'"), (value, cell)
        if formula_start(value):
            assert cell == "'" + value, "removing the one added quote gives the value back"
        else:
            assert cell == value, "a value that starts no formula is written as it is"


@given(row=rows)
def test_every_field_is_quoted_so_no_value_brings_its_own_separator(row: list[str]) -> None:
    out = io.StringIO()
    SafeCsvWriter(out).writerow(row)
    expected = ",".join('"' + neutralise(v).replace('"', '""') + '"' for v in row)
    assert out.getvalue() == expected + "\r\n"


def test_numbers_and_missing_values_are_written_as_text_cells() -> None:
    out = io.StringIO()
    SafeCsvWriter(out).writerows([[3, None, -5, "x"], [0.5]])
    assert out.getvalue() == '"3","","\'-5","x"\r\n"0.5"\r\n'
