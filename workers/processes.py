"""Long-running processes. Embedded (nothing configured): one process does everything.
Kafka (OUTREACH_KAFKA_BOOTSTRAP_SERVERS): `outreach run` keeps projections, scheduler and the
event relay; any number of `outreach worker dispatch` processes share the intents topic's
partitions in one consumer group."""

from __future__ import annotations

import signal
import threading

import structlog

from application.bootstrap import Outreach
from workers.runner import EmbeddedRunner, make_dispatcher

log = structlog.get_logger("process")

DISPATCH_GROUP = "outreach-dispatchers"


def stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _: object) -> None:
        log.info("stopping", signal=signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def run_forever(o: Outreach, interval_s: float = 1.0, stop: threading.Event | None = None) -> None:
    stop = stop or stop_on_signals()
    if not o.settings.uses_kafka:
        EmbeddedRunner(o).run_realtime(stop, interval_s)
        return
    from bus.kafka_intents import KafkaIntentPublisher
    from bus.kafka_relay import EventRelay

    publisher = KafkaIntentPublisher.from_settings(o.settings)
    relay = EventRelay.from_settings(o.settings, o.store, o.db)
    relay_thread = threading.Thread(target=relay.run_forever, args=(stop,), name="relay",
                                    daemon=True)
    relay_thread.start()
    try:
        EmbeddedRunner(o, dispatch=False, publisher=publisher).run_realtime(stop, interval_s)
    finally:
        relay_thread.join(timeout=10)
        relay.close()
        publisher.close()


def dispatch_forever(o: Outreach, group_id: str = DISPATCH_GROUP,
                     stop: threading.Event | None = None) -> None:
    """Consume send-intents; commit offsets only after the batch's outcomes are stored."""
    from bus.kafka_intents import KafkaIntentConsumer

    if not o.settings.uses_kafka:
        raise SystemExit("`outreach worker dispatch` needs OUTREACH_KAFKA_BOOTSTRAP_SERVERS; "
                         "the embedded default dispatches inside `outreach run`")
    stop = stop or stop_on_signals()
    consumer = KafkaIntentConsumer.from_settings(
        o.settings, group_id, session_timeout_ms=o.settings.kafka_session_timeout_ms,
        max_poll_interval_ms=o.settings.kafka_max_poll_interval_ms)
    dispatcher = make_dispatcher(o)
    log.info("dispatcher_started", group=group_id)
    try:
        while not stop.is_set():
            intents = consumer.poll(max_records=o.settings.dispatch_batch, timeout_s=1.0)
            if not intents:
                continue
            stats = dispatcher.handle(intents)
            consumer.commit()
            log.info("batch_done", intents=len(intents), sent=stats.sent, failed=stats.failed,
                     skipped=stats.skipped, deferred=stats.deferred,
                     duplicates=stats.duplicates)
    finally:
        consumer.close()


def relay_forever(o: Outreach, stop: threading.Event | None = None) -> None:
    from bus.kafka_relay import EventRelay

    stop = stop or stop_on_signals()
    relay = EventRelay.from_settings(o.settings, o.store, o.db)
    try:
        relay.run_forever(stop)
    finally:
        relay.close()


def schedule_forever(o: Outreach, interval_s: float = 1.0,
                     stop: threading.Event | None = None) -> None:
    """Projections + scheduler only (when the relay runs in its own process)."""
    from bus.kafka_intents import KafkaIntentPublisher

    stop = stop or stop_on_signals()
    publisher = KafkaIntentPublisher.from_settings(o.settings)
    try:
        EmbeddedRunner(o, dispatch=False, publisher=publisher).run_realtime(stop, interval_s)
    finally:
        publisher.close()
