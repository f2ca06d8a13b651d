"""The events topic as an outsider reads it: a campaign runs, the relay publishes it to a real
Kafka-protocol broker (Tansu), and a consumer built with confluent-kafka (librdkafka: not our
code, not kafka-python) reads every record, checks its CloudEvents headers (binary mode) and
validates its value with jsonschema against the schema file shipped in the package."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from jsonschema import Draft202012Validator

from application.bootstrap import Outreach
from bus.kafka_admin import ensure_topics
from bus.kafka_relay import EventRelay
from bus.public_events import CommunicationContexts, public_message
from bus.wire import events_topic
from domain.inbound import InboundText
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from workers.runner import EmbeddedRunner

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "bus" / "schemas" / "events.schema.json"
BODY = "Flu shots are here. Call (555) 010-0100 to book."
CE_HEADERS = {"ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "content-type"}

pytestmark = [pytest.mark.kafka, pytest.mark.parametrize("stack", ["sqlite"], indirect=True)]


def expected_messages(o: Outreach) -> int:
    contexts = CommunicationContexts(o.store)
    return sum(
        public_message(o.store.mapper.to_domain_event(n), n.id, o.contact_keys,
                       context=contexts) is not None
        for n in o.store.recorder.select_notifications(start=0, limit=100_000,
                                                       inclusive_of_start=False))


def read_with_confluent(bootstrap: str, topic: str, expected: int,
                        timeout_s: float = 60) -> list[Any]:
    """Every record of `topic` from the beginning of each partition (assigned: no group
    join), until `expected` have come and a second passes with nothing more."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "contract-test",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        got: list[Any] = []
        deadline = time.monotonic() + timeout_s
        quiet_until: float | None = None
        while time.monotonic() < deadline:
            record = consumer.poll(0.5)
            if record is None:
                if quiet_until is not None and time.monotonic() > quiet_until:
                    break
                continue
            if record.error() is not None:
                assert record.error().code() == KafkaError._PARTITION_EOF, record.error()
                continue
            got.append(record)
            if len(got) >= expected:
                quiet_until = time.monotonic() + 1.0
        return got
    finally:
        consumer.close()


def test_an_outside_consumer_reads_cloudevents_headers_and_schema_valid_values(
        make_outreach, tmp_path, kafka_bootstrap, unique_topic_prefix):
    # Given a campaign run to completion, a STOP texted back, on the embedded stack
    o: Outreach = make_outreach()
    import_patients(o, tmp_path, [patient_row(f"P{n}", f"+1312555030{n}") for n in range(4)]
                    + [patient_row("P9", None)])
    o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True,
                       audience=["P0", "P1", "P2", "P3", "P9"])
    EmbeddedRunner(o).run_simulated(TUESDAY_9AM + timedelta(days=1))
    o.inbound.on_text(InboundText("SM-stop", "+13125550300", "+15005550006", "STOP",
                                  o.clock.now()))
    # When the relay publishes the history to the broker
    ensure_topics(kafka_bootstrap, unique_topic_prefix, 3)
    relay = EventRelay(o.store, o.db, kafka_bootstrap, unique_topic_prefix,
                       contact_keys=o.contact_keys)
    try:
        while relay.run_once() > 0:
            pass
    finally:
        relay.close()
    expected = expected_messages(o)
    records = read_with_confluent(kafka_bootstrap, events_topic(unique_topic_prefix), expected)
    # Then an independent client finds every event, each with the CloudEvents attributes…
    assert len(records) == expected > 20
    validator = Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    ids: set[str] = set()
    types: set[str] = set()
    for record in records:
        headers = {name: value.decode("utf-8") for name, value in record.headers() or ()}
        assert set(headers) >= CE_HEADERS, headers
        value = json.loads(record.value())
        assert headers["ce_specversion"] == "1.0"
        assert headers["ce_id"] == f"{value['aggregate_id']}:{value['aggregate_version']}"
        assert headers["ce_type"] == f"outreach.{value['event_type']}"
        assert headers["ce_source"] == f"/outreach/{unique_topic_prefix}"
        assert headers["content-type"] == "application/json"
        # ce_time is RFC 3339 and is the event's domain time
        assert datetime.fromisoformat(headers["ce_time"]).tzinfo is not None
        assert headers["ce_time"] == value["at"]
        assert record.key().decode() == value["aggregate_id"]
        ids.add(headers["ce_id"])
        types.add(value["event_type"])
        # …and a value the shipped schema accepts
        errors = [e.message for e in validator.iter_errors(value)]
        assert not errors, (value["event_type"], errors)
    assert len(ids) == len(records)  # ce_id is unique per event
    assert {"Campaign.Created", "Campaign.Completed", "Communication.Accepted",
            "Communication.Skipped", "PhoneOptOut.TextsStopped",
            "InboundMessage.Received"} <= types
