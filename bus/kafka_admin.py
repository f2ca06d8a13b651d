"""Create outreach's Kafka topics if they are missing, with their promised settings, and check
the settings of topics that exist (infra/README.md, "Topics").

Relying on broker auto-creation would give the intents topic the broker's default partition
count (often 1), which silently removes the dispatchers' parallelism, and the broker's default
retention (7 days on Apache Kafka): create them explicitly.

At every start the topics' configuration is read back (DescribeConfigs) and compared with
what is promised. A difference is a logged warning — retention and size are the operator's to
change (a legal hold, a longer replay window), and refusing to start over them would also stop
STOPs and outcomes from flowing — except compaction, which is an error: both topics are keyed
by something many records share (the aggregate id, the address's routing key), so compaction
would delete all but the latest record of each key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError, TopicAlreadyExistsError

from bus.wire import events_topic, intents_topic

if TYPE_CHECKING:
    from application.settings import Settings

log = structlog.get_logger(__name__)

# The events topic is keyed by aggregate id; a few partitions let consumers share it.
EVENT_PARTITIONS = 6
DAY_MS = 86_400_000
EVENTS_RETENTION_MS = 30 * DAY_MS
INTENTS_RETENTION_MS = DAY_MS
MAX_MESSAGE_BYTES = 1_000_000  # Apache Kafka's default is 1,048,588: stay under it


class TopicConfigError(RuntimeError):
    """An existing topic is configured in a way that loses records: outreach will not use it."""


@dataclass(frozen=True)
class TopicPolicy:
    """What the topics outreach creates are promised to be (application.settings)."""

    events_retention_ms: int = EVENTS_RETENTION_MS
    intents_retention_ms: int = INTENTS_RETENTION_MS
    max_message_bytes: int = MAX_MESSAGE_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> TopicPolicy:
        return cls(settings.kafka_events_retention_ms, settings.kafka_intents_retention_ms,
                   settings.kafka_max_message_bytes)

    def configs(self, retention_ms: int) -> dict[str, str]:
        return {
            "cleanup.policy": "delete",
            "retention.ms": str(retention_ms),
            "max.message.bytes": str(self.max_message_bytes),
        }


def topic_specs(
    prefix: str, intent_partitions: int, policy: TopicPolicy | None = None,
    replication_factor: int = 1,
) -> dict[str, dict[str, Any]]:
    """CreateTopics specs (kafka-python's dict form), configs included."""
    policy = policy or TopicPolicy()
    return {
        events_topic(prefix): {"num_partitions": EVENT_PARTITIONS,
                               "replication_factor": replication_factor,
                               "configs": policy.configs(policy.events_retention_ms)},
        intents_topic(prefix): {"num_partitions": intent_partitions,
                                "replication_factor": replication_factor,
                                "configs": policy.configs(policy.intents_retention_ms)},
    }


@dataclass(frozen=True)
class ConfigCheck:
    errors: list[str]
    warnings: list[str]


def check_topic_config(topic: str, wanted: Mapping[str, str],
                       actual: Mapping[str, str]) -> ConfigCheck:
    """Compare a topic's configuration (as the broker reports it) with what is promised.
    Messages name the topic, the key and both values (configuration, never data)."""
    errors: list[str] = []
    warnings: list[str] = []
    policy = actual.get("cleanup.policy")
    if policy is not None and "compact" in policy.replace(" ", "").split(","):
        errors.append(
            f"topic {topic} has cleanup.policy={policy}: compaction keeps only the latest "
            "record of each key and would delete the others; set cleanup.policy=delete")
    elif policy is not None and policy != wanted["cleanup.policy"]:
        warnings.append(f"topic {topic} has cleanup.policy={policy}, "
                        f"not {wanted['cleanup.policy']}")
    retention = actual.get("retention.ms")
    if retention is not None and retention != wanted["retention.ms"]:
        warnings.append(f"topic {topic} has retention.ms={retention}, not the promised "
                        f"{wanted['retention.ms']}")
    size = actual.get("max.message.bytes")
    if size is not None and _as_int(size) < int(wanted["max.message.bytes"]):
        # Bigger is harmless; smaller means records the producers accept are refused.
        warnings.append(
            f"topic {topic} has max.message.bytes={size}, under the producers' "
            f"{wanted['max.message.bytes']}: records between the two are refused and stop "
            "the relay")
    missing = sorted(k for k in wanted if k not in actual)
    if missing:
        warnings.append(f"topic {topic}: the broker does not report {', '.join(missing)}; "
                        "cannot check them")
    return ConfigCheck(errors, warnings)


def ensure_topics(
    bootstrap: str,
    prefix: str,
    intent_partitions: int,
    *,
    replication_factor: int = 1,
    timeout_ms: int = 30_000,
    policy: TopicPolicy | None = None,
) -> list[str]:
    """Create the events and send-intents topics that do not exist yet, with their promised
    configs, then check every topic's configs (see the module doc). Returns the names created.
    Safe to run from several processes at once (an existing topic is fine). Raises
    TopicConfigError when a topic is compacted.

    An existing topic keeps its partition count and configs: changing the count would move
    keys between partitions and break per-key ordering, and both are operator decisions.
    """
    specs = topic_specs(prefix, intent_partitions, policy, replication_factor)
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="outreach-admin",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
    )
    created: list[str] = []
    try:
        existing = set(admin.list_topics())
        for name, spec in specs.items():
            if name in existing:
                continue
            # One topic per request, so a racing creator's TopicAlreadyExistsError for one
            # topic cannot hide a failure (or a success) for the other.
            try:
                # wait_for_metadata: a producer started right after us must find leaders.
                admin.create_topics({name: spec}, wait_for_metadata=True)
            except TopicAlreadyExistsError:
                continue
            created.append(name)
        if created:
            log.info("kafka_topics_created", count=len(created), topics=created)
        _check_configs(admin, {name: spec["configs"] for name, spec in specs.items()})
    finally:
        admin.close()
    return created


def ensure_topics_for(settings: Settings, timeout_ms: int = 30_000) -> list[str]:
    """`ensure_topics` with the settings' prefix, partitions, replication and policy."""
    if not settings.kafka_bootstrap_servers:
        raise ValueError("OUTREACH_KAFKA_BOOTSTRAP_SERVERS is not set")
    return ensure_topics(
        settings.kafka_bootstrap_servers,
        settings.kafka_topic_prefix,
        settings.kafka_intent_partitions,
        replication_factor=settings.kafka_replication_factor,
        timeout_ms=timeout_ms,
        policy=TopicPolicy.from_settings(settings),
    )


def _check_configs(admin: KafkaAdminClient, wanted: Mapping[str, Mapping[str, str]]) -> None:
    try:
        # "all": brokers report values set at creation as well as defaults (Tansu reports
        # the ones given at creation as DEFAULT_CONFIG, which the "modified" filter hides).
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted],
            config_filter="all")
    except KafkaError as exc:
        # No DESCRIBE_CONFIGS permission, or a broker without the API: say so, carry on.
        log.warning("kafka_topic_configs_unchecked", error=type(exc).__name__)
        return
    reported = described.get("topic", {})
    errors: list[str] = []
    for name, configs in wanted.items():
        actual = {key: str(entry.get("value")) for key, entry in reported.get(name, {}).items()
                  if entry.get("value") is not None}
        check = check_topic_config(name, configs, actual)
        for warning in check.warnings:
            log.warning("kafka_topic_config_differs", topic=name, problem=warning)
        errors += check.errors
    if errors:
        for error in errors:
            log.error("kafka_topic_config_refused", problem=error)
        raise TopicConfigError("; ".join(errors))


def _as_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return -1
