"""The Kafka send-intents adapters against a real broker (Tansu, or OUTREACH_TEST_KAFKA)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.partitioner.default import murmur2

from bus.intents import SendIntent
from bus.kafka_admin import ensure_topics
from bus.kafka_intents import KafkaIntentConsumer, KafkaIntentPublisher
from bus.wire import intents_topic

PARTITIONS = 6

# Tansu completes a group join after about half the session timeout, so a short one keeps
# each join near a second. (Apache Kafka would refuse < 6 s; these tests target Tansu.)
SESSION_TIMEOUT_MS = 2_000

# Each test gets its own group: on Tansu a group whose earlier members left can take from
# seconds to minutes to settle again once it has more than one member.
ConsumerFactory = Callable[[], KafkaIntentConsumer]


def make_intent(routing_key: str, attempt: int = 1) -> SendIntent:
    return SendIntent(
        communication_id=uuid.uuid4(),
        campaign_id=uuid.uuid4(),
        attempt=attempt,
        routing_key=routing_key,
        due_at=datetime(2030, 1, 7, 17, 0, tzinfo=UTC) + timedelta(minutes=attempt),
    )


def partition_of(routing_key: str, partitions: int = PARTITIONS) -> int:
    """Where kafka-python's default partitioner (murmur2, as Java's) puts this key."""
    return (murmur2(routing_key.encode()) & 0x7FFFFFFF) % partitions


def keys_covering_every_partition(per_partition: int = 2) -> list[str]:
    keys: list[str] = []
    counts = dict.fromkeys(range(PARTITIONS), 0)
    n = 0
    while min(counts.values()) < per_partition:
        key = f"rk-{n}"
        n += 1
        if counts[partition_of(key)] < per_partition:
            counts[partition_of(key)] += 1
            keys.append(key)
    return keys


@pytest.fixture
def prefix(kafka_bootstrap: str, unique_topic_prefix: str) -> str:
    ensure_topics(kafka_bootstrap, unique_topic_prefix, PARTITIONS)
    return unique_topic_prefix


@pytest.fixture
def publisher(kafka_bootstrap: str, prefix: str) -> Iterator[KafkaIntentPublisher]:
    pub = KafkaIntentPublisher(kafka_bootstrap, prefix)
    yield pub
    pub.close()


@pytest.fixture
def new_consumer(kafka_bootstrap: str, prefix: str) -> Iterator[ConsumerFactory]:
    """Consumers of this test's topic; any the test leaves open are closed afterwards."""
    made: list[KafkaIntentConsumer] = []
    group_id = f"dispatchers-{uuid.uuid4().hex[:8]}"

    def make() -> KafkaIntentConsumer:
        consumer = KafkaIntentConsumer(
            kafka_bootstrap,
            prefix,
            group_id,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=500,
            max_poll_interval_ms=10_000,
        )
        made.append(consumer)
        return consumer

    yield make
    for consumer in made:
        consumer.close()  # closing twice is a no-op


def settled(owned: Sequence[frozenset[int]]) -> bool:
    """Every member owns partitions, and together they own each partition once."""
    return all(owned) and sum(map(len, owned)) == PARTITIONS == len(frozenset().union(*owned))


def wait_until_assigned(consumer: KafkaIntentConsumer, timeout_s: float = 20) -> None:
    """Poll (which drives the group join) until the consumer owns every partition. Only
    call this while nothing new is on the topic: records polled here would be lost."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not settled([consumer.assigned_partitions()]):
        assert consumer.poll(timeout_s=0.1) == []
    assert settled([consumer.assigned_partitions()]), "the consumer never joined its group"


class Member(threading.Thread):
    """A dispatcher stand-in: polls and commits in its own thread, as each dispatcher
    process would. (Polling several members from one thread stalls Tansu's group join.)"""

    def __init__(self, consumer: KafkaIntentConsumer) -> None:
        super().__init__(daemon=True)
        self.consumer = consumer
        self.received: list[SendIntent] = []
        self.owned: frozenset[int] = frozenset()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            got = self.consumer.poll(timeout_s=0.1)
            self.consumer.commit()
            self.received += got
            self.owned = self.consumer.assigned_partitions()


def drain(
    consumer: KafkaIntentConsumer, expected: int, timeout_s: float = 20
) -> list[SendIntent]:
    """Poll and commit until `expected` intents came (or the timeout passed)."""
    got: list[SendIntent] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < expected and time.monotonic() < deadline:
        got += consumer.poll(timeout_s=0.2)
        consumer.commit()
    return got


def first_batch(consumer: KafkaIntentConsumer, timeout_s: float = 20) -> list[SendIntent]:
    """The first non-empty poll, left uncommitted."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = consumer.poll(timeout_s=0.2)
        if got:
            return got
    return []


def poll_for(consumer: KafkaIntentConsumer, seconds: float) -> list[SendIntent]:
    got: list[SendIntent] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got += consumer.poll(timeout_s=0.2)
        consumer.commit()
    return got


def test_published_intents_come_back_decoded(
    publisher: KafkaIntentPublisher, new_consumer: ConsumerFactory
) -> None:
    # given intents published before any consumer exists
    intents = [make_intent(f"rk-{i}", attempt=i + 1) for i in range(5)]
    publisher.publish(intents)

    # when a new group reads the topic
    got = drain(new_consumer(), expected=5)

    # then it gets every intent, field for field (from the earliest offset)
    assert sorted(got, key=lambda i: i.attempt) == intents


def test_three_consumers_in_one_group_split_the_partitions_and_together_get_every_intent(
    publisher: KafkaIntentPublisher, new_consumer: ConsumerFactory
) -> None:
    # given three members of one group that have settled on the 6 partitions
    members = [Member(new_consumer()) for _ in range(3)]
    for member in members:
        member.start()
    deadline = time.monotonic() + 30
    while not settled([m.owned for m in members]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert settled([m.owned for m in members]), [m.owned for m in members]

    # when intents for keys that land on every partition are published
    keys = keys_covering_every_partition(per_partition=2)
    intents = [make_intent(key, attempt) for key in keys for attempt in (1, 2, 3)]
    publisher.publish(intents)
    deadline = time.monotonic() + 20
    while sum(len(m.received) for m in members) < len(intents) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a little longer: a duplicate would show up now
    for member in members:
        member.stopping.set()
        member.join(timeout=10)

    # then each member got some, each only keys of its own partitions, and together all,
    # each exactly once
    assert all(m.received for m in members), [len(m.received) for m in members]
    for member in members:
        assert {partition_of(i.routing_key) for i in member.received} <= member.owned
    everything = [i for m in members for i in m.received]
    assert len(everything) == len(intents)
    assert set(everything) == set(intents)


def test_intents_with_the_same_routing_key_arrive_in_publish_order(
    publisher: KafkaIntentPublisher, new_consumer: ConsumerFactory
) -> None:
    # given 30 attempts for one number, published in three batches mixed with other numbers
    for batch in range(3):
        mixed: list[SendIntent] = []
        for attempt in range(batch * 10 + 1, batch * 10 + 11):
            mixed.append(make_intent("rk-same", attempt))
            mixed.append(make_intent(f"rk-other-{attempt}", attempt))
        publisher.publish(mixed)

    # when one consumer reads them all
    got = drain(new_consumer(), expected=60)

    # then that number's intents come in the order they were published
    assert len(got) == 60
    assert [i.attempt for i in got if i.routing_key == "rk-same"] == list(range(1, 31))


def test_uncommitted_intents_are_redelivered_to_a_new_consumer_after_the_first_closes(
    publisher: KafkaIntentPublisher, new_consumer: ConsumerFactory
) -> None:
    # given five intents, and a consumer that polled some of them but never committed
    intents = [make_intent(f"rk-{i}", attempt=1) for i in range(5)]
    publisher.publish(intents)
    first = new_consumer()
    polled = first_batch(first)
    assert polled

    # when it closes (as a crashed dispatcher would leave) and another member takes over
    first.close()
    got = drain(new_consumer(), expected=5)

    # then the new member gets everything, including what the first had polled
    assert set(got) == set(intents)
    assert set(polled) <= set(got)


def test_committed_intents_are_not_redelivered_to_the_next_consumer(
    publisher: KafkaIntentPublisher, new_consumer: ConsumerFactory
) -> None:
    # given a consumer that processed and committed five intents, then closed
    publisher.publish([make_intent(f"rk-{i}") for i in range(5)])
    first = new_consumer()
    assert len(drain(first, expected=5)) == 5
    first.close()

    # when the next member of the group joins and a new intent is published
    second = new_consumer()
    wait_until_assigned(second)
    nothing_old = poll_for(second, 1.0)
    fresh = make_intent("rk-fresh")
    publisher.publish([fresh])

    # then it gets only the new intent
    assert nothing_old == []
    assert drain(second, expected=1) == [fresh]
    assert poll_for(second, 0.5) == []


def test_a_poison_record_is_skipped_committed_past_and_does_not_block_its_partition(
    kafka_bootstrap: str,
    prefix: str,
    publisher: KafkaIntentPublisher,
    new_consumer: ConsumerFactory,
) -> None:
    # given records on one partition that are not send-intents: not UTF-8 JSON, not an
    # object, an unknown schema
    topic = intents_topic(prefix)
    raw = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for value in (b"\xff not json {", b"[1, 2]", b'{"schema": 99}'):
        raw.send(topic, key=b"rk-poison", value=value).get(timeout=10)
    raw.close()
    partition = TopicPartition(topic, partition_of("rk-poison"))
    consumer = new_consumer()
    offsets = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=consumer.group_id)

    # when the consumer polls (and never calls commit itself)
    polled: list[SendIntent] = []
    deadline = time.monotonic() + 20
    while offsets.committed(partition) != 3 and time.monotonic() < deadline:
        polled += consumer.poll(timeout_s=0.2)
    committed = offsets.committed(partition)
    offsets.close()

    # then the poison yields nothing and is committed past: it will never come back
    assert polled == []
    assert committed == 3

    # and a real intent behind it on the same partition is delivered
    good = make_intent("rk-poison")
    publisher.publish([good])
    assert drain(consumer, expected=1) == [good]


def test_polling_again_before_committing_is_refused(
    publisher: KafkaIntentPublisher, new_consumer: ConsumerFactory
) -> None:
    # given a consumer holding uncommitted intents
    publisher.publish([make_intent("rk-1")])
    consumer = new_consumer()
    assert first_batch(consumer)

    # when it polls again without committing / then it is refused, as by the in-memory bus
    with pytest.raises(RuntimeError, match="commit"):
        consumer.poll(timeout_s=0.1)
