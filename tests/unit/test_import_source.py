"""What the rejects file writes, the importer reads back exactly; what it cannot decode, it
writes as readable, valid UTF-8."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from application.csv_safe import neutralise
from application.import_source import escape_undecodable, protect_cell, restore_cell

# Cells as senders write them, with the characters that matter here over-represented.
cells = st.text(st.sampled_from("'=+-@ \t\r\n\0\uff1d\uff0b\uff0d\uff20aZ1é,\""), max_size=8) \
    | st.text(max_size=12)


@given(cells)
@example("'=1+1")
@example("''-2")
@example(" =cmd")
def test_a_cell_written_to_the_rejects_file_reads_back_as_it_was(cell: str) -> None:
    written = neutralise(protect_cell(cell))
    assert restore_cell(written) == cell


@given(st.binary(max_size=40))
def test_undecodable_bytes_are_written_as_valid_utf8_escapes(raw: bytes) -> None:
    text = raw.decode("utf-8", "surrogateescape")
    shown = escape_undecodable(text)
    shown.encode("utf-8")  # strict: raises if a lone surrogate were left
    if raw.isascii() or text.encode("utf-8", "surrogatepass") == raw:
        assert shown == text  # nothing to escape


def test_a_damaged_byte_shows_as_its_hex_value() -> None:
    assert escape_undecodable(b"Bo\xe9".decode("utf-8", "surrogateescape")) == "Bo\\xe9"
