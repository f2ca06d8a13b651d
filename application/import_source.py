"""How an import file is read: its text encoding and delimiter, chosen or detected, and the
spreadsheet text marker `'` our own rejects files add.

Clinics export CSV from Excel and from their EHR. Excel's plain "CSV" is Windows-1252 (its
"CSV UTF-8" is UTF-8 with a byte-order mark); European settings write `;`; some systems
write tabs. A file is never silently read the wrong way:

- encoding `auto`: UTF-8 (with or without BOM) when the file decodes as UTF-8. A file whose
  only non-ASCII bytes are not UTF-8 is Windows-1252. A file that has valid multi-byte UTF-8
  text *and* bytes that are not UTF-8 is a UTF-8 file with damaged rows: it stays UTF-8 and
  those rows are rejected one by one (decoding it all as Windows-1252 would turn every
  accent elsewhere into mojibake, silently).
- `utf-8`: the same, but a file that looks like Windows-1252 is refused, not guessed.
- `cp1252`: Windows-1252; a byte it does not define (0x81 0x8D 0x8F 0x90 0x9D) refuses the
  file, and so does a UTF-8 byte-order mark.
- A refused file imports nothing and gets one line saying why and on which line.
- delimiter `auto`: the header line is split by `,`, `;` and tab; the split whose columns fit
  the kind of file wins (the one with most columns if several fit).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from application.csv_safe import needs_quote
from domain.patients import HeaderError, ImportSpec, map_header

UTF8_BOM = b"\xef\xbb\xbf"


class SourceError(ValueError):
    """The file cannot be read as asked (wrong encoding, no fitting delimiter)."""


class Encoding(StrEnum):
    AUTO = "auto"
    UTF8 = "utf-8"
    CP1252 = "cp1252"


DELIMITERS = {",": ",", ";": ";", "tab": "\t", "\t": "\t", "auto": ""}
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
ENCODING_NAMES = {"utf-8-sig": "UTF-8", "cp1252": "Windows-1252"}


def parse_encoding(text: str) -> Encoding:
    wanted = text.strip().lower().replace("_", "-")
    aliases = {"utf8": "utf-8", "windows-1252": "cp1252", "win1252": "cp1252"}
    try:
        return Encoding(aliases.get(wanted, wanted))
    except ValueError:
        raise SourceError(f"unknown encoding {text!r}: choose utf-8, cp1252 or auto") from None


def parse_delimiter(text: str) -> str:
    """`,` `;` `tab` (or a tab character) → the character; `auto` → ''."""
    try:
        return DELIMITERS[text.strip().lower() if text.strip() else text]
    except KeyError:
        raise SourceError(f"unknown delimiter {text!r}: choose , ; tab or auto") from None


@dataclass(frozen=True)
class Source:
    """How to read one file: a Python codec (`utf-8-sig` or `cp1252`) and a delimiter."""

    codec: str
    delimiter: str

    @property
    def description(self) -> str:
        """For the summary: `UTF-8, comma-separated`."""
        return f"{ENCODING_NAMES[self.codec]}, {DELIMITER_NAMES[self.delimiter]}-separated"

    def open(self, path: Path) -> io.TextIOWrapper:
        # surrogateescape: in a UTF-8 file with damaged rows, the bytes that are not UTF-8
        # become markers the row checks reject (and the rejects file shows as \xNN). A
        # cp1252 file was checked whole before (see choose_codec): nothing to escape.
        return open(path, encoding=self.codec, errors="surrogateescape",  # noqa: SIM115
                    newline="")


@dataclass(frozen=True)
class _Scan:
    bom: bool
    multibyte: bool  # some valid multi-byte UTF-8 text
    not_utf8: tuple[int, int] | None  # (line, byte) of the first byte that is not UTF-8
    not_cp1252: tuple[int, int] | None  # the same for Windows-1252


def _first_bad_byte(line: bytes, codec: str) -> int:
    try:
        line.decode(codec)
    except UnicodeDecodeError as exc:
        return line[exc.start]
    return 0


def _scan(path: Path) -> _Scan:
    """One pass over the bytes, line by line (C-speed for ASCII lines)."""
    multibyte = False
    not_utf8: tuple[int, int] | None = None
    not_cp1252: tuple[int, int] | None = None
    with open(path, "rb") as raw:
        bom = raw.read(3) == UTF8_BOM
        if not bom:
            raw.seek(0)
        for number, line in enumerate(raw, 1):
            if line.isascii():
                continue
            try:
                line.decode("utf-8")
                multibyte = True
            except UnicodeDecodeError:
                if not_utf8 is None:
                    not_utf8 = (number, _first_bad_byte(line, "utf-8"))
                # A damaged line may hold valid UTF-8 text besides its bad bytes.
                text = line.decode("utf-8", "surrogateescape")
                multibyte = multibyte or any(
                    ord(c) > 0x7F and not 0xDC80 <= ord(c) <= 0xDCFF for c in text)
            if not_cp1252 is None and _first_bad_byte(line, "cp1252"):
                not_cp1252 = (number, _first_bad_byte(line, "cp1252"))
    return _Scan(bom, multibyte, not_utf8, not_cp1252)


def choose_codec(path: Path, wanted: Encoding) -> str:
    """The codec to read `path` with, or SourceError saying why it cannot be read."""
    scan = _scan(path)
    name = path.name
    if wanted == Encoding.CP1252:
        if scan.bom:
            raise SourceError(f"{name} is UTF-8 (it starts with a UTF-8 byte-order mark): "
                              "import it with --encoding utf-8 or auto; nothing imported")
        if scan.not_cp1252:
            line, byte = scan.not_cp1252
            raise SourceError(f"{name} is not Windows-1252 text: line {line} has byte "
                              f"0x{byte:02X}, which Windows-1252 does not define; nothing "
                              "imported")
        return "cp1252"
    if scan.not_utf8 is None or scan.bom or scan.multibyte:
        return "utf-8-sig"  # damaged rows, if any, are rejected one by one
    line, byte = scan.not_utf8
    if wanted == Encoding.UTF8:
        raise SourceError(f"{name} is not UTF-8 text: line {line} has byte 0x{byte:02X} and no "
                          "line has UTF-8 accents; if it is Windows-1252 (Excel's plain CSV), "
                          "import it with --encoding cp1252 or auto; nothing imported")
    if scan.not_cp1252:
        bad_line, bad_byte = scan.not_cp1252
        raise SourceError(f"{name} is neither UTF-8 nor Windows-1252 text: line {line} has "
                          f"byte 0x{byte:02X} (not UTF-8), line {bad_line} byte "
                          f"0x{bad_byte:02X} (not Windows-1252); nothing imported")
    return "cp1252"


def _header_cells(first_line: str, delimiter: str) -> list[str]:
    return [restore_cell(c) for c in next(csv.reader([first_line], delimiter=delimiter), [])]


def choose_delimiter(first_line: str, wanted: str, spec: ImportSpec) -> str:
    """`wanted` if given; else the delimiter whose split of the header fits `spec` (most
    columns first). None fits: the one with most columns, whose header error the caller
    reports."""
    if wanted:
        return wanted
    splits = sorted(((len(_header_cells(first_line, d)), d) for d in (",", ";", "\t")),
                    key=lambda s: -s[0])  # stable: `,` first among equals
    for _, delimiter in splits:
        try:
            map_header(spec, _header_cells(first_line, delimiter))
        except HeaderError:
            continue
        return delimiter
    return splits[0][1]


def choose_source(path: Path, spec: ImportSpec, encoding: Encoding, delimiter: str) -> Source:
    """How to read `path`; SourceError when its bytes are not text in the encoding asked.
    OSError when it cannot be read at all."""
    codec = choose_codec(path, encoding)
    with Source(codec, ",").open(path) as text:
        first_line = text.readline()
    return Source(codec, choose_delimiter(first_line, delimiter, spec))


# -- the spreadsheet text marker ----------------------------------------------------------

_UNDECODABLE = re.compile(r"[\udc80-\udcff]")


def restore_cell(cell: str) -> str:
    """A cell as its sender meant it: the `'` a formula-safe writer (application/csv_safe.py)
    puts before a cell that would start a formula is removed — it is what Excel does when it
    saves such a cell, and what makes a corrected rejects file import exactly. (Inverse of
    `protect_cell` + csv_safe.neutralise.)"""
    if cell[:1] == "'" and needs_quote(cell.lstrip("'")):
        return cell[1:]
    return cell


def protect_cell(cell: str) -> str:
    """A cell that already begins with `'` before a formula character gets one more, so
    that `restore_cell` gives it back whole (csv_safe.neutralise leaves it as it is)."""
    if cell[:1] == "'" and needs_quote(cell.lstrip("'")):
        return "'" + cell
    return cell


def escape_undecodable(cell: str) -> str:
    """Bytes that were not UTF-8 (surrogate escapes) as `\\xNN` text: the rejects file is
    valid UTF-8 and still shows which bytes were wrong."""
    if cell.isascii() or not _UNDECODABLE.search(cell):
        return cell
    return _UNDECODABLE.sub(lambda m: f"\\x{ord(m[0]) - 0xDC00:02x}", cell)
