"""The shared survival mechanism (workers/resilience.py, workers/health.py): back-off, one log
line per outage, bugs not retried forever, a thread that never dies alone, readiness."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import psycopg
import pytest
from eventsourcing.persistence import OperationalError as StoreOperationalError
from hypothesis import given
from hypothesis import strategies as st
from kafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from psycopg_pool import PoolTimeout
from structlog.testing import capture_logs

from workers.health import Health, HealthServer
from workers.resilience import BROKER, DATABASE, Backoff, Guard, Lifeline, classify

# -- back-off -------------------------------------------------------------------------------


@given(failures=st.integers(min_value=1, max_value=10_000),
       rand=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_each_wait_is_the_capped_doubling_within_twenty_percent(failures: int,
                                                               rand: float) -> None:
    backoff = Backoff()
    expected = min(30.0, 0.5 * 2 ** min(failures - 1, 64))
    delay = backoff.delay(failures, rand)
    assert expected * 0.8 - 1e-9 <= delay <= expected * 1.2 + 1e-9
    assert delay <= 36.0


@given(rand=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_waits_never_shrink_before_the_cap(rand: float) -> None:
    backoff = Backoff(jitter=0.0)
    delays = [backoff.delay(n, rand) for n in range(1, 12)]
    assert delays == sorted(delays)
    assert delays[0] == 0.5 and delays[-1] == 30.0


# -- what counts as an outage ---------------------------------------------------------------


def test_connection_level_errors_of_the_database_and_broker_are_outages() -> None:
    assert classify(psycopg.errors.AdminShutdown("terminating connection")) == DATABASE
    assert classify(PoolTimeout("couldn't get a connection")) == DATABASE
    assert classify(StoreOperationalError("server closed the connection")) == DATABASE
    assert classify(KafkaTimeoutError("no broker")) == BROKER
    # a restarted broker that lost the producer's state answers with the bare KafkaError
    assert classify(KafkaError("Unexpected error in InitProducerIdResponse")) == BROKER
    wrapped = RuntimeError("save failed")
    wrapped.__cause__ = psycopg.OperationalError("connection lost")
    assert classify(wrapped) == DATABASE


def test_bugs_and_refused_records_are_not_outages() -> None:
    assert classify(KeyError("x")) is None
    assert classify(psycopg.errors.UndefinedTable("no such table")) is None
    assert classify(MessageSizeTooLargeError("too big")) is None
    # a bug raised while handling an outage is still a bug
    try:
        try:
            raise psycopg.OperationalError("down")
        except psycopg.OperationalError:
            raise ValueError("bug in the handler")  # noqa: B904 - the implicit context
    except ValueError as exc:
        assert classify(exc) is None


# -- the guard --------------------------------------------------------------------------------


class FlakyStep:
    """Fails with the given errors, in order, then returns "done"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def no_wait() -> threading.Event:
    """A stop event whose wait() returns at once (False: not stopping)."""

    class Instant(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            return False

    return Instant()


def test_an_outage_is_retried_until_it_ends_with_one_line_when_it_starts_and_one_when_over(
) -> None:
    health = Health()
    step = FlakyStep(*(psycopg.OperationalError("down") for _ in range(7)))
    guard = Guard("scheduler", health=health, rand=lambda: 0.5)
    with capture_logs() as logs:
        assert guard.run(step, no_wait()) == "done"
    assert step.calls == 8
    events = [e["event"] for e in logs]
    assert events == ["dependency_unavailable", "dependency_recovered"]
    assert logs[0]["dependency"] == "database" and logs[1]["retries"] == 7
    assert health.reasons() == []


def test_the_guard_reports_the_outage_to_readiness_while_it_lasts() -> None:
    health = Health()
    guard = Guard("relay", health=health, rand=lambda: 0.5)
    delay = guard.failed(KafkaTimeoutError("no broker"))
    assert delay == 0.5
    assert health.reasons() == ["broker unavailable"]
    assert guard.failed(KafkaTimeoutError("no broker")) == 1.0
    guard.succeeded()
    assert health.reasons() == []


def test_a_bug_is_retried_a_few_times_then_raised_not_swallowed_forever() -> None:
    step = FlakyStep(*(KeyError("bug") for _ in range(10)))
    guard = Guard("scheduler", max_failures=3, rand=lambda: 0.5)
    with capture_logs() as logs, pytest.raises(KeyError):
        guard.run(step, no_wait())
    assert step.calls == 3
    assert [e["event"] for e in logs] == ["step_failed"] * 3


def test_a_one_off_bug_is_forgiven_when_the_next_try_works() -> None:
    step = FlakyStep(KeyError("race"), KeyError("race"))
    assert Guard("scheduler", max_failures=3).run(step, no_wait()) == "done"


def test_a_permanent_error_is_raised_at_once() -> None:
    step = FlakyStep(OverflowError("never publishable"))
    with pytest.raises(OverflowError):
        Guard("relay", permanent=(OverflowError,)).run(step, no_wait())
    assert step.calls == 1


def test_stopping_during_an_outage_ends_the_wait_without_a_result() -> None:
    stop = threading.Event()
    stop.set()
    step = FlakyStep(psycopg.OperationalError("down"))
    assert Guard("dispatcher").run(step, stop) is None
    assert step.calls == 1


def test_on_outage_drops_the_broker_client_so_it_is_rebuilt() -> None:
    dropped: list[str] = []
    guard = Guard("relay", on_outage=dropped.append, rand=lambda: 0.5)
    guard.run(FlakyStep(KafkaTimeoutError("gone")), no_wait())
    assert dropped == ["broker"]


# -- a thread never dies alone ----------------------------------------------------------------


def test_a_thread_that_raises_stops_the_process_and_is_reported_once() -> None:
    health = Health()
    lifeline = Lifeline(threading.Event(), health)

    def relay() -> None:
        raise RuntimeError("unexpected")

    with capture_logs() as logs:
        thread = lifeline.thread("relay", relay)
        thread.start()
        thread.join(5)
    assert lifeline.stop.is_set()
    assert [e["event"] for e in logs] == ["component_stopped"]
    assert health.reasons() == ["relay stopped"]
    with pytest.raises(Exception, match="relay stopped: RuntimeError"):
        lifeline.check()


def test_a_thread_that_just_returns_while_the_process_runs_also_stops_it() -> None:
    lifeline = Lifeline(threading.Event())
    thread = lifeline.thread("relay", lambda: None)
    thread.start()
    thread.join(5)
    assert lifeline.stop.is_set() and lifeline.failure is not None


def test_a_thread_that_returns_because_the_process_stops_is_no_failure() -> None:
    lifeline = Lifeline(threading.Event())
    lifeline.stop.set()
    thread = lifeline.thread("relay", lambda: None)
    thread.start()
    thread.join(5)
    lifeline.check()  # does not raise


# -- readiness over HTTP ----------------------------------------------------------------------


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_readyz_says_503_with_the_reason_while_a_dependency_is_down() -> None:
    health = Health()
    server = HealthServer(health, 0).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert get(f"{base}/readyz") == (200, {"status": "ready"})
        health.problem("dispatcher", "database unavailable")
        health.add_check(lambda: "broker unavailable")
        assert get(f"{base}/readyz") == (
            503, {"status": "not ready", "reasons": ["broker unavailable",
                                                     "database unavailable"]})
        status, alive = get(f"{base}/healthz")  # liveness does not depend on them
        assert (status, alive["status"]) == (200, "alive")
    finally:
        server.close()
