"""How one imported value is checked and put in its one canonical form.

Every normaliser takes the raw text of a cell and returns the canonical text (or None when
the cell is empty), or raises `InvalidValue` whose message names the problem but never
repeats the value: reasons are printed and may end up in logs, values are PHI.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberFormat

DEFAULT_REGION = "US"


class InvalidValue(ValueError):
    """A cell that cannot be accepted; the message says why, in staff words."""


# Control characters would break PostgreSQL (NUL) or the rejects file; tab, CR and LF are
# legitimate inside quoted notes.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# csv is read with errors="surrogateescape": bytes that are not UTF-8 show up as these.
_UNDECODABLE = re.compile(r"[\udc80-\udcff]")


def fold(text: str) -> str:
    """The form used for matching, ignoring case and accents: `García` and `GARCIA` are both
    `garcia`, `Zoë` is `zoe`, `Straße` is `strasse`. Computed in Python on both sides (the
    stored `*_f` column and the typed value) because SQLite's lower() folds only ASCII,
    PostgreSQL's depends on the server locale, and its `unaccent` is an extension a server
    may not ship: one function means both databases agree with Python.

    Compatibility decomposition (NFKD) splits a letter from its accents, which are then
    dropped; casefold is Unicode's caseless matching. Repeated until nothing changes:
    casefold can bring a mark back (`İ` → `i̇`) and decomposition a capital (`ℌ` → `H`)."""
    if text.isascii():  # nearly every value: the fast path
        return text.lower()
    for _ in range(4):  # one or two passes in practice; bounded all the same
        decomposed = unicodedata.normalize("NFKD", text)
        folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
        if folded == text:
            break
        text = folded
    return text


def clean_text(raw: str | None, what: str, max_length: int = 200) -> str | None:
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return None
    if _UNDECODABLE.search(text):
        raise InvalidValue(f"{what} is not valid UTF-8 text")
    if _CONTROL.search(text):
        raise InvalidValue(f"{what} contains a control character")
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if len(text) > max_length:
        raise InvalidValue(f"{what} is longer than {max_length} characters")
    return text


def clean_identifier(raw: str | None, what: str) -> str | None:
    text = clean_text(raw, what, 64)
    if text is not None and any(ch.isspace() for ch in text):
        raise InvalidValue(f"{what} contains spaces")
    return text


# -- phones ------------------------------------------------------------------------------

_PHONE_PUNCTUATION = str.maketrans("", "", " -().\t/")


@lru_cache(maxsize=65536)
def _valid_nanp_prefix(prefix6: str) -> bool:
    """Is a 10-digit North American number with these first six digits valid?

    Every US pattern in libphonenumber's metadata ends in `\\d{4}` after at most six
    leading digits, so validity is a function of the first six: caching on them gives the
    same answers as phonenumbers at a fraction of the cost (a unit test compares the two).
    """
    number = PhoneNumber(country_code=1, national_number=int(prefix6 + "0000"))
    return bool(phonenumbers.is_valid_number(number))


def normalize_phone(raw: str | None, what: str, region: str = DEFAULT_REGION) -> str | None:
    """Any common way of writing a phone number → E.164 (`+15125550123`), or None if empty."""
    if raw is None or not raw.strip():
        return None
    compact = raw.strip().translate(_PHONE_PUNCTUATION)
    digits = compact[2:] if compact.startswith("+1") else compact
    if region == "US" and digits.isdigit() and digits.isascii():
        # Fast path for plain North American numbers (the usual case, 20,000 rows/s).
        if len(digits) == 11 and digits[0] == "1":
            digits = digits[1:]
        if len(digits) == 10:
            if not _valid_nanp_prefix(digits[:6]):
                raise InvalidValue(f"{what} is not a valid phone number")
            return "+1" + digits
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise InvalidValue(f"{what} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidValue(f"{what} is not a valid phone number")
    return str(phonenumbers.format_number(number, PhoneNumberFormat.E164))


def national_digits(e164: str | None) -> str | None:
    """`+15125550123` → `5125550123`: what staff type when they search or filter by phone."""
    if not e164:
        return None
    return e164[2:] if e164.startswith("+1") else e164.lstrip("+")


def phone_digits(text: str) -> str:
    """The digits of what staff typed (dashes, spaces, parentheses optional)."""
    digits = "".join(ch for ch in text if ch.isdigit() and ch.isascii())
    return digits[1:] if len(digits) == 11 and digits[0] == "1" else digits


# -- emails ------------------------------------------------------------------------------

# Deliberately simple (RFC 5322 allows far more, mail servers far less): one @, a sensible
# local part, a domain of dot-separated labels ending in a letters-only TLD.
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def normalize_email(raw: str | None, what: str = "email") -> str | None:
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    local, at, domain = text.rpartition("@")
    labels = domain.split(".")
    if (
        not at
        or len(text) > 254
        or not 1 <= len(local) <= 64
        or not _LOCAL.match(local)
        or len(labels) < 2
        or not all(_LABEL.match(label) for label in labels)
        or not labels[-1].isalpha()
        or len(labels[-1]) < 2
    ):
        raise InvalidValue(f"{what} is not a valid email address")
    return f"{local}@{domain.lower()}"


# -- dates -------------------------------------------------------------------------------

_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?$")


def parse_date(raw: str, what: str) -> date:
    """`YYYY-MM-DD` or `MM/DD/YYYY` (two-digit years are refused: 01/02/03 is a guess)."""
    text = raw.strip()
    match = _ISO_DATE.match(text)
    try:
        if match:
            return date(int(match[1]), int(match[2]), int(match[3]))
        match = _US_DATE.match(text)
        if match:
            return date(int(match[3]), int(match[1]), int(match[2]))
    except ValueError:
        raise InvalidValue(f"{what} is not a real date") from None
    raise InvalidValue(f"{what} is not a date (use YYYY-MM-DD or MM/DD/YYYY)")


def normalize_date(raw: str | None, what: str) -> str | None:
    if raw is None or not raw.strip():
        return None
    return parse_date(raw, what).isoformat()


def normalize_birth_date(raw: str | None, today: date, what: str = "date of birth") -> str | None:
    if raw is None or not raw.strip():
        return None
    born = parse_date(raw, what)
    if born > today:
        raise InvalidValue(f"{what} is in the future")
    if born.year < 1900:
        raise InvalidValue(f"{what} is before 1900")
    return born.isoformat()


def normalize_datetime(raw: str | None, what: str) -> str | None:
    """A local date and time → `YYYY-MM-DD HH:MM` (text order is time order)."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip().replace("T", " ", 1)
    day_text, _, time_text = text.partition(" ")
    day = parse_date(day_text, what)
    time_text = time_text.strip()
    if not time_text:
        raise InvalidValue(f"{what} has no time of day")
    match = _TIME.match(time_text)
    if not match:
        raise InvalidValue(f"{what} has an unreadable time (use HH:MM or H:MM AM)")
    hour, minute = int(match[1]), int(match[2])
    if match[4]:
        if not 1 <= hour <= 12:
            raise InvalidValue(f"{what} has an hour outside 1-12 with AM/PM")
        hour = hour % 12 + (12 if match[4].lower() == "pm" else 0)
    try:
        moment = datetime(day.year, day.month, day.day, hour, minute)  # noqa: DTZ001 - local
    except ValueError:
        raise InvalidValue(f"{what} has an impossible time of day") from None
    return moment.strftime("%Y-%m-%d %H:%M")


# -- small vocabularies ------------------------------------------------------------------

_YES = frozenset({"y", "yes", "true", "t", "1", "x"})
_NO = frozenset({"n", "no", "false", "f", "0"})


def parse_flag(raw: str | None, what: str, default: bool) -> bool:
    if raw is None or not raw.strip():
        return default
    text = raw.strip().lower()
    if text in _YES or text == "active":
        return True
    if text in _NO or text == "inactive":
        return False
    raise InvalidValue(f"{what} must be yes or no")


PATIENT_STATUSES = {"active": "Active", "a": "Active", "inactive": "Inactive", "i": "Inactive"}


def normalize_patient_status(raw: str | None) -> str:
    """Active or Inactive; an empty cell means Active (files often leave it out)."""
    if raw is None or not raw.strip():
        return "Active"
    try:
        return PATIENT_STATUSES[raw.strip().lower()]
    except KeyError:
        raise InvalidValue("status must be Active or Inactive") from None


APPOINTMENT_STATUSES = {
    "scheduled": "Scheduled", "booked": "Scheduled",
    "confirmed": "Confirmed",
    "canceled": "Canceled", "cancelled": "Canceled",
    "rescheduled": "Rescheduled",
    "no-show": "No-Show", "noshow": "No-Show", "no show": "No-Show",
    "checked-in": "Checked-In", "checkedin": "Checked-In", "checked in": "Checked-In",
}


def normalize_appointment_status(raw: str | None) -> str:
    if raw is None or not raw.strip():
        return "Scheduled"
    key = " ".join(raw.strip().lower().replace("_", " ").split())
    try:
        return APPOINTMENT_STATUSES[key]
    except KeyError:
        raise InvalidValue(
            "appointment status must be one of Scheduled, Confirmed, Canceled, "
            "Rescheduled, No-Show, Checked-In") from None


_ZIP = re.compile(r"^\d{5}(-?\d{4})?$")


def normalize_postal_code(raw: str | None) -> str | None:
    text = clean_text(raw, "postal code", 10)
    if text is None:
        return None
    if not _ZIP.match(text):
        raise InvalidValue("postal code must be a 5 or 9 digit ZIP code")
    return text if len(text) != 9 else f"{text[:5]}-{text[5:]}"


def split_names(raw: str | None, what: str) -> list[str]:
    """A `;`-separated list (groups column) → distinct names, file order, case-insensitive."""
    if raw is None:
        return []
    seen: set[str] = set()
    names: list[str] = []
    for part in raw.split(";"):
        name = clean_text(part, what, 100)
        if name is not None and fold(name) not in seen:
            seen.add(fold(name))
            names.append(name)
    return names
