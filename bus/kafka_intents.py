"""Kafka adapters of the send-intents ports (bus.intents).

Topic `{prefix}.send-intents`, value = UTF-8 JSON of `SendIntent.to_json()`, key = the
routing key (a hash of the address, never the address) so one number's intents stay in
order on one partition.

Delivery is at least once: the consumer commits only what the dispatcher says is done, and
anything polled but not committed (a crash, a rebalance) is delivered again, possibly to
another member of the group. Dispatchers are idempotent by (communication id, attempt).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import structlog
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.errors import (
    CommitFailedError,
    FencedInstanceIdError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from kafka.structs import OffsetAndMetadata, TopicPartition

from bus.intents import IntentConsumer, IntentPublisher, SendIntent
from bus.kafka_admin import MAX_MESSAGE_BYTES, ensure_topics_for
from bus.wire import intents_topic

if TYPE_CHECKING:
    from application.settings import Settings

log = structlog.get_logger(__name__)

# A commit refused because the group moved on: the partitions now belong to another member,
# which will redeliver the records from the last committed offset. Nothing is lost.
_LOST_TO_REBALANCE = (
    CommitFailedError,
    RebalanceInProgressError,
    IllegalGenerationError,
    UnknownMemberIdError,
    FencedInstanceIdError,
)


def encode_intent(intent: SendIntent) -> bytes:
    return json.dumps(intent.to_json(), separators=(",", ":")).encode("utf-8")


def decode_intent(raw: bytes | None) -> SendIntent:
    """Raises ValueError (or KeyError/TypeError) for anything that is not a SendIntent."""
    if raw is None:
        raise ValueError("a record without a value is not a send-intent")
    data = json.loads(raw)  # bytes in: UnicodeDecodeError and JSONDecodeError are ValueErrors
    if not isinstance(data, dict):
        raise ValueError("a send-intent must be a JSON object")
    return SendIntent.from_json(data)


class KafkaIntentPublisher(IntentPublisher):
    """Idempotent producer with acks=all: `publish` returns only once every record is
    acknowledged by all in-sync replicas. (acks=1 would silently turn idempotence off.)"""

    def __init__(
        self,
        bootstrap_servers: str,
        topic_prefix: str,
        *,
        client_id: str = "outreach-intents-publisher",
        timeout_s: float = 30.0,
        compression_type: str | None = "gzip",
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.topic = intents_topic(topic_prefix)
        self._timeout_s = timeout_s
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            enable_idempotence=True,
            acks="all",
            bootstrap_timeout_ms=int(timeout_s * 1000),
            compression_type=compression_type,  # settings: kafka_compression
            max_request_size=max_message_bytes,  # and the topic's max.message.bytes
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaIntentPublisher:
        """Creates the topics if missing (idempotent), then connects."""
        bootstrap = _bootstrap(settings)
        ensure_topics_for(settings)  # with the settings' retention and size (bus.kafka_admin)
        return cls(bootstrap, settings.kafka_topic_prefix,
                   compression_type=None if settings.kafka_compression == "none"
                   else settings.kafka_compression,
                   max_message_bytes=settings.kafka_max_message_bytes)

    def publish(self, intents: Sequence[SendIntent]) -> None:
        if not intents:
            return
        futures = [
            self._producer.send(
                self.topic, key=intent.routing_key.encode("utf-8"), value=encode_intent(intent)
            )
            for intent in intents
        ]
        self._producer.flush(timeout=self._timeout_s)
        for future in futures:
            # Raises the send's error (or KafkaTimeoutError): the caller must not record the
            # intents as published, and will publish them again.
            future.get(timeout=self._timeout_s)
        log.debug("intents_published", count=len(futures))

    def close(self, timeout_s: float | None = None) -> None:
        """`timeout_s`: how long unacknowledged records may still be delivered (a producer
        thrown away after a broker failure need not wait)."""
        self._producer.close(timeout=self._timeout_s if timeout_s is None else timeout_s)


class KafkaIntentConsumer(IntentConsumer):
    """One member of a consumer group reading the send-intents topic.

    Offsets are committed only by `commit()`, exactly past what the last `poll()` returned.
    Timeouts: the broker considers the member dead after `session_timeout_ms` without a
    heartbeat (heartbeats run in the client's background loop), and evicts it when `poll` is
    not called within `max_poll_interval_ms` — keep a batch's processing well under that.
    Apache Kafka refuses session timeouts under its `group.min.session.timeout.ms` (6 s by
    default); Tansu accepts less, which the tests use to make group joins faster.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic_prefix: str,
        group_id: str,
        *,
        client_id: str | None = None,
        session_timeout_ms: int = 6_000,
        heartbeat_interval_ms: int = 1_000,
        max_poll_interval_ms: int = 30_000,
        request_timeout_ms: int = 30_000,
    ) -> None:
        self.topic = intents_topic(topic_prefix)
        self.group_id = group_id
        # partition → offset after the last record the previous poll returned. Written by
        # the caller's thread and by the rebalance listener (client IO loop): hence the lock.
        self._pending: dict[TopicPartition, int] = {}
        self._lock = threading.RLock()
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id=client_id or f"outreach-{group_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            max_poll_interval_ms=max_poll_interval_ms,
            request_timeout_ms=request_timeout_ms,
            bootstrap_timeout_ms=request_timeout_ms,
        )
        self._consumer.subscribe([self.topic], listener=_RebalanceListener(self))

    @classmethod
    def from_settings(
        cls, settings: Settings, group_id: str, **options: Any
    ) -> KafkaIntentConsumer:
        bootstrap = _bootstrap(settings)
        ensure_topics_for(settings)  # with the settings' retention and size (bus.kafka_admin)
        return cls(bootstrap, settings.kafka_topic_prefix, group_id, **options)

    # -- IntentConsumer ----------------------------------------------------------------
    def poll(self, max_records: int = 500, timeout_s: float = 1.0) -> list[SendIntent]:
        with self._lock:
            if self._pending:
                raise RuntimeError("commit the previous poll before polling again")
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        intents: list[SendIntent] = []
        next_offsets: dict[TopicPartition, int] = {}
        skipped = 0
        for tp, records in batches.items():
            for record in records:
                try:
                    intents.append(decode_intent(record.value))
                except (ValueError, KeyError, TypeError) as exc:
                    # A poison record must never block its partition: skip it, and commit
                    # past it with the rest. Log where it is, never what it holds.
                    skipped += 1
                    log.warning(
                        "intent_undecodable_skipped",
                        topic=tp.topic,
                        partition=tp.partition,
                        offset=record.offset,
                        error=type(exc).__name__,
                    )
            if records:
                next_offsets[tp] = records[-1].offset + 1
        with self._lock:
            self._pending = next_offsets
        if next_offsets and not intents:
            # Only poison: nothing for the caller to do, and a caller that gets [] has no
            # reason to call commit(), so commit here or the skip would be redone forever.
            self.commit()
        if skipped:
            log.info("intents_polled", count=len(intents), skipped=skipped)
        return intents

    def commit(self) -> None:
        with self._lock:
            pending = dict(self._pending)
        if not pending:
            return
        # A partition revoked since the poll belongs to another member now: committing it
        # could overwrite that member's progress. Its records will simply be redelivered.
        assigned = self._consumer.assignment()
        offsets = {
            tp: OffsetAndMetadata(offset, "", -1)
            for tp, offset in pending.items()
            if tp in assigned
        }
        try:
            if offsets:
                self._consumer.commit(offsets)
        except _LOST_TO_REBALANCE as exc:
            log.warning(
                "intent_commit_lost_to_rebalance",
                partitions=len(offsets),
                error=type(exc).__name__,
            )
        # Other errors (broker unreachable…) propagate with the offsets still pending, so
        # the caller may retry commit().
        with self._lock:
            self._pending = {}

    def close(self) -> None:
        # Never commit on close: what was polled but not committed is redelivered.
        self._consumer.close(autocommit=False)

    # -- introspection -------------------------------------------------------------------
    def connected(self) -> bool:
        """Whether the group's coordinator is known: False once the broker is unreachable
        (heartbeats failed) until the client finds it again, and before the first join.
        Reads kafka-python's state without side effects (its coordinator_unknown() may
        mark the coordinator dead, not a thing to do from another thread)."""
        coordinator = getattr(self._consumer, "_coordinator", None)
        return coordinator is not None and coordinator.coordinator_id is not None

    def assigned_partitions(self) -> frozenset[int]:
        """Partitions of the intents topic this member owns now (empty while joining)."""
        return frozenset(tp.partition for tp in self._consumer.assignment() or ())

    def lag(self, timeout_s: float = 2.0) -> dict[int, int]:
        """partition → records not yet done, for the partitions this member owns: the end
        of the partition minus the group's committed offset (the group's truth, as
        kafka-consumer-groups.sh shows it; this member's position before the group's
        first commit). The end is the high watermark of the last fetch response (kept by
        the client as it polls; what kafka-python's own records-lag uses), or asked of the
        broker (ListOffsets) before the first fetch. One OffsetFetch per partition, bounded
        by `timeout_s`: call it every few seconds, not per record. Raises kafka's errors
        (e.g. KafkaTimeoutError) when the broker does not answer."""
        owned = list(self._consumer.assignment() or ())
        if not owned:
            return {}
        timeout_ms = int(timeout_s * 1000)
        ends: dict[TopicPartition, int | None] = {
            tp: self._consumer.highwater(tp) for tp in owned}
        unknown = [tp for tp, end in ends.items() if end is None]
        if unknown:
            ends.update(self._consumer.end_offsets(unknown, timeout_ms=timeout_ms))
        lag: dict[int, int] = {}
        for tp in owned:
            done = self._consumer.committed(tp, timeout_ms=timeout_ms)
            if done is None:
                done = self._consumer.position(tp, timeout_ms=timeout_ms)
            end = ends.get(tp)
            if end is not None and done is not None:
                lag[tp.partition] = max(0, int(end) - int(done))
        return lag

    def _forget(self, partitions: Iterable[TopicPartition], reason: str) -> None:
        with self._lock:
            dropped = [tp for tp in partitions if self._pending.pop(tp, None) is not None]
        if dropped:
            log.info(
                "intent_partitions_released_uncommitted", reason=reason, partitions=len(dropped)
            )


class _RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs on the client's IO loop: must stay quick (no I/O)."""

    def __init__(self, owner: KafkaIntentConsumer) -> None:
        self._owner = owner

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        # Uncommitted records of a revoked partition go to its next owner: we just stop
        # tracking them so commit() cannot write an offset for a partition we no longer own.
        self._owner._forget(revoked, "revoked")

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        log.info("intent_partitions_assigned", group=self._owner.group_id,
                 partitions=sorted(tp.partition for tp in assigned))

    def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        self._owner._forget(lost, "lost")


def _bootstrap(settings: Settings) -> str:
    if not settings.kafka_bootstrap_servers:
        raise ValueError("OUTREACH_KAFKA_BOOTSTRAP_SERVERS is not set")
    return settings.kafka_bootstrap_servers
