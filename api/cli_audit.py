"""Audit commands on a campaign: `outreach campaign attempts ID` — the per-attempt trail a
clinic is asked for in an audit (when each attempt started, what became of it, the
provider's error code and message id, the segments billed, the next attempt planned)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from api.cli import campaign_app, console, fail, outreach
from api.cli_identity import cli_actor
from application.attempts import local_time
from application.csv_safe import SafeCsvWriter

ATTEMPTS_CSV_HEADER = ("#", "Patient ID", "Communication ID", "Attempt", "Started At",
                       "Outcome", "Outcome At", "Error Code", "Failure Kind", "Reason",
                       "Provider ID", "Segments", "Next Attempt At")


@campaign_app.command("attempts")
def campaign_attempts_command(
    campaign_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array for tools.")] = False,
    as_csv: Annotated[bool, typer.Option(
        "--csv", help="CSV for a spreadsheet: a header row, one row per attempt.")] = False,
) -> None:
    """Every attempt of every patient of the campaign, from the stored events: started at,
    outcome, error code, provider id, segments, next attempt (times UTC in --json/--csv)."""
    if as_json and as_csv:
        fail("give --json or --csv, not both", 2)
    with outreach() as o:
        rows = o.staff.campaigns.attempts(cli_actor(o), campaign_id)
        campaign = o.campaigns.get(o.campaigns.resolve(campaign_id))
        if as_json:
            sys.stdout.write(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
            return
        if as_csv:
            writer = SafeCsvWriter(sys.stdout)
            writer.writerow(ATTEMPTS_CSV_HEADER)
            writer.writerows([r.sequence, r.patient_id, r.communication_id, r.attempt,
                              r.started_at, r.outcome, r.outcome_at, r.error_code,
                              r.failure_kind, r.reason, r.provider_ref, r.segments,
                              r.next_attempt_at] for r in rows)
            return
        if not rows:
            console.print(f"{campaign.name}: no attempts yet", markup=False)
            return
        zone = o.settings.calendar.timezone
        table = Table(title=f"{campaign.name}: attempts")
        for col in ("#", "patient", "attempt", "started", "outcome", "code", "reason",
                    "provider id", "segments", "next attempt"):
            table.add_column(col)
        for r in rows:
            table.add_row(str(r.sequence), escape(r.patient_id), str(r.attempt),
                          local_time(r.started_at, zone), r.outcome, escape(r.error_code),
                          escape(r.reason), escape(r.provider_ref),
                          "" if r.segments is None else str(r.segments),
                          local_time(r.next_attempt_at, zone))
        console.print(table)
