"""`outreach templates list|show`: the template library staff choose from by name."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from api.cli import console, fail
from application.templates import template, templates
from domain.errors import DomainError

templates_app = typer.Typer(no_args_is_help=True,
                            help="The message templates campaigns are made from.")


@templates_app.command("list")
def list_templates(
    channel: Annotated[str | None, typer.Option(
        "--channel", help="Only this channel's templates: email, text, …")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="A JSON array for tools, with each subject and body.")] = False,
) -> None:
    """The templates: name, channel, whether staff may edit it, what it is for."""
    found = templates(channel)
    if as_json:
        sys.stdout.write(json.dumps([asdict(t) for t in found], indent=1) + "\n")
        return
    if not found:
        fail(f"no templates for the channel {channel!r}")
    table = Table(title="Templates")
    for col in ("name", "channel", "editable", "description"):
        table.add_column(col)
    for t in found:
        table.add_row(escape(t.name), t.channel, "yes" if t.editable else "no",
                      escape(t.description))
    console.print(table)


@templates_app.command("show")
def show_template(
    name: Annotated[str, typer.Argument(help="The template's name (any letter case).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """One template's subject and body, as a campaign would start from them."""
    try:
        chosen = template(name)
    except DomainError as exc:
        fail(str(exc))
        return
    if as_json:
        sys.stdout.write(json.dumps(asdict(chosen), indent=1) + "\n")
        return
    editable = "editable" if chosen.editable else "not editable"
    console.print(f"{chosen.name} ({chosen.channel}, {editable})", markup=False)
    console.print(f"Subject: {chosen.subject or '(staff write it)'}", markup=False)
    console.print(chosen.body or "(staff write it)", markup=False, highlight=False)
