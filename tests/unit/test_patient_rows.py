"""One imported row at a time: every value checked and put in its canonical form; every
problem named (never the value: reasons are printed and PHI must not leak)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.patients import (
    CHUNK_ROWS,
    SPECS,
    HeaderError,
    ImportKind,
    PatientImport,
    RowRejected,
    map_header,
    row_hash,
    validate_row,
)
from domain.patients_fields import (
    InvalidValue,
    normalize_appointment_status,
    normalize_birth_date,
    normalize_datetime,
    normalize_email,
    normalize_phone,
    normalize_postal_code,
    phone_digits,
)

TODAY = date(2025, 3, 10)
PATIENTS = SPECS[ImportKind.PATIENTS]
HEADER = ["Patient ID", "First Name", "Last Name", "DOB", "Mobile Phone", "Email", "Status",
          "Shoe Size"]


def _row(**cells: str) -> list[str]:
    base = {"Patient ID": "P1", "First Name": "Ann", "Last Name": "Lee", "DOB": "1950-02-03",
            "Mobile Phone": "", "Email": "", "Status": "", "Shoe Size": "9"}
    base.update(cells)
    return [base[h] for h in HEADER]


def _record(**cells: str) -> dict[str, str | None]:
    header = map_header(PATIENTS, HEADER)
    return dict(zip(PATIENTS.column_names, validate_row(header, _row(**cells), TODAY),
                    strict=True))


@pytest.mark.parametrize("written", [
    "(512) 555-0123", "512-555-0123", "512.555.0123", "5125550123", "1-512-555-0123",
    "+1 512 555 0123", " 512 555 0123 ",
])
def test_a_us_phone_written_any_usual_way_becomes_e164(written: str) -> None:
    assert normalize_phone(written, "mobile phone") == "+15125550123"


def test_twilio_magic_test_numbers_are_valid_phones() -> None:
    assert normalize_phone("+1 500 555 0006", "mobile phone") == "+15005550006"


@pytest.mark.parametrize("written", ["555-0123", "012-555-0123", "(512) 555-012", "call me",
                                     "+1 (555) 010-0123"])
def test_a_phone_that_is_not_a_real_number_is_refused_without_repeating_it(written: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        normalize_phone(written, "mobile phone")
    assert str(refused.value).startswith("mobile phone is not")
    assert written.strip() not in str(refused.value)


@given(st.from_regex(r"\A[2-9][0-9]{2}[2-9][0-9]{6}\Z"))
def test_the_fast_phone_path_agrees_with_phonenumbers(digits: str) -> None:
    # given any 10-digit North American number
    parsed = phonenumbers.parse(digits, "US")
    reference = phonenumbers.is_valid_number(parsed)
    # when our normaliser reads it, then it accepts exactly what phonenumbers accepts
    try:
        assert normalize_phone(digits, "phone") == f"+1{digits}"
        assert reference
    except InvalidValue:
        assert not reference


def test_staff_typed_phones_reduce_to_national_digits() -> None:
    assert phone_digits("(512) 555-0123") == "5125550123"
    assert phone_digits("1-512-555-0123") == "5125550123"
    assert phone_digits("555-01") == "55501"


@pytest.mark.parametrize(("written", "canonical"), [
    ("ann.lee@Example.COM", "ann.lee@example.com"),
    ("o'neil+flu@mail.example.org", "o'neil+flu@mail.example.org"),
])
def test_a_valid_email_keeps_its_local_part_and_lowercases_its_domain(written: str,
                                                                     canonical: str) -> None:
    assert normalize_email(written) == canonical


@pytest.mark.parametrize("written", ["ann", "ann@", "@example.com", "ann@example",
                                     "ann@@example.com", "ann@exa mple.com", "ann..lee@x.com",
                                     "ann@-x.com", "ann@x.c0m"])
def test_an_invalid_email_is_refused(written: str) -> None:
    with pytest.raises(InvalidValue, match="email is not a valid email address"):
        normalize_email(written)


@pytest.mark.parametrize(("written", "iso"), [("1950-02-03", "1950-02-03"),
                                              ("02/03/1950", "1950-02-03"),
                                              ("2/3/1950", "1950-02-03")])
def test_birth_dates_are_read_as_iso_or_us_dates(written: str, iso: str) -> None:
    assert normalize_birth_date(written, TODAY) == iso


@pytest.mark.parametrize(("written", "problem"), [
    ("2025-03-11", "in the future"), ("1899-12-31", "before 1900"),
    ("02/30/1950", "not a real date"), ("02/03/50", "not a date"), ("Feb 3 1950", "not a date"),
])
def test_impossible_birth_dates_are_refused(written: str, problem: str) -> None:
    with pytest.raises(InvalidValue, match=problem):
        normalize_birth_date(written, TODAY)


@pytest.mark.parametrize(("written", "canonical"), [
    ("2025-03-12 09:30", "2025-03-12 09:30"), ("2025-03-12T14:05:00", "2025-03-12 14:05"),
    ("03/12/2025 2:05 PM", "2025-03-12 14:05"), ("03/12/2025 12:15 am", "2025-03-12 00:15"),
])
def test_appointment_times_are_local_date_and_minute(written: str, canonical: str) -> None:
    assert normalize_datetime(written, "appointment date/time") == canonical


@pytest.mark.parametrize("written", ["2025-03-12", "2025-03-12 25:00", "2025-03-12 13:00 PM"])
def test_unreadable_appointment_times_are_refused(written: str) -> None:
    with pytest.raises(InvalidValue):
        normalize_datetime(written, "appointment date/time")


def test_appointment_statuses_have_one_spelling_each() -> None:
    assert normalize_appointment_status("cancelled") == "Canceled"
    assert normalize_appointment_status("No Show") == "No-Show"
    assert normalize_appointment_status("checked_in") == "Checked-In"
    assert normalize_appointment_status("") == "Scheduled"
    with pytest.raises(InvalidValue, match="must be one of"):
        normalize_appointment_status("maybe")


def test_zip_codes_are_five_or_nine_digits() -> None:
    assert normalize_postal_code("787011234") == "78701-1234"
    with pytest.raises(InvalidValue):
        normalize_postal_code("7870")


def test_header_names_are_matched_by_letters_and_aliases_and_extras_reported() -> None:
    # given a header in the clinic's own words, with a column we do not know
    header = map_header(PATIENTS, HEADER)
    # then the known columns are found and the unknown one is reported as ignored
    assert header.positions[PATIENTS.column_names.index("date_of_birth")] == 3
    assert header.positions[PATIENTS.column_names.index("mobile")] == 4
    assert header.ignored == ("Shoe Size",)


def test_a_header_without_required_columns_names_them() -> None:
    with pytest.raises(HeaderError) as refused:
        map_header(PATIENTS, ["Patient ID", "Name", "Phone"])
    assert "missing column(s) first_name, last_name, date_of_birth" in str(refused.value)


def test_a_valid_row_becomes_its_canonical_record() -> None:
    record = _record(**{"Mobile Phone": "(512) 555-0123", "Email": "Ann@Example.com",
                        "Status": "inactive", "DOB": "02/03/1950"})
    assert record["mobile"] == "+15125550123"
    assert record["email"] == "Ann@example.com"
    assert record["status"] == "Inactive"
    assert record["date_of_birth"] == "1950-02-03"
    assert record["appointment_reminders_only"] == "0"


def test_an_empty_status_means_active() -> None:
    assert _record()["status"] == "Active"


def test_a_bad_row_lists_every_problem_without_values() -> None:
    header = map_header(PATIENTS, HEADER)
    with pytest.raises(RowRejected) as refused:
        validate_row(header, _row(**{"Last Name": "", "Email": "bob@", "DOB": "2099-01-01"}),
                     TODAY)
    reason = str(refused.value)
    assert reason == ("last name is missing; date of birth is in the future; "
                      "email is not a valid email address")
    assert "bob@" not in reason


def test_a_row_with_more_cells_than_the_header_is_refused() -> None:
    header = map_header(PATIENTS, HEADER)
    with pytest.raises(RowRejected, match="row has 9 fields but the header has 8"):
        validate_row(header, [*_row(), "surplus"], TODAY)


def test_control_characters_and_undecodable_bytes_are_refused() -> None:
    header = map_header(PATIENTS, HEADER)
    with pytest.raises(RowRejected, match="first name contains a control character"):
        validate_row(header, _row(**{"First Name": "A\x00nn"}), TODAY)
    with pytest.raises(RowRejected, match="last name is not valid UTF-8"):
        validate_row(header, _row(**{"Last Name": "L\udce9e"}), TODAY)


def test_care_gaps_must_close_after_they_open() -> None:
    spec = SPECS[ImportKind.CARE_GAPS]
    header = map_header(spec, ["Patient ID", "Measure", "Opened", "Closed"])
    with pytest.raises(RowRejected, match="closed date is before opened date"):
        validate_row(header, ["P1", "Imm: Flu", "2024-05-01", "2024-04-01"], TODAY)


def test_care_gap_and_condition_keys_ignore_case() -> None:
    spec = SPECS[ImportKind.CARE_GAPS]
    assert spec.key(("P1", "Imm: Flu", None, None)) == spec.key(("P1", "IMM: FLU", None, None))


def test_the_row_hash_changes_with_any_value_and_tells_empty_from_blank() -> None:
    assert row_hash(("P1", "Ann")) == row_hash(("P1", "Ann"))
    assert row_hash(("P1", "Ann")) != row_hash(("P1", "Anne"))
    assert row_hash(("P1", None)) != row_hash(("P1", ""))


def test_an_import_records_chunks_of_changed_rows_under_a_random_id() -> None:
    # given an import of a patients file
    started = datetime(2025, 3, 10, tzinfo=UTC)
    first = PatientImport("patients", "patients.csv", started)
    second = PatientImport("patients", "patients.csv", started)
    # when rows are recorded
    first.record_rows(("patient_id",), [["P1"], ["P2"]])
    first.finish(rows=2, new=2, updated=0, unchanged=0, rejected=0, finished_at=started)
    events = first.collect_events()
    # then the rows travel in the event, the ids are random (no PHI) and chunks are bounded
    assert [type(e).__name__ for e in events] == ["Started", "RowsImported", "Finished"]
    assert events[1].rows == [["P1"], ["P2"]]  # type: ignore[attr-defined]
    assert first.id != second.id
    with pytest.raises(ValueError, match="1 to 1000 rows"):
        second.record_rows(("patient_id",), [["P"]] * (CHUNK_ROWS + 1))
    with pytest.raises(ValueError, match="finished"):
        first.record_rows(("patient_id",), [["P3"]])
