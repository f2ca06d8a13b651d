"""Relay: the event store's notification log → the Kafka events topic (bus.wire JSON).

Delivery is AT LEAST ONCE. Each batch is published, the broker's acknowledgement of every
record is awaited, and only then is the relay's position stored (table `relay_position` in
the read-model database). A crash between the two republishes at most that last batch, so
consumers must deduplicate by (aggregate_id, aggregate_version) — which also makes them
immune to a rebalance replaying a partition. Per aggregate, events are published in log
order to one partition (the key is the aggregate id), so consumers see them in order.

Run one relay per (store, name): two instances with the same name would both publish.

Two kinds of failure, told apart for the supervisor:
- `UnpublishableEvent`: this event can never be published as it is (its record is over the
  size limit, the broker refuses it as invalid, or this code cannot decode or encode it).
  Permanent: retrying cannot help, and skipping it would hide it from every consumer. The
  relay stores the position of the events before it, and stops with this error naming the
  position and the event type (never the data); an operator must act (infra/README.md).
- anything else (kafka's own errors: a broker down or restarting, timeouts): transient, worth
  a retry after a pause; the position is kept, so a retry republishes nothing acknowledged.
`health()` tells readiness checks which state the relay is in.

The wire carries event data in the clear (even when the store encrypts it at rest): the
events topic must be protected like the database. Logs here carry counts and positions only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from eventsourcing.persistence import Notification
from kafka import KafkaProducer
from kafka.errors import (
    InvalidRecordError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)

from application.store import EventStore
from bus.kafka_admin import MAX_MESSAGE_BYTES, ensure_topics_for
from bus.public_events import (
    RULES,
    CommunicationContexts,
    Rule,
    kafka_record,
    public_message,
)
from bus.wire import cloudevents_headers, cloudevents_source, events_topic
from domain.clock import Clock
from domain.preferences import ContactKeys
from projections.db import Database

if TYPE_CHECKING:
    from application.settings import Settings

log = structlog.get_logger(__name__)

POSITION_DDL = "CREATE TABLE IF NOT EXISTS relay_position (name TEXT PRIMARY KEY, position BIGINT)"

# Refusals of one record that no retry can change. (CorruptRecordError is left out: a CRC
# failure can come from the network, and a retry is how to find out.)
_REFUSED_FOR_GOOD = (MessageSizeTooLargeError, RecordListTooLargeError, InvalidRecordError)


class UnpublishableEvent(RuntimeError):
    """A stored event that can never be published as it is: the relay stops at it. Not a
    KafkaError, so nothing that retries broker trouble retries this."""

    def __init__(self, position: int, event_type: str, reason: str) -> None:
        self.position = position
        self.event_type = event_type
        self.reason = reason
        super().__init__(
            f"the event at position {position} ({event_type}) cannot be published: {reason}. "
            "The relay stops here: no later event reaches Kafka until it is dealt with "
            "(infra/README.md, 'When an event cannot be published')")


@dataclass(frozen=True)
class RelayHealth:
    """What a readiness check needs. `healthy`: the last run ended without error (and none
    has failed since); `stuck`: it failed on an UnpublishableEvent (no retry will help)."""

    healthy: bool
    stuck: bool
    running: bool  # inside run_forever
    position: int  # notification id of the last event the broker acknowledged (0: none)
    last_published_at: datetime | None  # when events were last acknowledged
    last_checked_at: datetime | None  # when a run last ended well (published or caught up)
    last_error: str | None  # no event data: positions, event types, error types
    last_error_at: datetime | None


class _UtcClock(Clock):
    """For callers that inject no clock (tests, scripts); the processes pass theirs."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep_until(self, when: datetime) -> None:
        import time

        time.sleep(max(0.0, (when - self.now()).total_seconds()))


class EventRelay:
    def __init__(
        self,
        store: EventStore,
        db: Database,
        bootstrap_servers: str,
        topic_prefix: str,
        *,
        name: str = "kafka-events",
        timeout_s: float = 30.0,
        compression_type: str | None = "gzip",
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        clock: Clock | None = None,
        contact_keys: ContactKeys,
        rules: Mapping[str, Rule] = RULES,
    ) -> None:
        """`contact_keys` pseudonymise contact keys on the topic; `rules` say which events
        and fields are public (bus.public_events): everything else stays internal."""
        self.store = store
        self.contact_keys = contact_keys
        self.rules = rules
        self.db = db
        self.name = name
        self.topic = events_topic(topic_prefix)
        # CloudEvents binary mode: every record carries ce_* headers (bus.wire).
        self.source = cloudevents_source(topic_prefix)
        self._contexts = CommunicationContexts(store)
        self.compression_type = compression_type
        self.max_message_bytes = max_message_bytes
        self._timeout_s = timeout_s
        self._clock = clock or _UtcClock()
        self.db.migrate(POSITION_DDL)
        self._position = self._load_position()
        self._lock = threading.Lock()  # health is written by the relay thread, read by others
        self._running = False
        self._last_published_at: datetime | None = None
        self._last_checked_at: datetime | None = None
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self._stuck = False
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=f"outreach-relay-{name}",
            enable_idempotence=True,
            acks="all",  # acks=1 would silently turn idempotence off
            linger_ms=5,  # a batch is sent together anyway; let records share requests
            bootstrap_timeout_ms=int(timeout_s * 1000),
            # Compression applies to whole batches: JSON events shrink several times over.
            compression_type=compression_type,
            # Checked before sending, on the uncompressed record: a record over it fails at
            # once, here, instead of being refused by the broker.
            max_request_size=max_message_bytes,
        )

    @classmethod
    def from_settings(cls, settings: Settings, store: EventStore, db: Database,
                      clock: Clock | None = None, *, contact_keys: ContactKeys,
                      rules: Mapping[str, Rule] = RULES) -> EventRelay:
        if not settings.kafka_bootstrap_servers:
            raise ValueError("OUTREACH_KAFKA_BOOTSTRAP_SERVERS is not set")
        ensure_topics_for(settings)
        return cls(
            store, db, settings.kafka_bootstrap_servers, settings.kafka_topic_prefix,
            compression_type=None if settings.kafka_compression == "none"
            else settings.kafka_compression,
            max_message_bytes=settings.kafka_max_message_bytes,
            clock=clock, contact_keys=contact_keys, rules=rules,
        )

    @property
    def position(self) -> int:
        """The notification id of the last event acknowledged by the broker (0: none)."""
        return self._position

    # -- health --------------------------------------------------------------------------
    def health(self) -> RelayHealth:
        with self._lock:
            return RelayHealth(
                healthy=self._last_error is None,
                stuck=self._stuck,
                running=self._running,
                position=self._position,
                last_published_at=self._last_published_at,
                last_checked_at=self._last_checked_at,
                last_error=self._last_error,
                last_error_at=self._last_error_at,
            )

    @property
    def healthy(self) -> bool:
        return self.health().healthy

    @property
    def last_error(self) -> str | None:
        return self.health().last_error

    # -- relaying ------------------------------------------------------------------------
    def run_once(self, limit: int = 1000) -> int:
        """Publish the next events after the stored position (at most `limit`); returns how
        many were published. Raises UnpublishableEvent (permanent) or the broker's error."""
        with self._noting_failures():
            # "After the last id seen", never "from last + 1": ids can have gaps on PostgreSQL
            # (a rolled-back insert burns its sequence value). They never appear out of order:
            # eventsourcing's recorders serialise inserts (a table lock on PostgreSQL).
            notifications = self.store.recorder.select_notifications(
                start=self._position, limit=limit, inclusive_of_start=False
            )
            if not notifications:
                return self._note_success(0)
            sent: list[tuple[int, str, int, Any]] = []  # position, event type, size, future
            failure: Exception | None = None
            for notification in notifications:
                event_type = _event_type(notification)
                try:
                    domain_event = self.store.mapper.to_domain_event(notification)
                    message = public_message(domain_event, notification.id, self.contact_keys,
                                             self.rules, self._contexts)
                except Exception as exc:  # noqa: BLE001 - a moved class, an unknown field type…
                    # Never skipped: consumers must never miss an event. The error's text may
                    # quote event data, so only its type is kept.
                    failure = _unpublishable(notification.id, event_type,
                                             f"this code cannot read or encode it "
                                             f"({type(exc).__name__})", exc)
                    break
                if message is None:
                    # Internal (patient import rows, views…): never on the public topic. The
                    # position moves past it once everything before it is acknowledged.
                    sent.append((notification.id, event_type, 0, None))
                    continue
                key, value = kafka_record(message)
                try:
                    future = self._producer.send(
                        self.topic, key=key, value=value,
                        headers=cloudevents_headers(message, self.source))
                except _REFUSED_FOR_GOOD as exc:
                    failure = _unpublishable(notification.id, event_type,
                                             self._refusal(exc, len(key) + len(value)), exc)
                    break
                except Exception as exc:  # noqa: BLE001 - raised below, once the rest is acked
                    failure = exc
                    break
                sent.append((notification.id, event_type, len(key) + len(value), future))
            if any(future is not None for *_, future in sent):
                self._producer.flush(timeout=self._timeout_s)
            acknowledged, count = 0, 0
            for position, event_type, size, future in sent:
                # Every record before the first failure is acknowledged: store that much, so a
                # stuck relay reports exactly the event it stops at.
                if future is None:
                    acknowledged = position
                    continue
                try:
                    future.get(timeout=self._timeout_s)
                except _REFUSED_FOR_GOOD as exc:
                    failure = _unpublishable(position, event_type, self._refusal(exc, size), exc)
                    break
                except Exception as exc:  # noqa: BLE001 - raised below, after storing the rest
                    failure = exc
                    break
                acknowledged, count = position, count + 1
            if acknowledged:
                self._store_position(acknowledged)
                self._position = acknowledged
                log.info("relay_published", relay=self.name, count=count, position=acknowledged)
            if failure is not None:
                raise failure
            return self._note_success(count)

    def run_forever(self, stop_event: threading.Event, idle_sleep: float = 0.5) -> None:
        """Relay until `stop_event` is set; sleeps `idle_sleep` seconds when caught up. Errors
        end it, logged and raised (never swallowed): an UnpublishableEvent must stop the
        process; the supervisor may restart it after other errors, and it resumes from the
        stored position."""
        log.info("relay_started", relay=self.name, position=self._position)
        with self._lock:
            self._running = True
        try:
            while not stop_event.is_set():
                if self.run_once() == 0:
                    stop_event.wait(idle_sleep)
        except UnpublishableEvent as exc:
            log.error("relay_stuck", relay=self.name, position=exc.position,
                      event_type=exc.event_type, reason=exc.reason)
            raise
        except Exception as exc:
            log.error("relay_failed", relay=self.name, position=self._position,
                      error=type(exc).__name__)
            raise
        finally:
            with self._lock:
                self._running = False
        log.info("relay_stopped", relay=self.name, position=self._position)

    def close(self) -> None:
        self._producer.close(timeout=self._timeout_s)

    def _refusal(self, exc: Exception, size: int) -> str:
        if isinstance(exc, MessageSizeTooLargeError):
            return (f"its record is {size:,} bytes, over the {self.max_message_bytes:,}-byte "
                    "limit (OUTREACH_KAFKA_MAX_MESSAGE_BYTES) or the topic's max.message.bytes")
        return f"the broker refuses it ({type(exc).__name__})"

    def _note_success(self, published: int) -> int:
        with self._lock:
            now = self._clock.now()
            self._last_checked_at = now
            if published:
                self._last_published_at = now
            self._last_error = self._last_error_at = None
        return published

    @contextmanager
    def _noting_failures(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            if isinstance(exc, UnpublishableEvent | KafkaError):
                text = str(exc)  # built from positions, sizes and protocol errors only
            else:
                text = type(exc).__name__  # e.g. a database error may quote values
            with self._lock:
                self._last_error = text
                self._last_error_at = self._clock.now()
                self._stuck = self._stuck or isinstance(exc, UnpublishableEvent)
            raise

    # -- position ------------------------------------------------------------------------
    def _load_position(self) -> int:
        row = self.db.fetchone("SELECT position FROM relay_position WHERE name = ?", (self.name,))
        return int(row[0]) if row else 0

    def _store_position(self, position: int) -> None:
        self.db.execute(
            "INSERT INTO relay_position (name, position) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            (self.name, position),
        )


def _event_type(notification: Notification) -> str:
    # The stored topic is `module:Aggregate.Event`; the wire's event_type is the last part.
    # Read from the topic, not the decoded event, so an undecodable event is named too.
    return notification.topic.rpartition(":")[2]


def _unpublishable(position: int, event_type: str, reason: str,
                   cause: BaseException) -> UnpublishableEvent:
    error = UnpublishableEvent(position, event_type, reason)
    error.__cause__ = cause
    return error
