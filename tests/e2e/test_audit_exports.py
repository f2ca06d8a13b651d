"""Analysts' audit tools, used as an analyst would: `outreach events` streams the whole
history (filtered, JSON lines or CSV), `outreach campaign attempts` lists every attempt, and
the DuckDB queries in docs/events.md answer their questions from a real export."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from application.bootstrap import Outreach, build
from application.clock import SimulatedClock
from application.csv_safe import TRIGGERS
from application.event_export import EventExport, EventFilter
from application.settings import Settings
from bus.public_events import RULES, Public
from domain.inbound import InboundText
from domain.preferences import Duration, OptOutType, PatientPreferences
from gateways.simulator_sms import SimulatorSmsGateway
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from workers.runner import EmbeddedRunner

ROOT = Path(__file__).resolve().parents[2]
BODY = "Flu shots are here. Call (555) 010-0100 to book."
CHICAGO = ZoneInfo("America/Chicago")
STOP_PATIENT, STAFF_OPT_OUT_PATIENT, INVALID_PATIENT = "P0009", "P0010", "P0011"


def mobile(i: int) -> str:
    return f"+1312555{i:04d}"


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from api.cli import main; main()", *args],
                          env=env, capture_output=True, text=True, timeout=180, cwd=ROOT)


def cli_env(url: str) -> dict[str, str]:
    return {**os.environ, "OUTREACH_DATABASE_URL": url, "OUTREACH_LOG_LEVEL": "WARNING"}


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@dataclass
class ClinicRun:
    """A real run: 12 patients texted by the simulator failing half its sends transiently,
    one STOP, one staff opt-out, one invalid number; a second, smaller campaign."""

    env: dict[str, str]
    flu: UUID
    other: UUID
    sends: list[Any]  # what the simulated provider accepted
    stop_at: datetime
    staff_opt_out_at: datetime
    report: dict[str, Any]


def _run_clinic(url: str, folder: Path) -> ClinicRun:
    clock = SimulatedClock(TUESDAY_9AM)
    gateway = SimulatorSmsGateway(now=clock.now, failure_rate=0.5)
    o = build(Settings(database_url=url), clock=clock, gateway=gateway)
    try:
        rows = [patient_row(f"P{i:04d}", mobile(i)) for i in range(11)]
        rows.append(patient_row(INVALID_PATIENT, "+15005550001"))  # Twilio's invalid number
        import_patients(o, folder, rows)
        staff = PatientPreferences(patient_id=STAFF_OPT_OUT_PATIENT)
        staff_at = o.clock.now()
        staff.opt_out(OptOutType.HEALTH_TEXT, Duration(), o.settings.calendar.today(staff_at),
                      staff_at, "asked at the desk")
        o.store.save(staff)
        clock.advance_to(TUESDAY_9AM + timedelta(minutes=20))
        stop_at = clock.now()
        o.inbound.on_text(InboundText("SMstop", mobile(9), "+15005550006", "STOP", stop_at))
        flu = o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
        other = o.campaigns.create(name="Other", body=BODY, help_number="555-0100",
                                   audience=["P0000", "P0003"], active=True)
        EmbeddedRunner(o).run_simulated(TUESDAY_9AM + timedelta(days=4))
        report = {r.patient_id: r for r in o.campaigns.report(flu)}
        return ClinicRun(cli_env(url), flu, other, gateway.sent, stop_at, staff_at,
                         report)
    finally:
        o.close()


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> ClinicRun:
    folder = tmp_path_factory.mktemp("clinic")
    return _run_clinic(f"sqlite:///{folder}/outreach.db", folder)


def stored_notifications(o: Outreach) -> Iterator[Any]:
    position = 0
    while True:
        page = o.store.recorder.select_notifications(position, 500, inclusive_of_start=False)
        yield from page
        if not page:
            return
        position = page[-1].id


# -- outreach events ------------------------------------------------------------------------
def test_events_exports_more_than_a_thousand_events_whole_by_default(tmp_path):
    # Given a history of well over 1,000 events (a 1,100-patient campaign's plan)
    url = f"sqlite:///{tmp_path}/outreach.db"
    o = build(Settings(database_url=url), clock=SimulatedClock(TUESDAY_9AM))
    import_patients(o, tmp_path, [patient_row(f"P{i:04d}", mobile(i)) for i in range(1100)])
    o.campaigns.create(name="Big", body=BODY, help_number="555-0100", active=True)
    stored = list(stored_notifications(o))
    public_topics = {t for t, rule in RULES.items() if isinstance(rule, Public)}
    published = [n for n in stored if n.topic in public_topics]
    o.close()
    assert len(published) > 1100
    # When the history is exported with no options
    public = cli(cli_env(url), "events")
    internal = cli(cli_env(url), "events", "--internal")
    # Then every event is there, in order, nothing said on stderr
    assert public.returncode == 0 and public.stderr == "", public.stderr
    assert [r["position"] for r in jsonl(public.stdout)] == [n.id for n in published]
    assert internal.returncode == 0, internal.stderr
    assert [r["position"] for r in jsonl(internal.stdout)] == [n.id for n in stored]


def test_a_limit_says_where_the_next_page_starts_and_the_pages_add_up(clinic):
    whole = jsonl(cli(clinic.env, "events").stdout)
    # When the export is limited to 25 events
    first = cli(clinic.env, "events", "--limit", "25")
    assert first.returncode == 0, first.stderr
    page = jsonl(first.stdout)
    assert len(page) == 25
    # Then stderr says so in one line, with the --after that continues
    [note] = first.stderr.strip().splitlines()
    after = page[-1]["position"]
    assert note == f"note: stopped after 25 events (--limit); the next page: --after {after}"
    rest = jsonl(cli(clinic.env, "events", "--after", str(after)).stdout)
    assert page + rest == whole


def test_type_filters_take_exact_types_and_patterns(clinic):
    accepted = jsonl(cli(clinic.env, "events", "--type", "Communication.Accepted").stdout)
    assert len(accepted) == len(clinic.sends)
    assert {r["data"]["provider_ref"] for r in accepted} == {m.sid for m in clinic.sends}
    both = jsonl(cli(clinic.env, "events", "--type", "Campaign.*", "--type",
                     "PhoneOptOut.TextsStopped").stdout)
    kinds = Counter(r["event_type"] for r in both)
    assert kinds["Campaign.Created"] == 2 and kinds["PhoneOptOut.TextsStopped"] == 1
    assert set(kinds) <= {"Campaign.Created", "Campaign.Activated", "Campaign.Completed",
                          "PhoneOptOut.TextsStopped"}


def test_campaign_and_patient_filters_follow_communications_to_their_owner(clinic):
    everything = jsonl(cli(clinic.env, "events", "--internal").stdout)
    planned = {r["aggregate_id"]: r["data"] for r in everything
               if r["event_type"] == "Communication.Planned"}

    def owner(record: dict[str, Any], key: str) -> str | None:
        found = planned.get(record["aggregate_id"])
        return found[key] if found else record["data"].get(key)

    # A campaign: its own events and its communications', whole (--internal) or public
    for view in ((), ("--internal",)):
        flu = jsonl(cli(clinic.env, "events", "--campaign", str(clinic.flu)[:8], *view).stdout)
        expected = [r["position"] for r in everything
                    if r["aggregate_id"] == str(clinic.flu)
                    or (r["event_type"].startswith("Communication.")
                        and owner(r, "campaign_id") == str(clinic.flu))]
        if not view:  # the public view leaves nothing of a campaign out
            assert all(r["data"]["campaign_id"] == str(clinic.flu) for r in flu
                       if r["event_type"].startswith("Communication."))
        assert [r["position"] for r in flu] == expected
        assert any(r["event_type"] == "Communication.AttemptFailed" for r in flu)
    # A patient: their opt-outs and their communications in both campaigns
    patient = jsonl(cli(clinic.env, "events", "--patient", STAFF_OPT_OUT_PATIENT).stdout)
    assert {r["event_type"] for r in patient} >= {"PatientPreferences.OptedOut",
                                                 "Communication.Planned",
                                                 "Communication.Skipped"}
    assert all(owner(r, "patient_id") == STAFF_OPT_OUT_PATIENT for r in patient)
    # An aggregate: one communication's life
    one = next(r["aggregate_id"] for r in patient if r["event_type"] == "Communication.Planned")
    life = jsonl(cli(clinic.env, "events", "--aggregate", one).stdout)
    assert {r["aggregate_id"] for r in life} == {one}
    assert [r["aggregate_version"] for r in life] == list(range(1, len(life) + 1))


def test_since_and_until_select_by_domain_time(clinic):
    # The STOP came at 09:20 Central; the texts from 11:00 on
    before_window = jsonl(cli(clinic.env, "events", "--since", "2026-11-24T09:10-06:00",
                              "--until", "2026-11-24T11:00-06:00").stdout)
    assert "PhoneOptOut.TextsStopped" in {r["event_type"] for r in before_window}
    assert all("2026-11-24T15:10" <= r["at"] < "2026-11-24T17:00" for r in before_window)
    texts = jsonl(cli(clinic.env, "events", "--type", "Communication.Accepted",
                      "--since", "2026-11-24T11:00-06:00").stdout)
    assert len(texts) == len(clinic.sends)


def test_csv_export_parses_back_and_is_formula_safe(tmp_path):
    # Given a campaign whose name and description a spreadsheet would run as formulas
    url = f"sqlite:///{tmp_path}/outreach.db"
    o = build(Settings(database_url=url), clock=SimulatedClock(TUESDAY_9AM))
    import_patients(o, tmp_path, [patient_row("P1", mobile(1))])
    o.campaigns.create(name='=HYPERLINK("http://x.example","y")', description="-2+3",
                       body=BODY, help_number="555-0100", active=True)
    o.close()
    jsonl_out = jsonl(cli(cli_env(url), "events").stdout)
    # When the history is exported as CSV
    result = cli(cli_env(url), "events", "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    # Then it has one row per event, the envelope in columns and data as JSON
    assert len(rows) == len(jsonl_out)
    for row, record in zip(rows, jsonl_out, strict=True):
        assert row["event_type"] == record["event_type"]
        assert int(row["position"]) == record["position"]
        assert json.loads(row["data"]) == record["data"]
    # And no cell starts a formula
    cells = [cell for row in csv.reader(io.StringIO(result.stdout)) for cell in row]
    assert all(cell[:1] not in TRIGGERS for cell in cells)
    created = next(json.loads(r["data"]) for r in rows if r["event_type"] == "Campaign.Created")
    assert created["name"] == '=HYPERLINK("http://x.example","y")'


@pytest.mark.parametrize("args, message", [
    (("--format", "xml"), "error: unknown format 'xml': jsonl or csv"),
    (("--json", "--format", "csv"), "error: give --json or --format csv, not both"),
    (("--since", "yesterday"),
     "error: 'yesterday' is not an ISO date-time (e.g. 2026-11-24T09:00-06:00)"),
    (("--type", "Campaign.Launched"),
     "error: unknown event type 'Campaign.Launched' (e.g. Communication.Accepted, Campaign.*)"),
    (("--type", "PatientImport.RowsImported"),
     "error: 'PatientImport.RowsImported' is internal, not in the public view: add --internal"),
    (("--since", "2026-11-25T00:00Z", "--until", "2026-11-24T00:00Z"),
     "error: --until must be after --since"),
])
def test_bad_export_options_are_refused_in_one_line(clinic, args, message):
    refused = cli(clinic.env, "events", *args)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [message]


def test_an_unknown_campaign_is_refused_in_one_line(clinic):
    for command in (("events", "--campaign"), ("campaign", "attempts")):
        refused = cli(clinic.env, *command, "ffffffff-0000-4000-8000-000000000000")
        assert refused.returncode == 1
        assert refused.stderr.strip().splitlines() == [
            "error: no campaign ffffffff-0000-4000-8000-000000000000"]


def test_a_reader_that_stops_early_gets_no_traceback(clinic):
    # `outreach events | head -1`: the pipe closes under the writer
    shell = subprocess.run(
        f"{sys.executable} -c 'from api.cli import main; main()' events --internal | head -1",
        shell=True, env=clinic.env, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert len(shell.stdout.splitlines()) == 1
    assert "Traceback" not in shell.stderr and "BrokenPipe" not in shell.stderr


@settings(max_examples=25, deadline=None)
@given(since=st.integers(0, 4 * 24 * 60), length=st.integers(1, 2 * 24 * 60))
def test_the_time_window_keeps_exactly_the_events_inside_it(clinic, since, length):
    # For any window [since, until): the filtered export is the whole one cut to it
    start = TUESDAY_9AM + timedelta(minutes=since)
    end = start + timedelta(minutes=length)
    o = build(Settings(database_url=clinic.env["OUTREACH_DATABASE_URL"]))
    try:
        def export(flt: EventFilter) -> list[dict[str, Any]]:
            out = io.BytesIO()
            EventExport(o.store, o.contact_keys, internal=False, flt=flt).write(out, "jsonl")
            return jsonl(out.getvalue().decode())

        whole = export(EventFilter())
        cut = export(EventFilter(since=start, until=end))
    finally:
        o.close()
    assert cut == [r for r in whole
                   if start <= datetime.fromisoformat(r["at"]) < end]


# -- outreach campaign attempts ---------------------------------------------------------------
def test_attempts_list_every_attempt_with_its_outcome_code_and_provider_id(clinic):
    result = cli(clinic.env, "campaign", "attempts", str(clinic.flu), "--json")
    assert result.returncode == 0, result.stderr
    attempts = json.loads(result.stdout)
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for a in attempts:
        by_patient.setdefault(a["patient_id"], []).append(a)
    # Every patient's attempts are numbered 1..n, n as the report counts them
    for patient_id, row in clinic.report.items():
        mine = by_patient.get(patient_id, [])
        assert [a["attempt"] for a in mine] == list(range(1, row.attempts + 1))
    # Opted-out patients were never attempted
    assert STOP_PATIENT not in by_patient and STAFF_OPT_OUT_PATIENT not in by_patient
    # Transient failures carry the provider's code and the next attempt's time
    failed = [a for a in attempts if a["outcome"] == "failed"]
    assert failed, "the simulator fails half the sends: some attempts failed"
    assert {a["error_code"] for a in failed} <= {"30003", "20429", "21211"}
    for a in failed:
        if a["failure_kind"] == "transient" and a["attempt"] < 5:
            assert a["next_attempt_at"] > a["started_at"]
    [invalid] = by_patient[INVALID_PATIENT]
    assert (invalid["outcome"], invalid["error_code"], invalid["failure_kind"],
            invalid["next_attempt_at"]) == ("failed", "21211", "permanent", None)
    # Each accepted attempt names the message the provider took for that patient
    flu_comms = {a["communication_id"] for a in attempts}
    flu_sends = [m for m in clinic.sends if m.reference.split(":")[0] in flu_comms]
    sid_to = {m.sid: m.to for m in flu_sends}
    accepted = [a for a in attempts if a["outcome"] == "accepted"]
    assert len(accepted) == len(flu_sends) > 0
    for a in accepted:
        assert sid_to[a["provider_ref"]] == mobile(int(a["patient_id"][1:]))
        assert a["segments"] == 1  # the provider's count: a short GSM-7 text with its footer
    # Retries happened: some patient needed more than one attempt
    assert any(len(mine) > 1 for mine in by_patient.values())


def test_attempts_as_csv_and_as_a_table(clinic):
    as_json = json.loads(cli(clinic.env, "campaign", "attempts", str(clinic.flu),
                             "--json").stdout)
    result = cli(clinic.env, "campaign", "attempts", str(clinic.flu)[:8], "--csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["Patient ID"], int(r["Attempt"]), r["Outcome"], r["Error Code"],
             r["Provider ID"]) for r in rows] == [
        (a["patient_id"], a["attempt"], a["outcome"], a["error_code"], a["provider_ref"])
        for a in as_json]
    table = cli({**clinic.env, "COLUMNS": "200"}, "campaign", "attempts", str(clinic.flu))
    assert table.returncode == 0, table.stderr
    assert "Flu: attempts" in table.stdout
    assert any(code in table.stdout for code in ("30003", "20429"))


def test_attempts_of_a_campaign_not_yet_sent_are_none(tmp_path):
    url = f"sqlite:///{tmp_path}/outreach.db"
    o = build(Settings(database_url=url), clock=SimulatedClock(TUESDAY_9AM))
    import_patients(o, tmp_path, [patient_row("P1", mobile(1))])
    cid = o.campaigns.create(name="Draft", body=BODY, help_number="555-0100")
    o.close()
    assert json.loads(cli(cli_env(url), "campaign", "attempts", str(cid), "--json")
                      .stdout) == []
    assert "Draft: no attempts yet" in cli(cli_env(url), "campaign", "attempts",
                                           str(cid)).stdout


# -- the DuckDB questions of docs/events.md ---------------------------------------------------
def docs_sql_blocks() -> list[str]:
    text = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    section = text.split("## Audit with DuckDB", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sql\n(.*?)```", section, flags=re.S)


def test_the_duckdb_questions_in_the_docs_answer_from_a_real_export(clinic, tmp_path,
                                                                     monkeypatch):
    duckdb = pytest.importorskip("duckdb")
    # Given the export an analyst makes, as the docs say: outreach events > events.jsonl
    export = cli(clinic.env, "events")
    assert export.returncode == 0, export.stderr
    (tmp_path / "events.jsonl").write_text(export.stdout, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    setup, per_hour, opt_outs, one_patient = docs_sql_blocks()
    db = duckdb.connect()
    db.execute(setup)
    # Texts per hour (clinic time): what the provider accepted, hour by hour
    per_hour_answer = dict(db.execute(per_hour).fetchall())
    assert per_hour_answer == dict(Counter(
        m.at.astimezone(CHICAGO).strftime("%Y-%m-%d %H:00") for m in clinic.sends))
    # Who opted out and when: the staff opt-out (by patient), then the STOP (by number key)
    answers = db.execute(opt_outs).fetchall()
    assert [(at, how) for at, how, _, _ in answers] == [
        (clinic.staff_opt_out_at, "staff"), (clinic.stop_at, "text STOP")]
    assert answers[0][2:] == (STAFF_OPT_OUT_PATIENT, "Health Reminders - Text")
    assert re.fullmatch(r"[0-9a-f]{64}", answers[1][2])
    # Every attempt for one patient (P0003 in the docs), as `campaign attempts` lists them
    outcome_of = {"Accepted": "accepted", "AttemptFailed": "failed",
                  "OutcomeUnknown": "unknown", "AttemptStarted": "sending"}
    trail = [(campaign, attempt, outcome_of[outcome], code or "", ref or "", segments)
             for campaign, attempt, _, outcome, code, ref, segments in db.execute(one_patient)
             .fetchall()]
    expected = []
    for campaign in (clinic.flu, clinic.other):
        listed = json.loads(cli(clinic.env, "campaign", "attempts", str(campaign),
                                "--json").stdout)
        expected += [(str(campaign), a["attempt"], a["outcome"], a["error_code"],
                      a["provider_ref"], a["segments"]) for a in listed
                     if a["patient_id"] == "P0003"]
    assert len(trail) >= 2  # P0003 is in both campaigns
    assert sorted(trail) == sorted(expected)


@pytest.mark.postgres
def test_the_export_is_whole_on_postgresql_too(pg_url, tmp_path):
    run = _run_clinic(pg_url, tmp_path)
    o = build(Settings(database_url=pg_url))
    stored = [n.id for n in stored_notifications(o)]
    o.close()
    internal = cli(run.env, "events", "--internal")
    assert internal.returncode == 0, internal.stderr
    assert [r["position"] for r in jsonl(internal.stdout)] == stored
    flu = jsonl(cli(run.env, "events", "--campaign", str(run.flu), "--type",
                    "Communication.Accepted").stdout)
    flu_sends = [m for m in run.sends if m.reference.split(":")[0] in {
        r["aggregate_id"] for r in flu}]
    assert len(flu) == len(flu_sends) == sum(
        1 for r in run.report.values() if r.status in ("Sent", "Delivered"))
