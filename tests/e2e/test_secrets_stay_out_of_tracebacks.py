"""A failure prints a traceback, never the values around it: no Twilio auth token, no cipher
key, no patient's name or number, on any output stream of the real `outreach` process."""

from __future__ import annotations

import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eventsourcing.cryptography import AESCipher

from application.bootstrap import build
from application.settings import Settings
from tests.fakes.twilio_server import FakeTwilioServer
from tests.fixtures_app import import_patients, patient_row

FIRST, LAST, MOBILE = "Zebulon", "Quillfeather", "+13125550187"
BODY = "Flu shots are here. Call (555) 010-0100 to book."
CLI = [sys.executable, "-c", "from api.cli import main; main()"]


@pytest.fixture
def twilio() -> Iterator[FakeTwilioServer]:
    with FakeTwilioServer(auth_token="tok" + secrets.token_hex(16)) as fake:
        yield fake


@pytest.fixture
def env(tmp_path: Path, twilio: FakeTwilioServer) -> dict[str, str]:
    """A SQLite database encrypted at rest, holding one patient and an active campaign, and
    the environment of a production-like `outreach`: the real Twilio adapter (pointed at the
    local fake), its auth token and the cipher key."""
    url = f"sqlite:///{tmp_path}/outreach.db"
    settings = Settings(database_url=url, cipher_key=AESCipher.create_key(32))
    o = build(settings)
    import_patients(o, tmp_path, [patient_row("P1", MOBILE, first=FIRST, last=LAST)])
    o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    o.close()
    return {**os.environ, "OUTREACH_DATABASE_URL": url,
            "OUTREACH_CIPHER_KEY": str(settings.cipher_key),
            "TWILIO_ACCOUNT_SID": twilio.account_sid, "TWILIO_AUTH_TOKEN": twilio.auth_token,
            "TWILIO_FROM_NUMBER": "+15005550006", "OUTREACH_TWILIO_API_BASE_URL": twilio.url,
            "OUTREACH_PUBLIC_URL": "https://outreach.example.org", "OUTREACH_LOG_LEVEL": "INFO",
            "COLUMNS": "200"}


def leaked(env: dict[str, str], output: str) -> list[str]:
    """Which secrets or PHI appear in the output (digits of the number in any layout)."""
    found = [name for name, value in (
        ("auth token", env["TWILIO_AUTH_TOKEN"]), ("cipher key", env["OUTREACH_CIPHER_KEY"]),
        ("first name", FIRST), ("last name", LAST)) if value in output]
    if MOBILE[2:] in re.sub(r"[\s().+-]", "", output):
        found.append("mobile")
    return found


def read_models(database_url: str) -> Path:
    """The SQLite file of the read models (beside the event store's)."""
    store = Path(database_url.removeprefix("sqlite:///"))
    return store.with_name(f"{store.stem}-read{store.suffix}")


def break_read_models(database_url: str) -> None:
    """What an operator's mistake or a bad disk does under a running process: the tables the
    scheduler reads are gone."""
    with sqlite3.connect(read_models(database_url), timeout=30) as db:
        db.execute("DROP TABLE communications")
        db.execute("DROP TABLE issued_intents")


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_a_failing_worker_step_logs_its_traceback_without_secrets_or_phi(
        env: dict[str, str], tmp_path: Path, log_format: str) -> None:
    # Given `outreach run` working with the Twilio token and cipher key in its settings
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        run = subprocess.Popen([*CLI, "run", "--interval", "0.2"], stdout=stdout,
                               stderr=stderr, env={**env, "OUTREACH_LOG_FORMAT": log_format})
        try:
            wait_for(err, "running")
            # When its database breaks under it, so a step fails
            break_read_models(env["OUTREACH_DATABASE_URL"])
            wait_for(err, "step_failed")
        finally:
            run.send_signal(signal.SIGTERM)
            run.wait(timeout=30)
    output = out.read_text(errors="replace") + err.read_text(errors="replace")
    # Then the failure is logged with its cause...
    assert "step_failed" in output and "no such table" in output
    # ...and no secret and no PHI is on any stream
    assert leaked(env, output) == [], output


def test_a_command_failing_unexpectedly_prints_no_secrets_or_phi(env: dict[str, str]) -> None:
    # Given a read model of the wrong shape (a bad restore), which the command line trips on
    with sqlite3.connect(read_models(env["OUTREACH_DATABASE_URL"])) as db:
        db.execute("DROP TABLE communications")
        db.execute("CREATE TABLE communications (wrong INTEGER)")
    # When staff run a command
    failed = subprocess.run([*CLI, "campaigns"], env=env, capture_output=True, text=True,
                            timeout=120)
    # Then it fails, showing where, but never the values around it
    assert failed.returncode != 0
    assert "communications" in failed.stderr or "no such column" in failed.stderr
    assert leaked(env, failed.stdout + failed.stderr) == [], failed.stderr


def wait_for(path: Path, text: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in path.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never appeared:\n{path.read_text()}")
        time.sleep(0.1)
