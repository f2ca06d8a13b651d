"""`outreach campaign create` counts segments as Twilio bills them (a real process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from application.bootstrap import build
from application.settings import Settings
from tests.fixtures_app import import_patients, patient_row


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path}/outreach.db"
    o = build(Settings(database_url=url))
    import_patients(o, tmp_path, [patient_row("P1", "+13125550100")])
    o.close()
    return {**os.environ, "OUTREACH_DATABASE_URL": url, "OUTREACH_LOG_LEVEL": "WARNING"}


def create_campaign(env: dict[str, str], body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", "campaign", "create",
         "--name", "Flu", "--body", body, "--help-number", "555-0100"],
        env=env, capture_output=True, text=True, timeout=120)


def test_a_body_whose_euro_sign_straddles_a_boundary_is_refused_as_three_segments(
    env: dict[str, str],
) -> None:
    # Given 152 'a', a euro sign and 129 'a': with the footer 306 septets, 2 × 153
    body = "a" * 152 + "€" + "a" * 129
    # When staff create a campaign with it
    created = create_campaign(env, body)
    # Then it is refused in one line: the euro cannot be cut, Twilio would send 3 segments
    assert created.returncode != 0
    [line] = created.stderr.splitlines()
    assert line.startswith("error: the text message needs 3 segments (306 GSM-7 characters")
    assert "never split" in line
    # And one character less fits in two
    fits = create_campaign(env, body[:-1])
    assert fits.returncode == 0, fits.stderr
