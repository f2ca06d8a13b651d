"""Relay: the event store's notification log → the Kafka events topic (bus.wire JSON).

Delivery is AT LEAST ONCE. Each batch is published, the broker's acknowledgement of every
record is awaited, and only then is the relay's position stored (table `relay_position` in
the read-model database). A crash between the two republishes at most that last batch, so
consumers must deduplicate by (aggregate_id, aggregate_version) — which also makes them
immune to a rebalance replaying a partition. Per aggregate, events are published in log
order to one partition (the key is the aggregate id), so consumers see them in order.

Run one relay per (store, name): two instances with the same name would both publish.

The wire carries event data in the clear (even when the store encrypts it at rest): the
events topic must be protected like the database. Logs here carry counts and positions only.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import structlog
from kafka import KafkaProducer

from application.store import EventStore
from bus.kafka_admin import ensure_topics
from bus.wire import encode_event, events_topic
from projections.db import Database

if TYPE_CHECKING:
    from application.settings import Settings

log = structlog.get_logger(__name__)

POSITION_DDL = "CREATE TABLE IF NOT EXISTS relay_position (name TEXT PRIMARY KEY, position BIGINT)"


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
    ) -> None:
        self.store = store
        self.db = db
        self.name = name
        self.topic = events_topic(topic_prefix)
        self._timeout_s = timeout_s
        self.db.migrate(POSITION_DDL)
        self._position = self._load_position()
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=f"outreach-relay-{name}",
            enable_idempotence=True,
            acks="all",  # acks=1 would silently turn idempotence off
            linger_ms=5,  # a batch is sent together anyway; let records share requests
            bootstrap_timeout_ms=int(timeout_s * 1000),
        )

    @classmethod
    def from_settings(cls, settings: Settings, store: EventStore, db: Database) -> EventRelay:
        if not settings.kafka_bootstrap_servers:
            raise ValueError("OUTREACH_KAFKA_BOOTSTRAP_SERVERS is not set")
        ensure_topics(
            settings.kafka_bootstrap_servers,
            settings.kafka_topic_prefix,
            settings.kafka_intent_partitions,
            replication_factor=settings.kafka_replication_factor,
        )
        return cls(store, db, settings.kafka_bootstrap_servers, settings.kafka_topic_prefix)

    @property
    def position(self) -> int:
        """The notification id of the last event acknowledged by the broker (0: none)."""
        return self._position

    def run_once(self, limit: int = 1000) -> int:
        """Publish the next events after the stored position (at most `limit`); returns how
        many were published."""
        # "After the last id seen", never "from last + 1": ids can have gaps on PostgreSQL
        # (a rolled-back insert burns its sequence value). They never appear out of order:
        # eventsourcing's recorders serialise inserts (a table lock on PostgreSQL).
        notifications = self.store.recorder.select_notifications(
            start=self._position, limit=limit, inclusive_of_start=False
        )
        if not notifications:
            return 0
        futures = []
        for notification in notifications:
            # An event that cannot be decoded (e.g. a moved class) stops the relay here with
            # an error rather than being skipped: consumers must never miss an event.
            domain_event = self.store.mapper.to_domain_event(notification)
            futures.append(
                self._producer.send(
                    self.topic,
                    key=str(domain_event.originator_id).encode("utf-8"),
                    value=encode_event(domain_event, notification.id),
                )
            )
        self._producer.flush(timeout=self._timeout_s)
        for future in futures:
            future.get(timeout=self._timeout_s)  # raises if any record was not acknowledged
        last = notifications[-1].id
        self._store_position(last)
        self._position = last
        log.info("relay_published", relay=self.name, count=len(futures), position=last)
        return len(futures)

    def run_forever(self, stop_event: threading.Event, idle_sleep: float = 0.5) -> None:
        """Relay until `stop_event` is set; sleeps `idle_sleep` seconds when caught up. Errors
        propagate (the supervisor restarts the process, which resumes from the position)."""
        log.info("relay_started", relay=self.name, position=self._position)
        while not stop_event.is_set():
            if self.run_once() == 0:
                stop_event.wait(idle_sleep)
        log.info("relay_stopped", relay=self.name, position=self._position)

    def close(self) -> None:
        self._producer.close(timeout=self._timeout_s)

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
