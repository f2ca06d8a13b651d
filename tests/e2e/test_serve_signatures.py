"""`outreach serve` checks every webhook's signature, and will not start without the means
to: leaving a setting out never switches the checks off. Real processes, real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from twilio.request_validator import RequestValidator

CLI = [sys.executable, "-c", "from api.cli import main; main()"]
TOKEN = "serve-test-auth-token"
PUBLIC_URL = "https://outreach.example.org"
SMS = "/webhooks/twilio/sms"
STOP = {"MessageSid": "SM" + "a" * 32, "AccountSid": "AC" + "b" * 32,
        "From": "+13125550100", "To": "+15005550006", "Body": "STOP"}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: none of the developer's Twilio or outreach settings leak in."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("TWILIO_", "OUTREACH_"))}
    return {**base, "OUTREACH_DATABASE_URL": f"sqlite:///{tmp_path}/outreach.db",
            "OUTREACH_LOG_LEVEL": "WARNING", "COLUMNS": "60"}  # narrow: one line all the same


def refused(env: dict[str, str], *args: str) -> str:
    """Run `outreach serve`, expect it to refuse: exit 2 and one line on stderr only."""
    done = subprocess.run([*CLI, "serve", "--port", str(free_port()), *args], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert done.stdout == ""
    return lines[0]


@pytest.mark.parametrize("settings", [
    {},
    {"TWILIO_MESSAGING_SERVICE_SID": "MG" + "c" * 32},
    {"TWILIO_ACCOUNT_SID": "AC" + "b" * 32, "OUTREACH_PUBLIC_URL": PUBLIC_URL},
], ids=["nothing", "messaging-service-only", "sid-without-token"])
def test_serve_without_an_auth_token_refuses_to_start(
        env: dict[str, str], settings: dict[str, str]) -> None:
    line = refused({**env, **settings})
    assert "TWILIO_AUTH_TOKEN" in line and "--insecure-dev-no-signatures" in line


def test_serve_with_a_token_but_no_public_url_refuses_to_start(env: dict[str, str]) -> None:
    line = refused({**env, "TWILIO_AUTH_TOKEN": TOKEN})
    assert "OUTREACH_PUBLIC_URL" in line
    assert TOKEN not in line


@pytest.mark.parametrize("credentials", [
    {"TWILIO_ACCOUNT_SID": "AC" + "b" * 32, "TWILIO_AUTH_TOKEN": TOKEN,
     "TWILIO_FROM_NUMBER": "+15005550006"},
    {"TWILIO_AUTH_TOKEN": TOKEN},
    {"TWILIO_MESSAGING_SERVICE_SID": "MG" + "c" * 32},
], ids=["sid-and-token", "token", "messaging-service"])
@pytest.mark.parametrize("how", ["flag", "setting"])
def test_the_dev_flag_with_twilio_credentials_refuses_to_start(
        env: dict[str, str], credentials: dict[str, str], how: str) -> None:
    settings = {**env, **credentials, "OUTREACH_PUBLIC_URL": PUBLIC_URL}
    if how == "flag":
        line = refused(settings, "--insecure-dev-no-signatures")
    else:
        line = refused({**settings, "OUTREACH_INSECURE_DEV_NO_SIGNATURES": "true"})
    assert "simulator" in line
    assert TOKEN not in line


def test_with_a_token_an_unsigned_stop_is_forbidden_and_a_signed_one_taken(
        env: dict[str, str]) -> None:
    """The token alone (no account SID, so the simulator sends) used to mean 'no checks'."""
    settings = {**env, "TWILIO_AUTH_TOKEN": TOKEN, "OUTREACH_PUBLIC_URL": PUBLIC_URL}
    with serving(settings) as (url, _):
        unsigned = httpx.post(url + SMS, data=STOP)
        forged = httpx.post(url + SMS, data=STOP, headers={"X-Twilio-Signature": "forged"})
        signature = RequestValidator(TOKEN).compute_signature(PUBLIC_URL + SMS, STOP)
        signed = httpx.post(url + SMS, data=STOP, headers={"X-Twilio-Signature": signature})
        receipt = httpx.post(url + "/webhooks/twilio/status?ref=x%3A1",
                             data={"MessageSid": "SM1", "MessageStatus": "delivered"})
    assert (unsigned.status_code, forged.status_code, signed.status_code) == (403, 403, 200)
    assert receipt.status_code == 403


def test_the_dev_flag_with_the_simulator_serves_unsigned_webhooks_and_says_so_loudly(
        env: dict[str, str], tmp_path: Path) -> None:
    with serving(env, "--insecure-dev-no-signatures") as (url, stderr):
        unsigned = httpx.post(url + SMS, data=STOP)
    assert unsigned.status_code == 200
    warning = stderr.read_text()
    assert "INSECURE" in warning and "NOT verified" in warning


@contextmanager
def serving(env: dict[str, str], *args: str) -> Iterator[tuple[str, Path]]:
    """`outreach serve` on a free port until the block ends; yields its URL and stderr."""
    port = free_port()
    stderr_path = Path(env["OUTREACH_DATABASE_URL"].removeprefix("sqlite:///")).with_name(
        f"serve-{port}.stderr")
    with stderr_path.open("wb") as stderr:
        server = subprocess.Popen([*CLI, "serve", "--port", str(port), *args], env=env,
                                  stdout=subprocess.DEVNULL, stderr=stderr)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while not answers(url + "/healthz"):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"serve did not start:\n{stderr_path.read_text()}")
                time.sleep(0.1)
            yield url, stderr_path
        finally:
            server.terminate()
            server.wait(timeout=30)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
