"""Topics are created with the settings infra/README.md promises, and an existing topic's
settings are checked at start — against a real broker (Tansu).

Tansu stores and reports the configs given at creation (DescribeConfigs) but does not enforce
them (it accepts records over max.message.bytes, and deletes nothing by retention): what is
checked here is what outreach asks for and how it reacts to what the broker reports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import structlog.testing
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from application.settings import Settings
from bus.kafka_admin import (
    TopicConfigError,
    check_topic_config,
    ensure_topics,
    ensure_topics_for,
)
from bus.wire import events_topic, intents_topic

DAY_MS = 86_400_000


@pytest.fixture
def admin(kafka_bootstrap: str) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    yield client
    client.close()


def configs_of(admin: KafkaAdminClient, topic: str) -> dict[str, str]:
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                       config_filter="all")
    return {k: v["value"] for k, v in described["topic"][topic].items()}


def kafka_settings(bootstrap: str, prefix: str, **values: Any) -> Settings:
    return Settings(kafka_bootstrap_servers=bootstrap, kafka_topic_prefix=prefix, **values)


def test_topics_are_created_with_the_promised_retention_cleanup_and_record_size(
        admin: KafkaAdminClient, kafka_bootstrap: str, unique_topic_prefix: str) -> None:
    # when outreach starts on a broker without its topics, with default settings
    created = ensure_topics_for(kafka_settings(kafka_bootstrap, unique_topic_prefix))
    # then both exist, events kept 30 days and send-intents 1 day, deleted (never compacted),
    # and records bounded to 1,000,000 bytes
    events, intents = events_topic(unique_topic_prefix), intents_topic(unique_topic_prefix)
    assert sorted(created) == sorted([events, intents])
    assert configs_of(admin, events) == {"cleanup.policy": "delete",
                                         "retention.ms": str(30 * DAY_MS),
                                         "max.message.bytes": "1000000"}
    assert configs_of(admin, intents) == {"cleanup.policy": "delete",
                                          "retention.ms": str(DAY_MS),
                                          "max.message.bytes": "1000000"}


def test_retention_and_size_settings_reach_the_topics_created(
        admin: KafkaAdminClient, kafka_bootstrap: str, unique_topic_prefix: str) -> None:
    settings = kafka_settings(kafka_bootstrap, unique_topic_prefix,
                              kafka_events_retention_ms=-1, kafka_intents_retention_ms=3_600_000,
                              kafka_max_message_bytes=2_000_000)
    ensure_topics_for(settings)
    assert configs_of(admin, events_topic(unique_topic_prefix))["retention.ms"] == "-1"
    intents = configs_of(admin, intents_topic(unique_topic_prefix))
    assert (intents["retention.ms"], intents["max.message.bytes"]) == ("3600000", "2000000")


@pytest.mark.parametrize("policy", ["compact", "compact,delete"])
def test_a_compacted_events_topic_is_refused_at_start(
        admin: KafkaAdminClient, kafka_bootstrap: str, unique_topic_prefix: str,
        policy: str) -> None:
    # given an events topic someone created compacted (it would keep one event per aggregate)
    events = events_topic(unique_topic_prefix)
    admin.create_topics({events: {"num_partitions": 6, "replication_factor": 1,
                                  "configs": {"cleanup.policy": policy}}},
                        wait_for_metadata=True)
    # when outreach starts, then it refuses, saying why and what to set
    with structlog.testing.capture_logs() as logs, \
            pytest.raises(TopicConfigError, match=f"{events} has cleanup.policy={policy}"):
        ensure_topics(kafka_bootstrap, unique_topic_prefix, 6)
    assert any(e["event"] == "kafka_topic_config_refused" for e in logs)


def test_an_existing_topic_with_other_retention_starts_with_a_warning_naming_it(
        admin: KafkaAdminClient, kafka_bootstrap: str, unique_topic_prefix: str) -> None:
    # given an events topic created with the broker's usual 7 days and a smaller record limit
    events = events_topic(unique_topic_prefix)
    admin.create_topics({events: {"num_partitions": 6, "replication_factor": 1, "configs": {
        "cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS),
        "max.message.bytes": "500000"}}}, wait_for_metadata=True)
    # when outreach starts
    with structlog.testing.capture_logs() as logs:
        created = ensure_topics(kafka_bootstrap, unique_topic_prefix, 6)
    # then it starts (creating only the missing topic), warning about each difference
    assert created == [intents_topic(unique_topic_prefix)]
    problems = [e["problem"] for e in logs if e["event"] == "kafka_topic_config_differs"]
    assert len(problems) == 2, problems
    assert f"retention.ms={7 * DAY_MS}, not the promised {30 * DAY_MS}" in problems[0]
    assert "max.message.bytes=500000, under the producers' 1000000" in problems[1]
    # and the topic keeps its settings: they are the operator's
    assert configs_of(admin, events)["retention.ms"] == str(7 * DAY_MS)


def test_a_topic_whose_settings_the_broker_does_not_report_is_warned_about(
        admin: KafkaAdminClient, kafka_bootstrap: str, unique_topic_prefix: str) -> None:
    # given topics created by an older outreach, without configs (Tansu then reports none)
    for topic in (events_topic(unique_topic_prefix), intents_topic(unique_topic_prefix)):
        admin.create_topics({topic: {"num_partitions": 6, "replication_factor": 1}},
                            wait_for_metadata=True)
    with structlog.testing.capture_logs() as logs:
        ensure_topics(kafka_bootstrap, unique_topic_prefix, 6)
    problems = [e["problem"] for e in logs if e["event"] == "kafka_topic_config_differs"]
    assert len(problems) == 2 and all("cannot check" in p for p in problems), problems


# -- the comparison itself -----------------------------------------------------------------

WANTED = {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS),
          "max.message.bytes": "1000000"}


def test_what_the_topic_promises_passes_and_a_larger_record_limit_is_no_problem() -> None:
    assert check_topic_config("t", WANTED, WANTED) == check_topic_config(
        "t", WANTED, {**WANTED, "max.message.bytes": "5000000", "segment.ms": "1"})
    assert check_topic_config("t", WANTED, WANTED).errors == []
    assert check_topic_config("t", WANTED, WANTED).warnings == []


def test_compaction_in_any_spelling_is_an_error_and_other_drifts_warnings() -> None:
    for policy in ("compact", "delete,compact", "compact, delete"):
        assert check_topic_config("t", WANTED, {**WANTED, "cleanup.policy": policy}).errors
    drift = check_topic_config("t", WANTED, {**WANTED, "retention.ms": "-1",
                                             "max.message.bytes": "999999"})
    assert drift.errors == [] and len(drift.warnings) == 2
