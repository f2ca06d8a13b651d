"""Operators can see it: each worker process's Prometheus metrics, counted by the real
components (SQLite, the simulator gateway) and read back through the exposition format, as
Prometheus reads them."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from application.bootstrap import Outreach, build
from application.clock import SimulatedClock
from application.settings import Settings
from bus.intents import InMemoryIntentBus
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from tests.fixtures_servers import _free_port
from workers.dispatcher import DispatchStats
from workers.metrics import Metrics, code_label
from workers.processes import run_forever
from workers.runner import EmbeddedRunner, drain, make_dispatcher
from workers.scheduler import Scheduler

BODY = "Flu shots are here. Call (555) 010-0100 to book."
ELEVEN_AM = TUESDAY_9AM + timedelta(hours=2)  # the text window opens
NAMED = ("outreach_sends", "outreach_intents_consumed", "outreach_consumer_lag",
         "outreach_relay_positions_behind", "outreach_dispatch_latency_seconds",
         "outreach_rate_cap_deferrals", "outreach_retries_scheduled")


def samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) → value, parsed from the text format."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(exposition) for s in family.samples}


def value(exposition: str, name: str, **labels: str) -> float:
    return samples(exposition).get((name, tuple(sorted(labels.items()))), 0.0)


def app(tmp_path: Path, clock: SimulatedClock | None = None, **settings: object) -> Outreach:
    return build(Settings(database_url=f"sqlite:///{tmp_path}/o.db", **settings),  # type: ignore[arg-type]
                 clock=clock or SimulatedClock(TUESDAY_9AM))


def test_a_small_run_counts_sends_by_outcome_and_code_and_the_time_from_due_to_answer(
        tmp_path: Path) -> None:
    # Given three patients who can be texted and two on Twilio's failing test numbers
    o = app(tmp_path)
    mobiles = ["+13125550100", "+13125550101", "+13125550102", "+15005550001", "+15005550009"]
    import_patients(o, tmp_path, [patient_row(f"P{i}", m) for i, m in enumerate(mobiles)])
    o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    # When the workers run the day through, counting into this process's metrics
    metrics = Metrics()
    EmbeddedRunner(o, metrics=metrics).run_simulated(TUESDAY_9AM + timedelta(days=1))
    text = metrics.render().decode()
    # Then the sends are counted by outcome and the provider's error code
    assert value(text, "outreach_sends_total", outcome="sent", code="none") == 3
    assert value(text, "outreach_sends_total", outcome="failed", code="21211") == 1
    assert value(text, "outreach_sends_total", outcome="failed", code="21614") == 1
    # and every intent published was consumed, none deferred by the cap, none retried
    assert value(text, "outreach_intents_published_total") == 5
    assert value(text, "outreach_intents_consumed_total") == 5
    assert value(text, "outreach_rate_cap_deferrals_total") == 0
    assert value(text, "outreach_retries_scheduled_total") == 0
    # and each provider answer's delay since the send was due is observed (the simulated
    # clock jumps to 11:00, when all five were due, and the simulator answers at once)
    assert value(text, "outreach_dispatch_latency_seconds_count") == 5
    assert value(text, "outreach_dispatch_latency_seconds_bucket", le="0.25") == 5
    o.close()


def test_transient_failures_count_each_retry_the_dispatcher_schedules(tmp_path: Path) -> None:
    # Given a provider that fails every send transiently, and two patients
    o = app(tmp_path, simulator_failure_rate=1.0)
    import_patients(o, tmp_path, [patient_row(f"P{i}", f"+1312555010{i}") for i in range(2)])
    o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    metrics = Metrics()
    # When the workers run for a week (five attempts each, then the communication ends)
    EmbeddedRunner(o, metrics=metrics).run_simulated(TUESDAY_9AM + timedelta(days=7))
    text = metrics.render().decode()
    # Then ten failed sends are counted under the simulator's transient codes, and eight
    # retries scheduled (none after the fifth attempt)
    failed = {labels: n for (name, labels), n in samples(text).items()
              if name == "outreach_sends_total" and ("outcome", "failed") in labels}
    assert sum(failed.values()) == 10
    assert {dict(labels)["code"] for labels in failed} <= {"30003", "20429"}
    assert value(text, "outreach_retries_scheduled_total") == 8
    o.close()


def test_sends_refused_by_the_rate_cap_are_counted_as_deferrals(tmp_path: Path) -> None:
    # Given three intents issued under the default cap, for texts due from 11:00 (paced a
    # few seconds apart), a minute later
    clock = SimulatedClock(ELEVEN_AM)
    o = app(tmp_path, clock)
    import_patients(o, tmp_path, [patient_row(f"P{i}", f"+1312555010{i}") for i in range(3)])
    o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    clock.advance_to(ELEVEN_AM + timedelta(minutes=1))
    o.catch_up()
    bus = InMemoryIntentBus()
    assert Scheduler(o.db, o.store, o.directory, bus, clock, o.contact_keys,
                     limiter=o.limiter).tick() == 3
    # When a dispatcher started with a cap of one text an hour takes them (the cap was
    # lowered in between: the dispatcher's check just before each call is the rule)
    capped = app(tmp_path, clock, rate_cap_per_hour=1, rate_burst=1)
    metrics = Metrics()
    drain(make_dispatcher(capped, metrics), bus, DispatchStats())
    text = metrics.render().decode()
    # Then one is sent and the two the cap refused are counted as deferrals
    assert value(text, "outreach_sends_total", outcome="sent", code="none") == 1
    assert value(text, "outreach_rate_cap_deferrals_total") == 2
    assert value(text, "outreach_intents_consumed_total") == 3
    capped.close()
    o.close()


def test_error_codes_are_bounded_label_values() -> None:
    # Provider numbers and our short words are kept; anything else (a number, free text)
    # never becomes a label value
    assert [code_label(c) for c in ("30003", "500", "connection", "not-found", "", None)] == [
        "30003", "500", "connection", "not-found", "none", "none"]
    assert code_label("+13125550187") == "other"
    assert code_label("the handset at 312-555-0187 is off") == "other"
    assert code_label("13125550187") == "other"


def test_outreach_run_serves_its_metrics_and_probes_on_the_health_port(tmp_path: Path) -> None:
    # Given `outreach run` (embedded, real clock) with a health port, and an active campaign
    o = build(Settings(database_url=f"sqlite:///{tmp_path}/o.db", text_window="00:00-23:59:59",
                       sending_days="all", holidays="none", rate_cap_per_hour=100_000))
    import_patients(o, tmp_path, [patient_row(f"P{i}", f"+1312555010{i}") for i in range(3)])
    cid = o.campaigns.create(name="Now", body="Clinic closed Friday.", help_number="555-0100",
                             active=True)
    port, stop = _free_port(), threading.Event()
    loop = threading.Thread(target=run_forever, args=(o,), kwargs={
        "interval_s": 0.2, "stop": stop, "health_port": port})
    loop.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and {r.status for r in o.campaigns.report(cid)} != {
                "Sent"}:
            time.sleep(0.2)
        # When Prometheus scrapes it
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            content_type = response.headers["Content-Type"]
            text = response.read().decode()
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
            alive = json.loads(response.read())
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
            ready = (response.status, json.loads(response.read()))
    finally:
        stop.set()
        loop.join(timeout=10)
        o.close()
    # Then every named metric is there, in Prometheus' text format, with this run's sends
    assert content_type.startswith("text/plain")
    families = {f.name for f in text_string_to_metric_families(text)}
    assert set(NAMED) <= families, set(NAMED) - families
    assert value(text, "outreach_sends_total", outcome="sent", code="none") == 3
    assert "process_cpu_seconds" in families  # the standard process metrics too
    # and liveness reports the version and a growing uptime; the process is ready
    assert alive["status"] == "alive" and alive["version"] and alive["uptime_seconds"] > 0
    assert ready == (200, {"status": "ready"})
