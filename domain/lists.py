"""Patient lists as staff define them: fields, filter rows (field, action, value), sorting,
columns, scope. Pure data and pure rules; the SQL lives in projections/patient_queries.py and
the plain-Python meaning of every filter in domain/lists_facts.py (the two must agree, and
property tests hold them to it).

A condition is parsed once (`parse_condition`) into canonical text, kept in saved views,
then resolved against today's date (`resolve`) into a `Predicate`, the one shape both the
SQL compiler and the Python evaluator read.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from domain.errors import DomainError
from domain.patients_fields import InvalidValue, fold, parse_date, phone_digits


class ListError(DomainError):
    """A list definition that cannot run; the message names what would be valid."""


class Focus(StrEnum):
    PATIENT = "patient"  # one row per patient
    APPOINTMENT = "appointment"  # one row per upcoming appointment


class ValueType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    MULTI = "list"  # several values per patient (conditions, A&R, groups)


class Action(StrEnum):
    CONTAINS = "contains"
    EQUALS = "is equal to"
    NOT_EQUALS = "is not equal to"
    EMPTY = "is empty"
    NOT_EMPTY = "is not empty"
    GREATER = "greater than"
    LESS = "less than"
    BETWEEN = "between"
    IN_NEXT_DAYS = "in next N days"
    NOT_IN_NEXT_DAYS = "not in next N days"
    IN_LAST_DAYS = "in last N days"
    NOT_IN_LAST_DAYS = "not in last N days"
    IN_ONE_MONTH = "in one month"
    NOT_IN_ONE_MONTH = "not in one month"


TEXT_ACTIONS = (Action.CONTAINS, Action.EQUALS, Action.NOT_EQUALS, Action.EMPTY,
                Action.NOT_EMPTY)
NUMBER_ACTIONS = (Action.EQUALS, Action.NOT_EQUALS, Action.GREATER, Action.LESS,
                  Action.BETWEEN)
DATE_ACTIONS = (Action.EQUALS, Action.NOT_EQUALS, Action.GREATER, Action.LESS, Action.BETWEEN,
                Action.EMPTY, Action.NOT_EMPTY, Action.IN_NEXT_DAYS, Action.NOT_IN_NEXT_DAYS,
                Action.IN_LAST_DAYS, Action.NOT_IN_LAST_DAYS, Action.IN_ONE_MONTH,
                Action.NOT_IN_ONE_MONTH)
VALUELESS = frozenset({Action.EMPTY, Action.NOT_EMPTY, Action.IN_ONE_MONTH,
                       Action.NOT_IN_ONE_MONTH})
RELATIVE_DAYS = frozenset({Action.IN_NEXT_DAYS, Action.NOT_IN_NEXT_DAYS, Action.IN_LAST_DAYS,
                           Action.NOT_IN_LAST_DAYS})


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    type: ValueType
    aliases: tuple[str, ...] = ()
    appointment_only: bool = False
    actions: tuple[Action, ...] | None = None  # None: the type's; () a column, not a filter
    sortable: bool = True
    phone: bool = False  # values compared as national digits (what staff type)
    limits: tuple[int, int] = (0, 100_000)  # for numbers

    @property
    def valid_actions(self) -> tuple[Action, ...]:
        if self.actions is not None:
            return self.actions
        return {
            ValueType.TEXT: TEXT_ACTIONS, ValueType.MULTI: TEXT_ACTIONS,
            ValueType.NUMBER: NUMBER_ACTIONS, ValueType.DATE: DATE_ACTIONS,
        }[self.type]


NO_ACTIONS: tuple[Action, ...] = ()

FIELDS: tuple[Field, ...] = (
    Field("patient_id", "Patient ID", ValueType.TEXT, ("id", "mrn")),
    Field("name", "Patient Name", ValueType.TEXT, ("patient", "full name")),
    Field("first_name", "First Name", ValueType.TEXT),
    Field("last_name", "Last Name", ValueType.TEXT),
    Field("age", "Age", ValueType.NUMBER,
          actions=(*NUMBER_ACTIONS, Action.EMPTY, Action.NOT_EMPTY), limits=(0, 150)),
    Field("date_of_birth", "Date of Birth", ValueType.DATE, ("dob", "birth date")),
    Field("status", "Patient Status", ValueType.TEXT, ("status",)),
    Field("payor", "Payor", ValueType.TEXT, ("payer", "insurance")),
    Field("pcp", "PCP", ValueType.TEXT, ("provider", "primary care provider", "pcp name")),
    Field("care_manager", "Care Manager", ValueType.TEXT),
    Field("language", "Language", ValueType.TEXT),
    Field("email", "Email", ValueType.TEXT, ("email address",)),
    Field("phone", "Phone", ValueType.TEXT, phone=True),
    Field("mobile", "Phone (M)", ValueType.TEXT, ("mobile", "mobile phone", "cell"), phone=True),
    Field("home_phone", "Phone (H)", ValueType.TEXT, ("home phone",), phone=True),
    Field("city", "City", ValueType.TEXT),
    Field("state", "State", ValueType.TEXT),
    Field("postal_code", "Postal Code", ValueType.TEXT, ("zip", "zip code")),
    Field("conditions", "Conditions", ValueType.MULTI, ("condition",), sortable=False),
    Field("ar", "Alerts & Recommendations (A&R)", ValueType.MULTI,
          ("a&r", "alerts & recommendations", "alerts and recommendations", "care gaps",
           "care gap"), sortable=False),
    Field("ar_count", "A&R Count", ValueType.NUMBER, ("alerts & recommendations count",)),
    Field("group", "Group", ValueType.MULTI, ("groups",), sortable=False),
    Field("next_appointment", "Next Appointment Date", ValueType.DATE,
          ("next appointment", "next appt", "next appt date")),
    Field("last_visit", "Last Visit", ValueType.DATE, ("last visit date",)),
    Field("last_contacted", "Last Contacted", ValueType.DATE, ("last contact",)),
    Field("appointment_reminders_only", "Appt Reminders Only", ValueType.TEXT,
          actions=NO_ACTIONS, sortable=False),
    # Appointment-focused lists only: the appointment of the row.
    Field("appt_datetime", "Appt Date/Time", ValueType.DATE,
          ("appointment date/time", "appt date", "appointment date"), appointment_only=True),
    Field("appt_notes", "Appt Notes", ValueType.TEXT, ("appointment notes",),
          appointment_only=True),
    Field("appt_provider", "Appt Provider", ValueType.TEXT, ("appointment provider",),
          appointment_only=True),
    Field("appt_response", "Appt Response", ValueType.TEXT, ("appointment response",),
          appointment_only=True, actions=NO_ACTIONS, sortable=False),
    Field("appt_status", "Appt Status", ValueType.TEXT, ("appointment status",),
          appointment_only=True),
    Field("appt_type", "Appt Type", ValueType.TEXT, ("appointment type",),
          appointment_only=True),
    Field("appt_facility", "Appt Facility", ValueType.TEXT, ("appointment facility", "facility"),
          appointment_only=True),
)
FIELDS_BY_KEY: dict[str, Field] = {f.key: f for f in FIELDS}


def _lookup_key(text: str) -> str:
    return re.sub(r"[^0-9a-z&]", "", text.strip().lower()).replace("&", "and")


_FIELD_NAMES: dict[str, Field] = {}
for _f in FIELDS:
    for _name in (_f.key, _f.label, *_f.aliases):
        _FIELD_NAMES.setdefault(_lookup_key(_name), _f)


def fields_for(focus: Focus) -> tuple[Field, ...]:
    return tuple(f for f in FIELDS if focus == Focus.APPOINTMENT or not f.appointment_only)


def find_field(name: str, focus: Focus = Focus.APPOINTMENT) -> Field:
    found = _FIELD_NAMES.get(_lookup_key(name))
    if found is None or (found.appointment_only and focus == Focus.PATIENT):
        valid = ", ".join(f.label for f in fields_for(focus))
        where = " in a patient-focused list" if found else ""
        raise ListError(f"unknown field {name!r}{where}; valid fields: {valid}")
    return found


_ACTION_ALIASES: dict[str, Action] = {
    "=": Action.EQUALS, "==": Action.EQUALS, "equals": Action.EQUALS, "is": Action.EQUALS,
    "isequalto": Action.EQUALS, "equalto": Action.EQUALS,
    "!=": Action.NOT_EQUALS, "<>": Action.NOT_EQUALS, "isnot": Action.NOT_EQUALS,
    "notequalto": Action.NOT_EQUALS, "isnotequalto": Action.NOT_EQUALS,
    ">": Action.GREATER, "after": Action.GREATER, "isgreaterthan": Action.GREATER,
    "<": Action.LESS, "before": Action.LESS, "islessthan": Action.LESS,
    "isbetween": Action.BETWEEN, "empty": Action.EMPTY, "notempty": Action.NOT_EMPTY,
    "innextndays": Action.IN_NEXT_DAYS, "innext": Action.IN_NEXT_DAYS,
    "notinnextndays": Action.NOT_IN_NEXT_DAYS, "notinnext": Action.NOT_IN_NEXT_DAYS,
    "inlastndays": Action.IN_LAST_DAYS, "inlast": Action.IN_LAST_DAYS,
    "notinlastndays": Action.NOT_IN_LAST_DAYS, "notinlast": Action.NOT_IN_LAST_DAYS,
    "inonemonth": Action.IN_ONE_MONTH, "inthenextmonth": Action.IN_ONE_MONTH,
    "notinonemonth": Action.NOT_IN_ONE_MONTH,
}
for _a in Action:
    _ACTION_ALIASES.setdefault(re.sub(r"[^a-z]", "", _a.value.lower()), _a)
    _ACTION_ALIASES.setdefault(_a.name.lower().replace("_", ""), _a)

# "in next 7 days" typed as the action: the number is the value.
_ACTION_WITH_DAYS = re.compile(r"^(not\s+)?in\s+(next|last)\s+(\d+)\s+days?$")


def find_action(text: str, field_: Field) -> tuple[Action, str | None]:
    """The action, and a value it carries itself ("in next 7 days" → 7)."""
    words = " ".join(text.strip().lower().split())
    carried: str | None = None
    match = _ACTION_WITH_DAYS.match(words)
    if match:
        name = f"{match[1] or ''}in {match[2]} n days"
        carried = match[3]
        words = name
    action = _ACTION_ALIASES.get(words) or _ACTION_ALIASES.get(re.sub(r"[^a-z=!<>]", "", words))
    if action is None or action not in field_.valid_actions:
        valid = ", ".join(a.value for a in field_.valid_actions) or "none (a column only)"
        problem = "unknown action" if action is None else "action not valid"
        raise ListError(f"{problem} {text!r} for {field_.label}; valid actions: {valid}")
    return action, carried


@dataclass(frozen=True)
class Condition:
    """One filter row, canonical: `field` is a catalogue key, `value` is normalised text."""

    field: str
    action: Action
    value: str = ""

    def describe(self) -> str:
        label = FIELDS_BY_KEY[self.field].label
        return f"{label} {self.action.value}{' ' + self.value if self.value else ''}"

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "action": self.action.value, "value": self.value}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_RELATIVE_DAYS = 36_500


def _check_text(value: str, label: str) -> None:
    if _CONTROL.search(value):
        raise ListError(f"the value for {label} contains a control character")


def parse_condition(
    field_name: str, action_name: str, value: str | None = None,
    focus: Focus = Focus.APPOINTMENT,
) -> Condition:
    """Check a filter row and put its value in canonical form (errors say what is valid)."""
    field_ = find_field(field_name, focus)
    action, carried = find_action(action_name, field_)
    text = (value or "").strip() or (carried or "")
    if action in VALUELESS:
        return Condition(field_.key, action, "")
    if not text:
        raise ListError(f"{field_.label} {action.value} needs a value")
    _check_text(text, field_.label)
    if action in RELATIVE_DAYS:
        days = _parse_int(text, f"the number of days for {field_.label}")
        if not 0 <= days <= MAX_RELATIVE_DAYS:
            raise ListError(f"the number of days must be between 0 and {MAX_RELATIVE_DAYS}")
        return Condition(field_.key, action, str(days))
    if field_.type in (ValueType.TEXT, ValueType.MULTI):
        if action == Action.CONTAINS:
            terms = [t.strip() for t in text.split(";")]
            terms = [_phone_term(t) if field_.phone else t for t in terms]
            terms = [t for t in terms if t]
            if not terms:
                raise ListError(f"{field_.label} contains needs a value")
            return Condition(field_.key, action, ";".join(terms))
        term = _phone_term(text) if field_.phone else text
        if not term:
            raise ListError(f"{field_.label} {action.value} needs a phone number")
        return Condition(field_.key, action, term)
    if action == Action.BETWEEN:
        low_text, high_text = _split_between(text, field_.label)
        low, high = (_parse_scalar(field_, t) for t in (low_text, high_text))
        if low > high:  # type: ignore[operator]
            raise ListError(f"{field_.label} between: the first value must not exceed the second")
        return Condition(field_.key, action, f"{low}..{high}")
    return Condition(field_.key, action, str(_parse_scalar(field_, text)))


def _phone_term(text: str) -> str:
    return phone_digits(text)


def _split_between(text: str, label: str) -> tuple[str, str]:
    for separator in ("..", ";", " and ", ","):
        if separator in text:
            low, _, high = text.partition(separator)
            if low.strip() and high.strip():
                return low.strip(), high.strip()
    raise ListError(f"{label} between needs two values, like 10..20")


def _parse_int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ListError(f"{what} must be a whole number") from None


def _parse_scalar(field_: Field, text: str) -> int | date:
    if field_.type == ValueType.NUMBER:
        number = _parse_int(text, f"the value for {field_.label}")
        low, high = field_.limits
        if not low <= number <= high:
            raise ListError(f"{field_.label} must be between {low} and {high}")
        return number
    try:
        return parse_date(text, f"the value for {field_.label}")
    except InvalidValue as exc:
        raise ListError(str(exc)) from None


def condition_from_dict(data: Mapping[str, Any], focus: Focus) -> Condition:
    return parse_condition(str(data["field"]), str(data["action"]), str(data.get("value", "")),
                           focus)


# -- resolved predicates -------------------------------------------------------------------


@dataclass(frozen=True)
class TextMatch:
    """Some value (any item of a list field) contains one of `terms`, or equals `terms[0]`.
    Terms are folded. `negate` matches everything else, empty values included."""

    terms: tuple[str, ...]
    exact: bool
    negate: bool = False


@dataclass(frozen=True)
class InRange:
    """low ≤ value ≤ high (either bound may be open). For dates the bounds are dates; for
    numbers, ints. `negate` matches everything else, empty values included."""

    low: Any
    high: Any
    negate: bool = False


@dataclass(frozen=True)
class Presence:
    present: bool


Predicate = TextMatch | InRange | Presence


def add_months(day: date, months: int) -> date:
    """Same day of month `months` later, clamped to the month's end (Jan 31 + 1 = Feb 28)."""
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last_day))


def years_before(day: date, years: int) -> date:
    """The same calendar day `years` earlier; 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def birthday_in(born: date, year: int) -> date:
    """The day someone born on `born` turns a year older in `year`. THE age rule: every age
    (the Age column, the summary, the Age filter, sorting by age) follows it. Born on
    29 February: 1 March in a year without one — a year of age is complete only once the
    whole anniversary day has passed (the rule of English law, for example), and it is
    what counting (month, day) gives: (2, 28) comes before (2, 29)."""
    if (born.month, born.day) == (2, 29) and not calendar.isleap(year):
        return date(year, 3, 1)
    return born.replace(year=year)


def age_on(born: date, today: date) -> int:
    """Whole years on `today` (see birthday_in for 29 February)."""
    return today.year - born.year - (today < birthday_in(born, today.year))


def birth_dates_for_ages(low: int | None, high: int | None, today: date) -> tuple[date | None,
                                                                                 date | None]:
    """Ages in [low, high] ⇔ date of birth in the returned inclusive range (the same rule
    as age_on; a property test checks every day). Age ≥ n ⇔ born on or before the same day
    n years ago; when that day is a 29 February the year lacks, 28 February: someone born
    1 March is not n yet, someone born 28 February is. Born 29 February: not n on
    28 February of a common year (that day n years ago is before their birth date), n on
    1 March."""
    latest = years_before(today, low) if low is not None else None
    earliest = (years_before(today, high + 1) + timedelta(days=1)) if high is not None else None
    return earliest, latest


def resolve(condition: Condition, today: date) -> Predicate:
    """Turn a condition into a predicate for `today` (relative dates become real dates)."""
    field_ = FIELDS_BY_KEY[condition.field]
    action, value = condition.action, condition.value
    if action == Action.EMPTY:
        return Presence(False)
    if action == Action.NOT_EMPTY:
        return Presence(True)
    if field_.type in (ValueType.TEXT, ValueType.MULTI):
        if action == Action.CONTAINS:
            return TextMatch(tuple(fold(t) for t in value.split(";")), exact=False)
        return TextMatch((fold(value),), exact=True, negate=action == Action.NOT_EQUALS)
    if action in (Action.IN_ONE_MONTH, Action.NOT_IN_ONE_MONTH):
        return InRange(today, add_months(today, 1), negate=action == Action.NOT_IN_ONE_MONTH)
    if action in RELATIVE_DAYS:
        days = timedelta(days=int(value))
        negate = action in (Action.NOT_IN_NEXT_DAYS, Action.NOT_IN_LAST_DAYS)
        if action in (Action.IN_NEXT_DAYS, Action.NOT_IN_NEXT_DAYS):
            return InRange(today, _clamp(today, days), negate)
        return InRange(_clamp(today, -days), today, negate)
    one: Any = 1 if field_.type == ValueType.NUMBER else timedelta(days=1)
    if action == Action.BETWEEN:
        low_text, _, high_text = value.partition("..")
        return InRange(_scalar(field_, low_text), _scalar(field_, high_text))
    scalar = _scalar(field_, value)
    if action == Action.EQUALS:
        return InRange(scalar, scalar)
    if action == Action.NOT_EQUALS:
        return InRange(scalar, scalar, negate=True)
    if action == Action.GREATER:
        return InRange(_step(scalar, one), None)
    if action == Action.LESS:
        return InRange(None, _step(scalar, -one))
    raise ListError(f"{action.value} cannot be used with {field_.label}")


def _clamp(day: date, delta: timedelta) -> date:
    try:
        return day + delta
    except OverflowError:
        return date.max if delta > timedelta(0) else date.min


def _step(value: Any, delta: Any) -> Any:
    if isinstance(value, date):
        return _clamp(value, delta)
    return value + delta


def _scalar(field_: Field, text: str) -> int | date:
    return int(text) if field_.type == ValueType.NUMBER else date.fromisoformat(text)


# -- sorting, scope, the query ---------------------------------------------------------------


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool = False

    def to_text(self) -> str:
        return f"{self.field}:{'desc' if self.descending else 'asc'}"


def parse_sort(text: str, focus: Focus = Focus.APPOINTMENT) -> SortKey:
    """`A&R Count:desc`, `name` (ascending), `age:asc`."""
    name, _, direction = text.rpartition(":") if ":" in text else (text, "", "asc")
    field_ = find_field(name, focus)
    if not field_.sortable:
        sortable = ", ".join(f.label for f in fields_for(focus) if f.sortable)
        raise ListError(f"{field_.label} cannot be sorted on; sortable fields: {sortable}")
    direction = direction.strip().lower() or "asc"
    if direction not in ("asc", "desc", "ascending", "descending"):
        raise ListError(f"sort direction {direction!r}: use asc or desc")
    return SortKey(field_.key, direction.startswith("desc"))


def parse_column(text: str, focus: Focus) -> str:
    return find_field(text, focus).key


@dataclass(frozen=True)
class Scope:
    """Which patients a list may show: related to these providers or groups' active
    subscribers, or (nothing chosen) to any active subscriber ("All Subscribers")."""

    providers: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @property
    def all_subscribers(self) -> bool:
        return not self.providers and not self.groups

    def describe(self) -> str:
        if self.all_subscribers:
            return "All Subscribers"
        parts = [*(f"provider {p}" for p in self.providers), *(f"group {g}" for g in self.groups)]
        return ", ".join(parts)


PATIENT_COLUMNS = ("name", "age", "date_of_birth", "phone", "email", "pcp", "payor")
APPOINTMENT_COLUMNS = ("appt_datetime", "name", "age", "date_of_birth", "appt_type",
                       "appt_status", "phone", "email", "payor", "pcp", "appt_provider")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class ListQuery:
    focus: Focus = Focus.PATIENT
    scope: Scope = field(default_factory=Scope)
    filters: tuple[Condition, ...] = ()
    sort: tuple[SortKey, ...] = ()
    columns: tuple[str, ...] = ()
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE

    def __post_init__(self) -> None:
        if self.page < 1:
            raise ListError("pages are numbered from 1")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ListError(f"page size must be between 1 and {MAX_PAGE_SIZE}")
        for key in (*(c.field for c in self.filters), *(s.field for s in self.sort),
                    *self.columns):
            field_ = FIELDS_BY_KEY.get(key)
            if field_ is None or (field_.appointment_only and self.focus == Focus.PATIENT):
                find_field(key, self.focus)  # raises with the list of valid fields

    @property
    def shown_columns(self) -> tuple[str, ...]:
        if self.columns:
            return self.columns
        return APPOINTMENT_COLUMNS if self.focus == Focus.APPOINTMENT else PATIENT_COLUMNS

    @property
    def effective_sort(self) -> tuple[SortKey, ...]:
        """Appointment lists are grouped by appointment provider, then time."""
        if self.focus == Focus.APPOINTMENT:
            if self.sort and self.sort[0].field == "appt_provider":
                return self.sort
            base = (SortKey("appt_provider"),)
            rest = self.sort or (SortKey("appt_datetime"),)
            return base + tuple(s for s in rest if s.field != "appt_provider")
        return self.sort or (SortKey("name"),)

    def with_page(self, page: int, page_size: int | None = None) -> ListQuery:
        return ListQuery(self.focus, self.scope, self.filters, self.sort, self.columns, page,
                         page_size or self.page_size)

    def definition(self) -> dict[str, Any]:
        """What a saved view keeps (no page: a view always opens on page 1)."""
        return {
            "focus": self.focus.value,
            "scope": {"providers": list(self.scope.providers), "groups": list(self.scope.groups)},
            "filters": [c.to_dict() for c in self.filters],
            "sort": [s.to_text() for s in self.sort],
            "columns": list(self.columns),
            "page_size": self.page_size,
        }

    @classmethod
    def from_definition(cls, data: Mapping[str, Any]) -> ListQuery:
        focus = Focus(str(data.get("focus", "patient")))
        scope = data.get("scope") or {}
        return cls(
            focus=focus,
            scope=Scope(tuple(scope.get("providers", ())), tuple(scope.get("groups", ()))),
            filters=tuple(condition_from_dict(c, focus) for c in data.get("filters", ())),
            sort=tuple(parse_sort(s, focus) for s in data.get("sort", ())),
            columns=tuple(parse_column(c, focus) for c in data.get("columns", ())),
            page_size=int(data.get("page_size", DEFAULT_PAGE_SIZE)),
        )


def build_query(
    *, focus: Focus = Focus.PATIENT, filters: Sequence[str] = (), sort: Sequence[str] = (),
    columns: Sequence[str] = (), providers: Sequence[str] = (), groups: Sequence[str] = (),
    page: int = 1, page_size: int = DEFAULT_PAGE_SIZE,
) -> ListQuery:
    """From the command line's words: filters as `field|action|value`, sort as `field:desc`."""
    conditions = []
    for text in filters:
        parts = text.split("|", 2)
        if len(parts) < 2:
            raise ListError(f"filter {text!r}: write it as field|action|value")
        conditions.append(parse_condition(parts[0], parts[1], parts[2] if len(parts) > 2 else "",
                                          focus))
    return ListQuery(
        focus=focus, scope=Scope(tuple(providers), tuple(groups)), filters=tuple(conditions),
        sort=tuple(parse_sort(s, focus) for s in sort),
        columns=tuple(parse_column(c, focus) for c in columns), page=page, page_size=page_size,
    )


def describe_catalogue(focus: Focus = Focus.APPOINTMENT) -> list[dict[str, Any]]:
    return [
        {"key": f.key, "label": f.label, "type": f.type.value,
         "actions": [a.value for a in f.valid_actions], "sortable": f.sortable,
         "appointment_only": f.appointment_only}
        for f in fields_for(focus)
    ]
