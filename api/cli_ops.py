"""Operations commands: the demo, workers, opt-outs, the event history for audits."""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated
from uuid import UUID

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from api.cli import app, console, fail, optout_app, outreach, parse_date, worker_app
from api.cli_identity import cli_actor
from application.bootstrap import Outreach
from application.clock import SimulatedClock, SystemClock
from application.settings import Settings
from domain.access import Permission
from domain.channels import Channel
from domain.preferences import OptOutType


# -- workers -----------------------------------------------------------------------------
@worker_app.command("dispatch")
def worker_dispatch(
    group: Annotated[str, typer.Option(help="Consumer group shared by all dispatchers.")]
    = "outreach-dispatchers",
    health_port: Annotated[int | None, typer.Option(
        help="Serve /healthz and /readyz (probes) on this port.")] = None,
    health_host: Annotated[str, typer.Option(
        help="Address the probes' server binds (0.0.0.0 in a container).")] = "127.0.0.1",
) -> None:
    """Consume send-intents from Kafka (start several: they split the partitions)."""
    from workers.processes import dispatch_forever

    with outreach() as o:
        dispatch_forever(o, group, health_port=health_port, health_host=health_host)


@worker_app.command("relay")
def worker_relay(
    health_port: Annotated[int | None, typer.Option(help="Serve /healthz and /readyz.")] = None,
    health_host: Annotated[str, typer.Option(help="Address of the probes' server.")]
    = "127.0.0.1",
) -> None:
    """Publish every stored event to Kafka (at least once, keyed by aggregate id)."""
    from workers.processes import relay_forever

    with outreach() as o:
        relay_forever(o, health_port=health_port, health_host=health_host)


@worker_app.command("schedule")
def worker_schedule(
    interval: Annotated[float, typer.Option()] = 1.0,
    health_port: Annotated[int | None, typer.Option(help="Serve /healthz and /readyz.")] = None,
    health_host: Annotated[str, typer.Option(help="Address of the probes' server.")]
    = "127.0.0.1",
) -> None:
    """Projections and scheduler only (publishes send-intents to Kafka)."""
    from workers.processes import schedule_forever

    with outreach() as o:
        schedule_forever(o, interval, health_port=health_port, health_host=health_host)


# -- opt-outs ----------------------------------------------------------------------------
@optout_app.command("add")
def optout_add(
    patient_id: str,
    type_: Annotated[str, typer.Option("--type", help="Global, 'Health Reminders - Text', "
                                       "'All Text', …")],
    reason: Annotated[str, typer.Option(help="Why (from the patient).")],
    until: Annotated[str | None, typer.Option(help="Last day YYYY-MM-DD.")] = None,
    days: Annotated[int | None, typer.Option(help="Number of days.")] = None,
    comment: Annotated[str, typer.Option()] = "",
    protocol: Annotated[str, typer.Option(help="For --type Protocol: e.g. Diabetes.")] = "",
) -> None:
    """Opt a patient out (permanent unless --until or --days)."""
    try:
        kind = OptOutType(type_)
    except ValueError:
        fail(f"unknown opt-out type {type_!r}; valid: {', '.join(t.value for t in OptOutType)}")
        raise
    with outreach() as o:
        o.staff.patients.opt_out_add(cli_actor(o), patient_id, kind.value, reason,
                                     until=parse_date(until), days=days, comment=comment,
                                     protocol=protocol)
        console.print(f"patient {patient_id} opted out: {kind}")


@optout_app.command("remove")
def optout_remove(patient_id: str, types: Annotated[list[str], typer.Option("--type")]) -> None:
    """Restore communications: remove the given current opt-outs."""
    with outreach() as o:
        o.staff.patients.opt_out_remove(cli_actor(o), patient_id, types)
        console.print(f"patient {patient_id}: removed {', '.join(types)}")


# -- audits ------------------------------------------------------------------------------
@app.command("events")
def events(
    after: Annotated[int, typer.Option(help="Start after this position.")] = 0,
    limit: Annotated[int | None, typer.Option(
        help="Print at most this many events (default: all; a note on stderr says where "
             "the next page starts).")] = None,
    internal: Annotated[bool, typer.Option(
        "--internal", help="Every stored event with all its fields, PHI included (audits), "
        "instead of what the Kafka events topic carries.")] = False,
    types: Annotated[list[str] | None, typer.Option(
        "--type", help="Event type, or a pattern such as 'Campaign.*' (repeatable).")] = None,
    since: Annotated[str | None, typer.Option(
        help="Events whose domain time is at or after this ISO instant.")] = None,
    until: Annotated[str | None, typer.Option(
        help="Events whose domain time is before this ISO instant.")] = None,
    campaign: Annotated[str | None, typer.Option(
        help="The campaign's events and its communications' (id or prefix).")] = None,
    patient: Annotated[str | None, typer.Option(
        help="Events about this patient id, their communications' included.")] = None,
    aggregate: Annotated[str | None, typer.Option(
        help="Events of this aggregate id (the public id in the public view).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    as_json: Annotated[bool, typer.Option(
        "--json", help="JSON lines (the default format).")] = False,
) -> None:
    """Stream the whole event history, oldest first: by default the public view the Kafka
    events topic carries (internal events left out, numbers as keyed pseudonyms)."""
    from api.cli import err, parse_instant
    from application.event_export import FORMATS, EventExport, EventFilter, topics_for

    if after < 0 or (limit is not None and limit < 1):
        fail("--after must be 0 or more and --limit at least 1", 2)
    if fmt not in FORMATS:
        fail(f"unknown format {fmt!r}: jsonl or csv", 2)
    if as_json and fmt != "jsonl":
        fail("give --json or --format csv, not both", 2)
    try:
        topics_for(types or (), internal)
    except ValueError as exc:
        fail(str(exc), 2)
    start = parse_instant(since) if since is not None else None
    end = parse_instant(until) if until is not None else None
    if start is not None and end is not None and end <= start:
        fail("--until must be after --since", 2)
    with outreach() as o:
        if internal:
            # Every stored event holds patients' data: an administrator's export, on the
            # audit trail like any other (the public view holds none). Recorded once it is
            # written, so the export is the history as it was asked for.
            actor = cli_actor(o)
            o.staff.audit.check(actor, Permission.AUDIT_READ, "events.export_internal")
        campaign_id = _campaign_of(o, campaign) if campaign is not None else None
        export = EventExport(o.store, o.contact_keys, internal=internal, flt=EventFilter(
            types=tuple(types or ()), since=start, until=end, campaign_id=campaign_id,
            patient_id=patient, aggregate_id=aggregate))
        try:
            summary = export.write(sys.stdout.buffer, fmt, after=after, limit=limit)
            sys.stdout.flush()
        except BrokenPipeError:
            _stdout_closed()
            return
        finally:
            if internal:
                o.audit.record(actor, "events.export_internal", detail=" ".join(
                    f"--{k} {v}" for k, v in (
                        ("type", ",".join(types or ())), ("since", since), ("until", until),
                        ("campaign", campaign), ("patient", patient)) if v))
    if summary.stopped_by_limit:
        err.print(f"note: stopped after {summary.written} events (--limit); the next page: "
                  f"--after {summary.last_position}", markup=False, highlight=False,
                  soft_wrap=True)


def _campaign_of(o: Outreach, given: str) -> UUID:
    """A campaign id (or unambiguous prefix) that exists; otherwise one line, exit 1."""
    try:
        cid = UUID(given)
    except ValueError:
        o.catch_up()  # a prefix is looked up in the campaigns read model
        cid = o.campaigns.resolve(given)
    return o.campaigns.get(cid).id


def _stdout_closed() -> None:
    """The reader went away (`outreach events | head`): stop quietly, no traceback, and
    keep Python's final flush from failing on the closed pipe."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


# -- the demo ----------------------------------------------------------------------------
def demo_evening(settings: Settings, today: date) -> datetime:
    """19:00 on the next sending day that is followed by another sending day, so the demo
    campaign fills that evening's window and resumes the next morning."""
    cal = settings.calendar
    day = cal.next_sending_day(today + timedelta(days=1))
    while not cal.is_sending_day(day + timedelta(days=1)):
        day = cal.next_sending_day(day + timedelta(days=1))
    return datetime.combine(day, time(19, 0), cal.timezone)


@app.command("demo")
def demo(
    patients: Annotated[int, typer.Option(help="Synthetic patients to generate.")] = 2000,
    seed: Annotated[int, typer.Option()] = 7,
    folder: Annotated[Path, typer.Option(help="Where the demo keeps its data.")]
    = Path("var/demo"),
    emails: Annotated[int, typer.Option(help="Patients the email campaigns reach.")] = 300,
    letters: Annotated[int, typer.Option(help="Patients the letter campaign reaches.")]
    = 250,
    calls: Annotated[int, typer.Option(help="Patients the phone campaign reaches.")] = 40,
) -> None:
    """Generate patients, build lists from saved views, run a text campaign and two email
    campaigns (introductory emails first, a bounce, a complaint, an unsubscribe click) under
    the simulated clock over several sending days; then print their reports."""
    from domain.keywords import Keyword
    from domain.lists import ListQuery, parse_condition
    from workers.runner import EmbeddedRunner

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    settings = Settings(database_url=f"sqlite:///{folder}/outreach.db",
                        simulator_failure_rate=0.03, log_level="WARNING",
                        letters_dir=folder / "letters", return_addresses=DEMO_RETURN_ADDRESS)
    start = demo_evening(settings, settings.calendar.today(SystemClock().now()))
    clock = SimulatedClock(start.replace(hour=9))
    with outreach(settings=settings, clock=clock) as o:
        console.heading("1. Patient data")
        from application.synthetic import write_dataset

        files = write_dataset(folder / "data", patients, seed, o.settings.calendar.today(
            clock.now()))
        mailbox = _use_mailbox_simulator(files["patients"])
        for kind, path in files.items():
            s = o.patients.import_file(kind, path, folder / "rejects")
            console.print(f"  {kind:<13} accepted {s.accepted:>6}  rejected {s.rejected:>3}"
                          + (f"  (see {s.rejects_file})" if s.rejects_file else ""))
            for rejection in s.rejections[:2]:
                console.print(f"      line {rejection.line}: {rejection.reason}", markup=False)
        console.print("  three patients' emails are SES mailbox-simulator addresses: "
                      + ", ".join(f"{pid} {kind}@" for kind, pid in mailbox.items()))
        console.heading("2. Lists from saved views")
        query = ListQuery(filters=(
            parse_condition("Patient Status", "is equal to", "Active"),
            parse_condition("Phone (M)", "is not empty"),
        ))
        view = o.patients.save_view(o.settings.user, "Demo: active with a mobile", query)
        audience = o.patients.audience_from(o.patients.find_view(o.settings.user, view.name)
                                            .query, Channel.TEXT)
        console.print(f"  view {view.name!r}: {audience.selected} patients; removed "
                      f"{audience.removed_inactive} inactive and "
                      f"{audience.removed_appointment_reminders_only} appointment-reminders-only;"
                      f" {audience.lacking_contact} without a mobile; {audience.size} to text")
        email_view = o.patients.save_view(o.settings.user, "Demo: active with an email",
                                          ListQuery(filters=(
                                              parse_condition("Patient Status", "is equal to",
                                                              "Active"),
                                              parse_condition("Email", "is not empty"))))
        checked = o.patients.audience_from(email_view.query, Channel.EMAIL)
        mailing = [*dict.fromkeys([*mailbox.values(), *checked.patient_ids])][:emails]
        console.print(f"  view {email_view.name!r}: {checked.size} with an email; the email "
                      f"campaigns reach the first {len(mailing)}")
        console.heading("3. The campaigns")
        clock.advance_to(start)
        cid = o.campaigns.create(
            name="Flu shots 2026", description="Flu vaccine now available; book a visit",
            body="Total Healthcare: flu shots are now available. Call (555) 010-0100 to book.",
            help_number="(555) 010-0100", audience=list(audience.patient_ids), active=True)
        local_now = clock.now().astimezone(settings.calendar.timezone)
        console.print(f"  text: activated at {local_now:%A %H:%M %Z}: {audience.size} "
                      "communications planned, 1,000 per hour at most")
        first_email = o.campaigns.create(
            name="Mammogram reminders", channel=Channel.EMAIL, template="Mammogram reminder",
            description="Annual screening reminder", audience=mailing, active=True)
        console.print(f"  email: {len(mailing)} patients, template 'Mammogram reminder': "
                      "none has had the introductory email yet, so each gets it instead")
        console.heading("4. Sending (simulated clock)")
        runner = EmbeddedRunner(o)
        stop_number = next(c.mobile for c in o.directory.contacts(
            list(audience.patient_ids[-5:])).values() if c.mobile)
        end = datetime.combine(start.date() + timedelta(days=2), time(0), start.tzinfo)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=console, transient=False) as bar:
            task = bar.add_task("communications", total=audience.size + len(mailing))

            def show(p: object) -> None:
                bar.update(task, completed=getattr(p, "completed", 0), description=(
                    f"{clock.now().astimezone(settings.calendar.timezone):%a %H:%M}"))

            runner.run_simulated(start + timedelta(minutes=30), show)
            from domain.inbound import InboundText

            o.inbound.on_text(InboundText("SMdemoSTOP", stop_number, "", Keyword.STOP.value,
                                          clock.now()))
            runner.run_simulated(end.astimezone(UTC), show)
        console.heading("5. Email: an unsubscribe click, and a campaign two days later")
        clicked = _click_unsubscribe(o, set(mailbox.values()))
        console.print(f"  patient {clicked} clicked the one-click unsubscribe link of their "
                      "introductory email: opted out of Health Reminders - Email")
        later = settings.calendar.next_sending_day(start.date() + timedelta(days=3),
                                                   Channel.EMAIL)
        second_email = o.campaigns.create(
            name="Care gaps: book your visit", channel=Channel.EMAIL,
            subject="A reminder from {{ organisation }}",
            body="<p>Dear {{ first_name }},</p><p>{{ provider }} would like to see you for "
                 "a check-up. Please call <b>{{ help_number }}</b> to book.</p>",
            start=later, audience=mailing, active=True)
        console.print(f"  'Care gaps: book your visit' starts {later:%A %d %B}, at least two "
                      "days after the introductory emails")
        letter_cid = _letter_campaign(o, later, letters)
        phone_cid = _phone_campaign(o, later, calls, list(audience.patient_ids))
        # Through the next sending days too: a line that never answers is tried five times,
        # three hours apart, inside the phone window (11:00-20:00).
        finish = datetime.combine(later + timedelta(days=4), time(0), start.tzinfo)
        runner.run_simulated(finish.astimezone(UTC))
        console.heading("6. Reports")
        for row in o.campaigns.campaigns():
            console.print(f"  {row.name} ({row.channel}): {row.status}, {row.progress}")
        console.print("  [bold]Text: Flu shots 2026[/bold]")
        _print_demo_report(o, cid)
        for title, email_cid in (
                ("Email: Mammogram reminders (introductory emails first)", first_email),
                ("Email: Care gaps, two days later", second_email)):
            console.print(f"  [bold]{title}[/bold]")
            _print_outcomes(o, email_cid)
        console.print("  [bold]Phone: Flu vaccine calls (busy lines retried 3 hours later)"
                      "[/bold]")
        _print_outcomes(o, phone_cid)
        pressed = o.db.fetchone("SELECT COUNT(*) FROM patient_opt_outs WHERE reason = ?",
                                ("pressed 9 in a call",))
        console.print(f"    pressed 9 during the call: {pressed[0] if pressed else 0} opted out "
                      "of Health Reminders - Phone (for a year, never permanently)")
        console.print("  [bold]Letters: Office hours (printed on the start day)[/bold]")
        _print_outcomes(o, letter_cid)
        letter_files, where = o.letters.files(letter_cid)
        for f in letter_files:
            console.print(f"    {where / str(f['name'])}: {f['kind']}, {f['count']} letters, "
                          f"{f['pages']} pages", markup=False)
        _demo_console(o, folder)


DEMO_ADMIN = "demo-admin@example.org"


def _demo_console(o: Outreach, folder: Path) -> None:
    """The demo's data stays in its folder for the console: a demo administrator (a fresh
    random password each run, printed once) and the command that serves it."""
    import secrets

    from domain.access import ALL_SUBSCRIBERS, SETUP_ACTOR, Role

    # Random letters and digits, plus what the policy asks for (upper, lower, digit, symbol).
    password = f"Demo-{secrets.token_hex(6)}-Aq7!"
    o.staff.users.create(SETUP_ACTOR, DEMO_ADMIN, "Demo Administrator", password, list(Role),
                         [ALL_SUBSCRIBERS])
    console.heading("7. The console")
    console.print(f"  OUTREACH_DATABASE_URL=sqlite:///{folder.resolve()}/outreach.db "
                  f"OUTREACH_LETTERS_DIR={(folder / 'letters').resolve()} "
                  "outreach serve --insecure-dev-no-signatures", markup=False, soft_wrap=True)
    console.print(f"  then open http://127.0.0.1:8080/console/ and sign in as {DEMO_ADMIN} "
                  f"with the password {password}", markup=False, soft_wrap=True)


MAILBOX_SIMULATOR = ("bounce", "complaint", "ooto")
DEMO_RETURN_ADDRESS = "Main=Total Healthcare|100 Main St|Springfield, IL 62701"


def _phone_campaign(o: Outreach, start: date, size: int, mobiles: list[str]) -> UUID:
    """A recorded call to patients with a mobile. The voice simulator answers by the number's
    last digit (gateways/simulator_voice.py): 1 an answering machine (the voicemail is left),
    2 busy then answered three hours later, 3 no answer, 9 a person who presses 9 to stop
    these calls; others a person who listens."""
    contacts = o.directory.contacts(mobiles)
    by_digit: dict[str, list[str]] = {}
    for pid in mobiles:
        number = contacts[pid].mobile if pid in contacts else None
        if number:
            by_digit.setdefault(number[-1], []).append(pid)
    chosen = [ids[0] for digit, ids in sorted(by_digit.items()) if digit in "1239"]
    audience = [*dict.fromkeys([*chosen, *mobiles])][:size]
    cid = o.campaigns.create(
        name="Flu vaccine calls", channel=Channel.PHONE, template="Flu vaccine call",
        callback_number="(555) 010-0100", start=start, audience=audience, active=True)
    console.print(f"  a phone campaign of {len(audience)} patients starts {start:%A} 11:00: "
                  "a person hears the message (press 1 to repeat, 9 to stop these calls), a "
                  "machine gets a voicemail with no health information")
    return cid


def _letter_campaign(o: Outreach, start: date, size: int) -> UUID:
    """Letters to active patients (those without a usable postal address are skipped, with
    the reason), printed by the workers on the start day."""
    from domain.lists import ListQuery, parse_condition

    query = ListQuery(filters=(parse_condition("Patient Status", "is equal to", "Active"),))
    audience = list(o.patients.audience_from(query, Channel.LETTER).patient_ids)[:size]
    cid = o.campaigns.create(
        name="Office hours", channel=Channel.LETTER, start=start, audience=audience,
        body="<p>From next month our office opens at <b>8 am</b> on weekdays.</p>"
             "<ul><li>Same-day appointments: call before 10 am.</li>"
             "<li>Prescription refills: allow two working days.</li></ul>"
             "<p>Thank you for choosing Total Healthcare.</p>", active=True)
    console.print(f"  a letter campaign of {len(audience)} patients starts {start:%A}: the "
                  "workers print it that morning (200 letters a file, with address labels)")
    return cid


def _use_mailbox_simulator(patients_file: Path) -> dict[str, str]:
    """Give three active patients with an email the SES mailbox simulator's addresses (a
    hard bounce, a spam complaint, an out-of-office reply): kind → patient id."""
    import csv

    with patients_file.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    chosen: dict[str, str] = {}
    kinds = iter(MAILBOX_SIMULATOR)
    for row in rows:
        if row.get("Email") and row.get("Status") == "Active" and len(chosen) < 3:
            kind = next(kinds)
            row["Email"] = f"{kind}@simulator.amazonses.com"
            chosen[kind] = row["Patient ID"]
    with patients_file.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return chosen


def _click_unsubscribe(o: Outreach, not_these: set[str]) -> str:
    """A patient clicks the link in their introductory email (what the unsubscribe page's
    POST does, without a server)."""
    from application.email_events import UnsubscribeTokens  # noqa: F401 - same tokens
    from domain.communication import Communication

    for record in o.email_gateway.sent:  # type: ignore[attr-defined]
        token = record.message.unsubscribe_url.rsplit("/", 1)[-1]
        comm: Communication = o.store.repository.get(o.email.tokens.read(token))
        if comm.patient_id not in not_these:
            o.email.unsubscribe(token)
            return comm.patient_id
    raise RuntimeError("no introductory email was sent")


def _print_outcomes(o: Outreach, cid: UUID) -> None:
    rows = o.campaigns.report(cid)
    counts = Counter((r.status, r.reason or r.last_outcome) for r in rows)
    table = Table()
    table.add_column("status")
    table.add_column("reason / last outcome")
    table.add_column("patients", justify="right")
    for (status, reason), n in counts.most_common():
        table.add_row(status, reason, str(n))
    console.print(table)


def _print_demo_report(o: object, cid: object) -> None:
    from application.bootstrap import Outreach

    assert isinstance(o, Outreach)
    rows = o.campaigns.report(cid)  # type: ignore[arg-type]
    _print_outcomes(o, cid)  # type: ignore[arg-type]
    head = Table(title="The report's first rows (outreach campaign report ID)")
    for col in ("#", "patient", "name", "contact", "status", "attempts", "last outcome"):
        head.add_column(col)
    for r in rows[:8]:
        head.add_row(str(r.sequence), r.patient_id, r.name, r.contact, r.status,
                     str(r.attempts), r.last_outcome)
    console.print(head)
    tz = o.settings.calendar.timezone
    sent = o.db.fetchall(
        "SELECT m.sequence, MIN(l.sent_at) FROM send_ledger l JOIN communications m"
        " ON m.communication_id = l.communication_id WHERE m.campaign_id = ?"
        " GROUP BY m.sequence ORDER BY MIN(l.sent_at)", (str(cid),))
    by_day: dict[date, list[tuple[int, datetime]]] = {}
    for seq, at in sent:
        local = datetime.fromisoformat(at).astimezone(tz)
        by_day.setdefault(local.date(), []).append((int(seq) + 1, local))
    for day, items in by_day.items():
        first, last = items[0], items[-1]
        console.print(f"  {day:%A}: {len(items)} first attempts, patient #{first[0]} at "
                      f"{first[1]:%H:%M:%S} … patient #{last[0]} at {last[1]:%H:%M:%S}")
    console.print("  Full report: outreach campaign report "
                  f"{str(cid)[:8]}  (with OUTREACH_DATABASE_URL=sqlite:///var/demo/outreach.db)")
