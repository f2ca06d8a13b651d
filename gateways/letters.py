"""The letter port: what a letter worker needs from any printer of letters and labels.

A letter campaign's output is files, not sends: letters (one per patient, each starting on a
new page) and the address labels for their envelopes, split into files of at most
`per_file` letters each (the product prints 200 per PDF).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

__all__ = [
    "LETTERS_PER_FILE",
    "LetterContent",
    "LetterFile",
    "LetterPrinter",
    "LetterRecipient",
    "PageSize",
    "Progress",
    "address_problem",
    "file_batches",
    "usable_address",
]

LETTERS_PER_FILE = 200  # the product's limit: "a maximum of 200 patients in one PDF file"

PageSize = Literal["Letter", "A4"]
Progress = Callable[[int, int], None]  # (letters rendered so far, letters in all)


@dataclass(frozen=True)
class LetterRecipient:
    """One patient's letter and label. `address_lines`: street line(s) then the
    city/state/ZIP line, without the name (the name comes from first/last)."""

    patient_id: str
    first_name: str
    last_name: str
    address_lines: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass(frozen=True)
class LetterContent:
    """What every letter of a campaign shares. `body_html` is sanitised rich text (p, br,
    b/strong, i/em, u, ul/ol/li); anything else in it is printed as literal text."""

    page_size: PageSize
    greeting: bool
    body_html: str
    logo: bytes | None
    return_address: tuple[str, ...]
    mail_date: date
    organisation: str


@dataclass(frozen=True)
class LetterFile:
    """One finished file. `first` is the 0-based index, in the recipients given, of the
    first letter it covers; a labels file covers the same letters as its letters file."""

    path: Path
    kind: Literal["letters", "labels"]
    first: int
    count: int
    pages: int
    bytes: int


class LetterPrinter(ABC):
    @abstractmethod
    def render(self, content: LetterContent, recipients: Sequence[LetterRecipient],
               folder: Path, *, base_name: str, per_file: int = LETTERS_PER_FILE,
               progress: Progress | None = None) -> list[LetterFile]:
        """Write the letter and label files into `folder` (each one complete, or not there
        at all) and list them: letters-01, labels-01, letters-02, labels-02, ...
        Raises InvalidContent for content no letter can be made from."""


def file_batches(count: int, per_file: int) -> list[range]:
    """The letters (as index ranges) each file holds: full files of `per_file`, the rest
    in the last one (450 by 200: 0-199, 200-399, 400-449)."""
    if per_file < 1:
        raise ValueError("per_file must be at least 1")
    return [range(start, min(start + per_file, count)) for start in range(0, count, per_file)]


# -- a usable postal address ---------------------------------------------------------------

# USPS state, district, territory and military codes (Publication 28, appendix B).
_STATES = """
    AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH
    NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY
    AS GU MP PR VI FM MH PW AA AE AP"""
US_STATE_CODES = frozenset(_STATES.split())

# "Springfield, IL 62704" or "Springfield IL 62704-1234": a town, a state code, a ZIP.
_CITY_LINE = re.compile(r"^(?P<city>.*[A-Za-z].*?)[,\s]\s*(?P<state>[A-Za-z]{2})\s+"
                        r"(?P<zip>\d{5})(?:-\d{4})?$")


def address_problem(lines: Sequence[str]) -> str | None:
    """Why a postal address cannot be printed on a letter, in staff words (no address in
    the message), or None when it is usable: a street line, then a city/state/ZIP line with
    a USPS state code and a 5-digit ZIP or ZIP+4."""
    filled = [" ".join(line.split()) for line in lines if line and line.strip()]
    if not filled:
        return "no postal address"
    match = _CITY_LINE.match(filled[-1])
    if match is None:
        return "the last address line is not a city, state and ZIP code"
    if match["state"].upper() not in US_STATE_CODES:
        return "the state in the address is not a US state code"
    if not any(any(ch.isalnum() for ch in line) for line in filled[:-1]):
        return "the address has no street line"
    return None


def usable_address(lines: Sequence[str]) -> bool:
    """True when a letter can be mailed to these lines (see address_problem)."""
    return address_problem(lines) is None
