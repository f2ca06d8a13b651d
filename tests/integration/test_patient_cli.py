"""The patient commands as staff type them (SQLite; the service is tested on both
databases elsewhere)."""

from __future__ import annotations

import csv
import json
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from api.cli_patients import PatientCli, make_cli
from application.logging import configure_logging
from application.opt_outs import OptOutService
from application.settings import Settings
from application.staff_base import MemoryAudit
from application.staff_patients import PatientsFacade
from application.users import UserService
from tests.patient_data import (
    APPOINTMENT_HEADER,
    PATIENT_HEADER,
    PROVIDER_HEADER,
    open_backend,
    patient_row,
    write_csv,
)


class _App:
    """What bootstrap.build returns, as far as these commands care: .patients, the audited
    .staff.patients facade, the .users who may sign in (none here: the setup actor acts),
    and .close()."""

    def __init__(self, url: str) -> None:
        self._stack = ExitStack()
        backend = self._stack.enter_context(open_backend(url))
        self.patients = backend.service
        config = Settings(database_url=url)
        self.users = UserService(backend.store, backend.db, backend.clock, config,
                                 secret=b"k" * 32)
        opt_outs = OptOutService(backend.store, backend.db, backend.clock, config,
                                 lambda: 0)
        self.staff = SimpleNamespace(patients=PatientsFacade(
            MemoryAudit(), backend.service, opt_outs, Path(url.removeprefix("sqlite:///"))
            .parent / "imports"))

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(autouse=True)
def logs_on_stderr() -> None:
    configure_logging("console", "INFO")  # as bootstrap does: logs never mix with --json


@pytest.fixture
def cli(tmp_path: Path) -> PatientCli:
    url = f"sqlite:///{tmp_path / 'db' / 'outreach.db'}"
    return make_cli(lambda: _App(url))


def run(cli: PatientCli, *args: str) -> Any:
    app = typer.Typer()
    app.add_typer(cli.import_app, name="import")
    app.command("list")(cli.list_command)
    app.add_typer(cli.views_app, name="views")
    app.add_typer(cli.patients_app, name="patients")
    return CliRunner().invoke(app, list(args), env={"OUTREACH_USER": "maya", "COLUMNS": "200"})


def _files(folder: Path) -> dict[str, Path]:
    return {
        "providers": write_csv(folder / "providers.csv", PROVIDER_HEADER,
                               [["D1", "Dr. Adams", "North", "Yes"]]),
        "patients": write_csv(folder / "patients.csv", PATIENT_HEADER, [
            patient_row("P1", "Ann", "Lee", "1950-02-03", mobile="512-555-0101",
                        payor="Medicare"),
            patient_row("P2", "Bob", "[Ray]", "1990-01-01", mobile="512-555-0102",
                        payor="Anthem"),
            patient_row("P3", "Cy", "Cole", "1960-01-01", email="cy@"),
        ]),
        "appointments": write_csv(folder / "appointments.csv", APPOINTMENT_HEADER, [
            ["A1", "P1", "2025-03-12 10:00", "D1", "Main", "Office Visit", "Confirmed", ""]]),
    }


def test_an_import_prints_the_summary_and_each_rejected_line(cli: PatientCli,
                                                             tmp_path: Path) -> None:
    files = _files(tmp_path / "in")
    assert run(cli, "import", "providers", str(files["providers"])).exit_code == 0
    result = run(cli, "import", "patients", str(files["patients"]), "--rejects",
                 str(tmp_path / "rejects"))
    assert result.exit_code == 0, result.output
    assert "patients.csv: 3 rows — accepted 2 (new 2, updated 0, unchanged 0), rejected 1" \
        in result.output
    assert "line 4: email is not a valid email address" in result.output
    assert f"rejected rows written to {tmp_path / 'rejects' / 'patients.rejects.csv'}" \
        in result.output.replace("\n", "")


def test_a_wrong_file_exits_2_with_one_line(cli: PatientCli, tmp_path: Path) -> None:
    files = _files(tmp_path / "in")
    result = run(cli, "import", "patients", str(files["appointments"]))
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "not a patients file" in result.output
    assert run(cli, "import", "patients", str(tmp_path / "nope.csv")).exit_code == 2


def test_list_with_filters_sort_and_json(cli: PatientCli, tmp_path: Path) -> None:
    for kind, path in _files(tmp_path / "in").items():
        run(cli, "import", kind, str(path))
    result = run(cli, "list", "--filter", "Payor|contains|medicare;anthem", "--sort",
                 "Age:desc", "--columns", "name,age,payor", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["total"] == 2 and data["columns"] == ["name", "age", "payor"]
    assert [r["patient_id"] for r in data["rows"]] == ["P1", "P2"]
    table = run(cli, "list", "--view", "Patients Ages 65+")
    assert "Lee, Ann" in table.output and "Total: 1 patients (All Subscribers)" in table.output
    brackets = run(cli, "list", "--filter", "Payor|is equal to|anthem")
    assert "[Ray]" in brackets.output  # patient data is never read as markup
    bad = run(cli, "list", "--filter", "Colour|is|blue")
    assert bad.exit_code == 2 and "unknown field 'Colour'" in bad.output


def test_views_save_share_update_delete(cli: PatientCli, tmp_path: Path) -> None:
    for kind, path in _files(tmp_path / "in").items():
        run(cli, "import", kind, str(path))
    saved = run(cli, "views", "save", "Seniors on Medicare", "--from", "Patients Ages 65+",
                "--filter", "Payor|contains|Medicare")
    assert saved.exit_code == 0, saved.output
    listed = run(cli, "views", "list")
    assert "Seniors on Medicare" in listed.output
    shared = run(cli, "views", "share", "Seniors on Medicare", "raj")
    assert "shared with raj" in shared.output
    shown = json.loads(run(cli, "views", "show", "Seniors on Medicare").stdout)
    assert [f["field"] for f in shown["definition"]["filters"]] == ["age", "payor"]
    assert run(cli, "views", "update", "Seniors on Medicare", "--rename", "Seniors").exit_code \
        == 0
    refused = run(cli, "views", "delete", "Patients Ages 65+")
    assert refused.exit_code == 1 and "built in and cannot be deleted" in refused.output
    assert run(cli, "views", "delete", "Seniors").exit_code == 0


def test_patient_search_and_audience(cli: PatientCli, tmp_path: Path) -> None:
    for kind, path in _files(tmp_path / "in").items():
        run(cli, "import", kind, str(path))
    found = run(cli, "patients", "search", "512-555-0101")
    assert found.exit_code == 0 and "Lee, Ann  (id P1)" in found.output
    assert run(cli, "patients", "search", "12").exit_code == 2
    audience = run(cli, "patients", "audience", "--channel", "text", "--out",
                   str(tmp_path / "ids.txt"))
    assert audience.exit_code == 0, audience.output
    assert (tmp_path / "ids.txt").read_text() == "P2\nP1\n"  # list order: "[ray]" < "lee"


def test_patients_chosen_from_a_list_are_checked_against_it(cli: PatientCli,
                                                            tmp_path: Path) -> None:
    # given the practice, and ids chosen from the Medicare list plus one that is not on it
    for kind, path in _files(tmp_path / "in").items():
        run(cli, "import", kind, str(path))
    chosen = tmp_path / "chosen.txt"
    chosen.write_text("P1\nP2\nNOPE\n", encoding="utf-8")
    # when they are checked as a text audience from the list "Payor contains Medicare"
    result = run(cli, "patients", "audience", "--channel", "text", "--filter",
                 "Payor|contains|Medicare", "--ids", str(chosen), "--out",
                 str(tmp_path / "ids.txt"))
    # then only the chosen patients on that list are kept; the others are left out, counted
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ids.txt").read_text() == "P1\n"
    assert "2 chosen patient ids are not on this list: left out." in result.output


# -- reading files as clinics export them (--encoding, --delimiter) ----------------------
@pytest.fixture
def excel_file(tmp_path: Path) -> Path:
    """Excel's plain CSV with a European list separator: Windows-1252, semicolons."""
    path = tmp_path / "patients.csv"
    with open(path, "w", encoding="cp1252", newline="") as out:
        writer = csv.writer(out, delimiter=";")
        writer.writerow(PATIENT_HEADER)
        writer.writerow(patient_row("P1", "María", "García", mobile="512-555-0101"))
    return path


def test_the_summary_says_how_the_file_was_read(cli: PatientCli, excel_file: Path) -> None:
    result = run(cli, "import", "patients", str(excel_file))
    assert result.exit_code == 0, result.output
    assert "read as Windows-1252, semicolon-separated" in result.stdout
    assert "new 1" in result.stdout


def test_the_encoding_and_delimiter_can_be_named(cli: PatientCli, excel_file: Path) -> None:
    result = run(cli, "import", "patients", str(excel_file), "--encoding", "cp1252",
                 "--delimiter", ";")
    assert result.exit_code == 0, result.output
    assert "read as Windows-1252, semicolon-separated" in result.stdout


@pytest.mark.parametrize(("options", "message"), [
    (["--encoding", "utf-8"], "error: patients.csv is not UTF-8 text: line 2 has byte 0xED"),
    (["--encoding", "ebcdic"], "error: unknown encoding 'ebcdic': choose utf-8, cp1252 or auto"),
    (["--delimiter", "|"], "error: unknown delimiter '|': choose , ; tab or auto"),
])
def test_a_file_that_cannot_be_read_as_asked_is_one_error_line(
        cli: PatientCli, excel_file: Path, options: list[str], message: str) -> None:
    result = run(cli, "import", "patients", str(excel_file), *options)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
    assert "Traceback" not in result.output
