"""Operators can see the Kafka side: a dispatcher's consumer lag and the relay's distance
from the event store's head, against a real broker (Tansu) and a real store (SQLite)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from application.bootstrap import build
from application.settings import Settings
from bus.intents import SendIntent
from bus.kafka_admin import ensure_topics
from bus.kafka_intents import KafkaIntentConsumer, KafkaIntentPublisher
from bus.kafka_relay import EventRelay
from tests.fixtures_app import import_patients, patient_row
from workers.health import Health
from workers.metrics import Metrics
from workers.processes import positions_behind, relay_loop


def gauge(metrics: Metrics, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_consumer_lag_is_the_end_offset_minus_what_the_group_committed(
        kafka_bootstrap: str, unique_topic_prefix: str) -> None:
    # Given five send-intents on a one-partition intents topic
    ensure_topics(kafka_bootstrap, unique_topic_prefix, 1)
    publisher = KafkaIntentPublisher(kafka_bootstrap, unique_topic_prefix)
    publisher.publish([
        SendIntent(uuid.uuid4(), uuid.uuid4(), 1, f"rk-{n}", datetime(2030, 1, 7, tzinfo=UTC))
        for n in range(5)])
    publisher.close()
    consumer = KafkaIntentConsumer(kafka_bootstrap, unique_topic_prefix,
                                   f"lag-{uuid.uuid4().hex[:8]}", session_timeout_ms=2_000,
                                   heartbeat_interval_ms=500, max_poll_interval_ms=10_000)
    metrics = Metrics()
    try:
        # When a dispatcher has handled and committed two of them
        got: list[SendIntent] = []
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            got = consumer.poll(max_records=2, timeout_s=0.5)
        assert len(got) == 2
        consumer.commit()
        metrics.partition_lag(consumer.lag())
        # Then its partition's lag is the three left, as Prometheus reads it
        assert gauge(metrics, "outreach_consumer_lag", partition="0") == 3
        # and once it has done the rest, nothing
        while len(got) < 5 and time.monotonic() < deadline:
            got += consumer.poll(timeout_s=0.5)
            consumer.commit()
        metrics.partition_lag(consumer.lag())
        assert gauge(metrics, "outreach_consumer_lag", partition="0") == 0
    finally:
        consumer.close()


def test_relay_positions_behind_is_the_store_head_minus_the_relay_position(
        kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path) -> None:
    # Given stored events (a patient import, a campaign) not yet relayed
    settings = Settings(database_url=f"sqlite:///{tmp_path}/o.db",
                        kafka_bootstrap_servers=kafka_bootstrap,
                        kafka_topic_prefix=unique_topic_prefix)
    o = build(settings)
    import_patients(o, tmp_path, [patient_row(f"P{i}", f"+1312555010{i}") for i in range(3)])
    o.campaigns.create(name="Flu", body="Flu shots are here.", help_number="555-0100",
                       active=True)
    head = o.store.recorder.max_notification_id() or 0
    assert head > 2
    relay = EventRelay.from_settings(settings, o.store, o.db, contact_keys=o.contact_keys)
    try:
        # When the relay has moved past the first two of them
        relay.run_once(limit=2)
        # Then it is the rest behind
        assert positions_behind(o, relay) == head - 2
    finally:
        relay.close()
    # And the relay loop of a worker process keeps the gauge: zero once caught up
    metrics, stop = Metrics(), threading.Event()
    loop = threading.Thread(target=relay_loop, args=(o, stop, Health()),
                            kwargs={"idle_sleep_s": 0.1, "metrics": metrics}, daemon=True)
    loop.start()
    try:
        wait_for(lambda: gauge(metrics, "outreach_relay_positions_behind") == 0
                 and (gauge(metrics, "outreach_relay_events_published_total") or 0) > 0,
                 30, "the relay to catch up")
    finally:
        stop.set()
        loop.join(timeout=30)
        o.close()
