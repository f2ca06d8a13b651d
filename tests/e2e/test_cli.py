"""The `outreach` command line as staff use it: real processes on a SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from application.bootstrap import build
from application.settings import Settings
from tests.fixtures_app import import_patients, patient_row

BODY = "Flu shots are here. Call (555) 010-0100 to book."
# The command line runs on the real clock: start on the next sending day after today.
START = Settings().calendar.next_sending_day(datetime.now(UTC).date() + timedelta(days=2))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path}/outreach.db"
    o = build(Settings(database_url=url))
    import_patients(o, tmp_path, [patient_row(f"P{i}", f"+1312555010{i}") for i in range(4)])
    o.close()
    return {**os.environ, "OUTREACH_DATABASE_URL": url, "OUTREACH_LOG_LEVEL": "WARNING",
            "COLUMNS": "200"}


def outreach(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from api.cli import main; main()", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def test_a_campaign_is_created_activated_run_and_reported_from_the_command_line(env):
    # Given a campaign created Inactive
    created = outreach(env, "campaign", "create", "--name", "Flu", "--body", BODY,
                       "--help-number", "555-0100", "--start", START.isoformat())
    assert created.returncode == 0, created.stderr
    assert "saved Inactive: 4 patients" in created.stdout
    campaign_id = created.stdout.split()[1]
    listed = outreach(env, "campaigns")
    assert "Inactive" in listed.stdout and "0 completed of 4 to be contacted" in listed.stdout
    # When it is activated (by an id prefix) and the workers run on the simulated clock
    assert outreach(env, "campaign", "activate", campaign_id[:8]).returncode == 0
    ran = outreach(env, "run", "--simulate", "--from", f"{START}T09:00-06:00",
                   "--until", f"{START}T23:00-06:00")
    assert ran.returncode == 0, ran.stderr
    # Then the list shows it Completed and the JSON report has each patient
    assert "4 completed of 4 to be contacted" in outreach(env, "campaigns").stdout
    report = outreach(env, "campaign", "report", campaign_id, "--json")
    rows = [json.loads(line) for line in report.stdout.splitlines()]
    assert [(r["patient_id"], r["status"], r["attempts"]) for r in rows] == [
        (f"P{i}", "Sent", 1) for i in range(4)]


def test_a_refused_command_prints_one_clear_line_and_exits_non_zero(env):
    too_long = outreach(env, "campaign", "create", "--name", "Long", "--body", "x" * 400,
                        "--help-number", "555-0100")
    assert too_long.returncode == 1
    assert too_long.stderr.strip().splitlines() == [
        "error: the text message needs 3 segments (423 GSM-7 characters with the footer); "
        "at most 2 are allowed"]
    unknown = outreach(env, "campaign", "stop", "0000dead")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "error: no campaign matches '0000dead'"
    bad_date = outreach(env, "campaign", "create", "--name", "X", "--body", BODY,
                        "--help-number", "1", "--start", "24/11/2026")
    assert bad_date.returncode == 2 and "is not a date" in bad_date.stderr


def test_stop_is_final_from_the_command_line(env):
    created = outreach(env, "campaign", "create", "--name", "Flu", "--body", BODY,
                       "--help-number", "555-0100", "--active")
    campaign_id = created.stdout.split()[1]
    assert outreach(env, "campaign", "stop", campaign_id).returncode == 0
    again = outreach(env, "campaign", "activate", campaign_id)
    assert again.returncode == 1
    assert "stopped, which is final" in again.stderr


def test_a_test_send_of_an_unsaved_campaign_saves_it_inactive(env):
    sent = outreach(env, "campaign", "test-send", "--to", "+15005550006", "--name", "Draft",
                    "--body", BODY, "--help-number", "555-0100")
    assert sent.returncode == 0, sent.stderr
    assert "test text accepted" in sent.stdout and "is Inactive" in sent.stdout
    refused = outreach(env, "campaign", "test-send", sent.stdout.split()[-3],
                       "--to", "+15005550001")
    assert refused.returncode == 1 and "refused" in refused.stderr
