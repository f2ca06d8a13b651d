"""The event relay against a real broker and real databases (SQLite file and PostgreSQL)."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import structlog
import structlog.testing
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError, RecordConflictError
from kafka import KafkaConsumer, TopicPartition

from application.clock import SimulatedClock
from application.settings import Settings
from application.store import EventStore, open_event_store
from bus.kafka_admin import ensure_topics
from bus.kafka_relay import EventRelay, UnpublishableEvent
from bus.public_events import RULES, Public, Rule
from bus.wire import decode_event, events_topic
from domain.calendar import SendingCalendar
from domain.campaign import Campaign
from domain.channels import Channel
from domain.patients import PatientImport
from domain.preferences import ContactKeys
from projections.db import Database, open_database


class Reminder(Aggregate):
    """A small aggregate of this test module (its stored topic names this module). Field
    types are ones the store's default transcoder knows (a `date` is not one)."""

    @event("Scheduled")
    def __init__(self, label: str, due: str) -> None:
        self.label = label
        self.due = due
        self.sent = 0

    @event("Sent")
    def send(self, at: datetime) -> None:
        self.sent += 1


@dataclass
class Published:
    key: str
    partition: int
    offset: int
    message: dict[str, Any]


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return Settings(database_url=f"sqlite:///{tmp_path}/o.db")
    return Settings(database_url=request.getfixturevalue("pg_url"))


@pytest.fixture
def store(settings: Settings) -> Iterator[EventStore]:
    app = open_event_store(settings)
    yield app
    app.close()


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = open_database(settings.database_url)
    yield database
    database.close()


@pytest.fixture
def prefix(kafka_bootstrap: str, unique_topic_prefix: str) -> str:
    ensure_topics(kafka_bootstrap, unique_topic_prefix, 6)
    return unique_topic_prefix


RelayFactory = Callable[..., EventRelay]
KEYS = ContactKeys(b"relay-test-contact-key-secret-0123456789")
# The product's public rules, plus this module's Reminder, and import rows made public so
# the size limits can be exercised with a real large event (in the product they are internal).
TEST_RULES: dict[str, Rule] = {
    **RULES,
    f"{__name__}:Reminder.Scheduled": Public(("label", "due")),
    f"{__name__}:Reminder.Sent": Public(("at",)),
    "domain.patients:PatientImport.RowsImported": Public(("kind", "columns", "rows")),
}


@pytest.fixture
def new_relay(
    store: EventStore, db: Database, kafka_bootstrap: str, prefix: str
) -> Iterator[RelayFactory]:
    """Relays on this test's store, database and topics (closed after the test); each call
    is a new instance, as after a restart."""
    made: list[EventRelay] = []

    def make(**options: Any) -> EventRelay:
        options.setdefault("contact_keys", KEYS)
        options.setdefault("rules", TEST_RULES)
        relay = EventRelay(store, db, kafka_bootstrap, prefix, **options)
        made.append(relay)
        return relay

    yield make
    for relay in made:
        relay.close()


def read_topic(bootstrap: str, topic: str, expected: int, quiet_s: float = 1.0) -> list[Published]:
    """Everything on `topic`, read from the start of every partition (no consumer group, so
    no join delay). Keeps reading `quiet_s` after `expected` messages to catch extras.
    (Tansu's end offsets can be low, so they are no measure of 'everything'.)"""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        numbers = sorted(consumer.partitions_for_topic(topic))
        partitions = [TopicPartition(topic, p) for p in numbers]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        got: list[Published] = []
        deadline = time.monotonic() + 20
        quiet_until: float | None = None
        while time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                got += [
                    Published(r.key.decode(), tp.partition, r.offset, decode_event(r.value))
                    for r in records
                ]
            if len(got) >= expected and quiet_until is None:
                quiet_until = time.monotonic() + quiet_s
            if quiet_until is not None and time.monotonic() >= quiet_until:
                break
        return got
    finally:
        consumer.close()


def save_reminders(store: EventStore, count: int, sends: int) -> list[Reminder]:
    reminders = [Reminder(label=f"r{i}", due="2030-01-07") for i in range(count)]
    for reminder in reminders:
        for n in range(sends):
            reminder.send(at=datetime(2030, 1, 7, 17, n, tzinfo=UTC))
    store.save(*reminders)
    return reminders


def stored_position(db: Database, name: str = "kafka-events") -> int | None:
    row = db.fetchone("SELECT position FROM relay_position WHERE name = ?", (name,))
    return None if row is None else int(row[0])


def test_relay_publishes_every_event_once_in_order_per_aggregate_in_the_wire_schema(
    store: EventStore, db: Database, new_relay: RelayFactory, kafka_bootstrap: str, prefix: str
) -> None:
    # given three aggregates with three events each, saved in the event store
    reminders = save_reminders(store, count=3, sends=2)
    more = reminders[0]
    more.send(at=datetime(2030, 1, 8, 17, 0, tzinfo=UTC))
    store.save(more)  # a later save: this aggregate's events span two transactions
    total = 10

    # when the relay runs
    relay = new_relay()
    published = relay.run_once()

    # then every event is on the topic once, keyed by aggregate, in version order within
    # one partition per aggregate, with the documented wire schema
    assert published == total
    messages = read_topic(kafka_bootstrap, events_topic(prefix), expected=total)
    assert len(messages) == total
    ids = {(m.message["aggregate_id"], m.message["aggregate_version"]) for m in messages}
    assert len(ids) == total
    by_key: dict[str, list[Published]] = defaultdict(list)
    for m in sorted(messages, key=lambda m: (m.partition, m.offset)):
        assert m.key == m.message["aggregate_id"]
        by_key[m.key].append(m)
    assert set(by_key) == {str(r.id) for r in reminders}
    for key, stream in by_key.items():
        assert len({m.partition for m in stream}) == 1, key
        assert [m.message["aggregate_version"] for m in stream] == list(range(1, len(stream) + 1))
        positions = [m.message["position"] for m in stream]
        assert positions == sorted(positions)
    first = by_key[str(more.id)][0].message
    assert first["schema_version"] == 1
    assert first["event_type"] == "Reminder.Scheduled"
    assert first["topic"] == f"{__name__}:Reminder.Scheduled"
    assert first["data"] == {"label": "r0", "due": "2030-01-07"}
    assert datetime.fromisoformat(first["occurred_at"]).tzinfo is not None
    last = by_key[str(more.id)][-1].message
    assert last["event_type"] == "Reminder.Sent"
    assert last["data"] == {"at": "2030-01-08T17:00:00+00:00"}

    # and its position is stored, so a second run has nothing to publish
    assert stored_position(db) == store.recorder.max_notification_id() == relay.position
    assert relay.run_once() == 0
    assert len(read_topic(kafka_bootstrap, events_topic(prefix), expected=total)) == total


def test_a_restarted_relay_resumes_after_the_stored_position(
    store: EventStore, db: Database, new_relay: RelayFactory, kafka_bootstrap: str, prefix: str
) -> None:
    # given a relay that published four events in batches of two, then stopped
    first_batch = save_reminders(store, count=2, sends=1)
    relay = new_relay()
    assert [relay.run_once(limit=2), relay.run_once(limit=2), relay.run_once(limit=2)] == [2, 2, 0]
    relay.close()

    # when more events are saved and a new relay instance starts on the same database
    reminder = first_batch[0]
    reminder.send(at=datetime(2030, 1, 9, 17, 0, tzinfo=UTC))
    store.save(reminder, *save_reminders(store, count=1, sends=0))
    restarted = new_relay()

    # then it publishes only the new events, and the topic holds each event once
    assert restarted.position == stored_position(db)
    assert restarted.run_once() == 2
    messages = read_topic(kafka_bootstrap, events_topic(prefix), expected=6)
    assert len(messages) == 6
    assert len({(m.message["aggregate_id"], m.message["aggregate_version"])
                for m in messages}) == 6


def test_the_relay_reads_past_gaps_in_notification_ids(
    settings: Settings,
    store: EventStore,
    db: Database,
    new_relay: RelayFactory,
    kafka_bootstrap: str,
    prefix: str,
) -> None:
    # given a failed save between two good ones (on PostgreSQL it burns a notification id)
    (reminder,) = save_reminders(store, count=1, sends=0)
    stale: Reminder = store.repository.get(reminder.id)
    reminder.send(at=datetime(2030, 1, 7, 17, 0, tzinfo=UTC))
    store.save(reminder)
    stale.send(at=datetime(2030, 1, 7, 18, 0, tzinfo=UTC))
    with pytest.raises((RecordConflictError, IntegrityError)):
        store.save(stale)  # same aggregate version: refused
    save_reminders(store, count=1, sends=0)
    ids = [n.id for n in store.recorder.select_notifications(start=None, limit=10)]
    if settings.is_postgres:
        assert ids[-1] - ids[0] + 1 > len(ids), f"expected a gap in {ids}"

    # when the relay runs
    published = new_relay().run_once()

    # then no event is lost to the gap
    assert published == 3
    assert len(read_topic(kafka_bootstrap, events_topic(prefix), expected=3)) == 3
    assert stored_position(db) == ids[-1]


def test_run_forever_relays_new_events_until_stopped(
    store: EventStore, new_relay: RelayFactory, kafka_bootstrap: str, prefix: str
) -> None:
    # given a relay running in the background
    relay = new_relay()
    stop = threading.Event()
    runner = threading.Thread(target=relay.run_forever, args=(stop, 0.05), daemon=True)
    runner.start()

    # when events are saved while it runs
    save_reminders(store, count=2, sends=1)
    deadline = time.monotonic() + 10
    while relay.position < (store.recorder.max_notification_id() or 0):
        assert time.monotonic() < deadline, "the relay did not catch up"
        time.sleep(0.05)
    stop.set()
    runner.join(timeout=10)

    # then they reach the topic, and the relay stops when asked
    assert not runner.is_alive()
    assert len(read_topic(kafka_bootstrap, events_topic(prefix), expected=4)) == 4


def test_campaign_events_carry_their_public_event_type(
    store: EventStore, new_relay: RelayFactory, kafka_bootstrap: str, prefix: str
) -> None:
    # given a drafted and activated campaign
    calendar = SendingCalendar()
    now = datetime(2030, 1, 2, 15, 0, tzinfo=UTC)
    campaign = Campaign.draft(
        name="Flu shots",
        description="Annual reminder",
        channel=Channel.EMAIL,
        content={"subject": "Flu shots", "body": "<p>Book now</p>",
                 "from_address": "do-not-reply@clinic.example"},
        start=date(2030, 1, 8),
        audience=["patient-1", "patient-2"],
        now=now,
        calendar=calendar,
    )
    campaign.activate(now=now, calendar=calendar)
    store.save(campaign)

    # when the relay runs
    assert new_relay().run_once() == 2

    # then consumers see "Campaign.Created" then "Campaign.Activated" with JSON-safe data
    messages = sorted(read_topic(kafka_bootstrap, events_topic(prefix), expected=2),
                      key=lambda m: m.offset)
    assert [m.message["event_type"] for m in messages] == ["Campaign.Created",
                                                           "Campaign.Activated"]
    assert UUID(messages[0].message["aggregate_id"]) == campaign.id
    assert messages[0].message["data"]["start_date"] == "2030-01-08"
    assert messages[1].message["data"] == {"at": now.isoformat(), "by": "system"}


# -- a record that can never be published ----------------------------------------------------

SECRET = "Zebulon-Quackenbush-diagnosis-"  # stands for PHI: must never reach an error or log


def save_oversized_import(store: EventStore) -> PatientImport:
    """A PatientImport whose one row is 1.2 MB (a row over the chunk byte budget goes alone):
    its record is over the 1,000,000-byte limit whatever the compression."""
    imported = PatientImport("appointments", "appointments.csv",
                             datetime(2030, 1, 7, 17, 0, tzinfo=UTC))
    imported.record_rows(("notes",), [[SECRET * 40_000]])
    store.save(imported)
    return imported


def test_an_event_too_large_to_publish_stops_the_relay_at_its_position_naming_its_type(
    store: EventStore, db: Database, new_relay: RelayFactory, kafka_bootstrap: str, prefix: str
) -> None:
    # given a small event, an import event too large for any record, and a STOP-like event
    # saved after it
    save_reminders(store, count=1, sends=0)
    save_oversized_import(store)
    save_reminders(store, count=1, sends=0)
    ids = [n.id for n in store.recorder.select_notifications(start=None, limit=10)]
    first, started, too_large, later = ids
    relay = new_relay()

    # when the relay runs
    with pytest.raises(UnpublishableEvent) as raised:
        relay.run_once()

    # then it stops with an error naming the position and the event type, and no data
    error = raised.value
    assert (error.position, error.event_type) == (too_large, "PatientImport.RowsImported")
    assert f"position {too_large}" in str(error) and "PatientImport.RowsImported" in str(error)
    assert "1,000,000" in str(error) and SECRET not in str(error)
    # and what came before it is published and its position stored, nothing after it
    assert relay.position == stored_position(db) == started
    published = read_topic(kafka_bootstrap, events_topic(prefix), expected=2)
    assert sorted(m.message["position"] for m in published) == [first, started]
    # and its health says it is stuck there (without the data), as does a second attempt
    health = relay.health()
    assert (health.healthy, health.stuck, health.position) == (False, True, started)
    assert health.last_error is not None and f"position {too_large}" in health.last_error
    assert SECRET not in health.last_error
    with pytest.raises(UnpublishableEvent):
        relay.run_once()
    assert stored_position(db) == started and later not in {
        m.message["position"] for m in read_topic(kafka_bootstrap, events_topic(prefix), 2)}


def test_run_forever_ends_with_the_unpublishable_event_instead_of_swallowing_it(
    store: EventStore, new_relay: RelayFactory
) -> None:
    # given a relay running in the background, and an event no record can hold
    relay = new_relay()
    stop = threading.Event()
    ended: list[BaseException] = []

    def run() -> None:
        try:
            relay.run_forever(stop, 0.05)
        except BaseException as exc:  # noqa: BLE001 - what the thread ended with
            ended.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    with structlog.testing.capture_logs() as logs:
        runner.start()
        save_oversized_import(store)
        runner.join(timeout=20)

    # then it ends by itself, with that error, logged with position and type only
    assert not runner.is_alive() and not stop.is_set()
    assert len(ended) == 1 and isinstance(ended[0], UnpublishableEvent)
    stuck = [e for e in logs if e["event"] == "relay_stuck"]
    assert len(stuck) == 1 and stuck[0]["position"] == ended[0].position
    assert stuck[0]["event_type"] == "PatientImport.RowsImported"
    assert SECRET not in repr(logs)
    health = relay.health()
    assert health.stuck and not health.healthy and not health.running


def test_a_relay_reports_its_position_and_when_it_last_published_or_checked(
    store: EventStore, new_relay: RelayFactory
) -> None:
    # given a relay on a clock
    clock = SimulatedClock(datetime(2030, 1, 7, 17, 0, tzinfo=UTC))
    relay = new_relay(clock=clock)
    assert relay.healthy and relay.health().last_published_at is None
    # when it publishes two events, then finds nothing new a minute later
    save_reminders(store, count=2, sends=0)
    relay.run_once()
    published_at = clock.now()
    clock.advance_to(datetime(2030, 1, 7, 17, 1, tzinfo=UTC))
    relay.run_once()
    # then its health tells the position, when it last published and last checked
    health = relay.health()
    assert health.healthy and not health.stuck and health.last_error is None
    assert health.position == store.recorder.max_notification_id()
    assert health.last_published_at == published_at
    assert health.last_checked_at == clock.now()


def test_the_relay_compresses_and_bounds_records_as_the_settings_say(
    settings: Settings, store: EventStore, db: Database, kafka_bootstrap: str,
    unique_topic_prefix: str
) -> None:
    # given settings for a broker with gzip and a smaller record limit
    configured = settings.model_copy(update={
        "kafka_bootstrap_servers": kafka_bootstrap, "kafka_topic_prefix": unique_topic_prefix,
        "kafka_compression": "gzip", "kafka_max_message_bytes": 700_000})
    relay = EventRelay.from_settings(configured, store, db, contact_keys=KEYS,
                                     rules=TEST_RULES)
    try:
        # when a campaign and an import of a 0.8 MB row are saved and the relay runs
        (reminder,) = save_reminders(store, count=1, sends=0)
        imported = PatientImport("appointments", "a.csv", datetime(2030, 1, 7, tzinfo=UTC))
        imported.record_rows(("notes",), [["n" * 800_000]])
        store.save(imported)
        with pytest.raises(UnpublishableEvent, match="700,000-byte limit"):
            relay.run_once()
        # then records are gzip-compressed, published whole, and bounded by the setting
        assert (relay.compression_type, relay.max_message_bytes) == ("gzip", 700_000)
        messages = read_topic(kafka_bootstrap, events_topic(unique_topic_prefix), expected=2)
        assert {m.message["event_type"] for m in messages} == {"Reminder.Scheduled",
                                                               "PatientImport.Started"}
        assert any(m.key == str(reminder.id) for m in messages)
    finally:
        relay.close()


def test_internal_events_never_reach_the_topic_and_the_relay_moves_past_them(
    store: EventStore, new_relay: RelayFactory, kafka_bootstrap: str, prefix: str
) -> None:
    # Given a patient import (its rows are patient data: internal) and nothing else
    imported = PatientImport("patients", "patients.csv", datetime(2030, 1, 7, tzinfo=UTC))
    imported.record_rows(["patient_id", "first_name"], [["P1", "Zelda"]])
    imported.finish(1, 1, 0, 0, 0, datetime(2030, 1, 7, tzinfo=UTC))
    store.save(imported)
    # When the product's relay (its own public rules) runs
    relay = new_relay(rules=RULES)
    relay.run_once()
    # Then only the import's start and counts are published, never its rows, and the
    # relay's position is past every stored event
    messages = read_topic(kafka_bootstrap, events_topic(prefix), expected=2)
    assert [m.message["event_type"] for m in messages] == [
        "PatientImport.Started", "PatientImport.Finished"]
    assert all("Zelda" not in json.dumps(m.message) for m in messages)
    assert relay.position == store.recorder.max_notification_id()
