"""Imported patient facts: what each kind of file holds, the rules for one row, and the
`PatientImport` aggregate whose events carry the rows that changed.

One aggregate per imported file, not per patient: a 20,000 rows/s import cannot afford an
aggregate load and save per row. Each `RowsImported` event carries at most `CHUNK_ROWS`
new or changed rows and about `CHUNK_BYTES` of their text (rows identical to the read model
are not recorded at all), so the history replays into the same read model and a re-import
of the same file records nothing.
The aggregate id is random: no PHI in ids, which stay readable when event state is
encrypted.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from eventsourcing.domain import Aggregate, event

from domain.patients_fields import (
    InvalidValue,
    clean_identifier,
    clean_text,
    fold,
    normalize_appointment_status,
    normalize_birth_date,
    normalize_date,
    normalize_datetime,
    normalize_email,
    normalize_patient_status,
    normalize_phone,
    normalize_postal_code,
    parse_flag,
    split_names,
)

CHUNK_ROWS = 1000
# Text per RowsImported event: every event goes whole onto the Kafka events topic, whose
# records brokers cap (max.message.bytes, about 1 MB by default). 1,000 appointment rows with
# long notes are ~2 MB; 256 KiB of text is at most twice that as JSON, even if every
# character needed escaping (only `"` and `\` can: the row checks refuse control characters).
CHUNK_BYTES = 256 * 1024

Record = tuple[str | None, ...]


def row_bytes(row: Sequence[str | None]) -> int:
    """A row's size as compact JSON, escapes aside: the UTF-8 bytes of its text, 5 a cell
    (quotes and comma, or `null,`) and 3 a row (brackets and comma) — never less than the
    JSON. (~0.6 µs a row: one join, and an encode only for non-ASCII text.)"""
    text = "".join(filter(None, row))
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    return size + 5 * len(row) + 3


def bounded_chunks(rows: Sequence[Sequence[str | None]], max_rows: int = CHUNK_ROWS,
                   max_bytes: int = CHUNK_BYTES) -> Iterator[list[Sequence[str | None]]]:
    """`rows` in order, cut into chunks of at most `max_rows` rows and `max_bytes` (by
    `row_bytes`). A chunk closes just before the row that would overflow it; a row bigger
    than `max_bytes` on its own goes alone (the row checks bound a row to a few KB, so that
    is a guard, not a case imports meet)."""
    chunk: list[Sequence[str | None]] = []
    size = 0
    for row in rows:
        n = row_bytes(row)
        if chunk and (len(chunk) >= max_rows or size + n > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += n
    if chunk:
        yield chunk


class ImportKind(StrEnum):
    PATIENTS = "patients"
    APPOINTMENTS = "appointments"
    PROVIDERS = "providers"
    CARE_GAPS = "care-gaps"
    CONDITIONS = "conditions"
    BILLING = "billing"

    @classmethod
    def parse(cls, text: str) -> ImportKind:
        wanted = text.strip().lower().replace("_", "-")
        for kind in cls:
            if kind.value == wanted:
                return kind
        raise ValueError(
            f"unknown import kind {text!r}: choose one of {', '.join(k.value for k in cls)}")


class RowRejected(ValueError):
    """The row cannot be accepted; the message lists every problem, without values."""


class HeaderError(ValueError):
    """The file's header does not fit the kind of import (wrong file, or a missing column)."""


def header_key(name: str) -> str:
    """`Date of Birth`, `date_of_birth`, `DOB ` → comparable keys (letters and digits)."""
    return re.sub(r"[^0-9a-z]", "", name.strip().lower())


Normalizer = Callable[[str | None, date], str | None]


@dataclass(frozen=True)
class Column:
    name: str
    normalize: Normalizer
    aliases: tuple[str, ...] = ()
    required: bool = False  # the header must have it and every row must fill it

    def header_keys(self) -> tuple[str, ...]:
        return (header_key(self.name), *(header_key(a) for a in self.aliases))


def _text(what: str, max_length: int = 200) -> Normalizer:
    return lambda raw, _today: clean_text(raw, what, max_length)


def _ident(what: str) -> Normalizer:
    return lambda raw, _today: clean_identifier(raw, what)


def _phone(what: str) -> Normalizer:
    return lambda raw, _today: normalize_phone(raw, what)


def _date(what: str) -> Normalizer:
    return lambda raw, _today: normalize_date(raw, what)


def _flag(what: str, default: bool) -> Normalizer:
    return lambda raw, _today: "1" if parse_flag(raw, what, default) else "0"


def _groups(raw: str | None, _today: date) -> str | None:
    return "; ".join(split_names(raw, "group")) or None


def _provider_groups(raw: str | None, _today: date) -> str | None:
    return "; ".join(split_names(raw, "provider group")) or None


def _provider_active(raw: str | None, _today: date) -> str:
    return "1" if parse_flag(raw, "active", default=True) else "0"


PATIENT_COLUMNS = (
    Column("patient_id", _ident("patient id"), ("id", "mrn", "patient number"), True),
    Column("first_name", _text("first name", 100), ("first", "given name"), True),
    Column("middle_name", _text("middle name", 100), ("middle", "middle initial", "mi")),
    Column("last_name", _text("last name", 100), ("last", "surname", "family name"), True),
    Column("date_of_birth", lambda raw, today: normalize_birth_date(raw, today),
           ("dob", "birth date", "birthdate"), True),
    Column("mobile", _phone("mobile phone"),
           ("mobile phone", "cell", "cell phone", "phone (m)", "phone m", "mobile number")),
    Column("home_phone", _phone("home phone"), ("home", "phone (h)", "phone h", "phone")),
    Column("email", lambda raw, _today: normalize_email(raw), ("email address", "e-mail")),
    Column("status", lambda raw, _today: normalize_patient_status(raw), ("patient status",)),
    Column("pcp_id", _ident("PCP provider id"),
           ("pcp", "pcp provider id", "pcp id", "primary care provider", "provider id")),
    Column("payor", _text("payor"), ("payer", "insurance")),
    Column("care_manager", _text("care manager"), ()),
    Column("language", _text("language", 50), ("preferred language",)),
    Column("appointment_reminders_only", _flag("appointment reminders only", False),
           ("appt reminders only", "reminders only")),
    Column("address_line1", _text("address line 1"), ("address", "address 1", "street")),
    Column("address_line2", _text("address line 2"), ("address 2",)),
    Column("city", _text("city", 100), ()),
    Column("state", _text("state", 50), ()),
    Column("postal_code", lambda raw, _today: normalize_postal_code(raw), ("zip", "zip code")),
    Column("groups", _groups, ("group",)),
)

APPOINTMENT_COLUMNS = (
    Column("appointment_id", _ident("appointment id"), ("appt id", "id"), True),
    Column("patient_id", _ident("patient id"), ("mrn",), True),
    Column("starts_at", lambda raw, _today: normalize_datetime(raw, "appointment date/time"),
           ("date/time", "appointment date/time", "appt date/time", "datetime",
            "appointment date time", "start", "starts"), True),
    Column("provider_id", _ident("provider id"), ("provider", "appointment provider"), True),
    Column("facility", _text("facility"), ("location",)),
    Column("type", _text("appointment type"), ("appointment type", "appt type", "visit type")),
    Column("status", lambda raw, _today: normalize_appointment_status(raw),
           ("appointment status", "appt status")),
    Column("notes", _text("notes", 2000), ("appt notes", "appointment notes", "comments")),
)

PROVIDER_COLUMNS = (
    Column("provider_id", _ident("provider id"), ("id", "subscriber id"), True),
    Column("name", _text("provider name"), ("provider name", "subscriber name"), True),
    Column("groups", _provider_groups, ("group", "provider group", "subscriber group")),
    Column("active", _provider_active, ("is active", "status")),
)

CARE_GAP_COLUMNS = (
    Column("patient_id", _ident("patient id"), ("mrn",), True),
    Column("measure", _text("measure name"),
           ("measure name", "care gap", "alert", "recommendation", "a&r"), True),
    Column("opened_on", _date("opened date"), ("opened", "opened date", "open date")),
    Column("closed_on", _date("closed date"), ("closed", "closed date", "close date")),
)

CONDITION_COLUMNS = (
    Column("patient_id", _ident("patient id"), ("mrn",), True),
    Column("condition", _text("condition"), ("condition name", "diagnosis", "problem"), True),
)

BILLING_COLUMNS = (
    Column("patient_id", _ident("patient id"), ("mrn",), True),
    Column("provider_id", _ident("provider id"), ("provider", "billing provider"), True),
)


def _check_care_gap(record: Record) -> str | None:
    opened, closed = record[2], record[3]
    if opened and closed and closed < opened:
        return "closed date is before opened date"
    return None


@dataclass(frozen=True)
class ImportSpec:
    """What one kind of file holds and how a row is identified ("later files update by id")."""

    kind: ImportKind
    columns: tuple[Column, ...]
    key_columns: tuple[int, ...]  # positions in the record; the first is the lookup column
    folded_key_columns: tuple[int, ...] = ()  # compared case-insensitively (measure names)
    row_check: Callable[[Record], str | None] | None = None
    key_label: str = "id"  # what a row's key is, in staff words ("duplicate id, …")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def key(self, record: Record) -> tuple[str, ...]:
        return tuple(
            fold(str(record[i])) if i in self.folded_key_columns else str(record[i])
            for i in self.key_columns
        )


SPECS: dict[ImportKind, ImportSpec] = {
    ImportKind.PATIENTS: ImportSpec(ImportKind.PATIENTS, PATIENT_COLUMNS, (0,)),
    ImportKind.APPOINTMENTS: ImportSpec(ImportKind.APPOINTMENTS, APPOINTMENT_COLUMNS, (0,)),
    ImportKind.PROVIDERS: ImportSpec(ImportKind.PROVIDERS, PROVIDER_COLUMNS, (0,)),
    ImportKind.CARE_GAPS: ImportSpec(
        ImportKind.CARE_GAPS, CARE_GAP_COLUMNS, (0, 1), (1,), _check_care_gap,
        "patient id and measure"),
    ImportKind.CONDITIONS: ImportSpec(ImportKind.CONDITIONS, CONDITION_COLUMNS, (0, 1), (1,),
                                      key_label="patient id and condition"),
    ImportKind.BILLING: ImportSpec(ImportKind.BILLING, BILLING_COLUMNS, (0, 1),
                                   key_label="patient id and provider id"),
}


def duplicate_reason(spec: ImportSpec, first_line: int) -> str:
    """Why a row whose key an earlier row of the same file has, with other data, is
    rejected: the first row is kept (re-importing the file must change nothing)."""
    return f"duplicate {spec.key_label}, first seen on line {first_line}"


@dataclass(frozen=True)
class HeaderMap:
    """Which file column feeds which record column."""

    spec: ImportSpec
    positions: tuple[int | None, ...]  # per spec column: index in the file row, or None
    ignored: tuple[str, ...]  # file columns we do not know (reported, not an error)
    width: int


def map_header(spec: ImportSpec, header: Sequence[str]) -> HeaderMap:
    by_key: dict[str, int] = {}
    for index, name in enumerate(header):
        key = header_key(name)
        if key and key not in by_key:
            by_key[key] = index
    positions: list[int | None] = []
    used: set[int] = set()
    missing: list[str] = []
    for column in spec.columns:
        candidates = (by_key[k] for k in column.header_keys() if k in by_key)
        found = next((i for i in candidates if i not in used), None)
        if found is not None:
            used.add(found)
        elif column.required:
            missing.append(column.name)
        positions.append(found)
    if missing:
        raise HeaderError(
            f"not a {spec.kind.value} file: missing column(s) {', '.join(missing)}; "
            f"expected columns: {', '.join(spec.column_names)}")
    ignored = tuple(name for i, name in enumerate(header) if i not in used and name.strip())
    return HeaderMap(spec, tuple(positions), ignored, len(header))


def validate_row(header: HeaderMap, cells: Sequence[str], today: date) -> Record:
    """One file row → its canonical record, or RowRejected listing every problem."""
    if len(cells) > header.width and any(c.strip() for c in cells[header.width:]):
        raise RowRejected(f"row has {len(cells)} fields but the header has {header.width}")
    values: list[str | None] = []
    problems: list[str] = []
    for column, position in zip(header.spec.columns, header.positions, strict=True):
        raw = cells[position] if position is not None and position < len(cells) else None
        try:
            value = column.normalize(raw, today)
        except InvalidValue as exc:
            problems.append(str(exc))
            value = None
        else:
            if value is None and column.required:
                problems.append(f"{column.name.replace('_', ' ')} is missing")
        values.append(value)
    record = tuple(values)
    if not problems and header.spec.row_check:
        problem = header.spec.row_check(record)
        if problem:
            problems.append(problem)
    if problems:
        raise RowRejected("; ".join(problems))
    return record


def row_hash(record: Sequence[str | None]) -> str:
    """Fingerprint of a canonical record: equal hash = nothing to import."""
    text = "\x1f".join("\x00" if v is None else v for v in record)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


class PatientImport(Aggregate):
    """One imported file. Events: Started, RowsImported (≤ CHUNK_ROWS changed rows and
    ≤ CHUNK_BYTES of their text each, see `bounded_chunks`), Finished (the counts). The row
    payload is `columns` + `rows` (lists of canonical text). Replay reads chunks of any size:
    events recorded before the byte bound existed hold up to CHUNK_ROWS rows whatever their
    width."""

    @event("Started")
    def __init__(self, kind: str, source_name: str, started_at: datetime,
                 by: str = "") -> None:
        # `by`: the signed-in user (issue 12); "" on imports recorded before users existed.
        self.kind = kind
        self.by = by
        self.source_name = source_name
        self.started_at = started_at
        self.chunks = 0
        self.rows_recorded = 0
        self.finished = False

    def record_rows(self, columns: Sequence[str], rows: Sequence[Sequence[str | None]]) -> int:
        """Record 1 to CHUNK_ROWS changed rows, in as many RowsImported events as the byte
        bound needs (one unless the rows are wide); returns how many."""
        if self.finished:
            raise ValueError("this import is finished")
        if not 0 < len(rows) <= CHUNK_ROWS:
            raise ValueError(f"a chunk holds 1 to {CHUNK_ROWS} rows")
        recorded = 0
        for chunk in bounded_chunks(rows):
            self._rows_imported(self.kind, list(columns), [list(r) for r in chunk])
            recorded += 1
        return recorded

    class RowsImported(Aggregate.Event):
        """Declared (not generated) so projections can name it: up to 1,000 changed rows
        and 256 KiB of their text (older events: up to 1,000 rows of any width)."""

        kind: str
        columns: list[str]
        rows: list[list[str | None]]

    @event(RowsImported)
    def _rows_imported(
        self, kind: str, columns: list[str], rows: list[list[str | None]]
    ) -> None:
        # The rows live in the event only: the aggregate keeps counts, never PHI.
        self.chunks += 1
        self.rows_recorded += len(rows)

    def finish(self, rows: int, new: int, updated: int, unchanged: int, rejected: int,
               finished_at: datetime) -> None:
        self._finished(self.kind, rows, new, updated, unchanged, rejected, finished_at)

    @event("Finished")
    def _finished(
        self, kind: str, rows: int, new: int, updated: int, unchanged: int, rejected: int,
        finished_at: datetime,
    ) -> None:
        self.finished = True


def record_as_dict(spec: ImportSpec, record: Record) -> Mapping[str, str | None]:
    return dict(zip(spec.column_names, record, strict=True))


def display_name(first: str | None, middle: str | None, last: str | None) -> str:
    """`Last, First Middle`: how staff read a patient's name in lists and search results."""
    given = " ".join(p for p in (first, middle) if p)
    return f"{last or ''}, {given}" if given else (last or "")


def sort_name(first: str | None, middle: str | None, last: str | None) -> str:
    """Sort key: last name, then first, then middle (\\x1f sorts before every character, so
    "Smith" comes before "Smithe" whatever the first names)."""
    return "\x1f".join(fold(p or "") for p in (last, first, middle))


# Appointment statuses that mean "still going to happen" and "did not happen".
UPCOMING_STATUSES = ("Scheduled", "Confirmed")
NOT_A_VISIT_STATUSES = ("Canceled", "Rescheduled", "No-Show")
CONFIRMED_STATUSES = ("Confirmed", "Checked-In")
