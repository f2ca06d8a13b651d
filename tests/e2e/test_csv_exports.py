"""Every CSV the product writes is formula-safe, end to end: hostile values imported from a
practice's files come out of `outreach list --csv`, the rejects file and `outreach campaign
report --csv` as text a spreadsheet shows, never as a formula it runs.

The commands run in this process (Typer's runner) on a SQLite file, as `outreach` wires
them: the real application, built from the environment by each command."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import api.cli_campaigns  # noqa: F401 - registers campaign create on campaign_app
from api.cli import campaign_app
from api.cli_patients import import_app, list_command
from application.settings import Settings
from tests.patient_data import APPOINTMENT_HEADER, PATIENT_HEADER, PROVIDER_HEADER, write_csv

# What a spreadsheet may read as the start of a formula (application/csv_safe.py).
TRIGGERS = "=+-@\t\r\n\0\uff1d\uff0b\uff0d\uff20"
LINK = '=HYPERLINK("http://x","y")'  # a last name: the "name" cell starts with it
PAYOR = "@SUM(A1:A9)"
NOTES = '=1+2";=1+2'  # OWASP's example: a quote and a separator to start a cell of its own
MEASURE = "+cmd|' /C calc'!A0"
START = Settings().calendar.next_sending_day(datetime.now(UTC).date() + timedelta(days=2))


def patient(pid: str, first: str, last: str, mobile: str, payor: str = "") -> list[str]:
    return [pid, first, "", last, "1950-02-03", mobile, "", "", "Active", "D1", payor,
            "", "", "", "", "", "", "", ""]


@pytest.fixture
def outreach(tmp_path: Path) -> Any:
    """Run one `outreach …` command line; returns Typer's result (stdout, exit_code)."""
    app = typer.Typer()
    app.add_typer(import_app, name="import")
    app.command("list")(list_command)
    app.add_typer(campaign_app, name="campaign")
    env = {"OUTREACH_DATABASE_URL": f"sqlite:///{tmp_path / 'outreach.db'}",
           "OUTREACH_LOG_LEVEL": "WARNING", "OUTREACH_USER": "maya", "COLUMNS": "200"}

    def run(*args: str) -> Any:
        result = CliRunner().invoke(app, list(args), env=env)
        assert result.exit_code == 0, (args, result.output)
        return result

    return run


@pytest.fixture
def hostile_practice(outreach: Any, tmp_path: Path) -> Path:
    """A practice whose files carry formulas in names, payors, notes and care gaps; returns
    the folder the patients' rejects file is written to."""
    files = tmp_path / "in"
    outreach("import", "providers", str(write_csv(
        files / "providers.csv", PROVIDER_HEADER, [["D1", "Dr. Adams", "North", "Yes"]])))
    rejects = tmp_path / "rejects"
    outreach("import", "patients", str(write_csv(
        files / "patients.csv", [*PATIENT_HEADER, "=Extra"], [
            [*patient("P1", "Ann", LINK, "+1 312 555 0100", PAYOR), "x"],
            # rejected (no last name; a date of birth that is no date): its cells come back
            [*patient("P2", "=cmd|' /C calc'!A0", "", "-2+3"), "\t=1+1"],
            [*patient("P3", "Cy", "", "+1 312 555 0101"), ""],  # rejected: no last name
        ])), "--rejects", str(rejects))
    outreach("import", "appointments", str(write_csv(
        files / "appointments.csv", APPOINTMENT_HEADER,
        [["A1", "P1", f"{START} 10:00", "D1", "Main", "Office Visit", "Confirmed", NOTES]])))
    outreach("import", "care-gaps", str(write_csv(
        files / "care_gaps.csv", ["Patient ID", "Measure Name", "Opened", "Closed"],
        [["P1", MEASURE, "2024-01-01", ""]])))
    return rejects


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def assert_formula_safe(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert not cell or cell[0] not in TRIGGERS, cell


def test_a_patient_list_downloaded_as_csv_shows_imported_formulas_as_text(
        outreach: Any, hostile_practice: Path) -> None:
    # Given a practice whose files held formulas, when the list is printed as CSV
    listed = outreach("list", "--columns", "name,payor,mobile,ar", "--csv")
    rows = read_csv(listed.stdout)
    # then no cell starts a formula, and each value is there, behind one quote
    assert_formula_safe(rows)
    # (the patient id leads every row, though the columns leave it out)
    assert rows == [["Patient ID", "Patient Name", "Payor", "Phone (M)",
                     "Alerts & Recommendations (A&R)"],
                    ["P1", f"'{LINK}, Ann", f"'{PAYOR}", "'+13125550100", f"'{MEASURE}"]]
    # and every field is quoted, so the name's own quotes and comma stay inside its cell
    assert listed.stdout.splitlines()[1].startswith(
        '"P1","\'=HYPERLINK(""http://x"",""y""), Ann",')
    appointments = outreach("list", "--focus", "appointment", "--columns", "name,appt_notes",
                            "--csv")
    assert read_csv(appointments.stdout)[1:] == [["P1", f"'{LINK}, Ann", f"'{NOTES}"]]


def test_the_rejects_file_gives_the_senders_cells_back_as_text(outreach: Any,
                                                                hostile_practice: Path) -> None:
    rejects = hostile_practice / "patients.rejects.csv"
    rows = read_csv(rejects.read_text(encoding="utf-8"))
    assert_formula_safe(rows)
    # the file's own header too: a column name is just as much the sender's text
    assert rows[0] == [*PATIENT_HEADER, "'=Extra", "line", "reason"]
    rejected = dict(zip(rows[0], rows[1], strict=True))
    assert (rejected["Patient ID"], rejected["First Name"], rejected["Mobile"],
            rejected["'=Extra"], rejected["line"]) == (
        "P2", "'=cmd|' /C calc'!A0", "'-2+3", "'\t=1+1", "3")
    # and a row fixed there imports again: its phone number reads the same behind the quote
    fixed = dict(zip(rows[0], rows[2], strict=True))
    assert fixed["Mobile"] == "'+1 312 555 0101"
    fixed["Last Name"] = "Cole"
    write_csv(rejects, rows[0], [list(fixed.values())])
    outreach("import", "patients", str(rejects))
    listed = read_csv(outreach("list", "--columns", "patient_id,mobile", "--csv").stdout)
    assert ["P3", "'+13125550101"] in listed


def test_a_campaign_report_downloads_as_csv_with_a_row_per_patient_all_text(
        outreach: Any, hostile_practice: Path) -> None:
    # Given a campaign to the practice's patients (P1, named with a formula)
    created = outreach("campaign", "create", "--name", "Flu", "--body",
                       "Flu shots are here. Call (555) 010-0100 to book.",
                       "--help-number", "555-0100", "--start", START.isoformat(), "--active")
    campaign_id = created.stdout.split()[1]
    # when its report is downloaded as CSV
    report = read_csv(outreach("campaign", "report", campaign_id, "--csv").stdout)
    # then it has a header row and one row per patient, and no cell starts a formula
    assert_formula_safe(report)
    assert report[0] == ["#", "Patient ID", "Name", "Contact", "Status", "Attempts",
                         "Last Outcome", "Reason", "Due At"]
    assert [row[:6] for row in report[1:]] == [
        ["1", "P1", f"'{LINK}, Ann", "'+13125550100", "Planned", "0"]]


def test_a_report_asked_for_as_json_and_csv_at_once_is_refused_in_one_line(
        tmp_path: Path) -> None:
    app = typer.Typer()
    app.add_typer(campaign_app, name="campaign")
    both = CliRunner().invoke(app, ["campaign", "report", "0000dead", "--json", "--csv"],
                              env={"OUTREACH_DATABASE_URL": f"sqlite:///{tmp_path}/o.db"})
    assert both.exit_code == 2
    assert both.output.strip() == "error: give --json or --csv, not both"
