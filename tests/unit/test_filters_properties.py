"""Filters mean the same in SQL as in plain Python (domain/lists_facts.py), whatever the
values: quotes, %, _, ;, unicode. Random patients and random list definitions go through
the SQL compiler (SQLite in memory here; PostgreSQL in tests/integration) and through the
reference evaluator; the two must return the same patients in the same order."""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st

from domain.lists import (
    Focus,
    ListError,
    ListQuery,
    SortKey,
    add_months,
    age_on,
    birth_dates_for_ages,
    birthday_in,
    fields_for,
    find_field,
    parse_condition,
    years_before,
)
from domain.lists_facts import AppointmentFacts, PatientFacts, matches, sort_rows
from domain.patients_fields import fold
from projections.db import SqliteDatabase
from projections.patient_queries import LIST_ITEMS_TABLES, count, list_items, select_ids
from projections.patients import DDL
from tests.patient_data import as_displayed, clear_read_model, load_facts, subscribed

TODAY = date(2025, 3, 10)

# Characters that break naive SQL (quotes, LIKE wildcards, our OR separator, backslash) and
# unicode whose case folding differs between SQLite, PostgreSQL and Python.
TRICKY = list("aAbBeE '\"%_;\\éÉßİıΣσςæÆ😀中") + ["ǅ", "ﬁ"]
text = st.text(alphabet=st.sampled_from(TRICKY), min_size=1, max_size=6).map(str.strip).filter(
    bool)
maybe_text = st.one_of(st.none(), text)

PROVIDERS = {"D1": ("Dr. Ávila", True), "D2": ("Dr. 'Quote' %_", True),
             "D3": ("Dr. Inactive", False)}
PROVIDER_IDS = [*PROVIDERS, "D9"]  # D9: a provider missing from the providers file
STATUSES = ["Scheduled", "Confirmed", "Canceled", "Rescheduled", "No-Show", "Checked-In"]
PHONES = ["+15125550101", "+15125550102", "+13125550199", "+15005550006"]


def _day(offset_range: int) -> st.SearchStrategy[date]:
    return st.integers(-offset_range, offset_range).map(lambda d: TODAY + timedelta(days=d))


@st.composite
def appointments(draw: Any, pid: str) -> tuple[AppointmentFacts, ...]:
    items = []
    for n in range(draw(st.integers(0, 4))):
        day = draw(_day(45))
        minute = draw(st.sampled_from(["00", "30"]))
        items.append(AppointmentFacts(
            appointment_id=f"{pid}-A{n}",
            starts_at=f"{day.isoformat()} {draw(st.integers(8, 17)):02d}:{minute}",
            status=draw(st.sampled_from(STATUSES)), provider=draw(st.sampled_from(PROVIDER_IDS)),
            type=draw(maybe_text), notes=draw(maybe_text), facility=draw(maybe_text)))
    return tuple(items)


@st.composite
def patient(draw: Any, n: int) -> PatientFacts:
    pid = f"P{n:03d}"
    born = draw(st.one_of(st.none(), st.dates(date(1900, 1, 1), TODAY)))
    contacted = draw(st.one_of(st.none(), _day(200)))
    unique = st.lists(text, max_size=3, unique_by=fold).map(tuple)
    open_gaps = draw(unique)
    return PatientFacts(
        patient_id=pid, first_name=draw(text), last_name=draw(text),
        middle_name=draw(maybe_text), date_of_birth=born.isoformat() if born else None,
        status=draw(st.sampled_from(["Active", "Inactive"])), payor=draw(maybe_text),
        pcp=draw(st.one_of(st.none(), st.sampled_from(PROVIDER_IDS))),
        care_manager=draw(maybe_text), language=draw(maybe_text), email=draw(maybe_text),
        mobile=draw(st.one_of(st.none(), st.sampled_from(PHONES))),
        home_phone=draw(st.one_of(st.none(), st.sampled_from(PHONES))),
        city=draw(maybe_text), state=draw(maybe_text), postal_code=draw(maybe_text),
        conditions=draw(unique), open_care_gaps=open_gaps,
        closed_care_gaps=tuple(g for g in draw(unique) if fold(g) not in map(fold, open_gaps)),
        # the groups column is ;-separated, so no group name holds a ;
        groups=draw(st.lists(text.filter(lambda t: ";" not in t), max_size=3,
                             unique_by=fold).map(tuple)),
        appointments=draw(appointments(pid)),
        last_contacted_at=(datetime.combine(contacted, datetime.min.time()).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ") if contacted else None),
    )


patients = st.integers(0, 12).flatmap(
    lambda count: st.tuples(*(patient(n) for n in range(count))))

FILTER_FIELDS = [f for f in fields_for(Focus.PATIENT) if f.valid_actions]
# Fields whose SQL is not a plain column test get half of the draws.
DERIVED_FIELDS = [f for f in FILTER_FIELDS if f.key in (
    "next_appointment", "last_visit", "last_contacted", "age", "ar", "ar_count", "conditions",
    "group", "pcp", "phone")]
SORT_FIELDS = [f.key for f in fields_for(Focus.PATIENT) if f.sortable]


def _value_for(draw: Any, field_key: str, action: str, facts: tuple[PatientFacts, ...]) -> str:
    field_ = find_field(field_key)
    if action.startswith(("in next", "not in next", "in last", "not in last")):
        return str(draw(st.integers(0, 400)))
    if field_.type.value == "number":
        numbers = st.integers(0, 120) if field_.key == "age" else st.integers(0, 4)
        if action == "between":
            low, high = sorted((draw(numbers), draw(numbers)))
            return f"{low}..{high}"
        return str(draw(numbers))
    if field_.type.value == "date":
        # mostly near today, where appointments and contacts are, so ranges cut through them
        days = st.dates(date(1900, 1, 1), TODAY) if field_.key == "date_of_birth" \
            else st.one_of(_day(50), _day(50), _day(800))
        if action == "between":
            low, high = sorted((draw(days), draw(days)))
            return f"{low.isoformat()}..{high.strftime('%m/%d/%Y')}"
        return draw(days).isoformat()
    # text: often a piece of a value that exists (so there are hits), else anything
    pieces = [str(v) for f in facts for v in _raw_values(field_key, f) if v]
    if pieces and draw(st.booleans()):
        piece = draw(st.sampled_from(pieces))
        start = draw(st.integers(0, len(piece) - 1))
        piece = piece[start:start + draw(st.integers(1, len(piece)))]
        if draw(st.booleans()):
            piece = piece.upper()
        return piece if action != "contains" or draw(st.booleans()) else f"{piece};{draw(text)}"
    return draw(text)


def _raw_values(key: str, facts: PatientFacts) -> list[Any]:
    shown = as_displayed(facts, PROVIDERS)
    values = {
        "name": [f"{facts.last_name}, {facts.first_name}"], "conditions": facts.conditions,
        "ar": facts.open_care_gaps, "group": facts.groups, "pcp": [shown.pcp],
        "mobile": [facts.mobile[2:] if facts.mobile else None],
        "home_phone": [facts.home_phone[2:] if facts.home_phone else None],
        "phone": [facts.mobile], "patient_id": [facts.patient_id],
    }
    if key in values:
        return list(values[key])
    return [getattr(facts, key, None)]


@st.composite
def scenario(draw: Any, only: tuple[str, ...] = ()) -> tuple[tuple[PatientFacts, ...], ListQuery]:
    """Random patients and a list of 1–3 filters (`only`: on these fields, text actions)."""
    facts = draw(patients)
    conditions = []
    for _ in range(draw(st.integers(1, 3))):
        field_ = draw(st.sampled_from([find_field(k) for k in only])) if only else \
            draw(st.one_of(st.sampled_from(DERIVED_FIELDS), st.sampled_from(FILTER_FIELDS)))
        actions = [a for a in field_.valid_actions
                   if not only or a.value in ("contains", "is equal to", "is not equal to")]
        action = draw(st.sampled_from(actions)).value
        try:
            conditions.append(parse_condition(field_.key, action,
                                              _value_for(draw, field_.key, action, facts),
                                              Focus.PATIENT))
        except ListError:
            reject()
    sort = tuple(SortKey(draw(st.sampled_from(SORT_FIELDS)), draw(st.booleans()))
                 for _ in range(draw(st.integers(0, 2))))
    return facts, ListQuery(focus=Focus.PATIENT, filters=tuple(conditions), sort=sort)


def expected_ids(facts: tuple[PatientFacts, ...], query: ListQuery) -> list[str]:
    shown = [as_displayed(f, PROVIDERS) for f in facts if subscribed(f, PROVIDERS)]
    kept = [(f, None) for f in shown if matches(query.filters, f, TODAY)]
    return [f.patient_id for f, _ in sort_rows(kept, query.effective_sort, TODAY)]


@pytest.fixture(scope="module")
def memory_db() -> Any:
    db = SqliteDatabase(":memory:")
    db.migrate(DDL)
    yield db
    db.close()


def _visits(*days: str) -> tuple[PatientFacts, ...]:
    return (PatientFacts("P1", "Ann", "Lee", pcp="D1", appointments=tuple(
        AppointmentFacts(f"A{n}", f"{day} 10:00", "Confirmed", "D1")
        for n, day in enumerate(days))),)


def _case(days: tuple[str, ...], field: str, action: str, value: str) -> Any:
    return _visits(*days), ListQuery(filters=(parse_condition(field, action, value),))


# Boundary cases random data rarely builds: a patient whose earliest upcoming (or latest
# past) appointment is outside the range while another one is inside it.
BOUNDARY_CASES = [
    _case(("2025-03-12", "2025-03-20"), "Next Appointment Date", "greater than", "2025-03-15"),
    _case(("2025-03-12", "2025-03-20"), "Next Appointment Date", "is equal to", "2025-03-20"),
    _case(("2025-02-01", "2025-03-01"), "Last Visit", "less than", "2025-02-20"),
    _case(("2025-02-01", "2025-03-01"), "Last Visit", "between", "2025-01-01..2025-02-10"),
]


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
@given(case=scenario())
@example(case=BOUNDARY_CASES[0])
@example(case=BOUNDARY_CASES[1])
@example(case=BOUNDARY_CASES[2])
@example(case=BOUNDARY_CASES[3])
def test_sql_filters_and_sorting_match_the_python_meaning(memory_db: Any, case: Any) -> None:
    facts, query = case
    # given: random patients in the read model
    with memory_db.transaction() as tx:
        clear_read_model(tx)
        load_facts(tx, facts, PROVIDERS)
        # when: the list is compiled to SQL and run
        found = [k[0] for k in select_ids(tx, "sqlite", query, TODAY)]
    # then: same patients, same order as the plain-Python meaning
    assert found == expected_ids(facts, query)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
@given(case=scenario(only=tuple(LIST_ITEMS_TABLES)))
def test_list_filters_resolved_to_items_mean_the_same(memory_db: Any, case: Any) -> None:
    """Given patients with tricky A&R, conditions and groups, when a filter on them is
    resolved to the items it matches and answered from the items' tables, then the count
    and the ordered page hold exactly the patients the substring or equality test would."""
    facts, query = case
    with memory_db.transaction() as tx:
        clear_read_model(tx)
        load_facts(tx, facts, PROVIDERS)
        assert set(list_items(tx, "sqlite", query)) == {c.field for c in query.filters}
        found = [k[0] for k in select_ids(tx, "sqlite", query, TODAY)]
        total = count(tx, "sqlite", query, TODAY)
    expected = expected_ids(facts, query)
    assert found == expected
    assert total == len(expected)


# -- pure rules the SQL leans on -----------------------------------------------------------


@given(born=st.dates(date(1850, 1, 1), date(2030, 12, 31)),
       today=st.dates(date(1990, 1, 1), date(2030, 12, 31)),
       low=st.one_of(st.none(), st.integers(0, 150)), span=st.integers(0, 30))
def test_an_age_range_is_exactly_a_birth_date_range(born: date, today: date, low: int | None,
                                                    span: int) -> None:
    # given an age range [low, high] (either end open)
    high = None if low is None else low + span
    earliest, latest = birth_dates_for_ages(low, high, today)
    # then being in the age range is being born within the date range, leap days included
    age = age_on(born, today)
    in_ages = (low is None or age >= low) and (high is None or age <= high)
    in_dates = (earliest is None or born >= earliest) and (latest is None or born <= latest)
    assert in_ages == in_dates


@given(day=st.dates(date(1900, 1, 1), date(2100, 12, 31)), months=st.integers(0, 24))
def test_adding_months_keeps_the_day_or_clamps_to_the_month_end(day: date, months: int) -> None:
    later = add_months(day, months)
    assert (later.year * 12 + later.month) - (day.year * 12 + day.month) == months
    assert later.day == day.day or (later.day < day.day and
                                    (later + timedelta(days=1)).month != later.month)


def test_someone_born_on_the_29th_of_february_turns_a_year_older_on_the_1st_of_march() -> None:
    assert years_before(date(2025, 2, 28), 1) == date(2024, 2, 28)
    assert age_on(date(2024, 2, 29), date(2025, 2, 28)) == 0
    assert age_on(date(2024, 2, 29), date(2025, 3, 1)) == 1
    assert age_on(date(2024, 2, 29), date(2028, 2, 29)) == 4  # a leap year: on the day
    # and the Age filter says the same: not 1 on 28 February, 1 on 1 March
    assert birth_dates_for_ages(1, None, date(2025, 2, 28))[1] < date(2024, 2, 29)
    assert birth_dates_for_ages(1, None, date(2025, 3, 1))[1] >= date(2024, 2, 29)


@given(born_year=st.sampled_from([y for y in range(1904, 2030, 4) if y % 100 or y % 400 == 0]),
       years=st.integers(1, 100), day=st.dates(date(1904, 1, 1), date(2131, 12, 31)))
def test_a_leapling_ages_on_1_march_in_common_years_and_on_29_february_in_leap_years(
        born_year: int, years: int, day: date) -> None:
    # given someone born on 29 February
    born = date(born_year, 2, 29)
    year = born_year + years
    # then the day they turn `years` is the anniversary if it exists, else 1 March
    turns = birthday_in(born, year)
    assert turns == (date(year, 2, 29) if calendar.isleap(year) else date(year, 3, 1))
    assert age_on(born, turns) == years and age_on(born, turns - timedelta(days=1)) == years - 1
    # and on any day, the age and the Age filter's birth-date range agree
    if day >= born:
        age = age_on(born, day)
        earliest, latest = birth_dates_for_ages(age, age, day)
        assert earliest is not None and latest is not None and earliest <= born <= latest


def test_an_unknown_field_is_refused_with_the_valid_fields_named() -> None:
    with pytest.raises(ListError) as refused:
        parse_condition("Shoe Size", "is equal to", "9")
    assert "unknown field 'Shoe Size'" in str(refused.value)
    assert "Payor" in str(refused.value) and "Next Appointment Date" in str(refused.value)


def test_an_action_the_field_does_not_have_is_refused_with_its_actions_named() -> None:
    with pytest.raises(ListError) as refused:
        parse_condition("Payor", "greater than", "A")
    message = str(refused.value)
    assert "action not valid 'greater than' for Payor" in message
    assert "contains, is equal to, is not equal to, is empty, is not empty" in message


def test_appointment_fields_are_refused_in_a_patient_focused_list() -> None:
    with pytest.raises(ListError, match="in a patient-focused list"):
        parse_condition("Appt Status", "is equal to", "Confirmed", Focus.PATIENT)


@pytest.mark.parametrize(("field", "action", "value", "canonical"), [
    ("Payor", "contains", " Medicare ; Anthem ;", "Medicare;Anthem"),
    ("Phone (M)", "contains", "(512) 555-01", "51255501"),
    ("Next Appointment Date", "in next 14 days", "", "14"),
    ("Next Appointment Date", "not in one month", "ignored", ""),
    ("Age", "between", "70 and 65", None),
    ("Date of Birth", "between", "01/02/1950..1960-12-31", "1950-01-02..1960-12-31"),
    ("A&R Count", ">", "2", "2"),
])
def test_filter_values_are_put_in_one_canonical_form(field: str, action: str, value: str,
                                                     canonical: str | None) -> None:
    if canonical is None:
        with pytest.raises(ListError, match="must not exceed"):
            parse_condition(field, action, value)
        return
    assert parse_condition(field, action, value).value == canonical
