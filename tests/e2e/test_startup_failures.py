"""Start-up failures are one clear line and a non-zero exit, never a traceback: the real
`outreach` command in a subprocess, its stderr read through a pipe, at the default log level.

Exit codes: 2 a setting refused, 3 a dependency that does not answer at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures_app import TEST_CONTACT_KEY_SECRET
from tests.fixtures_servers import _free_port

CLI = [sys.executable, "-c", "from api.cli import main; main()"]
PASSWORD = "pw-not-for-logs"


def clean_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "TWILIO_"))}
    env.update(OUTREACH_DATABASE_URL=f"sqlite:///{tmp_path}/o.db",
               OUTREACH_CONTACT_KEY_SECRET=TEST_CONTACT_KEY_SECRET)
    env.update(settings)
    return env


def outreach(env: dict[str, str], *args: str) -> tuple[int, list[str], float]:
    started = time.monotonic()
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    return done.returncode, done.stderr.strip().splitlines(), time.monotonic() - started


@pytest.mark.parametrize("command", [
    ("campaigns",), ("run",), ("serve", "--insecure-dev-no-signatures"),
    ("worker", "dispatch"),
])
def test_an_unreachable_database_is_one_line_and_exit_code_3(
        tmp_path: Path, command: tuple[str, ...]) -> None:
    # Given OUTREACH_DATABASE_URL naming a PostgreSQL port nobody listens on
    port = _free_port()
    env = clean_env(tmp_path, OUTREACH_DATABASE_URL=(
        f"postgresql://outreach:{PASSWORD}@127.0.0.1:{port}/outreach"),
        OUTREACH_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{_free_port()}")
    # When the command starts
    code, lines, _ = outreach(env, *command)
    # Then one line says which database could not be used, never its password
    assert code == 3, lines
    assert len(lines) == 1, "\n".join(lines)
    assert lines[0].startswith(
        f"error: cannot use the database (PostgreSQL at 127.0.0.1:{port}, database outreach")
    assert "Connection refused" in lines[0] and PASSWORD not in lines[0]


@pytest.mark.parametrize("command", [
    ("run",), ("worker", "dispatch"), ("worker", "relay"), ("worker", "schedule"),
])
def test_an_unreachable_broker_is_one_line_and_exit_code_3_after_a_bounded_wait(
        tmp_path: Path, command: tuple[str, ...]) -> None:
    # Given OUTREACH_KAFKA_BOOTSTRAP_SERVERS naming a closed port, a 2 s start-up wait
    port = _free_port()
    env = clean_env(tmp_path, OUTREACH_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}",
                    OUTREACH_STARTUP_TIMEOUT_SECONDS="2")
    # When the worker starts
    code, lines, took = outreach(env, *command)
    # Then, after the wait and not forever, one line names the broker and the settings
    assert code == 3, lines
    assert lines == [f"error: the Kafka broker at 127.0.0.1:{port} "
                     "(OUTREACH_KAFKA_BOOTSTRAP_SERVERS) did not answer within 2 s "
                     "(OUTREACH_STARTUP_TIMEOUT_SECONDS): KafkaTimeoutError"]
    assert took < 30


def test_twilio_credentials_without_a_public_url_are_one_line_for_serve(
        tmp_path: Path) -> None:
    env = clean_env(tmp_path, TWILIO_ACCOUNT_SID="AC" + "a" * 32, TWILIO_AUTH_TOKEN="t" * 32,
                    TWILIO_FROM_NUMBER="+15005550006")
    code, lines, _ = outreach(env, "serve")
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: ") and (
        "OUTREACH_PUBLIC_URL" in lines[0]), lines
    assert "t" * 32 not in lines[0]


@pytest.mark.parametrize("command", [("run",), ("serve",), ("campaigns",)])
def test_a_twilio_account_without_a_sender_is_one_line_and_exit_code_2(
        tmp_path: Path, command: tuple[str, ...]) -> None:
    # Given Twilio credentials but neither TWILIO_FROM_NUMBER nor a messaging service
    env = clean_env(tmp_path, TWILIO_ACCOUNT_SID="AC" + "a" * 32, TWILIO_AUTH_TOKEN="t" * 32,
                    OUTREACH_PUBLIC_URL="https://outreach.example.org")
    code, lines, _ = outreach(env, *command)
    assert (code, lines) == (2, [
        "error: configuration: a Twilio sender needs from_number or messaging_service_sid"])


@pytest.mark.parametrize("command", [("worker", "dispatch"), ("worker", "relay"),
                                     ("worker", "schedule")])
def test_a_scale_out_worker_without_kafka_is_one_line_and_exit_code_2(
        tmp_path: Path, command: tuple[str, ...]) -> None:
    code, lines, _ = outreach(clean_env(tmp_path), *command)
    assert (code, lines) == (2, [
        "error: this command needs OUTREACH_KAFKA_BOOTSTRAP_SERVERS; the embedded default "
        "runs every worker inside `outreach run`"])
