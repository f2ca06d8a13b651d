"""Dispatch benchmark: the dispatcher on the Kafka path (PostgreSQL, null SMS gateway) beside
its two raw baselines measured in the same run, and its scale-out over 1, 2, 3 processes.

- raw consume: kafka-python consume + commit of as many records of a send-intent's size
  (scripts.benchmarks.raw_kafka);
- durable baseline: the least an at-least-once dispatcher with a durable record must do —
  consume the intents topic, decode each intent, one batched INSERT of two rows per intent
  (attempt started, outcome: the dispatcher's own stored events, same sizes) into PostgreSQL
  in one transaction, then commit the offsets;
- dispatch: `outreach worker dispatch`'s loop (KafkaIntentConsumer → Dispatcher.handle →
  commit) in 1, 2 and 3 processes of one consumer group on 6 partitions, every intent due
  and every rule checked. The members join first, on an empty topic; the intents are then
  published and the clock starts when the members are let go; it stops at the last
  member's last commit. On a 2-core machine the curve flattens: the figure says how much.

Not a test: nothing asserts a timing.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid
from datetime import UTC, datetime, timedelta
from multiprocessing.sharedctypes import Synchronized, SynchronizedArray
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import psycopg
from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata

from application.bootstrap import Outreach
from bus.intents import SendIntent
from bus.kafka_admin import ensure_topics
from bus.kafka_intents import KafkaIntentConsumer, KafkaIntentPublisher, decode_intent
from bus.wire import intents_topic
from domain.communication import Communication, communication_id
from scripts.benchmarks import (
    CAMPAIGN_SIZE,
    HEARTBEAT_MS,
    NO_PACING,
    PARTITIONS,
    SESSION_TIMEOUT_MS,
    Report,
    Servers,
    ShiftedClock,
    Sizes,
    Target,
    activate,
    chunks,
    count_statuses,
    join,
    open_all_day,
    outreach_app,
    progress,
    quiet,
    raw_kafka,
    texting_audience,
)
from workers.dispatcher import DispatchStats
from workers.runner import make_dispatcher
from workers.scheduler import routing_key

PROCESSES = (1, 2, 3)
DURABLE_TABLE = """
CREATE TABLE durable_events (
    originator_id uuid NOT NULL, originator_version bigint NOT NULL, topic text,
    state bytea, notification_id bigserial,
    PRIMARY KEY (originator_id, originator_version));
CREATE UNIQUE INDEX durable_events_notification ON durable_events (notification_id)
"""
DURABLE_INSERT = (
    "INSERT INTO durable_events (originator_id, originator_version, topic, state)"
    " SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[], %s::bytea[])")
# Members hold on to their partitions while the intents are published: long enough.
MAX_POLL_INTERVAL_MS = 300_000


def bench_dispatch(servers: Servers, sizes: Sizes, report: Report, workdir: Path) -> None:
    n, batch = sizes.sends, sizes.batch
    bootstrap = servers.kafka
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    raw_produce, raw_consume = raw_kafka(bootstrap, f"{prefix}-raw", n, batch)
    del raw_produce
    runs: dict[int, tuple[float, DispatchStats, float]] = {}
    with servers.database("bench_dispatch") as url:
        settings = open_all_day(url, kafka_bootstrap_servers=bootstrap,
                                kafka_topic_prefix=prefix, kafka_intent_partitions=PARTITIONS,
                                rate_burst=NO_PACING)
        clock = ShiftedClock()
        with outreach_app(settings, clock) as app:
            progress.print(f"[dispatch] durable baseline: {n:,} intents → 2 rows each…")
            durable_s = durable_baseline(bootstrap, f"{prefix}-raw", url, n, batch,
                                         stored_attempt(app))
            progress.print(f"[dispatch] importing patients, activating "
                           f"{len(PROCESSES)} × {n:,} communications…")
            audience = texting_audience(app, workdir / "dispatch", n)
            mobiles = {c.patient_id: c.mobile for c in app.directory.contacts(audience).values()}
            groups: list[list[SendIntent]] = []
            due = datetime.now(UTC)
            for procs in PROCESSES:
                intents: list[SendIntent] = []
                for number, part in enumerate(chunks(audience, CAMPAIGN_SIZE), 1):
                    cid = activate(app, part, f"Dispatch benchmark {procs}.{number}")
                    intents += [SendIntent(communication_id(cid, pid), cid, 1, routing_key(
                        mobiles.get(pid), pid, app.contact_keys), due) for pid in part]
                groups.append(intents)
            app.catch_up()
            for procs, intents in zip(PROCESSES, groups, strict=True):
                progress.print(f"[dispatch] {procs} dispatcher process(es)…")
                runs[procs] = scale_run(url, bootstrap, f"{prefix}-p{procs}", intents, batch,
                                        procs)
            sent = count_statuses(app, "Sent")
    raw_rate, durable_rate = n / raw_consume, n / durable_s
    report("dispatch: durable baseline (consume → 2-row INSERT → commit)", durable_rate,
           "intents/s", baseline=raw_rate,
           note="kafka-python + psycopg, one unnest INSERT and one transaction per poll")
    for procs, (seconds, stats, cpu) in runs.items():
        rate = stats.sent / seconds if seconds else 0.0
        note = (f"{rate / raw_rate:.2f} of raw consume; CPU {100 * cpu / seconds:.0f}% of "
                f"one core; {stats.sent:,} sent")
        if stats.sent != n or stats.duplicates:
            note += f"; dispatcher stats {stats}"
        if procs == PROCESSES[-1]:
            note += f"; read model: {sent:,} of {len(PROCESSES) * n:,} Sent"
        report(f"dispatch: {procs} dispatcher process(es), 6 partitions", rate, "sends/s",
               baseline=durable_rate, note=note,
               target=Target(3_000) if procs == 1 else None)


def stored_attempt(app: Outreach) -> list[tuple[int, str, bytes]]:
    """(version, topic, stored state) of the two events a send stores, as the dispatcher
    stores them (the store's own mapper: same bytes, same compression)."""
    comm = Communication(campaign_id=uuid.uuid4(), patient_id="P0000001", channel="text",
                         sequence=1, due_at=datetime.now(UTC))
    comm.collect_events()
    at = datetime.now(UTC)
    comm.start_attempt(1, at)
    comm.accept(1, at, "SM" + uuid.uuid4().hex, 1)
    out = []
    for event in comm.collect_events():
        stored = app.store.mapper.to_stored_event(event)
        out.append((stored.originator_version, stored.topic, stored.state))
    return out


def durable_baseline(bootstrap: str, prefix: str, url: str, n: int, batch: int,
                     rows: list[tuple[int, str, bytes]]) -> float:
    """Seconds to take n intents from the topic raw_kafka filled, storing two rows for
    each in one INSERT per poll and committing the offsets after the transaction."""
    consumer = KafkaConsumer(intents_topic(prefix), bootstrap_servers=bootstrap,
                             group_id=f"{prefix}-durable", enable_auto_commit=False,
                             auto_offset_reset="earliest",
                             session_timeout_ms=SESSION_TIMEOUT_MS,
                             heartbeat_interval_ms=HEARTBEAT_MS)
    try:
        with psycopg.connect(url) as conn:
            for statement in DURABLE_TABLE.split(";"):
                conn.execute(statement)
            conn.commit()
            join(lambda: len(consumer.assignment()) == PARTITIONS,
                 lambda: consumer.poll(timeout_ms=100, max_records=1))
            # Joining may have fetched a few records: start from the first one again (this
            # group has committed nothing yet).
            consumer.seek_to_beginning(*consumer.assignment())
            started, received = time.perf_counter(), 0
            while received < n:
                polled = consumer.poll(timeout_ms=1000, max_records=batch)
                if not polled:
                    continue
                ids, versions, topics, states = [], [], [], []
                for records in polled.values():
                    for record in records:
                        intent = decode_intent(record.value)
                        for version, topic, state in rows:
                            ids.append(intent.communication_id)
                            versions.append(version)
                            topics.append(topic)
                            states.append(state)
                with conn.transaction():
                    conn.execute(DURABLE_INSERT, (ids, versions, topics, states))
                consumer.commit({tp: OffsetAndMetadata(rs[-1].offset + 1, "", -1)
                                 for tp, rs in polled.items()})
                received += sum(len(rs) for rs in polled.values())
            return time.perf_counter() - started
    finally:
        consumer.close(autocommit=False)


# -- scale-out: dispatcher processes of one group -------------------------------------------


def scale_run(url: str, bootstrap: str, prefix: str, intents: list[SendIntent], batch: int,
              procs: int) -> tuple[float, DispatchStats, float]:
    """(seconds from release to the last commit, summed stats, summed CPU seconds)."""
    ensure_topics(bootstrap, prefix, PARTITIONS)
    ctx = mp.get_context("spawn")  # a fresh interpreter each: no inherited connections
    assigned = ctx.Array("i", procs)
    holding = ctx.Array("i", procs)
    handled = ctx.Value("i", 0)
    hold, go = ctx.Event(), ctx.Event()
    results = ctx.Queue()
    members = [ctx.Process(target=member, args=(i, url, bootstrap, prefix, batch, len(intents),
                                                assigned, holding, handled, hold, go, results))
               for i in range(procs)]
    for m in members:
        m.start()
    try:
        _wait_for_stable_group(assigned, procs)
        hold.set()
        _wait(lambda: all(holding[:]), "members to hold")
        publisher = KafkaIntentPublisher(bootstrap, prefix)
        try:
            publisher.publish(intents)
        finally:
            publisher.close()
        released = time.perf_counter()
        go.set()
        stats, cpu, last = DispatchStats(), 0.0, released
        for _ in members:
            member_stats, member_cpu, member_last = results.get(timeout=600)
            stats.add(DispatchStats(**member_stats))
            cpu += member_cpu
            last = max(last, member_last)
        return last - released, stats, cpu
    finally:
        go.set()
        for m in members:
            m.join(timeout=60)
            if m.is_alive():
                m.terminate()


def _wait(condition: Any, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _wait_for_stable_group(assigned: SynchronizedArray[int], procs: int) -> None:
    """Every member owns partitions, all 6 are owned, and it stayed so for 2 s (a join
    still in progress would move them)."""
    stable_since: float | None = None
    deadline = time.monotonic() + 120
    while True:
        counts = assigned[:]
        if sum(counts) == PARTITIONS and all(counts):
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= 2:
                return
        else:
            stable_since = None
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {procs} members never shared the partitions: {counts}")
        time.sleep(0.05)


def member(index: int, url: str, bootstrap: str, prefix: str, batch: int, expected: int,
           assigned: SynchronizedArray[int], holding: SynchronizedArray[int],
           handled: Synchronized[int], hold: EventType, go: EventType,
           results: Any) -> None:
    """One `outreach worker dispatch` process: join, hold still while the intents are
    published, then dispatch until the group has handled them all."""
    quiet()
    clock = ShiftedClock()
    clock.ahead = timedelta(hours=1)  # every planned slot is due
    settings = open_all_day(url, kafka_bootstrap_servers=bootstrap, kafka_topic_prefix=prefix,
                            kafka_intent_partitions=PARTITIONS, rate_burst=NO_PACING)
    with outreach_app(settings, clock) as app:
        dispatcher = make_dispatcher(app)
        consumer = KafkaIntentConsumer(bootstrap, prefix, f"{prefix}-dispatchers",
                                       session_timeout_ms=SESSION_TIMEOUT_MS,
                                       heartbeat_interval_ms=HEARTBEAT_MS,
                                       max_poll_interval_ms=MAX_POLL_INTERVAL_MS)
        try:
            while not hold.is_set():  # the topic is empty: polling only joins the group
                consumer.poll(max_records=batch, timeout_s=0.1)
                assigned[index] = len(consumer.assigned_partitions())
            holding[index] = 1
            go.wait()
            stats = DispatchStats()
            cpu = time.process_time()
            last = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
            while handled.value < expected:
                intents = consumer.poll(max_records=batch, timeout_s=0.2)
                if not intents:
                    continue
                stats.add(dispatcher.handle(intents))
                consumer.commit()
                with handled.get_lock():
                    handled.value += len(intents)
                last = time.perf_counter()
            results.put((vars(stats), time.process_time() - cpu, last))
        finally:
            consumer.close()
