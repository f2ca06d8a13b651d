"""The audit record itself: append-only by construction, and always recordable whatever a
caller passes (texts cleaned to one clipped line, at most 1,000 patient ids kept with the
true count)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic
from hypothesis import given
from hypothesis import strategies as st

from bus.public_events import RULES, Internal
from domain.audit import (
    MAX_DETAIL,
    MAX_PATIENT_IDS,
    MAX_TEXT,
    AuditEntry,
    InvalidAuditQuery,
    Who,
    clean_patient_ids,
    one_line,
    parse_instant,
    record_entry,
)

AT = datetime(2026, 11, 24, 15, tzinfo=UTC)
WHO = Who(user_id="u-1", username="maya", roles="admin", via="token", source="10.0.0.7")


def _event_names(aggregate: type) -> set[str]:
    return {name for name, cls in vars(aggregate).items()
            if isinstance(cls, type) and issubclass(cls, Aggregate.Event) and name != "Event"}


def test_an_entry_has_one_event_so_nothing_can_change_or_delete_it() -> None:
    # eventsourcing declares an unused default "Created" beside a named creation event.
    assert _event_names(AuditEntry) - {"Created"} == {"Recorded"}
    entry = record_entry(AT, WHO, "patients.search", "allowed", patient_ids=["P1"])
    assert [type(e).__name__ for e in entry.collect_events()] == ["Recorded"]
    # No command method: every public callable is eventsourcing's own.
    own = {n for n, v in vars(AuditEntry).items() if callable(v) and not n.startswith("_")
           and not isinstance(v, type)}
    assert own == set()


def test_the_record_never_goes_on_the_public_topic() -> None:
    assert isinstance(RULES[get_topic(AuditEntry.Recorded)], Internal)  # type: ignore[attr-defined]


def test_twelve_hundred_patients_keep_the_first_thousand_and_the_true_count() -> None:
    ids = [f"P{i}" for i in range(1200)]
    entry = record_entry(AT, WHO, "lists.run", "allowed", patient_ids=ids)
    assert entry.patient_ids == ids[:MAX_PATIENT_IDS]
    assert entry.patient_count == 1200


def test_a_patient_named_twice_counts_once_and_a_bare_id_is_one_patient() -> None:
    assert clean_patient_ids(["P1", "P2", "P1", "", " P2 "]) == (["P1", "P2"], 2)
    assert clean_patient_ids("P12") == (["P12"], 1)  # not "P", "1", "2"
    assert clean_patient_ids(None) == ([], 0)


def test_an_unknown_outcome_is_kept_and_marked_rather_than_refused() -> None:
    entry = record_entry(AT, WHO, "x.y", "exploded")
    assert entry.outcome == "other: exploded"
    assert record_entry(AT, WHO, "x.y", "denied").outcome == "denied"


def test_the_time_is_the_clock_s_in_utc() -> None:
    central = timezone(timedelta(hours=-6))
    entry = record_entry(AT.astimezone(central), WHO, "auth.login", "allowed")
    assert entry.at == AT and entry.at.tzinfo == UTC


@given(st.text(), st.integers(min_value=1, max_value=400))
def test_any_text_becomes_one_clipped_line_of_valid_utf8(text: str, limit: int) -> None:
    line = one_line(text, limit)
    assert len(line) <= limit
    assert "\n" not in line and "\r" not in line and "\x00" not in line
    assert all(ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F for c in line)
    line.encode("utf-8")  # no lone surrogate left


@given(username=st.text(), target=st.text(), detail=st.text(max_size=2000),
       action=st.text(), outcome=st.text(),
       ids=st.lists(st.one_of(st.text(), st.integers(), st.none()), max_size=50))
def test_a_record_is_made_whatever_the_caller_passes(
        username: str, target: str, detail: str, action: str, outcome: str,
        ids: list[object]) -> None:
    who = Who(user_id="u", username=username, roles="", via="cli", source="cli")
    entry = record_entry(AT, who, action, outcome, patient_ids=ids, target=target,
                         detail=detail)
    assert len(entry.detail) <= MAX_DETAIL and len(entry.target) <= MAX_TEXT
    assert len(entry.username) <= MAX_TEXT and entry.action
    assert entry.patient_count == len(entry.patient_ids) <= len(ids)


def test_a_long_detail_is_clipped_and_says_so() -> None:
    entry = record_entry(AT, WHO, "campaign.activate", "failed", detail="x" * 1000)
    assert len(entry.detail) == MAX_DETAIL and entry.detail.endswith("…")


def test_a_forged_second_line_stays_on_the_first() -> None:
    entry = record_entry(AT, WHO, "auth.login", "failed",
                         target="eve\n2026-11-24 admin auth.login allowed")
    assert entry.target == "eve 2026-11-24 admin auth.login allowed"


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-24", datetime(2026, 11, 24, tzinfo=UTC)),
    ("2026-11-24T09:00", datetime(2026, 11, 24, 9, tzinfo=UTC)),
    ("2026-11-24T09:00Z", datetime(2026, 11, 24, 9, tzinfo=UTC)),
    ("2026-11-24T09:00-06:00", datetime(2026, 11, 24, 15, tzinfo=UTC)),
])
def test_filter_dates_are_iso_8601_and_a_time_without_zone_is_utc(
        text: str, expected: datetime) -> None:
    assert parse_instant(text, "since") == expected


def test_a_bad_date_is_refused_in_one_line() -> None:
    with pytest.raises(InvalidAuditQuery) as refused:
        parse_instant("yesterday\nor so", "since")
    assert "\n" not in str(refused.value) and str(refused.value).startswith("since ")
    with pytest.raises(InvalidAuditQuery):
        parse_instant("0001-01-01T00:00+01:00", "since")  # before year 1 in UTC
    assert parse_instant("  ", "until") is None and parse_instant(None, "until") is None


@given(st.one_of(st.text(max_size=40), st.datetimes(timezones=st.timezones()).map(
    lambda d: d.isoformat())))
def test_any_filter_text_is_a_utc_instant_or_a_one_line_refusal(text: str) -> None:
    try:
        value = parse_instant(text, "since")
    except InvalidAuditQuery as refused:
        assert "\n" not in str(refused)
        return
    assert value is None or value.tzinfo == UTC
