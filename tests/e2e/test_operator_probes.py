"""Operators can see it: liveness, readiness and metrics of `outreach serve` and of the
workers, against real servers (a private PostgreSQL a test stops and starts, Tansu)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.http import serving_app
from application.bootstrap import build
from application.settings import Settings
from tests.fixtures_app import TEST_CONTACT_KEY_SECRET
from tests.fixtures_servers import RestartablePostgres, _free_port
from workers.metrics import Metrics
from workers.processes import process

CLI = [sys.executable, "-c", "from api.cli import main; main()"]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.postgres
def test_serve_is_ready_only_while_its_database_answers(
        private_postgres: RestartablePostgres) -> None:
    # Given `outreach serve`'s app on PostgreSQL
    o = build(Settings(database_url=private_postgres.url, db_connect_timeout_seconds=1))
    client = TestClient(serving_app(o, insecure_dev_no_signatures=True))
    try:
        ready = client.get("/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        # When the database stops
        private_postgres.stop()
        # Then readiness is 503 naming the database, while liveness still answers
        down = client.get("/readyz")
        assert (down.status_code, down.json()) == (
            503, {"status": "not ready", "reasons": ["database unavailable"]})
        alive = client.get("/healthz")
        assert alive.status_code == 200 and alive.json()["status"] == "alive"
        # and once it is back, ready again
        private_postgres.start()
        # (a probe is asked again and again: the pool may spend one on a dead connection)
        wait_for(lambda: client.get("/readyz").status_code == 200, 15, "ready again")
        again = client.get("/readyz")
        assert (again.status_code, again.json()) == (200, {"status": "ready"})
        # and Prometheus sees the probes' answers on the same app
        text = client.get("/metrics").text
        counted = {(s.labels.get("path"), s.labels.get("status")): s.value
                   for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == "outreach_http_responses_total"}
        assert counted[("/readyz", "503")] >= 1 and counted[("/readyz", "200")] >= 3
    finally:
        client.close()
        o.close()


@pytest.mark.postgres
def test_an_idle_worker_is_not_ready_while_its_database_is_away(
        private_postgres: RestartablePostgres) -> None:
    # Given a worker process's frame on PostgreSQL with its probes' port, doing nothing
    # (nothing to dispatch: no step of its own would meet the outage)
    o = build(Settings(database_url=private_postgres.url, db_connect_timeout_seconds=1))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        with process(threading.Event(), port, o=o, metrics=Metrics.for_process()):
            assert get(f"{base}/readyz") == (200, json.dumps({"status": "ready"}))
            # When the database stops, readiness says so; when it is back, ready again
            private_postgres.stop()
            status, body = get(f"{base}/readyz")
            assert (status, json.loads(body)["reasons"]) == (503, ["database unavailable"])
            private_postgres.start()
            # (the pool reconnects in the background: on a busy machine, after a moment)
            wait_for(lambda: get(f"{base}/readyz")[0] == 200, 15, "ready again")
    finally:
        o.close()


@pytest.mark.kafka
def test_a_dispatcher_process_serves_its_consumer_lag_and_probes(
        kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path) -> None:
    # Given `outreach worker dispatch` with a health port, on Kafka (Tansu)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "TWILIO_"))}
    env.update(OUTREACH_DATABASE_URL=f"sqlite:///{tmp_path}/o.db",
               OUTREACH_CONTACT_KEY_SECRET=TEST_CONTACT_KEY_SECRET,
               OUTREACH_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
               OUTREACH_KAFKA_TOPIC_PREFIX=unique_topic_prefix,
               OUTREACH_KAFKA_INTENT_PARTITIONS="2",
               # Tansu completes a group join after the rebalance (max poll) timeout
               OUTREACH_KAFKA_SESSION_TIMEOUT_MS="2000",
               OUTREACH_KAFKA_MAX_POLL_INTERVAL_MS="10000",
               OUTREACH_LOG_FORMAT="json", OUTREACH_LOG_LEVEL="INFO")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "dispatch.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen([*CLI, "worker", "dispatch", "--health-port", str(port)],
                                  env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        def lag_partitions() -> set[str]:
            status, text = get(f"{base}/metrics") if answers(base) else (0, "")
            return {s.labels["partition"] for f in text_string_to_metric_families(text)
                    for s in f.samples if s.name == "outreach_consumer_lag"}

        # When it has joined its group: the lag of both partitions is there (nothing to do)
        wait_for(lambda: worker.poll() is None and lag_partitions() == {"0", "1"}, 60,
                 f"the dispatcher's lag\n{log_path.read_text()}")
        status, text = get(f"{base}/metrics")
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert {s.value for s in families["outreach_consumer_lag"].samples} == {0.0}
        assert "outreach_intents_consumed" in families and "outreach_sends" in families
        # Then it is ready (database, broker, group coordinator) and alive
        assert get(f"{base}/readyz") == (200, json.dumps({"status": "ready"}))
        assert json.loads(get(f"{base}/healthz")[1])["status"] == "alive"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    # and every line it logged is one JSON object: ours and kafka-python's alike
    lines = log_path.read_text().splitlines()
    assert lines and all(json.loads(line)["timestamp"] for line in lines), lines


def answers(base: str) -> bool:
    try:
        urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
        return True
    except OSError:
        return False


def test_serve_logs_every_line_as_json_uvicorns_included(tmp_path: Path) -> None:
    # Given `outreach serve` with JSON logs at INFO
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "TWILIO_"))}
    env.update(OUTREACH_DATABASE_URL=f"sqlite:///{tmp_path}/o.db",
               OUTREACH_CONTACT_KEY_SECRET=TEST_CONTACT_KEY_SECRET,
               OUTREACH_LOG_FORMAT="json", OUTREACH_LOG_LEVEL="INFO")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen([*CLI, "serve", "--port", str(port),
                                   "--insecure-dev-no-signatures"],
                                  env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: server.poll() is None and answers(base), 30,
                 f"serve to answer\n{log_path.read_text()}")
        status, body = get(f"{base}/healthz")
        assert status == 200 and json.loads(body)["uptime_seconds"] >= 0
    finally:
        server.terminate()
        server.wait(timeout=30)
    # Then every line is one JSON object of the same shape, uvicorn's as well as ours
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert all({"timestamp", "level", "logger", "event"} <= set(line) for line in lines)
    loggers = {line["logger"] for line in lines}
    assert "uvicorn.error" in loggers and "api.http" in loggers, loggers
    assert any(str(line["event"]).startswith("Uvicorn running on") for line in lines)
