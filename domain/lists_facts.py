"""What a filter means, in plain Python over one patient's facts.

This is the specification the SQL compiler (projections/patient_queries.py) must agree with:
the property tests run random filters over random patients through both and compare. It
also serves small in-memory lists. Derived values follow these rules:

- age: whole years on `today` (born 29 February: a year older on 1 March in a common
  year; domain.lists.birthday_in);
- next appointment: the earliest appointment on or after today that is Scheduled or
  Confirmed; last visit: the latest appointment before today that was not Canceled,
  Rescheduled or a No-Show;
- A&R: care gaps without a closed date; A&R count: how many;
- phones compare as national digits (what staff type: 5125550123);
- text compares case-insensitively (`fold`); an empty value never matches a positive
  condition, and always matches its negation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from domain.lists import (
    FIELDS_BY_KEY,
    Condition,
    Predicate,
    Presence,
    SortKey,
    TextMatch,
    ValueType,
    age_on,
    resolve,
)
from domain.patients import (
    NOT_A_VISIT_STATUSES,
    UPCOMING_STATUSES,
    display_name,
    sort_name,
)
from domain.patients_fields import fold, national_digits


@dataclass(frozen=True)
class AppointmentFacts:
    appointment_id: str
    starts_at: str  # local "YYYY-MM-DD HH:MM"
    status: str  # canonical: Scheduled, Confirmed, Canceled, Rescheduled, No-Show, Checked-In
    provider: str | None = None  # the provider's name, or its id when the name is unknown
    type: str | None = None
    notes: str | None = None
    facility: str | None = None

    @property
    def day(self) -> date:
        return date.fromisoformat(self.starts_at[:10])


@dataclass(frozen=True)
class PatientFacts:
    patient_id: str
    first_name: str
    last_name: str
    middle_name: str | None = None
    date_of_birth: str | None = None  # ISO
    status: str = "Active"
    payor: str | None = None
    pcp: str | None = None  # the PCP's name, or its id when the provider is unknown
    care_manager: str | None = None
    language: str | None = None
    email: str | None = None
    mobile: str | None = None  # E.164
    home_phone: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    conditions: tuple[str, ...] = ()
    open_care_gaps: tuple[str, ...] = ()
    closed_care_gaps: tuple[str, ...] = ()  # not A&R: a closed gap asks nothing of anyone
    groups: tuple[str, ...] = ()
    appointments: tuple[AppointmentFacts, ...] = ()
    last_contacted_at: str | None = None  # ISO UTC instant


def next_appointment(facts: PatientFacts, today: date) -> date | None:
    days = [a.day for a in facts.appointments
            if a.day >= today and a.status in UPCOMING_STATUSES]
    return min(days, default=None)


def last_visit(facts: PatientFacts, today: date) -> date | None:
    days = [a.day for a in facts.appointments
            if a.day < today and a.status not in NOT_A_VISIT_STATUSES]
    return max(days, default=None)


def field_value(
    key: str, facts: PatientFacts, today: date, appointment: AppointmentFacts | None = None
) -> Any:
    """The value a condition on `key` is evaluated against (folded text, digits, dates,
    ints, or a tuple for list fields)."""
    if key.startswith("appt_"):
        assert appointment is not None, "appointment fields need an appointment-focused row"
        return {
            "appt_datetime": appointment.day,
            "appt_notes": appointment.notes,
            "appt_provider": appointment.provider,
            "appt_status": appointment.status,
            "appt_type": appointment.type,
            "appt_facility": appointment.facility,
            "appt_response": None,
        }[key]
    born = date.fromisoformat(facts.date_of_birth) if facts.date_of_birth else None
    simple: dict[str, Any] = {
        "patient_id": facts.patient_id,
        "name": display_name(facts.first_name, facts.middle_name, facts.last_name),
        "first_name": facts.first_name,
        "last_name": facts.last_name,
        "status": facts.status,
        "payor": facts.payor,
        "pcp": facts.pcp,
        "care_manager": facts.care_manager,
        "language": facts.language,
        "email": facts.email,
        "city": facts.city,
        "state": facts.state,
        "postal_code": facts.postal_code,
        "mobile": national_digits(facts.mobile),
        "home_phone": national_digits(facts.home_phone),
        "phone": national_digits(facts.mobile) or national_digits(facts.home_phone),
        "conditions": facts.conditions,
        "ar": facts.open_care_gaps,
        "group": facts.groups,
        "ar_count": len(facts.open_care_gaps),
        "age": age_on(born, today) if born else None,
        "date_of_birth": born,
    }
    if key in simple:
        return simple[key]
    if key == "next_appointment":
        return next_appointment(facts, today)
    if key == "last_visit":
        return last_visit(facts, today)
    if key == "last_contacted":
        return date.fromisoformat(facts.last_contacted_at[:10]) if facts.last_contacted_at \
            else None
    raise KeyError(key)


def _holds(predicate: Predicate, value: Any, many: bool) -> bool:
    values = list(value) if many else ([] if value is None else [value])
    if isinstance(predicate, Presence):
        return bool(values) == predicate.present
    if isinstance(predicate, TextMatch):
        hit = any(
            (fold(v) == predicate.terms[0]) if predicate.exact
            else any(t in fold(v) for t in predicate.terms)
            for v in values
        )
        return hit != predicate.negate
    low, high = predicate.low, predicate.high
    hit = any((low is None or low <= v) and (high is None or v <= high) for v in values)
    return hit != predicate.negate


def matches(
    conditions: Sequence[Condition], facts: PatientFacts, today: date,
    appointment: AppointmentFacts | None = None,
) -> bool:
    """All conditions hold (filters are ANDed)."""
    for condition in conditions:
        field_ = FIELDS_BY_KEY[condition.field]
        predicate = resolve(condition, today)
        value = field_value(condition.field, facts, today, appointment)
        if not _holds(predicate, value, field_.type == ValueType.MULTI):
            return False
    return True


def sort_rows(
    rows: Sequence[tuple[PatientFacts, AppointmentFacts | None]], keys: Sequence[SortKey],
    today: date,
) -> list[tuple[PatientFacts, AppointmentFacts | None]]:
    """The order lists are shown in: each key ascending or descending, empty values last
    either way, then patient id (and appointment id) so pages never overlap."""
    ordered = sorted(rows, key=lambda r: (r[0].patient_id, r[1].appointment_id if r[1] else ""))
    for key in reversed(keys):
        values = [(_sort_value(key.field, r, today), r) for r in ordered]
        present = [(v, r) for v, r in values if v is not None]
        missing = [r for v, r in values if v is None]
        descending = key.descending != (key.field == "age")  # older = earlier birth date
        present.sort(key=lambda pair: pair[0], reverse=descending)
        ordered = [r for _, r in present] + missing
    return ordered


def _sort_value(key: str, row: tuple[PatientFacts, AppointmentFacts | None], today: date) -> Any:
    facts, appointment = row
    if key == "name":
        return sort_name(facts.first_name, facts.middle_name, facts.last_name)
    if key == "age":
        return facts.date_of_birth
    if key == "appt_datetime":
        return appointment.starts_at if appointment else None
    if key in ("next_appointment", "last_visit"):
        # By the appointment's full date and time, as the SQL does.
        day = field_value(key, facts, today)
        times = [a.starts_at for a in facts.appointments if day is not None and a.day == day
                 and (a.status in UPCOMING_STATUSES if key == "next_appointment"
                      else a.status not in NOT_A_VISIT_STATUSES)]
        return (min if key == "next_appointment" else max)(times, default=None)
    if key == "last_contacted":
        return facts.last_contacted_at
    value = field_value(key, facts, today, appointment)
    return fold(value) if isinstance(value, str) and not FIELDS_BY_KEY[key].phone else value
