"""Long-running processes. Embedded (nothing configured): one process does everything.
Kafka (OUTREACH_KAFKA_BOOTSTRAP_SERVERS): `outreach run` keeps projections, scheduler and the
event relay; any number of `outreach worker dispatch` processes share the intents topic's
partitions in one consumer group.

Every loop survives a restart of the database or the broker (workers.resilience: back-off,
one log line per outage, readiness reports it) and none dies alone: a component that ends
for good takes its process down with exit code 1, so a supervisor restarts it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

import structlog

from application.bootstrap import Outreach
from bus.intents import IntentPublisher, SendIntent
from workers.health import Health, HealthServer, broker_check, database_check
from workers.metrics import Metrics
from workers.resilience import (
    BROKER,
    ComponentFailed,
    Guard,
    Lifeline,
    Reconnecting,
    quiet_client_reconnect_logs,
)
from workers.runner import (
    EmbeddedRunner,
    apply_simulated_call_events,
    apply_simulated_email_events,
    follow_settings,
    make_dispatcher,
)
from workers.startup import require_broker

if TYPE_CHECKING:
    from bus.kafka_intents import KafkaIntentConsumer, KafkaIntentPublisher
    from bus.kafka_relay import EventRelay

log = structlog.get_logger("process")

DISPATCH_GROUP = "outreach-dispatchers"
EXIT_COMPONENT_STOPPED = 1
# How often a dispatcher measures its partitions' lag (an OffsetFetch per partition).
LAG_EVERY = timedelta(seconds=10)
# How often a dispatcher looks for organisation settings an administrator changed.
SETTINGS_EVERY_S = 5.0


def stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _: object) -> None:
        log.info("stopping", signal=signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


@contextmanager
def process(stop: threading.Event | None, health_port: int | None,
            health_host: str = "127.0.0.1", *, o: Outreach | None = None,
            metrics: Metrics | None = None) -> Iterator[tuple[Lifeline, Health]]:
    """The frame of every long-running process: its stop event and lifeline, the probes'
    server when a port is given (/healthz, /readyz, and /metrics from `metrics`), and exit
    code 1 when a component stopped for good (its one log line was written by the
    lifeline). Given `o`, readiness also asks the database (PostgreSQL: a SQLite file
    cannot be unreachable, and its lock would make a probe wait for a long step) and the
    broker (Kafka stack) at each probe, so an idle process tells an outage too."""
    health = Health(now=o.clock.now if o is not None else None)
    if o is not None:
        if o.settings.is_postgres:
            health.add_check(database_check(o.db))
        if o.settings.kafka_bootstrap_servers:
            health.add_check(broker_check(o.settings.kafka_bootstrap_servers))
    lifeline = Lifeline(stop or stop_on_signals(), health)
    server = (HealthServer(health, health_port, health_host, metrics).start()
              if health_port else None)
    try:
        yield lifeline, health
        lifeline.check()
    except ComponentFailed:
        raise SystemExit(EXIT_COMPONENT_STOPPED) from None
    finally:
        if server is not None:
            server.close()


class ReconnectingPublisher(IntentPublisher):
    """The scheduler's Kafka publisher, rebuilt (topics ensured, new producer) after a
    broker failure: a producer that outlived a broker restart stays broken."""

    def __init__(self, o: Outreach) -> None:
        from bus.kafka_intents import KafkaIntentPublisher

        def build() -> KafkaIntentPublisher:
            return KafkaIntentPublisher.from_settings(o.settings)

        self.client: Reconnecting[KafkaIntentPublisher] = Reconnecting(
            build, lambda p: p.close(timeout_s=1.0))

    def publish(self, intents: Sequence[SendIntent]) -> None:
        if intents:
            self.client.get().publish(intents)

    def on_outage(self, dependency: str) -> None:
        if dependency == BROKER:
            self.client.drop()

    def close(self) -> None:
        self.client.drop()


def run_forever(o: Outreach, interval_s: float = 1.0, stop: threading.Event | None = None,
                health_port: int | None = None, health_host: str = "127.0.0.1") -> None:
    metrics = Metrics.for_process()
    if o.settings.uses_kafka:
        require_broker(o.settings)  # one line and exit 3 if it does not answer at start
    else:
        _warn_without_receipts(o)
    with process(stop, health_port, health_host, o=o, metrics=metrics) as (lifeline, health):
        if not o.settings.uses_kafka:
            EmbeddedRunner(o, metrics=metrics).run_realtime(lifeline.stop, interval_s,
                                                           lifeline=lifeline)
            return
        quiet_client_reconnect_logs()
        publisher = ReconnectingPublisher(o)
        relay = lifeline.thread("relay", lambda: relay_loop(o, lifeline.stop, health,
                                                            metrics=metrics))
        relay.start()
        health.add_check(lambda: None if relay.is_alive() else "relay stopped")
        try:
            EmbeddedRunner(o, dispatch=False, publisher=publisher, metrics=metrics).run_realtime(
                lifeline.stop, interval_s, lifeline=lifeline, on_outage=publisher.on_outage)
        finally:
            lifeline.stop.set()
            relay.join(timeout=40)
            publisher.close()


def relay_loop(o: Outreach, stop: threading.Event, health: Health,
               idle_sleep_s: float = 0.5, metrics: Metrics | None = None) -> None:
    """The event relay until `stop`: through broker and database outages (the relay is
    rebuilt after a broker failure: topics re-created, new producer; its position is in the
    database, so nothing acknowledged is republished). Raises what is not an outage, e.g.
    bus.kafka_relay.UnpublishableEvent, once the guard gives up."""
    from bus.kafka_relay import EventRelay, UnpublishableEvent

    def build() -> EventRelay:
        relay = EventRelay.from_settings(o.settings, o.store, o.db, clock=o.clock,
                                         contact_keys=o.contact_keys)
        log.info("relay_started", relay=relay.name, position=relay.position)
        return relay

    client: Reconnecting[EventRelay] = Reconnecting(build, lambda r: r.close())
    guard = Guard("relay", health=health, permanent=(UnpublishableEvent,),
                  on_outage=lambda dependency: client.drop() if dependency == BROKER else None)
    counted = metrics or Metrics()

    def step() -> int:
        relay = client.get()
        published = relay.run_once()
        counted.relay_published.inc(published)
        counted.relay_behind.set(positions_behind(o, relay))
        return published

    try:
        while not stop.is_set():
            published = guard.run(step, stop)
            if published == 0:
                stop.wait(idle_sleep_s)
    except UnpublishableEvent as exc:
        # Its text names the position and the event type, never the data.
        log.error("relay_stuck", position=exc.position, event_type=exc.event_type,
                  error=str(exc))
        raise
    finally:
        client.drop()
    log.info("relay_stopped")


def positions_behind(o: Outreach, relay: EventRelay) -> int:
    """Stored events the relay has not yet moved past: the log's head minus its position.
    Internal events count too (the relay moves past them without publishing)."""
    head = o.store.recorder.max_notification_id() or 0
    return max(0, head - relay.position)


def relay_forever(o: Outreach, stop: threading.Event | None = None,
                  health_port: int | None = None, health_host: str = "127.0.0.1") -> None:
    require_broker(o.settings)
    metrics = Metrics.for_process()
    with process(stop, health_port, health_host, o=o, metrics=metrics) as (lifeline, health):
        quiet_client_reconnect_logs()
        try:
            relay_loop(o, lifeline.stop, health, metrics=metrics)
        except Exception as exc:  # noqa: BLE001 - one log line, then exit 1
            lifeline.fail("relay", exc)


def dispatch_forever(o: Outreach, group_id: str = DISPATCH_GROUP,
                     stop: threading.Event | None = None, health_port: int | None = None,
                     health_host: str = "127.0.0.1") -> None:
    """Consume send-intents; commit offsets only after the batch's outcomes are stored. A
    batch that fails for an outage is retried as it is until it goes through (the dispatcher
    is idempotent by communication and attempt), never committed before."""
    require_broker(o.settings)  # no Kafka configured, or no answer: one line, non-zero
    _warn_without_receipts(o)
    metrics = Metrics.for_process()
    with process(stop, health_port, health_host, o=o, metrics=metrics) as (lifeline, health):
        quiet_client_reconnect_logs()
        try:
            _dispatch(o, group_id, lifeline.stop, health, metrics)
        except Exception as exc:  # noqa: BLE001 - one log line, then exit 1
            lifeline.fail("dispatcher", exc)


def _dispatch(o: Outreach, group_id: str, stop: threading.Event, health: Health,
              metrics: Metrics | None = None) -> None:
    from kafka.errors import KafkaConnectionError

    from bus.kafka_intents import KafkaIntentConsumer

    guard = Guard("dispatcher", health=health)

    def connect() -> KafkaIntentConsumer:
        return KafkaIntentConsumer.from_settings(
            o.settings, group_id, session_timeout_ms=o.settings.kafka_session_timeout_ms,
            max_poll_interval_ms=o.settings.kafka_max_poll_interval_ms)

    consumer = guard.run(connect, stop)
    if consumer is None:
        return
    metrics = metrics or Metrics()
    dispatcher = make_dispatcher(o, metrics)
    log.info("dispatcher_started", group=group_id)
    lag_due, lag_of = o.clock.now(), frozenset[int]()
    # The consumer reconnects by itself, and a poll during a broker outage just returns
    # nothing: its coordinator being lost (after it was once found) is what tells an outage.
    seen_connected = False

    def poll() -> list[SendIntent]:
        nonlocal seen_connected
        intents = consumer.poll(max_records=o.settings.dispatch_batch, timeout_s=1.0)
        if consumer.connected():
            seen_connected = True
        elif seen_connected and not intents:
            raise KafkaConnectionError("the consumer group's coordinator is unreachable")
        return intents

    try:
        while not stop.is_set():
            intents = guard.run(poll, stop)
            # Every LAG_EVERY, and at once when the group gave this member other partitions.
            if o.clock.now() >= lag_due or consumer.assigned_partitions() != lag_of:
                lag_due, lag_of = o.clock.now() + LAG_EVERY, consumer.assigned_partitions()
                _measure_lag(consumer, metrics)
            if not intents:
                continue
            # Windows re-checked at send time must be the administrator's latest.
            guard.run(partial(follow_settings, o, dispatcher, SETTINGS_EVERY_S), stop)
            stats = guard.run(partial(dispatcher.handle, intents), stop)
            if stats is None:
                break  # stopping mid-outage: nothing committed, the batch comes back
            guard.run(consumer.commit, stop)
            # Without SES, the simulator's events stand in for SNS's (after the commit:
            # they describe outcomes already stored).
            guard.run(partial(apply_simulated_email_events, o), stop)
            guard.run(partial(apply_simulated_call_events, o), stop)
            log.info("batch_done", intents=len(intents), sent=stats.sent, failed=stats.failed,
                     skipped=stats.skipped, deferred=stats.deferred,
                     duplicates=stats.duplicates)
    finally:
        consumer.close()


def schedule_forever(o: Outreach, interval_s: float = 1.0,
                     stop: threading.Event | None = None, health_port: int | None = None,
                     health_host: str = "127.0.0.1") -> None:
    """Projections + scheduler only (when the relay runs in its own process)."""
    require_broker(o.settings)
    metrics = Metrics.for_process()
    with process(stop, health_port, health_host, o=o, metrics=metrics) as (lifeline, _):
        quiet_client_reconnect_logs()
        publisher = ReconnectingPublisher(o)
        try:
            EmbeddedRunner(o, dispatch=False, publisher=publisher,
                           metrics=metrics).run_realtime(
                lifeline.stop, interval_s, lifeline=lifeline, on_outage=publisher.on_outage)
        finally:
            publisher.close()


def _measure_lag(consumer: KafkaIntentConsumer, metrics: Metrics) -> None:
    """The consumer lag gauge; skipped (not guessed) when the broker does not answer: the
    guards and readiness report the outage, a metric must not block the dispatcher."""
    if not consumer.connected():
        return
    try:
        metrics.partition_lag(consumer.lag())
    except Exception as exc:  # noqa: BLE001 - measuring is best effort
        log.debug("consumer_lag_unmeasured", error=type(exc).__name__)


def _warn_without_receipts(o: Outreach) -> None:
    """Twilio without OUTREACH_PUBLIC_URL sends, but asks for no status callbacks: delivery
    failures are never seen, so never retried. Said once, at start."""
    if o.settings.uses_twilio and not o.settings.public_url:
        log.warning("twilio_without_public_url",
                    consequence="no delivery receipts: undelivered texts are not retried; "
                                "set OUTREACH_PUBLIC_URL and run `outreach serve`")
