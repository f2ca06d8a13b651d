"""`outreach settings`: the organisation settings at the command line, for administrators
(Administrator role, audited like the console's and the API's changes).

    outreach settings show [--json]        every changeable setting, its value and source
    outreach settings set KEY=VALUE ...    change them together (all or none); one line
                                           naming the key when a value is refused

A change reaches every running process within seconds, without a restart.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from api.cli import console, fail, outreach
from api.cli_identity import cli_actor

settings_app = typer.Typer(no_args_is_help=True,
                           help="Organisation settings: windows, caps, holidays, footer, "
                                "addresses, logos (Administrator role).")


@settings_app.command("show")
def show(as_json: Annotated[bool, typer.Option("--json", help="JSON for tools.")] = False,
         ) -> None:
    """Every setting an administrator may change: its value, and whether it is the
    environment's default or was changed (by whom, when)."""
    with outreach() as o:
        rows = o.staff.organisation.settings(cli_actor(o))
        if as_json:
            sys.stdout.write(json.dumps([
                {"key": r.key, "value": r.value, "source": r.source, "changed_by": r.by or None,
                 "changed_at": r.at.isoformat() if r.at else None} for r in rows],
                indent=1) + "\n")
            return
        table = Table(title="Organisation settings")
        for col in ("setting", "value", "source"):
            table.add_column(col)
        for r in rows:
            source = (f"changed by {r.by} {r.at:%Y-%m-%d %H:%M} UTC" if r.at
                      else "environment")
            table.add_row(r.key, escape(r.value), escape(source))
        console.print(table)


@settings_app.command("set")
def set_values(pairs: Annotated[list[str], typer.Argument(
        help="KEY=VALUE pairs, e.g. text_window=10:00-19:00 campaign_size_cap=5000")],
               ) -> None:
    """Change settings together: all are checked first, and none is saved if one is
    refused."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"{pair!r} is not KEY=VALUE", 2)
        values[key.strip()] = value
    with outreach() as o:
        changed = o.staff.organisation.change(cli_actor(o), values)
        console.print(f"changed {', '.join(changed)}" if changed else "nothing changed",
                      markup=False)
