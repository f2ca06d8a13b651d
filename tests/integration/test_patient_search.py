"""A patient calls back: staff find them by phone or name and read their summary — on SQLite
and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from domain.errors import NotFound
from projections.patient_search import SearchTextError
from tests.patient_data import (
    APPOINTMENT_HEADER,
    NOW,
    PATIENT_HEADER,
    PROVIDER_HEADER,
    Backend,
    database_url,
    open_backend,
    patient_row,
    write_csv,
)


def _instant(days_ago: int) -> str:
    return (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture(params=["sqlite", "postgres"])
def callers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(database_url(request, tmp_path)) as backend:
        service = backend.service
        service.import_file("providers", write_csv(tmp_path / "pr.csv", PROVIDER_HEADER, [
            ["D1", "Dr. Adams", "North", "Yes"]]))
        service.import_file("patients", write_csv(tmp_path / "p.csv", PATIENT_HEADER, [
            patient_row("P1", "Ann", "Lee", "1950-02-03", middle="B", mobile="512-555-0101",
                        email="ann@example.com", payor="Medicare", groups="Staff"),
            patient_row("P2", "Ann", "Lee", "1960-01-01", home="512-555-0102"),
            patient_row("P3", "Ann", "Lee", "1970-01-01", middle="C", mobile="512-555-0103"),
            patient_row("P4", "Bob", "Lee", "1980-01-01", mobile="512-555-0101"),
            patient_row("P5", "Zoë", "Núñez", "1990-01-01", mobile="312-555-0199"),
            patient_row("P6", "Ann", "Leeds", "1955-01-01", mobile="312-555-0198"),
        ]))
        service.import_file("appointments", write_csv(tmp_path / "a.csv", APPOINTMENT_HEADER, [
            ["A1", "P2", "2024-03-01 10:00", "D1", "Main", "Office Visit", "Confirmed", ""],
            ["A2", "P3", "2022-01-10 10:00", "D1", "Main", "Office Visit", "Checked-In", ""],
            ["A3", "P1", "2025-03-20 09:30", "D1", "North Office", "Flu Shot", "Scheduled",
             "Bring card"],
            ["A4", "P1", "2025-03-21 09:30", "D1", "North Office", "Lab", "Canceled", ""],
            ["A5", "P1", "2025-01-02 09:30", "D1", "North Office", "Lab", "Checked-In", ""],
        ]))
        service.import_file("care-gaps", write_csv(
            tmp_path / "g.csv", ["Patient ID", "Measure", "Opened", "Closed"], [
                ["P1", "Imm: Missing Influenza Vaccination", "2024-10-01", ""],
                ["P1", "Diabetes: HbA1c Overdue", "2024-01-01", "2024-06-01"]]))
        for pid, days in (("P1", 30), ("P2", 100), ("P5", 5), ("P6", 1)):
            backend.db.execute("INSERT INTO patient_contacts (patient_id, last_contacted_at)"
                               " VALUES (?, ?)", (pid, _instant(days)))
        yield backend


def hits(backend: Backend, text: str) -> list[str]:
    return [h.patient_id for h in backend.service.search(text).hits]


@pytest.mark.parametrize("typed", ["512-555-0101", "(512) 555-0101", "5125550101",
                                   "512 555 0101", "1-512-555-0101"])
def test_a_ten_digit_phone_finds_the_patient_however_it_is_typed(callers: Backend,
                                                                typed: str) -> None:
    # Bob shares Ann's number but was never contacted nor confirmed: not searched
    assert hits(callers, typed) == ["P1"]


def test_a_single_hit_opens_the_patient_summary(callers: Backend) -> None:
    result = callers.service.search("512-555-0101")
    summary = result.summary
    assert summary is not None and summary.patient_id == "P1"
    assert (summary.name, summary.date_of_birth, summary.age) == ("Lee, Ann B", "1950-02-03", 75)
    assert summary.groups == ("Staff",)


def test_a_partial_number_matches_mobile_or_home_in_name_order(callers: Backend) -> None:
    # Ann (P2, no middle name, home phone) sorts before Ann B (P1)
    result = callers.service.search("555-010")
    assert [h.patient_id for h in result.hits] == ["P2", "P1"]
    assert result.summary is None


def test_search_covers_recent_contacts_and_confirmed_appointments_only(callers: Backend) -> None:
    # P2: contacted 100 days ago, but a confirmed appointment a year ago: found
    assert hits(callers, "5125550102") == ["P2"]
    # P3: a checked-in visit three years ago only: not found
    assert hits(callers, "5125550103") == []


def test_a_name_search_wants_every_word_in_the_name(callers: Backend) -> None:
    assert hits(callers, "Lee, Ann") == ["P2", "P1", "P6"]
    assert hits(callers, "ann b") == ["P1"]
    assert hits(callers, "núñez") == ["P5"]
    assert hits(callers, "NÚÑEZ zoë") == ["P5"]


@pytest.mark.parametrize("typed", ["Nunez", "NUNEZ zoe", "Zoe", "núnez", "ZOË NÚÑEZ"])
def test_a_name_search_ignores_accents_as_well_as_case(callers: Backend, typed: str) -> None:
    # Zoë Núñez is found however the caller's name is typed, accents or not
    assert hits(callers, typed) == ["P5"]


def test_a_name_typed_with_accents_finds_the_name_stored_without(callers: Backend,
                                                                 tmp_path: Path) -> None:
    # given María Garcia, stored without an accent on Garcia, recently contacted
    callers.service.import_file("patients", write_csv(tmp_path / "g.csv", PATIENT_HEADER, [
        patient_row("G1", "Maria", "Garcia", "1980-05-05")]))
    callers.db.execute("INSERT INTO patient_contacts (patient_id, last_contacted_at)"
                       " VALUES (?, ?)", ("G1", _instant(3)))
    # then "García" and "MARÍA" find her, and she sorts with the other G names
    assert hits(callers, "García") == ["G1"]
    assert hits(callers, "MARÍA garcía") == ["G1"]


def test_names_stored_before_accent_folding_are_found_after_the_upgrade(
        callers: Backend, tmp_path: Path) -> None:
    # given a read model built by the version before (schema 2), whose folded name columns
    # kept the accents
    db = callers.db
    db.execute("UPDATE patients SET first_f = 'zoë', last_f = 'núñez' WHERE patient_id = 'P5'")
    db.execute("UPDATE projection_schema SET version = 2 WHERE name = 'patients'")
    assert hits(callers, "Nunez") == []  # (the stale row, as the old version left it)
    # when the new version opens the database
    with open_backend(callers.service.settings.database_url) as upgraded:
        upgraded.service.catch_up()
        # then the patient tables were rebuilt from the history: Núñez is found as Nunez
        assert hits(upgraded, "Nunez") == ["P5"]


def test_search_shows_at_most_100_patients_and_says_there_are_more(
        callers: Backend, tmp_path: Path) -> None:
    many = [patient_row(f"S{n:03d}", f"Al{n:03d}", "Smith") for n in range(105)]
    callers.service.import_file("patients", write_csv(tmp_path / "s.csv", PATIENT_HEADER, many))
    for row in many:
        callers.db.execute("INSERT INTO patient_contacts (patient_id, last_contacted_at)"
                           " VALUES (?, ?)", (row[0], _instant(3)))
    result = callers.service.search("smith")
    assert len(result.hits) == 100 and result.more
    assert result.hits[0].name == "Smith, Al000" and result.hits[-1].name == "Smith, Al099"


def test_too_little_to_search_on_is_refused(callers: Backend) -> None:
    with pytest.raises(SearchTextError, match="at least 4 digits"):
        callers.service.search("55")
    with pytest.raises(SearchTextError, match="phone number or a name"):
        callers.service.search(" , ")


def test_the_summary_tells_why_the_patient_was_contacted(callers: Backend) -> None:
    # given opt-outs and communications written by the preferences and campaign projections
    db = callers.db
    db.execute("INSERT INTO patient_opt_outs (patient_id, type, last_day, reason) VALUES"
               " (?, ?, ?, ?)", ("P1", "Health Reminders - Text", None, "Patient request"))
    db.execute("INSERT INTO patient_opt_outs (patient_id, type, last_day, reason) VALUES"
               " (?, ?, ?, ?)", ("P1", "Health Reminders - Email", "2025-01-01", "Expired"))
    for comm, days, status in (("C1", 10, "Delivered"), ("C2", 2, "Unsuccessful"),
                               ("C3", 120, "Delivered")):
        db.execute(
            "INSERT INTO communication_history (communication_id, patient_id, campaign_name,"
            " campaign_description, channel, status, reason, attempts, first_attempt_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (comm, "P1", f"Flu {comm}", "Flu shots are here", "text", status,
             "Health Reminder", 1, _instant(days), _instant(days)))
    # when staff open Ann's summary
    summary = callers.service.summary("P1")
    # then they see upcoming appointments (not the canceled one), open care gaps, current
    # opt-outs, and the last 90 days of communications, newest first
    assert [(a.appointment_id, a.starts_at, a.provider, a.facility, a.status)
            for a in summary.upcoming_appointments] == [
        ("A3", "2025-03-20 09:30", "Dr. Adams", "North Office", "Scheduled")]
    assert [g.measure for g in summary.open_care_gaps] == ["Imm: Missing Influenza Vaccination"]
    assert [(o.type, o.last_day) for o in summary.opt_outs] == [("Health Reminders - Text", None)]
    assert [(c.communication_id, c.status, c.description, c.provider, c.attempts)
            for c in summary.communications] == [
        ("C2", "Unsuccessful", "Flu shots are here", "Dr. Adams", 1),
        ("C1", "Delivered", "Flu shots are here", "Dr. Adams", 1)]


def test_an_unknown_patient_has_no_summary(callers: Backend) -> None:
    with pytest.raises(NotFound, match="no patient with id 'P404'"):
        callers.service.summary("P404")
