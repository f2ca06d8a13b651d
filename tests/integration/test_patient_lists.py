"""Building lists of patients: scope, filters, sorting, paging, saved views, and the step
from a list to a campaign audience — on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from domain.channels import Channel
from domain.errors import NotFound
from domain.lists import Focus, ListError, build_query
from domain.lists_views import ViewError
from projections.db import open_database
from projections.patient_queries import ITEM_SOURCES, count, list_items, select_ids
from projections.patients import DDL
from projections.patients_views import PageViewsProjection
from projections.runner import rebuild
from tests.patient_data import (
    APPOINTMENT_HEADER,
    NOW,
    PATIENT_HEADER,
    PROVIDER_HEADER,
    Backend,
    clear_read_model,
    database_url,
    load_facts,
    open_backend,
    patient_row,
    pick,
    write_csv,
)
from tests.unit.test_filters_properties import PROVIDERS, TODAY, expected_ids, scenario

ADDRESS = ("1 Main St", "Austin", "TX", "78701")


def _practice(folder: Path) -> dict[str, Path]:
    """Nine patients; seven related to an active subscriber (P08's PCP is inactive, P09 has
    nobody). Today is Monday 10 March 2025."""
    return {
        "providers": write_csv(folder / "providers.csv", PROVIDER_HEADER, [
            ["D1", "Dr. Adams", "North Clinic", "Yes"], ["D2", "Dr. Baker", "South Clinic", "Yes"],
            ["D3", "Dr. Cole", "North Clinic", "No"]]),
        "patients": write_csv(folder / "patients.csv", PATIENT_HEADER, [
            patient_row("P01", "Ann", "Lee", "1950-02-03", mobile="512-555-0101",
                        email="ann@example.com", payor="Medicare", care_manager="Kim Lee",
                        address=ADDRESS),
            patient_row("P02", "Bob", "Ray", "1990-03-04", mobile="512-555-0102",
                        home="512-555-0112", payor="Anthem", pcp="D2"),
            patient_row("P03", "Cy", "Cole", "1960-03-11", email="cy@example.com",
                        payor="Aetna", address=ADDRESS),
            patient_row("P04", "Dee", "Kim", "1940-12-31", mobile="512-555-0104",
                        status="Inactive", payor="Medicare Advantage"),
            patient_row("P05", "Eve", "Fox", "1955-06-01", mobile="512-555-0105",
                        payor="O'Brien %_ Health", reminders_only="yes", groups="Staff"),
            patient_row("P06", "Fay", "Gray", "1980-01-01", pcp="D3", email="fay@example.com"),
            patient_row("P07", "Gus", "Hale", "2000-01-01", mobile="512-555-0107", pcp="D3",
                        groups="Staff;Diabetes Class"),
            patient_row("P08", "Hal", "Ives", "1945-01-01", mobile="512-555-0108", pcp="D3"),
            patient_row("P09", "Ida", "Jay", "1945-01-01", pcp=""),
        ]),
        "appointments": write_csv(folder / "appointments.csv", APPOINTMENT_HEADER, [
            ["A1", "P01", "2025-03-12 10:00", "D1", "Main", "Office Visit", "Scheduled",
             "Bring card"],
            ["A2", "P02", "2025-03-14 09:00", "D2", "Main", "Lab", "Confirmed", ""],
            ["A3", "P03", "2025-03-13 11:00", "D1", "Main", "Office Visit", "Canceled", ""],
            ["A4", "P05", "2025-03-20 15:00", "D1", "Main", "Follow-up", "Scheduled", ""],
            ["A5", "P06", "2025-03-11 08:30", "D2", "Main", "Office Visit", "Rescheduled", ""],
            ["A6", "P06", "2024-10-01 08:30", "D2", "Main", "Office Visit", "Checked-In", ""],
            ["A7", "P01", "2025-03-17 16:00", "D2", "North", "Flu Shot", "Scheduled", ""],
        ]),
        "care-gaps": write_csv(folder / "gaps.csv", ["Patient ID", "Measure", "Opened", "Closed"], [
            ["P01", "Imm: Missing Influenza Vaccination", "2024-10-01", ""],
            ["P01", "Diabetes: HbA1c Overdue", "2024-06-01", ""],
            ["P02", "Imm: Missing Influenza Vaccination", "2024-10-01", ""],
            ["P03", "Imm: Missing Influenza Vaccination", "2024-10-01", "2024-11-01"],
            ["P05", "Screening: Mammogram Overdue", "2024-01-01", ""]]),
        "conditions": write_csv(folder / "conditions.csv", ["Patient ID", "Condition"], [
            ["P01", "Diabetes Type 2"], ["P02", "Asthma"]]),
        "billing": write_csv(folder / "billing.csv", ["Patient ID", "Provider ID"],
                             [["P07", "D1"]]),
    }


@pytest.fixture(params=["sqlite", "postgres"])
def practice(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(database_url(request, tmp_path), campaign_size_cap=4) as backend:
        for kind, path in _practice(tmp_path / "files").items():
            backend.service.import_file(kind, path)
        yield backend


def ids(backend: Backend, **query: Any) -> list[str]:
    result = backend.service.list(build_query(page_size=1000, **query))
    return pick(result.rows, "patient_id")


# -- who shows up --------------------------------------------------------------------------


def test_all_subscribers_covers_pcp_appointment_and_billing_relations(practice: Backend) -> None:
    # P06 only through an appointment, P07 only through billing; P08's PCP is inactive
    assert sorted(ids(practice)) == ["P01", "P02", "P03", "P04", "P05", "P06", "P07"]


def test_a_chosen_provider_brings_in_patients_related_to_them(practice: Backend) -> None:
    assert sorted(ids(practice, providers=["D2"])) == ["P01", "P02", "P06"]


def test_a_chosen_group_means_its_active_subscribers(practice: Backend) -> None:
    # North Clinic = D1 (active) and D3 (inactive: brings nobody)
    assert sorted(ids(practice, groups=["north clinic"])) == ["P01", "P03", "P04", "P05", "P07"]


# -- filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(("filters", "expected"), [
    (["Payor|contains|medicare;ANTHEM"], ["P01", "P02", "P04"]),
    (["Alerts & Recommendations (A&R)|contains|Imm: Missing Influenza Vaccination"],
     ["P01", "P02"]),
    (["A&R|is not empty"], ["P01", "P02", "P05"]),
    (["Next Appointment Date|not in one month"], ["P03", "P04", "P06", "P07"]),
    (["Next Appointment Date|in next 7 days"], ["P01", "P02"]),
    (["Last Visit|in last 365 days"], ["P06"]),
    (["Patient Status|is equal to|active", "Care Manager|is empty", "Email|is not empty"],
     ["P03", "P06"]),
    (["Phone (M)|is not empty", "Age|greater than|64"], ["P01", "P04", "P05"]),
    (["Age|between|64..69"], ["P03", "P05"]),
    (["Conditions|contains|diabetes"], ["P01"]),
    (["Group|is equal to|staff"], ["P05", "P07"]),
    (["Phone (H)|contains|(512) 555-011"], ["P02"]),
    (["Phone|contains|555-0102"], ["P02"]),
    (["PCP|is equal to|Dr. Baker"], ["P02"]),
    (["Payor|contains|%_"], ["P05"]),
    (["Payor|contains|_"], ["P05"]),
    (["Payor|is equal to|o'brien %_ health"], ["P05"]),
    (["Payor|is not equal to|Medicare"], ["P02", "P03", "P04", "P05", "P06", "P07"]),
])
def test_filters_are_anded_and_match_values_literally(practice: Backend, filters: list[str],
                                                      expected: list[str]) -> None:
    assert sorted(ids(practice, filters=filters)) == expected


def test_last_contacted_reads_the_communications_projection(practice: Backend) -> None:
    # given two patients contacted 10 and 40 days ago (rows the campaign projection writes)
    for pid, days in (("P02", 10), ("P03", 40)):
        at = (NOW - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        practice.db.execute("INSERT INTO patient_contacts (patient_id, last_contacted_at)"
                            " VALUES (?, ?)", (pid, at))
    # then "in last 30 days" finds the first, and the column shows the instant
    assert ids(practice, filters=["Last Contacted|in last 30 days"]) == ["P02"]
    assert sorted(ids(practice, filters=["Last Contacted|not in last 30 days"])) == [
        "P01", "P03", "P04", "P05", "P06", "P07"]


def test_sorting_on_several_keys(practice: Backend) -> None:
    # most care gaps first, then by patient name
    result = practice.service.list(build_query(
        filters=["A&R|is not empty"], sort=["A&R Count:desc", "Patient Name:asc"],
        columns=["name", "ar_count", "ar"]))
    assert result.rows == [
        {"patient_id": "P01", "name": "Lee, Ann", "ar_count": 2,
         "ar": "Diabetes: HbA1c Overdue; Imm: Missing Influenza Vaccination"},
        {"patient_id": "P05", "name": "Fox, Eve", "ar_count": 1,
         "ar": "Screening: Mammogram Overdue"},
        {"patient_id": "P02", "name": "Ray, Bob", "ar_count": 1,
         "ar": "Imm: Missing Influenza Vaccination"},
    ]


def test_pages_share_one_order_and_the_total_counts_all_pages(practice: Backend) -> None:
    pages = [practice.service.list(build_query(page=n, page_size=2)) for n in (1, 2, 3, 4, 5)]
    assert [p.total for p in pages] == [7] * 5
    assert pages[0].pages == 4
    assert [pick(p.rows, "name") for p in pages] == [
        ["Cole, Cy", "Fox, Eve"], ["Gray, Fay", "Hale, Gus"], ["Kim, Dee", "Lee, Ann"],
        ["Ray, Bob"], []]


def test_chosen_columns_are_shown_in_order(practice: Backend) -> None:
    result = practice.service.list(build_query(
        filters=["Patient ID|is equal to|P01"],
        columns=["Patient Name", "Next Appointment Date", "Last Visit", "Conditions", "Group",
                 "Phone (M)", "Appt Reminders Only", "City"]))
    assert result.labels == ("Patient Name", "Next Appointment Date", "Last Visit", "Conditions",
                             "Group", "Phone (M)", "Appt Reminders Only", "City")
    assert result.rows == [{
        "patient_id": "P01", "name": "Lee, Ann", "next_appointment": "2025-03-12 10:00",
        "last_visit": None, "conditions": "Diabetes Type 2", "group": None,
        "mobile": "+15125550101", "appointment_reminders_only": "No", "city": "Austin"}]


def test_unknown_fields_and_actions_are_refused_clearly(practice: Backend) -> None:
    with pytest.raises(ListError, match="unknown field 'Favourite Colour'; valid fields: "):
        build_query(filters=["Favourite Colour|is equal to|blue"])
    with pytest.raises(ListError, match="valid actions: contains, is equal to"):
        build_query(filters=["Payor|between|1..2"])
    with pytest.raises(ListError, match="field|action|value"):
        build_query(filters=["Payor"])


# -- views -----------------------------------------------------------------------------------


def test_patients_ages_65_plus(practice: Backend) -> None:
    result = practice.service.run_view("maya", "Patients Ages 65+")
    assert result.focus == Focus.PATIENT
    assert result.labels == ("Patient Name", "Age", "Date of Birth", "Phone", "Email", "PCP",
                             "Payor")
    assert [(r["name"], r["age"]) for r in result.rows] == [
        ("Fox, Eve", 69), ("Kim, Dee", 84), ("Lee, Ann", 75)]  # Cy turns 65 tomorrow


def test_patients_with_appointments_in_one_week_is_one_row_per_appointment_by_provider(
        practice: Backend) -> None:
    result = practice.service.run_view("maya", "pts w/ appts in 1 week")
    assert result.focus == Focus.APPOINTMENT and result.group_by == "appt_provider"
    assert "Appt Date/Time" in result.labels and "Appt Status" in result.labels
    # not canceled (A3) nor rescheduled (A5), not beyond 7 days (A4); grouped by provider
    assert [(r["appt_provider"], r["appointment_id"], r["appt_datetime"], r["name"],
             r["appt_status"]) for r in result.rows] == [
        ("Dr. Adams", "A1", "2025-03-12 10:00", "Lee, Ann", "Scheduled"),
        ("Dr. Baker", "A2", "2025-03-14 09:00", "Ray, Bob", "Confirmed"),
        ("Dr. Baker", "A7", "2025-03-17 16:00", "Lee, Ann", "Scheduled"),
    ]


def test_a_user_sees_built_ins_own_views_and_views_shared_with_them(practice: Backend) -> None:
    service = practice.service
    # given Maya saves a view
    query = build_query(filters=["Payor|contains|Medicare"])
    saved = service.save_view("maya", "Medicare patients", query)
    # then she sees it after the built-ins; Raj does not
    assert [v.name for v in service.views("maya")] == [
        "Patients Ages 65+", "Pts w/ Appts in 1 week", "Medicare patients"]
    assert [v.name for v in service.views("raj")] == ["Patients Ages 65+",
                                                      "Pts w/ Appts in 1 week"]
    # when she shares it with Raj, he sees it and can run it, but not change it
    shared = service.share_view("maya", "Medicare patients", ["raj", "lin"])
    assert shared.shared_with == ("lin", "raj")
    assert service.find_view("raj", saved.view_id).owner == "maya"
    assert sorted(pick(service.run_view("raj", "medicare patients").rows, "patient_id")) == [
        "P01", "P04"]
    with pytest.raises(ViewError, match="only maya can change"):
        service.update_view("raj", saved.view_id, name="Mine now")
    # and he can keep his own copy under a new name
    copy = service.save_view("raj", "My Medicare list", service.find_view("raj", saved.view_id)
                             .query)
    assert copy.owner == "raj"


def test_a_view_always_runs_on_current_data(practice: Backend, tmp_path: Path) -> None:
    practice.service.save_view("maya", "Anthem", build_query(filters=["Payor|is equal to|Anthem"]))
    assert pick(practice.service.run_view("maya", "Anthem").rows, "patient_id") == ["P02"]
    practice.service.import_file("patients", write_csv(tmp_path / "more.csv", PATIENT_HEADER, [
        patient_row("P10", "Jo", "Zed", payor="Anthem")]))
    assert pick(practice.service.run_view("maya", "Anthem").rows, "patient_id") == ["P02", "P10"]


def test_views_can_be_renamed_updated_and_deleted_by_their_owner(practice: Backend) -> None:
    service = practice.service
    service.save_view("maya", "Flu", build_query(filters=["A&R|contains|influenza"]))
    with pytest.raises(ViewError, match="already have a view called 'Flu'"):
        service.save_view("maya", "flu", build_query())
    taken = re.escape("already have a view called 'Patients Ages 65+'")
    with pytest.raises(ViewError, match=taken):
        service.save_view("maya", "Patients Ages 65+", build_query())
    updated = service.update_view("maya", "Flu", build_query(filters=["A&R|is not empty"]),
                                  name="Any gap")
    assert updated.name == "Any gap" and updated.query.filters[0].field == "ar"
    service.delete_view("maya", "Any gap")
    with pytest.raises(NotFound, match="no view 'Any gap'"):
        service.find_view("maya", "Any gap")


def test_built_in_views_cannot_be_changed_only_copied(practice: Backend) -> None:
    with pytest.raises(ViewError, match="built in and cannot be changed: save it under a new"):
        practice.service.update_view("maya", "Patients Ages 65+", name="Seniors")
    with pytest.raises(ViewError, match="built in and cannot be deleted"):
        practice.service.delete_view("maya", "Patients Ages 65+")


def test_views_replay_from_their_events(practice: Backend) -> None:
    service = practice.service
    service.save_view("maya", "A", build_query(filters=["Payor|contains|a"]))
    service.share_view("maya", "A", ["raj"])
    service.save_view("maya", "B", build_query())
    service.delete_view("maya", "B")
    before = [(v.view_id, v.name, v.shared_with) for v in service.views("maya")]
    rebuild(practice.store, practice.db, [PageViewsProjection()])
    assert [(v.view_id, v.name, v.shared_with) for v in service.views("maya")] == before


# -- from a list to a campaign -----------------------------------------------------------------


def test_the_audience_check_removes_inactive_and_reminders_only_and_counts_missing_contacts(
        practice: Backend) -> None:
    check = practice.service.audience_from(build_query(), Channel.TEXT)
    assert (check.selected, check.inactive, check.appointment_reminders_only) == (7, 1, 1)
    assert (check.removed_inactive, check.removed_appointment_reminders_only) == (1, 1)
    assert check.lacking_contact == 2  # P03 and P06 have no mobile
    assert check.patient_ids == ("P07", "P01", "P02")  # list order: by name
    assert not check.over_cap and check.cap_message is None
    assert "2 patients have no mobile phone and cannot get a text: they are left out." \
        in check.messages


def test_staff_may_keep_inactive_patients(practice: Backend) -> None:
    check = practice.service.audience_from(build_query(), Channel.TEXT, remove_inactive=False)
    assert check.patient_ids == ("P07", "P04", "P01", "P02")
    assert (check.removed_inactive, check.removed_appointment_reminders_only) == (0, 1)


@pytest.mark.parametrize(("channel", "expected", "lacking"), [
    (Channel.EMAIL, ("P03", "P06", "P01"), 2),
    (Channel.PHONE, ("P07", "P01", "P02"), 2),
    (Channel.LETTER, ("P03", "P01"), 3),
])
def test_each_channel_needs_its_own_contact(practice: Backend, channel: Channel,
                                            expected: tuple[str, ...], lacking: int) -> None:
    check = practice.service.audience_from(build_query(), channel)
    assert (check.patient_ids, check.lacking_contact) == (expected, lacking)


def test_the_campaign_size_cap_applies_with_a_clear_message(practice: Backend) -> None:
    # the practice fixture caps campaigns at 4 patients
    check = practice.service.audience_from(build_query(), Channel.PHONE, remove_inactive=False,
                                           remove_appointment_reminders_only=False)
    assert check.over_cap and check.size == 5 and check.patient_ids == ()
    assert check.cap_message == ("This list has 5 patients to contact; a campaign can contact "
                                 "at most 4. Narrow the list (by provider, group or care gap) "
                                 "and try again.")


def test_chosen_patients_keep_their_order_and_unknown_ids_are_counted(practice: Backend) -> None:
    check = practice.service.audience_from(["P02", "P99", "P01", "P02", "P04"], "text")
    assert check.patient_ids == ("P02", "P01")
    assert (check.selected, check.unknown, check.removed_inactive) == (3, 1, 1)


def test_chosen_patients_must_be_on_the_list_they_were_chosen_from(practice: Backend) -> None:
    # given the list of D2's patients (P01, P02, P06) and ids chosen from it, plus P04 (on
    # another provider's list) and P08 (whose PCP is inactive: on no list at all)
    d2 = build_query(providers=["D2"])
    # when the chosen ids are checked against that list
    check = practice.service.audience_from(["P02", "P04", "P01", "P08"], Channel.TEXT,
                                           within=d2)
    # then only the ones on it are kept, and the others are counted and named as left out
    assert check.patient_ids == ("P02", "P01")
    assert (check.selected, check.unknown) == (2, 2)
    assert "2 chosen patient ids are not on this list: left out." in check.messages


def test_an_appointment_list_gives_each_patient_once(practice: Backend) -> None:
    # A1 and A7 are both Ann's; A3 (Cy) and A5 (Fay) count too, but they have no mobile
    query = build_query(focus=Focus.APPOINTMENT, filters=["Appt Date/Time|in next 7 days"])
    check = practice.service.audience_from(query, Channel.TEXT)
    assert check.patient_ids == ("P01", "P02")
    assert (check.selected, check.lacking_contact) == (4, 2)


# -- the directory port --------------------------------------------------------------------


def test_the_directory_reads_contacts_from_the_patient_list(practice: Backend) -> None:
    directory = practice.service.directory()
    contacts = directory.contacts(["P05", "P99"])
    assert list(contacts) == ["P05"]
    assert contacts["P05"].mobile == "+15125550105"
    assert contacts["P05"].appointment_reminders_only
    assert directory.default_audience(Channel.TEXT) == ["P01", "P02", "P05", "P07", "P08"]
    assert directory.default_audience(Channel.LETTER) == ["P01", "P03"]
    assert directory.patients_with_mobile("+15125550102") == ["P02"]


# -- the same meaning on PostgreSQL ----------------------------------------------------------


@pytest.fixture
def pg_read_model(pg_url: str) -> Iterator[Any]:
    db = open_database(pg_url)
    db.migrate(DDL)
    collation = db.fetchone("SELECT datcollate FROM pg_database"
                            " WHERE datname = current_database()")
    yield db, str(collation[0] if collation else "")
    db.close()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
@given(case=scenario())
def test_postgres_filters_match_the_python_meaning(pg_read_model: Any, case: Any) -> None:
    db, collation = pg_read_model
    facts, query = case
    with db.transaction() as tx:
        clear_read_model(tx)
        load_facts(tx, facts, PROVIDERS)
        found = [k[0] for k in select_ids(tx, "postgres", query, TODAY)]
    expected = expected_ids(facts, query)
    if collation.upper() in ("C", "POSIX", "C.UTF-8", "C.UTF8"):
        assert found == expected
    else:  # text sorts by the server's locale: compare membership only
        assert sorted(found) == sorted(expected)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
@given(case=scenario(only=tuple(ITEM_SOURCES)))
def test_postgres_text_filters_resolved_to_values_mean_the_same(pg_read_model: Any,
                                                                case: Any) -> None:
    """Given patients with tricky A&R, conditions and payors, when a filter on them is
    resolved to the values it matches (and answered from an index), then it selects
    exactly the patients the plain substring or equality test would."""
    db, _ = pg_read_model
    facts, query = case
    with db.transaction() as tx:
        clear_read_model(tx)
        load_facts(tx, facts, PROVIDERS)
        assert set(list_items(tx, "postgres", query)) == {
            c.field for c in query.filters if c.field in ITEM_SOURCES}
        found = {k[0] for k in select_ids(tx, "postgres", query, TODAY)}
        total = count(tx, "postgres", query, TODAY)
    expected = set(expected_ids(facts, query))
    assert found == expected
    assert total == len(expected)
