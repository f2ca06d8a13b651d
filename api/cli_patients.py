"""`outreach import …`, `outreach list`, `outreach views …`, `outreach patients …`.

Commands call the audited PatientsFacade for the signed-in user (api.cli_identity).
Exit codes: 0 done (an import with rejected rows is done: the rows are reported), 1 refused
by the rules (no such view, not the owner…), 2 unusable input (unreadable file or wrong
header, unknown field or action, nothing to search on). Refusals print one line on stderr.

`make_cli(factory)` builds the Typer apps around a factory that returns the application
(anything with `.patients`, `.staff.patients`, `.users` and `.close()`); the module-level apps use
`application.bootstrap.build`, tests pass their own factory.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.table import Table

from api.cli_identity import cli_actor
from api.console import ScriptConsole
from api.patient_card import print_summary_card
from application.csv_safe import SafeCsvWriter
from application.import_projector import ImportProjectionError
from application.patients import ListResult, PatientService, SavedView
from application.patients_import import ImportFileError, ImportSummary
from application.staff_patients import ListOptions, PatientsFacade, UnusableSearch
from domain.access import Actor, Permission
from domain.errors import DomainError
from domain.lists import FIELDS_BY_KEY, Focus, ListError
from domain.patients import ImportKind
from projections.patient_search import SearchTextError

Factory = Callable[[], Any]
PATIENT_ID = "patient_id"
MAX_PRINTED_REJECTIONS = 50


def default_factory() -> Any:
    from application.bootstrap import build

    return build(configure_logs=True)


@dataclass(frozen=True)
class SignedIn:
    """One command's access: the service (for what only the command line does, like an
    import's rejects folder), the audited facade, and the signed-in user (api.cli_identity)."""

    patients: PatientService
    facade: PatientsFacade
    actor: Actor


@dataclass
class PatientCli:
    import_app: typer.Typer
    list_command: Callable[..., None]
    views_app: typer.Typer
    patients_app: typer.Typer


# Options shared by `list`, `views save|update` and `patients audience`.
FilterOpt = Annotated[list[str] | None, typer.Option(
    "--filter", "-f", help='A filter row "field|action|value" (repeat to AND them).')]
SortOpt = Annotated[list[str] | None, typer.Option(
    "--sort", "-s", help='"field:asc" or "field:desc" (repeat for several keys).')]
ColumnsOpt = Annotated[list[str] | None, typer.Option(
    "--columns", "-c", help="Columns to show, comma-separated (repeatable).")]
FocusOpt = Annotated[str | None, typer.Option(
    "--focus", help="patient (one row per patient) or appointment (one per appointment).")]
ProviderOpt = Annotated[list[str] | None, typer.Option(
    "--provider", help="Scope: a provider id (repeatable). Default: All Subscribers.")]
GroupOpt = Annotated[list[str] | None, typer.Option(
    "--group", help="Scope: a provider group (repeatable).")]
ViewOpt = Annotated[str | None, typer.Option("--view", "-v", help="Start from a saved view.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]


def make_cli(factory: Factory = default_factory) -> PatientCli:  # noqa: C901 - one closure
    # A line is never cut, piped or not; piped tables are as wide as their cells need.
    out = ScriptConsole()
    err = ScriptConsole(stderr=True)

    def fail(message: str, code: int) -> NoReturn:
        err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code)

    @contextmanager
    def service() -> Iterator[SignedIn]:
        try:
            app = factory()
        except ValidationError as exc:
            first = exc.errors()[0]
            fail(f"configuration: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}", 2)
        try:
            yield SignedIn(app.patients, app.staff.patients, cli_actor(app))
        except (ImportFileError, ListError, SearchTextError, UnusableSearch) as exc:
            fail(str(exc), 2)
        except ImportProjectionError as exc:
            fail(f"{exc}. The rows recorded so far are kept; import the file again to add"
                 " the rest.", 1)
        except DomainError as exc:
            fail(str(exc), 1)
        finally:
            app.close()

    # -- import ------------------------------------------------------------------------------

    import_app = typer.Typer(no_args_is_help=True, help=(
        "Import a practice file (CSV: UTF-8 or Windows-1252; comma, semicolon or tab "
        "separated; detected unless given). Bad rows are reported "
        "by line and written to a rejects file; re-importing a file changes nothing."))

    def print_summary(summary: ImportSummary) -> None:
        out.print(
            f"{summary.source}: {summary.rows:,} rows — accepted {summary.accepted:,} "
            f"(new {summary.new:,}, updated {summary.updated:,}, unchanged "
            f"{summary.unchanged:,}), rejected {summary.rejected:,} "
            f"[{summary.rows_per_second:,.0f} rows/s]", markup=False, highlight=False)
        if summary.read_as:
            out.print(f"read as {summary.read_as}", markup=False, highlight=False)
        if summary.ignored_columns:
            out.print(f"ignored columns: {', '.join(summary.ignored_columns)}", markup=False)
        for rejection in summary.rejections[:MAX_PRINTED_REJECTIONS]:
            out.print(f"line {rejection.line}: {rejection.reason}", markup=False,
                      highlight=False)
        hidden = summary.rejected - min(len(summary.rejections), MAX_PRINTED_REJECTIONS)
        if hidden > 0:
            out.print(f"… and {hidden:,} more rejected rows", markup=False)
        if summary.rejects_file:
            out.print(f"rejected rows written to {summary.rejects_file}", markup=False,
                      highlight=False)

    def summary_json(summary: ImportSummary) -> dict[str, Any]:
        return {
            "kind": summary.kind, "source": summary.source, "rows": summary.rows,
            "accepted": summary.accepted, "new": summary.new, "updated": summary.updated,
            "unchanged": summary.unchanged, "rejected": summary.rejected,
            "rejections": [{"line": r.line, "reason": r.reason} for r in summary.rejections],
            "rejects_file": str(summary.rejects_file) if summary.rejects_file else None,
            "ignored_columns": list(summary.ignored_columns), "read_as": summary.read_as,
            "import_id": str(summary.import_id) if summary.import_id else None,
            "seconds": round(summary.seconds, 3),
        }

    def import_command(kind: ImportKind) -> Callable[..., None]:
        def command(
            file: Annotated[Path, typer.Argument(help="The CSV file.")],
            rejects: Annotated[Path | None, typer.Option(
                "--rejects", help="Folder for the rejects file (default: beside FILE).")] = None,
            encoding: Annotated[str, typer.Option(
                "--encoding", help="utf-8, cp1252 (Windows-1252, Excel's plain CSV) or auto: "
                "UTF-8 if the file is UTF-8, else Windows-1252.")] = "auto",
            delimiter: Annotated[str, typer.Option(
                "--delimiter", help=", ; tab or auto (from the header line).")] = "auto",
            as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]
            = False,
        ) -> None:
            with service() as signed, signed.facade.audited(
                    signed.actor, Permission.IMPORTS_RUN, "imports.run",
                    target=kind.value) as note:
                summary = signed.patients.import_file(kind, file, rejects, encoding=encoding,
                                                      delimiter=delimiter,
                                                      by=signed.actor.username)
                note.target = str(summary.import_id or kind.value)
                note.detail = (f"{kind.value}: {summary.rows} rows, {summary.accepted} "
                               f"accepted, {summary.rejected} rejected")
            if as_json:
                print(json.dumps(summary_json(summary), ensure_ascii=False))
            else:
                print_summary(summary)

        command.__doc__ = f"Import a {kind.value} file."
        return command

    for kind in ImportKind:
        import_app.command(kind.value)(import_command(kind))

    # -- list --------------------------------------------------------------------------------

    def list_command(
        view: ViewOpt = None, filters: FilterOpt = None, sort: SortOpt = None,
        columns: ColumnsOpt = None, focus: FocusOpt = None, provider: ProviderOpt = None,
        group: GroupOpt = None,
        page: Annotated[int, typer.Option(help="Page number, from 1.")] = 1,
        page_size: Annotated[int | None, typer.Option(help="Rows per page (max 1000).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    ) -> None:
        """Run a patient list: a saved view (optionally with more filters) or filters."""
        options = ListOptions(view, filters or [], sort or [], columns or [], focus,
                              provider or [], group or [], page, page_size)
        with service() as signed:
            result = signed.facade.list(signed.actor, options)
        if as_json:
            print(json.dumps({"total": result.total, "page": result.page,
                              "pages": result.pages, "focus": result.focus.value,
                              "scope": result.scope, "columns": list(result.columns),
                              "rows": result.rows}, ensure_ascii=False, default=str))
        elif as_csv:
            # The patient id comes first even when the columns leave it out: a spreadsheet
            # row must lead back to its patient (every row carries it).
            keys = result.columns if PATIENT_ID in result.columns else (
                PATIENT_ID, *result.columns)
            # Formula-safe: names, notes and care gaps are whatever the imported files said.
            writer = SafeCsvWriter(sys.stdout)
            writer.writerow([FIELDS_BY_KEY[c].label for c in keys])
            writer.writerows([[_cell(r.get(c)) for c in keys] for r in result.rows])
        else:
            print_list(result)

    def print_list(result: ListResult) -> None:
        table = Table(show_lines=False)
        for label in result.labels:
            table.add_column(label, overflow="fold")
        group: Any = object()
        for row in result.rows:
            if result.group_by and row.get(result.group_by) != group:
                group = row.get(result.group_by)
                table.add_section()
                table.add_row(f"[bold]{_cell(group)}[/bold]")
            table.add_row(*(_escape(_cell(row.get(c))) for c in result.columns))
        out.print(table)
        unit = "appointments" if result.focus == Focus.APPOINTMENT else "patients"
        out.print(f"Total: {result.total:,} {unit} ({result.scope}) — page {result.page} of "
                  f"{result.pages}", markup=False)

    # -- views -------------------------------------------------------------------------------

    views_app = typer.Typer(no_args_is_help=True, help="Saved page views.")

    def print_views(views: list[SavedView]) -> None:
        table = Table()
        for title in ("Name", "Owner", "Focus", "Filters", "Shared with", "Id"):
            table.add_column(title, overflow="fold")
        for v in views:
            table.add_row(_escape(v.name), "built-in" if v.built_in else _escape(v.owner),
                          v.query.focus.value,
                          _escape("; ".join(c.describe() for c in v.query.filters)),
                          _escape(", ".join(v.shared_with)), v.view_id)
        out.print(table)

    @views_app.command("list")
    def views_list(as_json: JsonOpt = False) -> None:
        """The views you can open: built-ins, your own, and those shared with you."""
        with service() as signed:
            views = signed.facade.views(signed.actor)
        if as_json:
            print_json([_view_json(v) for v in views])
        else:
            print_views(views)

    @views_app.command("show")
    def views_show(name: str, as_json: JsonOpt = False) -> None:
        """A view's definition (JSON either way; --json for the house rule)."""
        del as_json
        with service() as signed:
            view = signed.facade.view(signed.actor, name)
        print(json.dumps(_view_json(view), indent=2, ensure_ascii=False))

    @views_app.command("save")
    def views_save(
        name: Annotated[str, typer.Argument(help="The new view's name.")],
        view: Annotated[str | None, typer.Option(
            "--from", help="Start from this view (modify and save under a new name).")] = None,
        filters: FilterOpt = None, sort: SortOpt = None, columns: ColumnsOpt = None,
        focus: FocusOpt = None, provider: ProviderOpt = None, group: GroupOpt = None,
    ) -> None:
        """Save a list definition as a new view."""
        options = ListOptions(view, filters or [], sort or [], columns or [], focus,
                              provider or [], group or [])
        with service() as signed:
            saved = signed.facade.save_view(signed.actor, name, options)
        out.print(f"saved view {saved.name!r} ({saved.view_id})", markup=False)

    @views_app.command("update")
    def views_update(
        name: Annotated[str, typer.Argument(help="The view to change (name or id).")],
        rename: Annotated[str | None, typer.Option(help="A new name.")] = None,
        filters: FilterOpt = None, sort: SortOpt = None, columns: ColumnsOpt = None,
        provider: ProviderOpt = None, group: GroupOpt = None,
    ) -> None:
        """Change your view: given filters replace its filters; sort, columns and scope
        likewise; --rename renames it."""
        options = ListOptions(None, filters or [], sort or [], columns or [], None,
                              provider or [], group or [])
        with service() as signed:
            updated = signed.facade.update_view(signed.actor, name, options, rename)
        out.print(f"updated view {updated.name!r}", markup=False)

    @views_app.command("delete")
    def views_delete(name: str) -> None:
        """Delete your view."""
        with service() as signed:
            signed.facade.delete_view(signed.actor, name)
        out.print(f"deleted view {name!r}", markup=False)

    @views_app.command("share")
    def views_share(
        name: Annotated[str, typer.Argument(help="Your view (name or id).")],
        users: Annotated[list[str], typer.Argument(help="Users to share it with.")],
    ) -> None:
        """Share your view with other users (they can open it and copy it)."""
        with service() as signed:
            shared = signed.facade.share_view(signed.actor, name, users)
        out.print(f"view {shared.name!r} shared with {', '.join(shared.shared_with)}",
                  markup=False)

    @views_app.command("unshare")
    def views_unshare(name: str, users: list[str]) -> None:
        """Stop sharing your view with these users."""
        with service() as signed:
            shared = signed.facade.unshare_view(signed.actor, name, users)
        out.print(f"view {shared.name!r} shared with {', '.join(shared.shared_with) or 'nobody'}",
                  markup=False)

    # -- patients ----------------------------------------------------------------------------

    patients_app = typer.Typer(no_args_is_help=True, help="Find patients; check audiences.")

    @patients_app.command("search")
    def patients_search(
        text: Annotated[str, typer.Argument(help="A 10-digit phone (partial allowed) or a name.")],
        as_json: JsonOpt = False,
    ) -> None:
        """Find patients contacted in the last 90 days or with a confirmed appointment in the
        last two years (at most 100, by last, first, middle name)."""
        with service() as signed:
            result = signed.facade.search(signed.actor, text)
        if as_json:
            # One shape whatever matched: the hits, and the summary when exactly one did.
            print_json({"patients": [asdict(h) for h in result.hits], "more": result.more,
                        "summary": asdict(result.summary) if result.summary else None})
            return
        if result.summary is not None:
            print_summary_card(out, result.summary)
            return
        table = Table()
        for title in ("Patient ID", "Name", "Date of Birth", "Phone (M)", "Phone (H)",
                      "Status"):
            table.add_column(title)
        for hit in result.hits:
            table.add_row(_escape(hit.patient_id), _escape(hit.name), hit.date_of_birth or "",
                          hit.mobile or "", hit.home_phone or "", hit.status)
        out.print(table)
        more = " (more matched: search by phone number instead)" if result.more else ""
        out.print(f"{len(result.hits)} patients{more}", markup=False)

    @patients_app.command("show")
    def patients_show(patient_id: str, as_json: JsonOpt = False) -> None:
        """A patient's summary: details, appointments, care gaps, opt-outs, history."""
        with service() as signed:
            summary = signed.facade.summary(signed.actor, patient_id)
        if as_json:
            print_json(asdict(summary))
        else:
            print_summary_card(out, summary)

    @patients_app.command("audience")
    def patients_audience(
        channel: Annotated[str, typer.Option(help="text, phone, email or letter.")],
        view: ViewOpt = None, filters: FilterOpt = None, focus: FocusOpt = None,
        provider: ProviderOpt = None, group: GroupOpt = None,
        keep_inactive: Annotated[bool, typer.Option(help="Keep Inactive patients.")] = False,
        keep_reminders_only: Annotated[bool, typer.Option(
            help="Keep patients who chose appointment reminders only.")] = False,
        out_file: Annotated[Path | None, typer.Option(
            "--out", help="Write the patient ids here (for `campaign create --patients`).")]
        = None,
        ids_file: Annotated[Path | None, typer.Option(
            "--ids", help="Only these patients (one id a line), chosen from the list: ids "
                          "not on it are left out.")] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Check a whole list, or patients chosen from it, as a campaign audience (size cap,
        removals, contacts)."""
        chosen: list[str] | None = None
        if ids_file is not None:
            try:
                text = ids_file.read_text(encoding="utf-8-sig")
            except OSError as exc:
                raise typer.BadParameter(f"cannot read {ids_file}: {exc.strerror or exc}",
                                         param_hint="--ids") from None
            chosen = [line.strip() for line in text.splitlines() if line.strip()]
        options = ListOptions(view, filters or [], (), (), focus, provider or [], group or [])
        with service() as signed:
            check = signed.facade.audience(signed.actor, options, channel, chosen,
                                           keep_inactive=keep_inactive,
                                           keep_reminders_only=keep_reminders_only)
        if out_file and check.patient_ids:
            out_file.write_text("".join(f"{pid}\n" for pid in check.patient_ids),
                                encoding="utf-8")
        if as_json:
            print_json({**asdict(check), "over_cap": check.over_cap,
                        "out": str(out_file) if out_file and check.patient_ids else None})
        else:
            out.print(f"selected {check.selected:,}; audience {check.size:,} "
                      f"(cap {check.cap:,})", markup=False)
            for message in check.messages:
                out.print(message, markup=False, highlight=False)
            if out_file and check.patient_ids:
                out.print(f"{len(check.patient_ids):,} patient ids written to {out_file}",
                          markup=False)
        if check.over_cap:
            raise typer.Exit(1)

    return PatientCli(import_app, list_command, views_app, patients_app)


def print_json(data: Any) -> None:
    # Plain stdout, not the console: JSON is never wrapped, styled or highlighted.
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")


def _view_json(view: SavedView) -> dict[str, Any]:
    return {"id": view.view_id, "name": view.name, "owner": view.owner,
            "built_in": view.built_in, "shared_with": list(view.shared_with),
            "definition": view.query.definition()}


def _split(columns: list[str]) -> list[str]:
    return [c.strip() for text in columns for c in text.split(",") if c.strip()]


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _escape(text: str) -> str:
    # Rich reads [brackets] as markup; patient data must print as it is.
    return text.replace("[", r"\[")


_default = make_cli()
import_app = _default.import_app
list_command = _default.list_command
views_app = _default.views_app
patients_app = _default.patients_app

__all__ = ["PatientCli", "import_app", "list_command", "make_cli", "patients_app", "views_app"]
