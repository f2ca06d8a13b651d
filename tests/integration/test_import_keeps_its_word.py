"""Imports that keep their word: every kind of file re-imports to nothing, a key repeated
in one file is rejected (the first row kept), files as clinics export them (Windows-1252,
`;` or tab) are read right or refused whole, and the rejects file stays aligned, valid
UTF-8 and imports again exactly — on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from application.patients_import import ImportFileError, ImportSummary
from tests.patient_data import (
    APPOINTMENT_HEADER,
    PATIENT_HEADER,
    PROVIDER_HEADER,
    Backend,
    count_events,
    csv_rows,
    open_backend,
    patient_row,
    write_csv,
)


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Backend]:
    """For what does not depend on the database (reading the file)."""
    with open_backend(f"sqlite:///{tmp_path / 'db' / 'o.db'}") as opened:
        yield opened


def _write(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]], *,
           encoding: str = "utf-8", delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as out:
        writer = csv.writer(out, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _counts(summary: ImportSummary) -> tuple[int, int, int, int]:
    return summary.new, summary.updated, summary.unchanged, summary.rejected


# -- a key once per file, for every kind -------------------------------------------------------

# kind, header, rows (the second repeats the first's key with other data, the third repeats
# the first exactly), the reason for the second, the table and its row count
REPEATS = [
    ("appointments", APPOINTMENT_HEADER,
     [["A1", "P1", "2025-03-12 10:00", "D1", "Main", "Visit", "Scheduled", ""],
      ["A1", "P1", "2025-03-19 10:00", "D1", "Main", "Visit", "Scheduled", ""],
      ["A1", "P1", "2025-03-12 10:00", "D1", "Main", "Visit", "Scheduled", ""]],
     "duplicate id, first seen on line 2", "appointments"),
    ("providers", PROVIDER_HEADER,
     [["D1", "Dr. Adams", "North", "Yes"], ["D1", "Dr. Adams", "North", "No"],
      ["D1", "Dr. Adams", "North", "Yes"]],
     "duplicate id, first seen on line 2", "providers"),
    ("care-gaps", ["Patient ID", "Measure", "Opened", "Closed"],
     [["P1", "Colorectal Cancer Screening", "2024-01-01", ""],
      # the same measure (case and accents do not make another one), other dates
      ["P1", "COLORECTAL CANCER SCREENÍNG", "2024-02-01", "2024-03-01"],
      ["P1", "Colorectal Cancer Screening", "2024-01-01", ""]],
     "duplicate patient id and measure, first seen on line 2", "care_gaps"),
    ("conditions", ["Patient ID", "Condition"],
     [["P1", "Diabetes"], ["P1", "diabetes"], ["P1", "Diabetes"]],
     "duplicate patient id and condition, first seen on line 2", "conditions"),
]


@pytest.mark.parametrize(("kind", "header", "rows", "reason", "table"), REPEATS,
                         ids=[r[0] for r in REPEATS])
def test_a_key_repeated_in_one_file_keeps_the_first_row_for_every_kind(
        backend: Backend, tmp_path: Path, kind: str, header: list[str], rows: list[list[str]],
        reason: str, table: str) -> None:
    # given a file whose second row repeats the first row's key with other data, and whose
    # third repeats the first row exactly
    path = write_csv(tmp_path / f"{kind}.csv", header, rows)
    # when it is imported
    first = backend.service.import_file(kind, path)
    # then the first row is new, the conflicting one rejected naming the first's line, the
    # exact repeat counted unchanged; one row in the table
    assert _counts(first) == (1, 0, 1, 1)
    assert [(r.line, r.reason) for r in first.rejections] == [(3, reason)]
    stored = backend.db.fetchone(f"SELECT COUNT(*) FROM {table}")
    assert stored is not None and stored[0] == 1
    # and importing it again changes nothing and records nothing
    events = count_events(backend.store)
    again = backend.service.import_file(kind, path)
    assert _counts(again) == (0, 0, 2, 1)
    assert again.import_id is None and count_events(backend.store) == events


def test_a_billing_file_may_repeat_a_pair_a_claim_at_a_time(backend: Backend,
                                                            tmp_path: Path) -> None:
    # given a billing file with a row per claim: the same patient and provider twice
    path = write_csv(tmp_path / "billing.csv", ["Patient ID", "Provider ID"],
                     [["P1", "D1"], ["P1", "D1"], ["P2", "D1"]])
    # when it is imported twice, then the repeat is unchanged, never rejected nor recorded
    assert _counts(backend.service.import_file("billing", path)) == (2, 0, 1, 0)
    events = count_events(backend.store)
    assert _counts(backend.service.import_file("billing", path)) == (0, 0, 3, 0)
    assert count_events(backend.store) == events


def test_a_patient_repeated_with_another_mobile_is_new_once_and_rejected_once(
        backend: Backend, tmp_path: Path) -> None:
    # the case: two rows for one new patient, different mobiles
    path = write_csv(tmp_path / "patients.csv", PATIENT_HEADER, [
        patient_row("P1", "Ann", "Lee", mobile="512-555-0101"),
        patient_row("P1", "Ann", "Lee", mobile="512-555-0199")])
    first = backend.service.import_file("patients", path, tmp_path / "rejects")
    assert _counts(first) == (1, 0, 0, 1)
    assert first.rejects_file is not None
    assert csv_rows(first.rejects_file)[1][-2:] == ["3", "duplicate id, first seen on line 2"]
    events = count_events(backend.store)
    again = backend.service.import_file("patients", path, tmp_path / "rejects")
    assert _counts(again) == (0, 0, 1, 1)
    assert count_events(backend.store) == events
    row = backend.db.fetchone("SELECT mobile FROM patients WHERE patient_id = 'P1'")
    assert row == ("+15125550101",)


# -- files as clinics export them ------------------------------------------------------------

SPANISH = [patient_row("P1", "María", "García", mobile="512-555-0101"),
           patient_row("P2", "Zoë", "Núñez")]


def _names(backend: Backend) -> list[tuple[str, str]]:
    return [(str(r[0]), str(r[1])) for r in backend.db.fetchall(
        "SELECT first_name, last_name FROM patients ORDER BY patient_id")]


def test_an_excel_windows_1252_file_is_detected_and_read_right(backend: Backend,
                                                               tmp_path: Path) -> None:
    # given Excel's plain CSV: Windows-1252, semicolons (a European list separator)
    path = _write(tmp_path / "excel.csv", PATIENT_HEADER, SPANISH, encoding="cp1252",
                  delimiter=";")
    # when it is imported with nothing said about it
    summary = backend.service.import_file("patients", path)
    # then the summary says how it was read, and the accents are the sender's
    assert summary.read_as == "Windows-1252, semicolon-separated"
    assert _counts(summary) == (2, 0, 0, 0)
    assert _names(backend) == [("María", "García"), ("Zoë", "Núñez")]
    # and the same patients sent as UTF-8 with tabs are the same rows: nothing changes
    again = backend.service.import_file("patients", _write(
        tmp_path / "tabs.tsv", PATIENT_HEADER, SPANISH, encoding="utf-8-sig", delimiter="\t"))
    assert again.read_as == "UTF-8, tab-separated"
    assert _counts(again) == (0, 0, 2, 0)


def test_the_encoding_and_delimiter_can_be_given(lite: Backend, tmp_path: Path) -> None:
    path = _write(tmp_path / "p.csv", PATIENT_HEADER, SPANISH, encoding="cp1252",
                  delimiter=";")
    summary = lite.service.import_file("patients", path, encoding="cp1252", delimiter=";")
    assert summary.read_as == "Windows-1252, semicolon-separated" and summary.new == 2
    assert _names(lite) == [("María", "García"), ("Zoë", "Núñez")]


@pytest.mark.parametrize(("content", "encoding", "message"), [
    # Windows-1252 read as UTF-8 would reject every accented row: refused, with the fix
    ("cp1252", "utf-8", r"p\.csv is not UTF-8 text: line 2 has byte 0xED .*--encoding cp1252"),
    # 0x81 is not Windows-1252 and not UTF-8: no reading of it is right
    ("bad", "auto", r"neither UTF-8 nor Windows-1252 text: line 2 has byte 0x81"),
    ("bad", "cp1252", r"not Windows-1252 text: line 2 has byte 0x81"),
    # a UTF-8 byte-order mark read as Windows-1252 would be mojibake
    ("bom", "cp1252", r"is UTF-8 \(it starts with a UTF-8 byte-order mark\)"),
])
def test_a_file_that_is_not_text_in_the_encoding_asked_imports_nothing(
        lite: Backend, tmp_path: Path, content: str, encoding: str, message: str) -> None:
    path = tmp_path / "p.csv"
    if content == "bad":
        path.write_bytes(b"Patient ID,First Name,Last Name,DOB\nP1,Ann\x81,Lee,1970-01-01\n")
    else:
        _write(path, PATIENT_HEADER, SPANISH,
               encoding="cp1252" if content == "cp1252" else "utf-8-sig")
    events = count_events(lite.store)
    with pytest.raises(ImportFileError, match=message):
        lite.service.import_file("patients", path, encoding=encoding)
    assert count_events(lite.store) == events


def test_an_unknown_encoding_or_delimiter_is_refused(lite: Backend, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", PATIENT_HEADER, SPANISH)
    with pytest.raises(ImportFileError, match="unknown encoding 'latin9'"):
        lite.service.import_file("patients", path, encoding="latin9")
    with pytest.raises(ImportFileError, match="unknown delimiter '|'"):
        lite.service.import_file("patients", path, delimiter="|")


# -- the rejects file --------------------------------------------------------------------------


def test_a_row_with_extra_fields_keeps_line_and_reason_under_their_headers(
        lite: Backend, tmp_path: Path) -> None:
    # given a semicolon file whose P2 row has two fields more than the header (an
    # unquoted `;` in its last cell), and a short row
    path = tmp_path / "p.csv"
    path.write_text("Patient ID;First Name;Last Name;DOB;Zip\n"
                    "P1;Ann;Lee;1970-01-01;78701\n"
                    "P2;Bob;Ray;1970-01-01;78701;x;y\n"
                    "P3;Cy\n", encoding="utf-8")
    summary = lite.service.import_file("patients", path)
    assert summary.rejects_file is not None
    rows = csv_rows(summary.rejects_file)
    # then every row has the header's width: line and reason where the header says, the
    # extra fields joined (with the file's delimiter) onto the last column
    assert rows[0] == ["Patient ID", "First Name", "Last Name", "DOB", "Zip", "line", "reason"]
    assert rows[1] == ["P2", "Bob", "Ray", "1970-01-01", "78701;x;y", "3",
                       "row has 7 fields but the header has 5"]
    assert rows[2][:2] == ["P3", "Cy"] and rows[2][5] == "4" and len(rows[2]) == 7


def test_a_corrected_rejects_file_imports_exactly_what_it_shows(backend: Backend,
                                                                tmp_path: Path) -> None:
    # given rows rejected for their email, whose other cells a spreadsheet would read as
    # formulas (written behind a `'`); P2's first name is `'-Bo` (the file says `''-Bo`:
    # a leading `'` before a formula character is the spreadsheet's text marker)
    path = write_csv(tmp_path / "p.csv", PATIENT_HEADER, [
        patient_row("P1", "=Ann", "Lee", email="ann@"),
        patient_row("P2", "''-Bo", "-Ray", email="bob@"),
    ])
    summary = backend.service.import_file("patients", path, tmp_path / "rejects")
    assert summary.rejects_file is not None
    rows = csv_rows(summary.rejects_file)
    assert [r[1:4] for r in rows[1:]] == [["'=Ann", "", "Lee"], ["''-Bo", "", "'-Ray"]]
    # when staff fix the emails there and import the rejects file
    email = rows[0].index("Email")
    for row in rows[1:]:
        row[email] = "fixed@example.com"
    write_csv(summary.rejects_file, rows[0], rows[1:])
    fixed = backend.service.import_file("patients", summary.rejects_file)
    # then the names are exactly what the sender wrote, the quotes the writer added gone
    assert (fixed.new, fixed.rejected) == (2, 0)
    assert fixed.ignored_columns == ("line", "reason")
    assert _names(backend) == [("=Ann", "Lee"), ("'-Bo", "-Ray")]
