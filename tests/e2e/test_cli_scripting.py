"""The `outreach` command line as a script uses it: real processes, output read through pipes
(not a terminal, and no COLUMNS to widen it), one line per message, JSON where asked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import pytest

from application.bootstrap import build
from application.settings import Settings
from tests.patient_data import (
    APPOINTMENT_HEADER,
    PATIENT_HEADER,
    PROVIDER_HEADER,
    patient_row,
    write_csv,
)

BODY = "Flu shots are here. Call (555) 010-0100 to book."
# The command line runs on the real clock: start on the next sending day after today.
START = Settings().calendar.next_sending_day(datetime.now(UTC).date() + timedelta(days=2))
LONG = "x" * 240  # longer than any terminal a wrapping console would assume
OUTREACH = Path(sys.executable).with_name("outreach")  # the installed console script


LONG_ID = "P" + "9" * 63  # the longest id an import takes: the line is 94 characters


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A database with a provider and three patients, one with an appointment last month
    (so patient search finds them), and a piped environment: no COLUMNS, no terminal."""
    url = f"sqlite:///{tmp_path}/outreach.db"
    seen = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%d 10:00")
    files = {
        "providers": write_csv(tmp_path / "in" / "providers.csv", PROVIDER_HEADER,
                               [["D1", "Dr. Adams", "North", "Yes"]]),
        "patients": write_csv(tmp_path / "in" / "patients.csv", PATIENT_HEADER, [
            patient_row("P1", "Ann", "Lee", "1950-02-03", mobile="512-555-0101"),
            patient_row("P2", "Bob", "Ray", "1960-01-01", mobile="512-555-0102"),
            patient_row("P3", "Cy", "Cole", "1970-01-01", mobile="512-555-0103"),
        ]),
        "appointments": write_csv(tmp_path / "in" / "appointments.csv", APPOINTMENT_HEADER, [
            [f"A{i}", f"P{i}", seen, "D1", "Main", "Office Visit", "Confirmed", ""]
            for i in (1, 2, 3)]),
    }
    o = build(Settings(database_url=url))
    try:
        for kind, path in files.items():
            assert o.patients.import_file(kind, path, tmp_path / "rejects").rejected == 0
    finally:
        o.close()
    piped = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return {**piped, "OUTREACH_DATABASE_URL": url, "OUTREACH_LOG_LEVEL": "INFO",
            "OUTREACH_USER": "maya", "TERM": "xterm-256color"}


def outreach(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # capture_output: both streams are pipes, as a script reading them sees them
    return subprocess.run([str(OUTREACH), *args], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)


def lines(text: str) -> list[str]:
    return text.strip().splitlines()


# -- lines never wrap ---------------------------------------------------------------------
def test_a_long_refusal_is_one_line_on_stderr_through_a_pipe(env):
    refused = outreach(env, "campaign", "stop", LONG)
    assert refused.returncode == 1
    assert lines(refused.stderr) == [f"error: no campaign matches '{LONG}'"]


def test_a_usage_error_is_one_error_line_not_a_boxed_panel(env):
    # Typer's own errors (unknown option, missing argument) used to be a rich panel that
    # wraps at 80 columns when piped.
    unknown = outreach(env, "campaign", "stop", f"--{LONG}")
    assert unknown.returncode == 2
    assert lines(unknown.stderr) == [
        f"error: No such option: --{LONG} (see 'outreach campaign stop --help')"]
    missing = outreach(env, "campaign", "stop")
    assert missing.returncode == 2
    assert lines(missing.stderr) == [
        "error: Missing argument 'campaign_id'. (see 'outreach campaign stop --help')"]


def test_a_long_result_line_is_one_line_on_stdout_through_a_pipe(env, tmp_path):
    patient = LONG_ID  # staff opt out patients on record only
    more = write_csv(tmp_path / "in" / "long.csv", PATIENT_HEADER,
                     [patient_row(patient, "Di", "Long", "1980-01-01")])
    assert outreach(env, "import", "patients", str(more)).returncode == 0
    opted = outreach(env, "opt-out", "add", patient, "--type", "Global", "--reason", "asked")
    assert opted.returncode == 0, opted.stderr
    assert lines(opted.stdout) == [f"patient {patient} opted out: Global"]


def test_a_piped_table_keeps_each_row_on_one_line(env):
    name = "Flu shots for everyone over sixty-five " * 6
    created = outreach(env, "campaign", "create", "--name", name.strip(), "--body", BODY,
                       "--help-number", "555-0100")
    assert created.returncode == 0, created.stderr
    assert len(lines(created.stdout)) == 1
    table = outreach(env, "campaigns")
    rows = [line for line in lines(table.stdout) if "Inactive" in line]
    assert len(rows) == 1 and name.strip() in rows[0]


# -- --version and completion -------------------------------------------------------------
def test_version_prints_the_installed_version(env):
    shown = outreach(env, "--version")
    assert shown.returncode == 0
    assert shown.stdout == f"outreach {version('outreach')}\n"


def test_shell_completion_script_is_offered(env):
    script = outreach(env, "--show-completion", "bash")
    assert script.returncode == 0, script.stderr
    assert "_OUTREACH_COMPLETE=complete_bash" in script.stdout


# -- --json on every command that prints data ---------------------------------------------
def test_every_data_command_prints_json_a_script_can_parse(env):
    def data(*args: str) -> object:
        ran = outreach(env, *args, "--json")
        assert ran.returncode == 0, ran.stderr
        return json.loads(ran.stdout)

    found = data("patients", "search", "Lee")
    assert [p["patient_id"] for p in found["patients"]] == ["P1"]  # type: ignore[index]
    assert data("patients", "show", "P2")["last_name"] == "Ray"  # type: ignore[index]
    views = data("views", "list")
    assert {"Patients Ages 65+"} <= {v["name"] for v in views}  # type: ignore[attr-defined]
    assert data("views", "show", "Patients Ages 65+")["built_in"] is True  # type: ignore[index]
    audience = data("patients", "audience", "--channel", "text")
    assert sorted(audience["patient_ids"]) == ["P1", "P2", "P3"]  # type: ignore[index]
    assert audience["size"] == 3 and audience["over_cap"] is False  # type: ignore[index]
    created = data("campaign", "create", "--name", "Flu", "--body", BODY,
                   "--help-number", "555-0100", "--active")
    assert created["patients"] == 3  # type: ignore[index]
    cid = created["campaign_id"]  # type: ignore[index]
    # JSON lines: one object per campaign, per report row
    listed = outreach(env, "campaigns", "--json")
    assert [json.loads(line)["campaign_id"] for line in lines(listed.stdout)] == [cid]
    report = outreach(env, "campaign", "report", cid, "--json")
    assert sorted(json.loads(line)["patient_id"] for line in lines(report.stdout)) == [
        "P1", "P2", "P3"]


def test_an_import_summary_as_json_counts_what_the_file_did(env, tmp_path):
    again = write_csv(tmp_path / "again" / "patients.csv", PATIENT_HEADER, [
        patient_row("P1", "Ann", "Lee", "1950-02-03", mobile="512-555-0101"),
        patient_row("P4", "Dee", "Fox", "1980-01-01", mobile="512-555-0104"),
        patient_row("P4", "Dee", "Fox", "1980-01-01", mobile="512-555-0199"),
    ])
    ran = outreach(env, "import", "patients", str(again), "--json")
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert (summary["rows"], summary["new"], summary["unchanged"], summary["rejected"]) == (
        3, 1, 1, 1)
    assert summary["rejections"][0]["line"] == 4
    assert "duplicate id" in summary["rejections"][0]["reason"]


def test_list_csv_leads_with_the_patient_id_even_when_the_columns_leave_it_out(env):
    listed = outreach(env, "list", "--csv", "--columns", "Last Name", "--sort", "Last Name:asc")
    assert listed.returncode == 0, listed.stderr
    assert lines(listed.stdout) == ['"Patient ID","Last Name"', '"P3","Cole"', '"P1","Lee"',
                                    '"P2","Ray"']


# -- quiet runs ---------------------------------------------------------------------------
def _campaign_to_run(env: dict[str, str]) -> None:
    # An earlier campaign, stopped: its 3 cancelled communications are not this run's.
    old = json.loads(outreach(env, "campaign", "create", "--name", "Old", "--body", BODY,
                              "--help-number", "555-0100", "--active", "--json").stdout)
    assert outreach(env, "campaign", "stop", old["campaign_id"]).returncode == 0
    created = outreach(env, "campaign", "create", "--name", "Flu", "--body", BODY,
                       "--help-number", "555-0100", "--start", START.isoformat(), "--active")
    assert created.returncode == 0, created.stderr


RUN = ("run", "--simulate", "--from", f"{START}T09:00-06:00", "--until",
       f"{START}T23:00-06:00")


def test_a_simulated_run_shows_progress_and_a_summary_not_a_line_per_text(env):
    _campaign_to_run(env)
    ran = outreach(env, *RUN)
    assert ran.returncode == 0, ran.stderr
    # stdout: one human summary, counting the campaign this run drove (not the stopped one)
    [summary] = lines(ran.stdout)
    assert summary.startswith("simulated until ")
    assert "3 of 3 communications completed (1 campaign); texts: 3 sent, 0 failed" in summary
    assert "DispatchStats" not in summary
    # stderr: progress now and then, no per-send log lines (logging is at INFO here)
    assert lines(ran.stderr) and all(line.startswith("completed ")
                                     for line in lines(ran.stderr))
    assert lines(ran.stderr)[-1].startswith("completed 3 of 3 communications")


def test_verbose_shows_a_log_line_per_text(env):
    _campaign_to_run(env)
    ran = outreach(env, *RUN, "-v")
    assert ran.returncode == 0, ran.stderr
    # (console or JSON log format: whichever the logging set-up renders)
    sends = [line for line in lines(ran.stderr)
             if not line.startswith("completed ") and re.search(r"\bsent\b", line)]
    assert len(sends) == 3, ran.stderr


def test_a_simulated_run_summary_as_json(env):
    _campaign_to_run(env)
    ran = outreach(env, *RUN, "--json")
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert (summary["campaigns"], summary["to_contact"], summary["completed"],
            summary["sent"]) == (1, 3, 3, 3)
