"""`outreach audit` as an administrator types it, on both databases: a table or --json of
the entries, the retention export to a file or stdout, and one line + exit 1 for a bad
filter. The command's own read is on the trail afterwards."""

from __future__ import annotations

import csv
import io
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from api.cli_audit_trail import audit_app
from application.audit import AuditTrail
from application.bootstrap import build
from application.clock import SimulatedClock
from application.settings import Settings
from domain.access import SETUP_ACTOR, Actor, Role
from tests.fixtures_app import TUESDAY_9AM

MAYA = Actor(user_id="u-maya", username="maya", roles=frozenset({Role.CAMPAIGNS}),
             source="10.0.0.2", via="session")
MARKUP = Actor(user_id="u-odd", username="=[bold]x[/bold]", source="10.0.0.3", via="token")


@pytest.fixture
def url(stack: str) -> Iterator[str]:
    """A database with three entries on its trail."""
    o = build(Settings(database_url=stack), clock=SimulatedClock(TUESDAY_9AM))
    try:
        trail = AuditTrail(o.store, o.db, o.clock)
        trail.record(MAYA, "patients.search", patient_ids=["P1", "P2"], target="search 'lee'")
        trail.record(MAYA, "campaign.activate", target="c-1")
        trail.record(MARKUP, "patients.summary", "denied", patient_ids=["P3"], target="P3",
                     detail="outside your groups")
    finally:
        o.close()
    yield stack


def run(url: str, *args: str) -> Any:
    app = typer.Typer()
    app.add_typer(audit_app, name="audit")
    return CliRunner().invoke(app, ["audit", *args], env={
        "OUTREACH_DATABASE_URL": url, "OUTREACH_LOG_LEVEL": "WARNING", "COLUMNS": "250"})


def test_json_lists_the_entries_newest_first_and_the_read_is_recorded(url: str) -> None:
    result = run(url, "--json", "--user", "maya")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert listed["total"] == 2 and (listed["page"], listed["page_size"]) == (1, 50)
    assert [e["action"] for e in listed["items"]] == ["campaign.activate", "patients.search"]
    assert listed["items"][1]["patient_ids"] == ["P1", "P2"]

    reads = json.loads(run(url, "--json", "--action", "audit.").stdout)["items"]
    assert [(e["username"], e["outcome"], e["target"]) for e in reads] == [
        (SETUP_ACTOR.username, "allowed", "user=maya")]
    assert reads[0]["source"] == "cli"


def test_the_table_shows_what_people_typed_as_it_is(url: str) -> None:
    result = run(url, "--outcome", "denied")
    assert result.exit_code == 0, result.output
    assert "=[bold]x[/bold]" in result.stdout and "patients.summary" in result.stdout
    assert "1 entries; 1-1 shown" in result.stdout


@pytest.mark.parametrize("args", [["--since", "yesterday"], ["--until", "2026-13-01"],
                                  ["--outcome", "maybe"],
                                  ["--since", "2026-11-25", "--until", "2026-11-24"]])
def test_a_bad_filter_is_one_line_and_exit_1(url: str, args: list[str]) -> None:
    result = run(url, *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def test_export_writes_a_private_formula_safe_csv(url: str, tmp_path: Path) -> None:
    target = tmp_path / "audit.csv"
    result = run(url, "export", str(target))
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == f"3 entries written to {target}"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not (tmp_path / "audit.csv.part").exists()
    header, *rows = list(csv.reader(target.open(newline="", encoding="utf-8")))
    entries = [dict(zip(header, r, strict=True)) for r in rows]
    assert [e["Action"] for e in entries] == [  # oldest first
        "patients.search", "campaign.activate", "patients.summary"]
    assert entries[0]["Patient IDs"] == "P1;P2"
    assert entries[2]["Username"] == "'=[bold]x[/bold]"  # formula-safe


def test_export_to_stdout_takes_filters_before_or_after_the_subcommand(url: str) -> None:
    result = run(url, "--user", "maya", "export", "-", "--action", "campaign")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert [r[7] for r in rows] == ["Action", "campaign.activate"]


def test_export_as_json_lines_by_the_file_name_or_the_option(url: str,
                                                             tmp_path: Path) -> None:
    assert run(url, "export", str(tmp_path / "a.jsonl")).exit_code == 0
    lines = (tmp_path / "a.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["target"] for line in lines] == ["search 'lee'", "c-1", "P3"]
    result = run(url, "export", "-", "--format", "jsonl", "--patient", "P3")
    assert [json.loads(line)["action"] for line in result.stdout.splitlines()] == [
        "patients.summary"]
    refused = run(url, "export", "-", "--format", "xlsx")
    assert refused.exit_code == 2 and refused.stderr.startswith("error: --format")
