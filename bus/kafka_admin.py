"""Create outreach's Kafka topics if they are missing.

Relying on broker auto-creation would give the intents topic the broker's default partition
count (often 1), which silently removes the dispatchers' parallelism: create them explicitly.
"""

from __future__ import annotations

import structlog
from kafka import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

from bus.wire import events_topic, intents_topic

log = structlog.get_logger(__name__)

# The events topic is keyed by aggregate id; a few partitions let consumers share it.
EVENT_PARTITIONS = 6


def topic_specs(prefix: str, intent_partitions: int) -> dict[str, dict[str, int]]:
    return {
        events_topic(prefix): {"num_partitions": EVENT_PARTITIONS, "replication_factor": 1},
        intents_topic(prefix): {"num_partitions": intent_partitions, "replication_factor": 1},
    }


def ensure_topics(
    bootstrap: str,
    prefix: str,
    intent_partitions: int,
    *,
    replication_factor: int = 1,
    timeout_ms: int = 30_000,
) -> list[str]:
    """Create the events and send-intents topics that do not exist yet. Returns the names
    created. Safe to run from several processes at once (an existing topic is fine).

    An existing topic keeps its partition count: changing it would move keys between
    partitions and break per-key ordering, so that is an operator decision, not ours.
    """
    specs = topic_specs(prefix, intent_partitions)
    for spec in specs.values():
        spec["replication_factor"] = replication_factor
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
    finally:
        admin.close()
    if created:
        log.info("kafka_topics_created", count=len(created), topics=created)
    return created
