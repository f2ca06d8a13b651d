"""Liveness and readiness of a long-running process, served over HTTP for probes.

`/healthz`: 200 while the process runs (it answers). `/readyz`: 200 when every component is
working, else 503 with the reasons ("database unavailable", "broker unavailable", "relay
stopped"). Components report problems as they meet them (workers.resilience.Guard) and clear
them when they are over; checks are asked at each request (e.g. "is the consumer group's
coordinator known?"). The answers name dependencies only: no data, no configuration.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog

log = structlog.get_logger("health")

Check = Callable[[], str | None]  # a problem's reason, or None when fine


class Health:
    def __init__(self) -> None:
        self._problems: dict[str, str] = {}
        self._checks: list[Check] = []
        self._lock = threading.Lock()

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


class HealthServer:
    """A small threaded HTTP server for the probes (stdlib: nothing else to start)."""

    def __init__(self, health: Health, port: int, host: str = "127.0.0.1") -> None:
        self.health = health
        self._server = ThreadingHTTPServer((host, port), _handler(health))
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


def _handler(health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._answer(200, {"status": "alive"})
            elif path == "/readyz":
                reasons = health.reasons()
                if reasons:
                    self._answer(503, {"status": "not ready", "reasons": reasons})
                else:
                    self._answer(200, {"status": "ready"})
            else:
                self._answer(404, {"error": "not found"})

        def _answer(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # probes every few seconds would drown the process's own log

    return Handler
