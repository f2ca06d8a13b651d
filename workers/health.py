"""Liveness, readiness and metrics of a long-running process, served over HTTP for probes.

`/healthz`: 200 while the process runs (it answers), with its version and uptime.
`/readyz`: 200 when every component is working, else 503 with the reasons ("database
unavailable", "broker unavailable", "relay stopped"). Components report problems as they
meet them (workers.resilience.Guard) and clear them when they are over; checks are asked at
each request: the database answers a query, a broker accepts a connection, the consumer
group's coordinator is known. `/metrics`: the process's Prometheus metrics (workers.metrics).
The answers name dependencies only: no data, no configuration.

`outreach serve` answers the same three paths from its own app (api/http.py), with the same
`Health` and checks.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from projections.db import Database
    from workers.metrics import Metrics

log = structlog.get_logger("health")

Check = Callable[[], str | None]  # a problem's reason, or None when fine

DATABASE_UNAVAILABLE = "database unavailable"
BROKER_UNAVAILABLE = "broker unavailable"


class Health:
    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        """`now`: the application clock, for the uptime `/healthz` reports."""
        self._problems: dict[str, str] = {}
        self._checks: list[Check] = []
        self._lock = threading.Lock()
        self._now = now
        self._started = now() if now else None

    def problem(self, component: str, reason: str) -> None:
        with self._lock:
            self._problems[component] = reason

    def clear(self, component: str) -> None:
        with self._lock:
            self._problems.pop(component, None)

    def add_check(self, check: Check) -> None:
        with self._lock:
            self._checks.append(check)

    def reasons(self) -> list[str]:
        """Why the process is not ready (empty: ready), each reason once, sorted."""
        with self._lock:
            found = set(self._problems.values())
            checks = list(self._checks)
        for check in checks:
            try:
                reason = check()
            except Exception as exc:  # noqa: BLE001 - a failing check is itself the answer
                reason = f"health check failed: {type(exc).__name__}"
            if reason:
                found.add(reason)
        return sorted(found)

    def liveness(self) -> dict[str, object]:
        """What `/healthz` says: the process answers, which version, for how long."""
        from workers.metrics import outreach_version

        body: dict[str, object] = {"status": "alive", "version": outreach_version()}
        if self._now is not None and self._started is not None:
            body["uptime_seconds"] = round((self._now() - self._started).total_seconds(), 3)
        return body

    def readiness(self) -> tuple[int, dict[str, object]]:
        """`/readyz`'s status code and body."""
        reasons = self.reasons()
        if reasons:
            return 503, {"status": "not ready", "reasons": reasons}
        return 200, {"status": "ready"}


def database_check(db: Database) -> Check:
    """The database answers a query (read-model pool: waits at most
    OUTREACH_DB_CONNECT_TIMEOUT_SECONDS for a connection)."""

    def check() -> str | None:
        try:
            db.fetchone("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure to answer is the answer
            log.debug("readiness_database_failed", error=type(exc).__name__)
            return DATABASE_UNAVAILABLE
        return None

    return check


def broker_check(bootstrap_servers: str, timeout_s: float = 1.0) -> Check:
    """One of the bootstrap brokers accepts a TCP connection. Cheap enough for every probe
    (no Kafka client, no metadata request); whether the client itself is connected is each
    component's to report (its guard, the consumer's coordinator)."""
    addresses = [_host_port(a) for a in bootstrap_servers.split(",") if a.strip()]

    def check() -> str | None:
        for host, port in addresses:
            try:
                with socket.create_connection((host, port), timeout=timeout_s):
                    return None
            except OSError:
                continue
        return BROKER_UNAVAILABLE

    return check


def _host_port(address: str) -> tuple[str, int]:
    address = address.strip().rpartition("://")[2]
    host, _, port = address.rpartition(":")
    if not host:  # "kafka": no port given
        return address.strip("[]"), 9092
    return host.strip("[]"), int(port) if port.isdigit() else 9092


class HealthServer:
    """A small threaded HTTP server for the probes (stdlib: nothing else to start)."""

    def __init__(self, health: Health, port: int, host: str = "127.0.0.1",
                 metrics: Metrics | None = None) -> None:
        self.health = health
        self._server = ThreadingHTTPServer((host, port), _handler(health, metrics))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="health",
                                        daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health_serving", port=self.port)
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(health: Health, metrics: Metrics | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._answer(200, health.liveness())
            elif path == "/readyz":
                self._answer(*health.readiness())
            elif path == "/metrics" and metrics is not None:
                from workers.metrics import CONTENT_TYPE

                self._send(200, metrics.render(), CONTENT_TYPE)
            else:
                self._answer(404, {"error": "not found"})

        def _answer(self, status: int, body: dict[str, object]) -> None:
            self._send(status, json.dumps(body).encode("utf-8"), "application/json")

        def _send(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # probes every few seconds would drown the process's own log

    return Handler
