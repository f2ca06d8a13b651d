"""Patient data is protected: encrypted at rest when a key is set, never in the logs."""

from __future__ import annotations

import re
import sqlite3
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import structlog
from eventsourcing.cryptography import AESCipher

from application.bootstrap import build
from application.clock import SimulatedClock
from application.logging import configure_logging
from application.settings import Settings
from domain.inbound import InboundText
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from workers.runner import EmbeddedRunner

BODY = "Your colonoscopy prep starts now. Call (555) 010-0100."


def test_with_a_cipher_key_event_state_is_unreadable_in_the_database(tmp_path: Path) -> None:
    # Given an event store with a cipher key
    settings = Settings(database_url=f"sqlite:///{tmp_path}/o.db",
                        cipher_key=AESCipher.create_key(32))
    o = build(settings, clock=SimulatedClock(TUESDAY_9AM))
    import_patients(o, tmp_path, [patient_row("P1", "+13125550100", last="Zebedee")])
    # When a campaign is created and a STOP recorded
    o.campaigns.create(name="Colonoscopy", body=BODY, help_number="555-0100", active=True)
    o.inbound.on_text(InboundText("SM1", "+13125550100", "", "STOP", TUESDAY_9AM))
    o.close()
    # Then neither the body, the name nor the number appear in the stored events
    raw = b"".join(bytes(r[0]) for r in sqlite3.connect(tmp_path / "o.db").execute(
        "SELECT state FROM stored_events"))
    for secret in (b"colonoscopy", b"Zebedee", b"3125550100"):
        assert secret not in raw.lower()
    # And the application still reads them back
    again = build(settings, clock=SimulatedClock(TUESDAY_9AM))
    [row] = again.campaigns.campaigns()
    assert again.campaigns.get(UUID(row.campaign_id)).name == "Colonoscopy"
    again.close()


def test_a_whole_campaign_run_logs_no_phone_numbers_names_or_bodies(tmp_path, capsys) -> None:
    # Given JSON logs at debug level
    configure_logging("json", "DEBUG")
    settings = Settings(database_url=f"sqlite:///{tmp_path}/o.db", simulator_failure_rate=0.3)
    o = build(settings, clock=SimulatedClock(TUESDAY_9AM))
    import_patients(o, tmp_path, [patient_row(f"P{i}", f"+1312555010{i}", first="Quentin",
                                              last="Zebedee") for i in range(5)])
    # When a campaign runs with failures and replies
    o.campaigns.create(name="Colonoscopy", body=BODY, help_number="555-0100", active=True)
    EmbeddedRunner(o).run_simulated(TUESDAY_9AM + timedelta(days=1))
    o.inbound.on_text(InboundText("SM1", "+13125550100", "", "HELP", TUESDAY_9AM))
    o.inbound.on_text(InboundText("SM2", "+13125550101", "", "Who is this?", TUESDAY_9AM))
    o.close()
    logs = capsys.readouterr().err
    structlog.reset_defaults()
    # Then the logs said things, but nothing about who
    assert "sent" in logs and "inbound_text" in logs
    assert not re.search(r"\+1312555", logs)
    for secret in ("Quentin", "Zebedee", "colonoscopy", "Who is this"):
        assert secret.lower() not in logs.lower()
