"""Surviving dependency outages, and never dying alone.

Every long-running loop (dispatcher, relay, scheduler + projections) runs its steps through a
`Guard`: a step that fails for a connection-level error of the database or of the broker (a
restart, a network cut) is retried with capped exponential back-off and jitter, logged once
per outage (and once when it is over), and reported to the process's readiness. Anything
else is a bug or bad data: retried a few times in case it was a one-off race, then raised.

A `Lifeline` ties a process's threads together: when one of them ends unexpectedly (its
guard gave up, or it simply returned), the whole process stops and exits non-zero, so its
supervisor or operator sees it instead of a half-working process that silently stopped
publishing.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import psycopg
import structlog
from eventsourcing.persistence import InterfaceError as StoreInterfaceError
from eventsourcing.persistence import OperationalError as StoreOperationalError
from kafka.errors import (
    InvalidProducerEpochError,
    InvalidProducerIdMappingError,
    KafkaError,
    OutOfOrderSequenceNumberError,
    UnknownProducerIdError,
)

from workers.health import Health

log = structlog.get_logger("resilience")

T = TypeVar("T")

DATABASE = "database"
BROKER = "broker"

# Connection-level failures of PostgreSQL: server shut down or restarting (AdminShutdown,
# CannotConnectNow are OperationalErrors), connection lost, no connection from the pool in
# time (psycopg_pool.PoolTimeout is one too); eventsourcing re-raises them as its own.
DATABASE_OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    StoreOperationalError,
    StoreInterfaceError,
)
# A broker that restarted without its state (Tansu keeps nothing) no longer knows an
# idempotent producer's id: the producer is rebuilt, which fixes these.
_PRODUCER_STATE_ERRORS = (
    UnknownProducerIdError,
    OutOfOrderSequenceNumberError,
    InvalidProducerEpochError,
    InvalidProducerIdMappingError,
)


def classify(exc: BaseException) -> str | None:
    """The dependency `exc` says is unavailable (DATABASE or BROKER), or None for anything
    else. Follows explicit causes (`raise … from`), never the implicit context: a bug raised
    while handling an outage is still a bug."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DATABASE_OUTAGE_ERRORS):
            return DATABASE
        if isinstance(seen, KafkaError) and (
            seen.retriable
            or isinstance(seen, _PRODUCER_STATE_ERRORS)
            # kafka-python raises the bare base class for an unexpected response, e.g. a
            # restarted broker answering InitProducerId with UnknownError.
            or type(seen) is KafkaError
        ):
            return BROKER
        seen = seen.__cause__
    return None


@dataclass(frozen=True)
class Backoff:
    """Capped exponential back-off with jitter: 0.5 s, 1, 2, 4 … 30 s, each ±20 %, so the
    processes of a fleet do not all reconnect at the same instant."""

    initial_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 30.0
    jitter: float = 0.2

    def delay(self, failures: int, rand: float) -> float:
        """Seconds to wait after the `failures`-th consecutive failure (1, 2, …); `rand` is a
        uniform draw in [0, 1)."""
        exponent = min(max(failures, 1) - 1, 64)  # 2**64 × 0.5 s is past any cap already
        base = min(self.cap_s, self.initial_s * self.factor**exponent)
        return base * (1.0 + self.jitter * (2.0 * rand - 1.0))


class Guard:
    """One component's retry policy and outage state (see the module docstring)."""

    def __init__(
        self,
        component: str,
        *,
        health: Health | None = None,
        backoff: Backoff | None = None,
        classify: Callable[[BaseException], str | None] = classify,
        max_failures: int = 3,
        permanent: tuple[type[BaseException], ...] = (),
        on_outage: Callable[[str], None] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.component = component
        self.health = health
        self.backoff = backoff or Backoff()
        self.classify = classify
        #: consecutive failures of other kinds tolerated before giving up
        self.max_failures = max_failures
        #: errors no retry can help (e.g. an event that can never be published): raised at once
        self.permanent = permanent
        #: called on each outage failure, e.g. to drop a broker client so it is rebuilt
        self.on_outage = on_outage
        self.rand = rand
        self.failures = 0  # consecutive, of any kind: drives the back-off
        self.bugs = 0  # consecutive failures that are not outages
        self.outage: str | None = None

    def run(self, step: Callable[[], T], stop: threading.Event) -> T | None:
        """`step()`'s result, retried through outages until it succeeds; None if `stop`
        was set while waiting. Raises the step's error once it is judged fatal."""
        while True:
            try:
                result = step()
            except Exception as exc:  # noqa: BLE001 - classified: outage, or raised by failed()
                delay = self.failed(exc)
                if stop.wait(delay):
                    return None
                continue
            self.succeeded()
            return result

    def failed(self, exc: BaseException) -> float:
        """Record a failed step; returns how long to wait before the next try, or raises
        `exc` when it is not an outage and has failed `max_failures` times in a row."""
        if isinstance(exc, self.permanent):
            raise exc
        dependency = self.classify(exc)
        self.failures += 1
        if dependency is None:
            self.bugs += 1
            log.error("step_failed", component=self.component, error=type(exc).__name__,
                      attempt=self.bugs, of=self.max_failures, exc_info=exc)
            if self.bugs >= self.max_failures:
                raise exc
        else:
            self.bugs = 0
            self.report_outage(dependency, type(exc).__name__)
            if self.on_outage is not None:
                self.on_outage(dependency)
        return self.backoff.delay(self.failures, self.rand())

    def succeeded(self) -> None:
        if self.outage is not None:
            log.info("dependency_recovered", component=self.component, dependency=self.outage,
                     retries=self.failures)
            if self.health is not None:
                self.health.clear(self.component)
        self.failures = self.bugs = 0
        self.outage = None

    def report_outage(self, dependency: str, error: str) -> None:
        """Log the first failure of an outage (one line per outage, not per retry)."""
        if self.outage != dependency:
            log.warning("dependency_unavailable", component=self.component,
                        dependency=dependency, error=error)
        self.outage = dependency
        if self.health is not None:
            self.health.problem(self.component, f"{dependency} unavailable")


class ComponentFailed(Exception):
    """A component of the process ended for good; the process must exit non-zero."""

    def __init__(self, component: str, cause: BaseException | None) -> None:
        reason = type(cause).__name__ if cause else "ended unexpectedly"
        super().__init__(f"{component} stopped: {reason}")
        self.component = component


class Lifeline:
    """The process's stop event, and the first of its components that ended for good."""

    def __init__(self, stop: threading.Event, health: Health | None = None) -> None:
        self.stop = stop
        self.health = health
        self.failure: ComponentFailed | None = None
        self._lock = threading.Lock()

    def fail(self, component: str, cause: BaseException | None) -> None:
        """Record that `component` ended for good (one log line) and stop the process."""
        with self._lock:
            first = self.failure is None
            if first:
                self.failure = ComponentFailed(component, cause)
        if first:
            log.error("component_stopped", component=component,
                      error=type(cause).__name__ if cause else "returned")
        if self.health is not None:
            self.health.problem(component, f"{component} stopped")
        self.stop.set()

    def thread(self, component: str, target: Callable[[], None]) -> threading.Thread:
        """A daemon thread running `target` that brings the process down if it ends on its
        own (an exception, or a return while the process was not stopping)."""

        def main() -> None:
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - reported, and the process stops
                self.fail(component, exc)
                return
            if not self.stop.is_set():
                self.fail(component, None)

        return threading.Thread(target=main, name=component, daemon=True)

    def check(self) -> None:
        """Raise the recorded failure, if any (the process then exits non-zero)."""
        if self.failure is not None:
            raise self.failure


class Reconnecting(Generic[T]):
    """A client built on first use and dropped when its dependency failed, so that the next
    use builds a fresh one: after a broker restart a producer's state is stale (its
    idempotent producer id is unknown there) and the topics may have to be created again,
    which building does."""

    def __init__(self, build: Callable[[], T], close: Callable[[T], None]) -> None:
        self._build = build
        self._close = close
        self._client: T | None = None

    def get(self) -> T:
        if self._client is None:
            self._client = self._build()
        return self._client

    def drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                self._close(client)
            except Exception as exc:  # noqa: BLE001 - it is being thrown away anyway
                log.debug("client_close_failed", error=type(exc).__name__)


def quiet_client_reconnect_logs() -> None:
    """kafka-python logs every reconnect attempt of an outage at ERROR (dozens a second);
    the guards report each outage once, with what it affects."""
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    # A step held up by an outage makes APScheduler warn at every tick it skips.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
