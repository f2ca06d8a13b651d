"""The `outreach` command line. It only calls application services; every refused command
prints one clear line and exits non-zero."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from api.cli_identity import cli_actor
from api.console import ScriptConsole
from application.bootstrap import Outreach, build
from application.csv_safe import SafeCsvWriter
from application.settings import Settings
from domain.errors import DomainError
from workers.startup import StartupError, database_unavailable_message

# An unexpected failure prints a traceback, but never local variables: they hold the
# Settings (Twilio auth token, cipher key) and patients' rows. Said here, not left to typer's
# default; the root app's setting is the one that applies to every subcommand.
# add_completion: `outreach --install-completion` / `--show-completion [bash|zsh|fish|…]`.
app = typer.Typer(no_args_is_help=True, add_completion=True,
                  pretty_exceptions_show_locals=False,
                  help="Patient outreach campaigns: build lists, send politely, report.")
campaign_app = typer.Typer(no_args_is_help=True, help="Create and manage one campaign.")
worker_app = typer.Typer(no_args_is_help=True, help="Run one kind of worker (scale-out stack).")
simulate_app = typer.Typer(no_args_is_help=True, help="Drive the simulator gateway.")
optout_app = typer.Typer(no_args_is_help=True, help="Patients' opt-out settings.")
app.add_typer(campaign_app, name="campaign")
app.add_typer(worker_app, name="worker")
app.add_typer(simulate_app, name="simulate")
app.add_typer(optout_app, name="opt-out")

# Lines are never wrapped, piped or not: a script reads one line per message (api/console.py).
console = ScriptConsole()
err = ScriptConsole(stderr=True)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("outreach")
        except PackageNotFoundError:  # run from a source tree that was never installed
            number = "unknown"
        sys.stdout.write(f"outreach {number}\n")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_version, help="Print the version and exit.")]
    = False,
) -> None:
    """Patient outreach campaigns: build lists, send politely, report."""


def fail(message: str, code: int = 1) -> None:
    # soft_wrap: one line whatever the terminal (or log file) width.
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def with_log_level(settings: Settings, verbose: bool) -> Settings:
    """Verbose: at least INFO (a line per text); not: warnings and errors only, for commands
    that show their own progress and summary. A level configured beyond either still holds."""
    levels = logging.getLevelNamesMapping()
    configured = levels.get(settings.log_level.upper(), logging.INFO)
    wanted = min(configured, logging.INFO) if verbose else max(configured, logging.WARNING)
    return settings.model_copy(update={"log_level": logging.getLevelName(wanted)})


@contextmanager
def outreach(verbose: bool | None = None, **kwargs: Any) -> Iterator[Outreach]:
    """Build the application for one command; domain errors become one line + exit 1.
    `verbose` (None: the configured log level) as in with_log_level."""
    try:
        if verbose is not None:
            kwargs["settings"] = with_log_level(kwargs.get("settings") or Settings(), verbose)
        o = build(configure_logs=True, **kwargs)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        # A rule across settings has no one field, and pydantic prefixes its words.
        words = str(first["msg"]).removeprefix("Value error, ")
        fail(f"configuration: {where + ': ' if where else ''}{words}", 2)
        raise  # unreachable, for the type checker
    except ValueError as exc:
        # What the settings cannot check alone: a Twilio account without a sender, an
        # unusable contact-key file. Named by the setting, never a secret's value.
        fail(f"configuration: {exc}", 2)
        raise
    except Exception as exc:
        _fail_if_database_unavailable(exc, kwargs.get("settings"))
        raise
    try:
        yield o
    except DomainError as exc:
        fail(str(exc))
    except StartupError as exc:  # a worker's dependency did not answer (workers/startup.py)
        fail(str(exc), exc.exit_code)
    finally:
        o.close()


def _fail_if_database_unavailable(exc: Exception, settings: Settings | None) -> None:
    """A database that cannot be reached or opened at start-up: one line, exit code 3
    (workers/startup.py), instead of the driver's traceback."""
    import sqlite3

    from workers.resilience import DATABASE, classify

    settings = settings or Settings()
    if classify(exc) == DATABASE or isinstance(exc, sqlite3.OperationalError) or (
            isinstance(exc, OSError) and not settings.is_postgres):  # a file not creatable
        fail(database_unavailable_message(settings, exc), 3)


def parse_date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{text!r} is not a date (YYYY-MM-DD)", 2)
        raise


def parse_instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{text!r} is not an ISO date-time (e.g. 2026-11-24T09:00-06:00)", 2)
        raise
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def read_ids(path: Path | None) -> list[str] | None:
    if path is None:
        return None
    if not path.exists():
        fail(f"no file {path}", 2)
    return [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()
            if line.strip() and not line.startswith("#")]


# -- campaigns ---------------------------------------------------------------------------
def _simple(action: str) -> Callable[[str], None]:
    def command(campaign_id: str) -> None:
        with outreach() as o:
            actor = cli_actor(o)
            if action == "stop":
                detail, cancelled = o.staff.campaigns.stop(actor, campaign_id)
                extra = f" ({cancelled} communications cancelled)"
            else:
                detail, extra = getattr(o.staff.campaigns, action)(actor, campaign_id), ""
            console.print(f"campaign {detail.campaign_id} {detail.status}{extra}")
    command.__doc__ = {
        "activate": "Set Active: it goes out from its start day in the next window.",
        "inactivate": "Set Inactive (only until midnight before its start day).",
        "stop": "Stop for good: cancels what was not yet sent.",
    }[action]
    return command


for _action in ("activate", "inactivate", "stop"):
    campaign_app.command(_action)(_simple(_action))


REPORT_CSV_HEADER = ("#", "Patient ID", "Name", "Contact", "Status", "Attempts",
                     "Last Outcome", "Reason", "Due At")


@campaign_app.command("report")
def campaign_report(
    campaign_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines for tools.")] = False,
    as_csv: Annotated[bool, typer.Option(
        "--csv", help="CSV for a spreadsheet: a header row, one row per patient.")] = False,
) -> None:
    """Each patient: contact, status, attempts, last outcome."""
    if as_json and as_csv:
        fail("give --json or --csv, not both", 2)
    with outreach() as o:
        actor = cli_actor(o)
        rows = o.staff.campaigns.report(actor, campaign_id).rows
        if as_json:
            for r in rows:
                sys.stdout.write(json.dumps(r.__dict__) + "\n")
            return
        if as_csv:
            # Formula-safe: names and contacts are what the imported files said.
            writer = SafeCsvWriter(sys.stdout)
            writer.writerow(REPORT_CSV_HEADER)
            writer.writerows([r.sequence, r.patient_id, r.name, r.contact, r.status,
                              r.attempts, r.last_outcome, r.reason, r.due_at] for r in rows)
            return
        table = Table(title=f"{o.campaigns.get(o.campaigns.resolve(campaign_id)).name}: report")
        for col in ("#", "patient", "name", "contact", "status", "attempts", "last outcome",
                    "reason"):
            table.add_column(col)
        for r in rows:
            table.add_row(str(r.sequence), r.patient_id, r.name, r.contact, r.status,
                          str(r.attempts), r.last_outcome, r.reason)
        console.print(table)


@app.command("campaigns")
def campaigns_list(
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every campaign with its status and progress."""
    with outreach() as o:
        rows = o.staff.campaigns.campaigns(cli_actor(o))
        if as_json:
            for r in rows:
                line = {**r.__dict__, "groups": list(r.groups), "progress": r.progress}
                sys.stdout.write(json.dumps(line) + "\n")
            return
        table = Table(title="Campaigns")
        for col in ("id", "name", "channel", "status", "start", "progress"):
            table.add_column(col)
        for r in rows:
            table.add_row(r.campaign_id[:8], r.name, r.channel, r.status, r.start_date,
                          r.progress)
        console.print(table)


# -- running -----------------------------------------------------------------------------
@app.command("run")
def run(
    simulate: Annotated[bool, typer.Option(help="Use a simulated clock that skips idle time.")]
    = False,
    start: Annotated[str | None, typer.Option("--from", help="Simulation start (ISO).")] = None,
    until: Annotated[str | None, typer.Option(help="Simulation end (ISO).")] = None,
    interval: Annotated[float, typer.Option(help="Real-time loop period, seconds.")] = 1.0,
    health_port: Annotated[int | None, typer.Option(
        help="Serve /healthz and /readyz (probes) on this port.")] = None,
    health_host: Annotated[str, typer.Option(
        help="Address the probes' server binds (0.0.0.0 in a container).")] = "127.0.0.1",
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Log a line per text (INFO). --simulate is quiet without it; "
        "the real-time run logs at OUTREACH_LOG_LEVEL.")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="--simulate: the summary as one JSON object on stdout.")] = False,
) -> None:
    """Run the workers. Embedded (default): all in this process. With Kafka configured:
    projections, scheduler and relay here; dispatchers via `outreach worker dispatch`.
    --simulate shows progress on stderr and a summary at the end."""
    from application.clock import SimulatedClock
    from workers.runner import EmbeddedRunner

    if simulate:
        from api.run_output import print_summary, progress_display

        if not (start and until):
            fail("--simulate needs --from and --until", 2)
        clock = SimulatedClock(parse_instant(str(start)))
        end = parse_instant(str(until))
        with outreach(verbose=verbose, clock=clock) as o:
            runner = EmbeddedRunner(o)
            zone = o.settings.calendar.timezone
            with progress_display(err, zone) as show:
                progress = runner.run_simulated(end, show)
            print_summary(console, progress, runner.stats, zone, as_json)
        return
    if as_json:
        fail("--json goes with --simulate (the real-time run prints no summary)", 2)
    from workers.processes import run_forever

    # A service: its log is its output, at OUTREACH_LOG_LEVEL unless -v asks for more.
    with outreach(verbose=True if verbose else None) as o:
        run_forever(o, interval_s=interval, health_port=health_port, health_host=health_host)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8080,
    insecure_dev_no_signatures: Annotated[bool, typer.Option(
        "--insecure-dev-no-signatures",
        help="DEVELOPMENT ONLY, simulator gateway only: accept unsigned webhooks "
             "(or OUTREACH_INSECURE_DEV_NO_SIGNATURES=true).")] = False,
) -> None:
    """Serve Twilio's webhooks (inbound texts, status callbacks). Needs TWILIO_AUTH_TOKEN and
    OUTREACH_PUBLIC_URL: every webhook's signature is checked."""
    import uvicorn

    from api.http import serving_app

    with outreach() as o:
        try:
            web = serving_app(o, insecure_dev_no_signatures)
        except ValueError as exc:
            fail(str(exc), 2)
            raise  # unreachable, for the type checker
        # log_config=None: uvicorn's loggers (uvicorn.error at OUTREACH_LOG_LEVEL, access
        # lines at WARNING) go through our handler, same shape and redaction as ours
        # (application/logging.py). A port already in use is its one error line, exit 1.
        uvicorn.run(web, host=host, port=port, log_config=None)


@simulate_app.command("reply")
def simulate_reply(
    from_number: Annotated[str, typer.Option("--from", help="The patient's number (E.164).")],
    body: Annotated[str, typer.Option(help="What the patient texts: STOP, HELP, …")],
) -> None:
    """Inject a patient's text as if it came through the provider's webhook."""
    import uuid

    from domain.inbound import InboundText

    with outreach() as o:
        reply = o.inbound.on_text(InboundText(
            message_ref=f"SIM{uuid.uuid4().hex}", from_number=from_number, to_number="",
            body=body, received_at=o.clock.now()))
        console.print(f"recorded; reply: {reply}" if reply else "recorded")


@app.command("rebuild")
def rebuild() -> None:
    """Replay the whole event history into fresh read models."""
    with outreach() as o:
        console.print(f"replayed {o.rebuild()} events")


def main() -> None:
    # The other command modules import this one (for `app`, `outreach`, …), so they are
    # registered here rather than imported at the top.
    import api.cli_audit  # noqa: F401 - registers `campaign attempts`
    import api.cli_campaigns  # noqa: F401 - registers campaign create, edit and test-send
    from api import cli_ops  # noqa: F401 - registers demo, opt-out, worker and event commands
    from api.cli_audit_trail import audit_app
    from api.cli_patients import import_app, list_command, patients_app, views_app
    from api.cli_settings import settings_app
    from api.cli_users import users_app  # also registers login, logout, whoami, password

    app.add_typer(import_app, name="import")
    app.command("list")(list_command)
    app.add_typer(views_app, name="views")
    app.add_typer(patients_app, name="patients")
    from api.cli_letters import letters_app
    from api.cli_templates import templates_app

    app.add_typer(templates_app, name="templates")
    app.add_typer(letters_app, name="letters")
    app.add_typer(users_app, name="users")
    app.add_typer(audit_app, name="audit")
    app.add_typer(settings_app, name="settings")
    sys.exit(_run_app())


def _run_app() -> int:
    """Run the command; a usage error (unknown option, missing argument, bad value) is one
    `error:` line on stderr like every other refusal, not rich's boxed panel, which wraps."""
    # The click that typer runs on (recent typer vendors its own copy): the module that
    # defines typer's public BadParameter.
    clicks: Any = sys.modules[typer.BadParameter.__module__]
    try:
        code = app(standalone_mode=False)
    except clicks.NoArgsIsHelpError as exc:
        return int(exc.exit_code)  # the help was printed: a group given no command
    except clicks.UsageError as exc:
        ctx = exc.ctx
        hint = (f" (see '{ctx.command_path} {ctx.help_option_names[0]}')"
                if ctx is not None and ctx.help_option_names else "")
        err.print(f"error: {exc.format_message()}{hint}", markup=False, highlight=False)
        return int(exc.exit_code)
    except clicks.ClickException as exc:
        err.print(f"error: {exc.format_message()}", markup=False, highlight=False)
        return int(exc.exit_code)
    except typer.Abort:
        err.print("error: aborted", markup=False, highlight=False)
        return 1
    # Standalone mode off, click returns the exit code of typer.Exit, or the command's own
    # return value (None for ours).
    return code if isinstance(code, int) else 0
