"""`outreach worker relay` on an event that can never be published: the process ends, non-zero,
saying which event (position and type, never its data) — instead of running on while no later
event reaches Kafka."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from application.settings import Settings
from application.store import open_event_store
from domain.campaign import Campaign
from projections.db import open_database

SECRET = "Zebulon-Quackenbush-diagnosis-"  # stands for data that must not reach the logs


def test_the_relay_process_exits_non_zero_naming_the_event_it_cannot_publish(
        tmp_path: Path, kafka_bootstrap: str, unique_topic_prefix: str) -> None:
    # given a store holding a small public event, then one whose record is 1.2 MB (over the
    # 1,000,000-byte limit: a campaign description no real clinic writes, standing for any
    # event the broker will never take)
    url = f"sqlite:///{tmp_path}/outreach.db"
    store = open_event_store(Settings(database_url=url))
    at = datetime(2030, 1, 7, tzinfo=UTC)
    small = Campaign(name="Flu", description="", channel="text", content={"body": "Hi"},
                     requested_start="2030-01-07", start_date="2030-01-07", audience=["P1"],
                     created_at=at, created_by="test")
    huge = Campaign(name="Flu 2", description=SECRET * 40_000, channel="text",
                    content={"body": "Hi"}, requested_start="2030-01-07",
                    start_date="2030-01-07", audience=["P1"], created_at=at, created_by="test")
    store.save(small)
    store.save(huge)
    started, too_large = [n.id for n in store.recorder.select_notifications(start=None,
                                                                            limit=10)]
    store.close()
    env = {**os.environ, "OUTREACH_DATABASE_URL": url,
           "OUTREACH_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "OUTREACH_KAFKA_TOPIC_PREFIX": unique_topic_prefix, "OUTREACH_LOG_FORMAT": "json"}
    # when the relay process runs
    ran = subprocess.run([sys.executable, "-c", "from api.cli import main; main()",
                          "worker", "relay"], env=env, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    # then it stops by itself, non-zero, naming the event's position and type, not its data
    assert ran.returncode != 0, ran.stderr[-2000:]
    output = " ".join((ran.stdout + ran.stderr).split())  # tracebacks may wrap lines
    assert "UnpublishableEvent" in output
    assert f"position {too_large} (Campaign.Created) cannot be published" in output
    assert SECRET not in output
    # and the event before it was published: a restart resumes at the stuck one
    db = open_database(url)
    try:
        assert db.fetchone("SELECT position FROM relay_position") == (started,)
    finally:
        db.close()
