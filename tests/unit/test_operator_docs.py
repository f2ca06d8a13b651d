"""infra/README.md and the README's scale-out section say what the code does: every setting
they name exists, the defaults they quote are the code's, every worker command is named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api import cli_ops  # noqa: F401 - registers the worker commands on worker_app
from api.cli import worker_app
from application.settings import Settings
from bus.kafka_admin import EVENT_PARTITIONS

ROOT = Path(__file__).resolve().parents[2]
INFRA = (ROOT / "infra" / "README.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
# Named in the docs but not application settings: the compose file's password, the tests'.
# Environment the command line reads itself (api/cli_identity.py), not Settings.
NOT_SETTINGS = {"OUTREACH_DB_PASSWORD", "OUTREACH_TEST_KAFKA", "OUTREACH_TEST_POSTGRES_URL",
                "OUTREACH_TOKEN", "OUTREACH_TOKEN_FILE"}


def one_line(text: str) -> str:
    return " ".join(text.split())


def scale_out_section() -> str:
    start = README.index("## Running at scale")
    return README[start:README.index("\n## ", start + 1)]


@pytest.mark.parametrize("doc", ["infra/README.md", "README.md"])
def test_every_outreach_setting_the_docs_name_exists(doc: str) -> None:
    text = INFRA if doc == "infra/README.md" else README
    fields = {f"OUTREACH_{name.upper()}" for name in Settings.model_fields}
    named = set(re.findall(r"OUTREACH_[A-Z0-9_]+", text)) - NOT_SETTINGS
    assert named <= fields, sorted(named - fields)


def test_infra_quotes_the_codes_kafka_defaults() -> None:
    defaults, text = Settings(), one_line(INFRA)
    # max poll interval and the batch that must fit in it
    assert f"`OUTREACH_KAFKA_MAX_POLL_INTERVAL_MS` ({defaults.kafka_max_poll_interval_ms:,}" in text
    assert f"`OUTREACH_DISPATCH_BATCH` intents ({defaults.dispatch_batch})" in text
    assert f"{defaults.kafka_session_timeout_ms // 1000} s by default" in text
    # replication factor: the setting, and its default
    assert (f"`OUTREACH_KAFKA_REPLICATION_FACTOR` replicas (default "
            f"{defaults.kafka_replication_factor}") in text
    # retention of both topics, and the events topic's partitions
    day = 86_400_000
    assert defaults.kafka_events_retention_ms == 30 * day and "30 days" in text
    assert defaults.kafka_intents_retention_ms == day and "1 day" in text
    assert f"| {EVENT_PARTITIONS} (`bus/kafka_admin.py` `EVENT_PARTITIONS`)" in text
    # the start-up wait
    assert f"`OUTREACH_STARTUP_TIMEOUT_SECONDS` ({defaults.startup_timeout_seconds:g} s)" in text


def test_the_scale_out_section_names_every_worker_command_and_the_window_settings() -> None:
    section = scale_out_section()
    commands = {c.name for c in worker_app.registered_commands}
    assert commands == {"dispatch", "relay", "schedule"}
    for name in sorted(commands):
        assert f"outreach worker {name}" in section, name
    assert "outreach serve" in section and "outreach run" in section
    for setting in ("OUTREACH_TEXT_WINDOW", "OUTREACH_SENDING_DAYS", "OUTREACH_HOLIDAYS",
                    "OUTREACH_TIMEZONE"):
        assert f"export {setting}=" in section, setting
