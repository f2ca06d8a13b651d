"""`outreach events`: by default what the public Kafka topic carries; `--internal` for the
whole stored history (audits). And a PostgreSQL deployment without its contact-key secret
does not start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from application.bootstrap import build
from application.clock import SimulatedClock
from application.settings import Settings
from domain.inbound import InboundText
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row

MOBILE = "+13125550163"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path}/outreach.db"
    o = build(Settings(database_url=url), clock=SimulatedClock(TUESDAY_9AM))
    import_patients(o, tmp_path, [patient_row("P1", MOBILE, first="Quentin", last="Zebedee")])
    o.inbound.on_text(InboundText("SM1", MOBILE, "+15005550006", "STOP", TUESDAY_9AM))
    o.close()
    return {**os.environ, "OUTREACH_DATABASE_URL": url, "OUTREACH_LOG_LEVEL": "WARNING"}


def outreach(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from api.cli import main; main()", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def test_events_prints_the_public_view_by_default_and_the_stored_history_on_request(env):
    # When the history is printed as the topic carries it (--json accepted: it is JSON lines)
    public = outreach(env, "events", "--json")
    assert public.returncode == 0, public.stderr
    types = [json.loads(line)["event_type"] for line in public.stdout.splitlines()]
    # Then the import's rows and the patient's number and text are not in it
    assert "InboundMessage.Received" in types and "PhoneOptOut.TextsStopped" in types
    assert "PatientImport.RowsImported" not in types
    for fact in ("Zebedee", "Quentin", "5550163", '"body"', '"from_number"'):
        assert fact not in public.stdout
    # And --internal prints every stored event, whole
    internal = outreach(env, "events", "--internal")
    assert internal.returncode == 0, internal.stderr
    assert "PatientImport.RowsImported" in internal.stdout and "Zebedee" in internal.stdout
    assert MOBILE in internal.stdout


def test_events_refuses_a_bad_limit_in_one_line(env):
    refused = outreach(env, "events", "--limit", "0")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: --after must be 0 or more and --limit at least 1"]


def test_postgres_without_a_contact_key_secret_refuses_to_start_in_one_line(env):
    # Given a PostgreSQL URL and no secret (nothing is contacted: settings refuse first)
    bare = {k: v for k, v in env.items() if k != "OUTREACH_CONTACT_KEY_SECRET"}
    bare["OUTREACH_DATABASE_URL"] = "postgresql://outreach@127.0.0.1:1/outreach"
    refused = outreach(bare, "events")
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("error: configuration: contact_key_secret: ")
    assert "OUTREACH_CONTACT_KEY_SECRET is not set" in line
