"""Start-up checks of the long-running processes: fail with one line, or run.

Once running, a process rides out any outage of its database or broker (workers.resilience:
back-off, one log line, readiness says so). Before it has ever run, an unreachable broker is
far more often a wrong address or a missing service than a restart: waiting for it forever
would hide that behind a process that looks alive. So a process that needs the broker waits
for it at most OUTREACH_STARTUP_TIMEOUT_SECONDS, then stops with one line naming what did
not answer and exit code 3 (api/cli.py turns a StartupError into that line). The database
is checked when the application is built (application.bootstrap.build): a database that
cannot be reached ends the command at once, with one line and the same exit code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from application.settings import Settings

log = structlog.get_logger("startup")

EXIT_CONFIGURATION = 2  # a setting refused (as for every command's configuration errors)
EXIT_UNAVAILABLE = 3  # a dependency did not answer at start-up


class StartupError(Exception):
    """A process cannot start: its message is the one line the operator reads (it names
    settings and addresses, never secrets), its exit code says which kind."""

    def __init__(self, message: str, exit_code: int = EXIT_UNAVAILABLE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def require_broker(settings: Settings) -> None:
    """The broker answers (topics created or checked, bus.kafka_admin) within the start-up
    timeout; else StartupError. A compacted topic is refused here too, as configuration."""
    from bus.kafka_admin import TopicConfigError, ensure_topics_for
    from workers.resilience import BROKER, classify, quiet_client_reconnect_logs

    if not settings.kafka_bootstrap_servers:
        raise StartupError("this command needs OUTREACH_KAFKA_BOOTSTRAP_SERVERS; the embedded "
                           "default runs every worker inside `outreach run`",
                           EXIT_CONFIGURATION)
    # kafka-python logs every failed connection attempt (at ERROR, several a second): the
    # one line below says it all.
    quiet_client_reconnect_logs()
    timeout_s = settings.startup_timeout_seconds
    try:
        ensure_topics_for(settings, timeout_ms=int(timeout_s * 1000))
    except TopicConfigError as exc:
        raise StartupError(str(exc), EXIT_CONFIGURATION) from None
    except Exception as exc:
        if classify(exc) != BROKER:
            raise
        raise StartupError(
            f"the Kafka broker at {settings.kafka_bootstrap_servers} "
            f"(OUTREACH_KAFKA_BOOTSTRAP_SERVERS) did not answer within {timeout_s:g} s "
            f"(OUTREACH_STARTUP_TIMEOUT_SECONDS): {type(exc).__name__}") from None
    log.debug("broker_reachable", bootstrap=settings.kafka_bootstrap_servers)


def database_unavailable_message(settings: Settings, exc: BaseException) -> str:
    """One line for a database that could not be used at start-up: where it was looked for
    (host, port and database name, never the password) and the driver's first line."""
    reason = _first_line(exc)
    password = _password(settings)
    if password:
        reason = reason.replace(password, "***")  # a driver may quote the conninfo
    return f"cannot use the database ({_where(settings)}; OUTREACH_DATABASE_URL): {reason}"


def _password(settings: Settings) -> str | None:
    if not settings.is_postgres:
        return None
    try:
        from psycopg.conninfo import conninfo_to_dict

        return str(conninfo_to_dict(settings.database_url).get("password") or "") or None
    except Exception:  # noqa: BLE001 - unreadable: nothing to mask that we could find
        return None


def _where(settings: Settings) -> str:
    if not settings.is_postgres:
        return f"SQLite file {settings.sqlite_path}"
    try:
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(settings.database_url)
    except Exception:  # noqa: BLE001 - an unreadable URL: say no more than that
        return "PostgreSQL, unreadable URL"
    host = info.get("host") or "local socket"
    port = info.get("port") or 5432
    return f"PostgreSQL at {host}:{port}, database {info.get('dbname') or '(default)'}"


def _first_line(exc: BaseException) -> str:
    # eventsourcing re-raises the driver's error: its message is the useful one.
    seen: BaseException | None = exc
    while seen is not None and not str(seen).strip() and seen.__cause__ is not None:
        seen = seen.__cause__
    text = str(seen).strip() if seen is not None else ""
    first = text.splitlines()[0].strip() if text else ""
    return first or type(exc).__name__
