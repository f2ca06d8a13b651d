"""`outreach audit`: the audit trail (HIPAA §164.312(b)) at the command line, for
administrators. The bare command lists entries newest first (a table, or --json);
`outreach audit export FILE.csv|-` writes every matching entry, oldest first, as
formula-safe CSV or JSON lines: the six-year retention export. Both go through the audit
facade, so the role is checked and the read is itself recorded.

Filters: --user (id or username), --patient, --action (exact, or a prefix "campaign." /
"campaign*"), --outcome (allowed, denied, failed), --since (inclusive) and --until
(exclusive) as ISO 8601 dates or date-times (no zone: UTC). A bad filter: one line, exit 1.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from api.cli import console, err, fail, outreach
from api.cli_identity import cli_actor
from application.bootstrap import Outreach
from application.staff_audit import FORMATS, AuditFacade
from domain.access import Actor
from domain.audit import InvalidAuditQuery, parse_instant

audit_app = typer.Typer(help="The audit trail: who did and saw what (Administrator role).")

UserOpt = Annotated[str | None, typer.Option("--user", help="A user id or username.")]
PatientOpt = Annotated[str | None, typer.Option("--patient", help="A patient id.")]
ActionOpt = Annotated[str | None, typer.Option(
    "--action", help='Exact, or a prefix: "campaign." or "campaign*".')]
OutcomeOpt = Annotated[str | None, typer.Option(
    "--outcome", help="allowed, denied or failed.")]
SinceOpt = Annotated[str | None, typer.Option(
    "--since", help="ISO 8601 date or date-time, inclusive (no zone: UTC).")]
UntilOpt = Annotated[str | None, typer.Option(
    "--until", help="ISO 8601 date or date-time, exclusive (no zone: UTC).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON for tools.")]


@dataclass(frozen=True)
class Filters:
    user: str | None = None
    patient: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: str | None = None
    until: str | None = None

    def checked(self) -> dict[str, Any]:
        """The filters, dates checked before anything is opened: one line + exit 1."""
        try:
            parse_instant(self.since, "since")
            parse_instant(self.until, "until")
        except InvalidAuditQuery as exc:
            fail(str(exc))
        return dict(user=self.user, patient=self.patient, action=self.action,
                    outcome=self.outcome, since=self.since, until=self.until)

    def merged(self, given: Filters | None) -> Filters:
        """These filters, with those given before the subcommand (`audit --user x export`)
        filling the gaps."""
        if given is None:
            return self
        mine, theirs = vars(self), vars(given)
        return Filters(**{k: mine[k] if mine[k] is not None else theirs[k] for k in mine})


def _actor(o: Outreach) -> Actor:
    return cli_actor(o)


def _facade(o: Outreach) -> AuditFacade:
    return o.staff.audit  # type: ignore[no-any-return]


def _table(rows: list[Any]) -> Table:
    table = Table("At (UTC)", "User", "Action", "Outcome", "Target", "Patients", "Via",
                  "Source", "Detail")
    for r in rows:
        # Text cells: usernames and targets are typed by people, never read as markup.
        table.add_row(*(Text(str(v)) for v in (
            r.at.strftime("%Y-%m-%d %H:%M:%S"), r.username, r.action, r.outcome, r.target,
            r.patient_count, r.via, r.source, r.detail)))
    return table


@audit_app.callback(invoke_without_command=True)
def audit_list(
    ctx: typer.Context, user: UserOpt = None, patient: PatientOpt = None,
    action: ActionOpt = None, outcome: OutcomeOpt = None, since: SinceOpt = None,
    until: UntilOpt = None,
    page: Annotated[int, typer.Option(min=1, help="From 1.")] = 1,
    page_size: Annotated[int, typer.Option(min=1, max=1000, help="Rows per page.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List audit entries, newest first (or `export` them)."""
    given = Filters(user, patient, action, outcome, since, until)
    if ctx.invoked_subcommand is not None:
        ctx.obj = given
        return
    filters = given.checked()
    with outreach() as o:
        found = _facade(o).query(_actor(o), **filters, page=page, page_size=page_size)
        if as_json:
            sys.stdout.write(json.dumps({
                "items": [r.as_json() for r in found.rows], "total": found.total,
                "page": found.page, "page_size": found.page_size}, ensure_ascii=False) + "\n")
            return
        if found.rows:
            console.print(_table(found.rows))
        shown = len(found.rows)
        first = (found.page - 1) * found.page_size + 1
        console.print(f"{found.total} entries" + (
            f"; {first}-{first + shown - 1} shown" if shown else "; none on this page"),
            markup=False, highlight=False)


def _open_private(path: Path) -> Any:
    # Owner-only from the start: the export names staff and the patients they saw.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


@audit_app.command("export")
def audit_export(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="FILE.csv, FILE.jsonl, or - for stdout.")],
    user: UserOpt = None, patient: PatientOpt = None, action: ActionOpt = None,
    outcome: OutcomeOpt = None, since: SinceOpt = None, until: UntilOpt = None,
    format: Annotated[str | None, typer.Option(  # noqa: A002 - the option's name
        "--format", help="csv or jsonl (default: from the file's name, else csv).")] = None,
) -> None:
    """Write every matching entry, oldest first: CSV (formula-safe, patient ids joined by
    ';') or JSON lines. The retention export."""
    filters = Filters(user, patient, action, outcome, since, until).merged(
        ctx.obj if isinstance(ctx.obj, Filters) else None).checked()
    kind = format or ("jsonl" if file.endswith((".jsonl", ".ndjson")) else "csv")
    if kind not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}", 2)
    with outreach() as o:
        facade, actor = _facade(o), _actor(o)
        if file == "-":
            facade.export(actor, sys.stdout, format=kind, **filters)
            return
        target = Path(file)
        part = target.with_name(target.name + ".part")
        try:
            with _open_private(part) as out:
                count = facade.export(actor, out, format=kind, **filters)
            part.replace(target)  # a failed export never leaves a complete-looking file
        except OSError as exc:
            part.unlink(missing_ok=True)
            fail(f"cannot write {target}: {exc.strerror or exc}")
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        err.print(f"{count} entries written to {target}", markup=False, highlight=False)
