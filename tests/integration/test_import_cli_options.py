"""`outreach import … --encoding --delimiter` as staff type them (SQLite: reading the file
does not depend on the database)."""

from __future__ import annotations

import csv
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from api.cli_patients import PatientCli, make_cli
from tests.patient_data import PATIENT_HEADER, open_backend, patient_row


class _App:
    def __init__(self, url: str) -> None:
        self._stack = ExitStack()
        self.patients = self._stack.enter_context(open_backend(url)).service

    def close(self) -> None:
        self._stack.close()


@pytest.fixture
def cli(tmp_path: Path) -> PatientCli:
    url = f"sqlite:///{tmp_path / 'db' / 'outreach.db'}"
    return make_cli(lambda: _App(url))


def run(cli: PatientCli, *args: str) -> Any:
    app = typer.Typer()
    app.add_typer(cli.import_app, name="import")
    app.command("list")(cli.list_command)
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


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
