"""The email channel end to end on the embedded runner, on SQLite and on PostgreSQL (`stack`):
the introductory email first, the two-day rule inside windows, hard and soft bounces,
complaints, opt-outs, duplicate SES events, one-click unsubscribe over HTTP, test sends,
create-time errors and per-patient merge fields. The simulator gateway behaves as SES's
mailbox simulator (success@, bounce@, complaint@, ooto@); scripted variants below are
subclasses of it, real adapters, not mocks."""

from __future__ import annotations

import dataclasses
import email
import re
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from eventsourcing.application import AggregateNotFoundError
from starlette.testclient import TestClient

from api.http import serving_app
from application.bootstrap import Outreach, build
from application.clock import SimulatedClock
from application.ports import InMemoryPatientDirectory, PatientContact
from application.settings import Settings
from domain.channels import Channel
from domain.email import EmailEvent, EmailEventKind
from domain.errors import DomainError, InvalidContent
from domain.preferences import (
    Duration,
    OptOutType,
    PatientPreferences,
    patient_preferences_id,
)
from gateways.email import OutboundEmail, SendResult
from gateways.ses_email import build_mime
from gateways.simulator_email import SimulatedEmail, SimulatorEmailGateway
from projections.timefmt import parse_iso
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from workers.runner import EmbeddedRunner

SIM = "simulator.amazonses.com"
SUCCESS, BOUNCE, COMPLAINT, OOTO = (f"{box}@{SIM}" for box in
                                    ("success", "bounce", "complaint", "ooto"))
CHICAGO = ZoneInfo("America/Chicago")
INTRO_SUBJECT = "Health reminders by email from Total Healthcare"
INTRO_WAIT = "introductory email"
UNSUBSCRIBE_URL = re.compile(r"https?://[^/\s]+/unsubscribe/[0-9a-f]{32}\.[A-Za-z0-9_-]{22}")
ONE_CLICK = {"content": b"List-Unsubscribe=One-Click",
             "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


# -- scripted gateways: the simulator with a few addresses behaving otherwise ---------------

class RecordingGateway(SimulatorEmailGateway):
    """The simulator, keeping every event it hands out so that a test can deliver them
    again, as SNS does (at-least-once)."""

    def __init__(self, *, now: Any) -> None:
        super().__init__(now=now)
        self.history: list[EmailEvent] = []

    def script(self, events: list[EmailEvent]) -> list[EmailEvent]:
        return events

    def drain_events(self) -> list[EmailEvent]:
        events = self.script(super().drain_events())
        self.history.extend(events)
        return events


class SoftBouncingGateway(RecordingGateway):
    """A mail server that cannot take mail for `address` now: the first `times` emails to
    it soft-bounce (SES's Bounce event with bounceType Transient) instead of delivering."""

    def __init__(self, *, now: Any, address: str, times: int) -> None:
        super().__init__(now=now)
        self.address = address
        self.remaining = times
        self.bouncing: set[str] = set()  # references of the emails that will bounce

    def send(self, message: OutboundEmail) -> SendResult:
        result = super().send(message)
        if message.to == self.address and self.remaining > 0 and result.accepted:
            self.remaining -= 1
            self.bouncing.add(message.reference)
        return result

    def script(self, events: list[EmailEvent]) -> list[EmailEvent]:
        return [dataclasses.replace(e, kind=EmailEventKind.SOFT_BOUNCE,
                                    detail="Transient/MailboxFull")
                if e.kind == EmailEventKind.DELIVERY and e.reference in self.bouncing else e
                for e in events]


# -- helpers ------------------------------------------------------------------------------

def outreach(make_outreach: Any, gateway_class: type[RecordingGateway] = RecordingGateway,
             **gateway_args: Any) -> Outreach:
    clock = SimulatedClock(TUESDAY_9AM)
    o: Outreach = make_outreach(clock=clock,
                                email_gateway=gateway_class(now=clock.now, **gateway_args))
    return o


def email_campaign(o: Outreach, name: str, audience: list[str], **fields: Any) -> UUID:
    fields.setdefault("subject", "A reminder from {{ organisation }}")
    fields.setdefault("body", f"<p>Dear {{{{ first_name }}}}, your {name} reminder.</p>")
    return o.campaigns.create(name=name, channel=Channel.EMAIL, audience=audience,
                              active=fields.pop("active", True), **fields)


def run_until(o: Outreach, until: datetime) -> EmbeddedRunner:
    runner = EmbeddedRunner(o)
    runner.run_simulated(until)
    return runner


def clock_of(o: Outreach) -> SimulatedClock:
    assert isinstance(o.clock, SimulatedClock)
    return o.clock


def rows(o: Outreach, cid: UUID) -> dict[str, Any]:
    return {r.patient_id: r for r in o.campaigns.report(cid)}


def sent(o: Outreach) -> list[SimulatedEmail]:
    gateway = o.email_gateway
    assert isinstance(gateway, SimulatorEmailGateway)
    return gateway.sent


def sent_to(o: Outreach, address: str) -> list[SimulatedEmail]:
    return [m for m in sent(o) if m.message.to == address]


def in_email_window(at: datetime) -> bool:
    """09:00–22:45 local, Monday–Saturday (the default email window)."""
    local = at.astimezone(CHICAGO)
    return local.weekday() <= 5 and time(9) <= local.time() < time(22, 45)


def assert_all_inside_windows(o: Outreach, emails: Iterable[SimulatedEmail]) -> None:
    for m in emails:
        assert in_email_window(m.at), f"sent at {m.at.astimezone(CHICAGO)}"
        assert o.settings.calendar.is_open(Channel.EMAIL, m.at)  # and never on a holiday


def email_opt_outs(o: Outreach, patient_id: str) -> dict[str, str | None]:
    try:
        prefs: PatientPreferences = o.store.repository.get(patient_preferences_id(patient_id))
    except AggregateNotFoundError:
        return {}
    return prefs.active_on(o.settings.calendar.today(o.clock.now()))


def head(o: Outreach) -> int | None:
    return o.store.recorder.max_notification_id()


def introduced(o: Outreach, tmp_path: Path, patients: list[tuple[str, str]]) -> None:
    """Given these patients, introduced on Tuesday by a first campaign; now is Friday
    (Thursday is Thanksgiving) 12:00, more than two days later."""
    import_patients(o, tmp_path, [patient_row(pid, None, email=address)
                                  for pid, address in patients])
    email_campaign(o, "Intro round", [pid for pid, _ in patients])
    run_until(o, TUESDAY_9AM + timedelta(hours=1))
    clock_of(o).advance_to(TUESDAY_9AM + timedelta(days=3, hours=3))


# -- 1. the introductory email first ----------------------------------------------------------

def test_a_patient_never_introduced_gets_the_introductory_email_instead_of_the_campaign_one(
        make_outreach, tmp_path):
    o = outreach(make_outreach)
    import_patients(o, tmp_path, [patient_row("E1", None, email=SUCCESS)])
    cid = email_campaign(o, "Mammogram", ["E1"])
    run_until(o, TUESDAY_9AM + timedelta(days=1))
    row = rows(o, cid)["E1"]
    assert (row.status, row.attempts) == ("Introductory email needed", 1)
    [only] = sent(o)
    m = only.message
    assert m.to == SUCCESS and m.subject == INTRO_SUBJECT
    assert "Mammogram" not in m.html and "Mammogram" not in m.text
    # The opt-out link: in the HTML, in the text alternative, and as List-Unsubscribe
    assert UNSUBSCRIBE_URL.fullmatch(m.unsubscribe_url)
    assert m.unsubscribe_url.startswith("http://127.0.0.1:8000/unsubscribe/")
    assert f'href="{m.unsubscribe_url}"' in m.html
    assert m.unsubscribe_url in m.text
    wire = email.message_from_bytes(build_mime(m))
    assert wire["List-Unsubscribe"] == f"<{m.unsubscribe_url}>"
    assert wire["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert_all_inside_windows(o, sent(o))
    [campaign] = o.campaigns.campaigns()
    assert campaign.status == "Completed"


# -- 2. the two-day rule, inside windows -------------------------------------------------------

def test_a_campaign_email_waits_two_days_after_the_introduction_and_goes_inside_the_window(
        make_outreach, tmp_path):
    o = outreach(make_outreach)
    import_patients(o, tmp_path, [patient_row("E1", None, email=SUCCESS)])
    email_campaign(o, "First", ["E1"])
    run_until(o, TUESDAY_9AM + timedelta(hours=2))
    [intro] = sent(o)
    assert intro.message.subject == INTRO_SUBJECT
    # One day later a second campaign: the patient waits for the introduction's two days
    clock_of(o).advance_to(intro.at + timedelta(days=1))
    second = email_campaign(o, "Second", ["E1"])
    runner = EmbeddedRunner(o)
    runner.run_simulated(intro.at + timedelta(days=1, hours=1))
    waiting = rows(o, second)["E1"]
    assert waiting.status == "Planned" and INTRO_WAIT in waiting.reason
    assert len(sent(o)) == 1
    # …deferred to the first open window two days after the introduction (Thursday is
    # Thanksgiving: Friday 09:00)
    due = parse_iso(waiting.due_at)
    assert due is not None and due >= intro.at + timedelta(days=2)
    assert o.settings.calendar.is_open(Channel.EMAIL, due)
    assert due.astimezone(CHICAGO).strftime("%a %H:%M") == "Fri 09:00"
    # It goes out later, never before two days, inside a window (Thursday is Thanksgiving)
    runner.run_simulated(intro.at + timedelta(days=6))
    assert rows(o, second)["E1"].status == "Delivered"
    [_, campaign_email] = sent(o)
    assert campaign_email.message.subject == "A reminder from Total Healthcare"
    assert campaign_email.at >= intro.at + timedelta(days=2)
    assert campaign_email.at.astimezone(CHICAGO).date().isoformat() == "2026-11-27"
    assert_all_inside_windows(o, sent(o))


def test_an_introduction_made_late_in_the_evening_lets_campaign_emails_go_at_the_next_window(
        make_outreach, tmp_path):
    # A campaign created Saturday 22:00 introduces the patient at once; the next campaign's
    # email cannot go before Monday 22:00, and Monday 22:00 is inside the window.
    saturday_10pm = datetime(2026, 11, 28, 22, 0, tzinfo=CHICAGO)
    clock = SimulatedClock(saturday_10pm)
    o: Outreach = make_outreach(clock=clock, email_gateway=RecordingGateway(now=clock.now))
    import_patients(o, tmp_path, [patient_row("E1", None, email=SUCCESS)])
    email_campaign(o, "Late", ["E1"], start=saturday_10pm.date())
    EmbeddedRunner(o).run_simulated(saturday_10pm + timedelta(minutes=10))
    [intro] = sent(o)
    clock.advance_to(saturday_10pm + timedelta(hours=12))  # Sunday: no window at all
    second = email_campaign(o, "Next", ["E1"])
    EmbeddedRunner(o).run_simulated(saturday_10pm + timedelta(days=4))
    [_, campaign_email] = sent(o)
    assert rows(o, second)["E1"].status == "Delivered"
    assert campaign_email.at >= intro.at + timedelta(days=2)
    assert campaign_email.at.astimezone(CHICAGO).strftime("%a %H") == "Mon 22"
    assert_all_inside_windows(o, sent(o))


# -- 3. hard bounce ---------------------------------------------------------------------------

def test_a_hard_bounce_blocks_the_address_until_an_import_brings_a_different_one(
        make_outreach, tmp_path):
    o = outreach(make_outreach)
    import_patients(o, tmp_path, [patient_row("E1", None, email=BOUNCE)])
    first = email_campaign(o, "First", ["E1"])
    run_until(o, TUESDAY_9AM + timedelta(days=1))
    row = rows(o, first)["E1"]
    assert row.status == "Unsuccessful" and "Email Bounced" in row.reason
    assert [m.message.subject for m in sent(o)] == [INTRO_SUBJECT]
    # A later campaign skips the patient, sends nothing
    second = email_campaign(o, "Second", ["E1"])
    run_until(o, TUESDAY_9AM + timedelta(days=2))
    row = rows(o, second)["E1"]
    assert (row.status, row.reason) == ("Skipped", "No Communication: Email Bounced")
    assert len(sent(o)) == 1
    # The same address imported again keeps the block
    import_patients(o, tmp_path, [patient_row("E1", None, email=BOUNCE)])
    third = email_campaign(o, "Third", ["E1"])
    run_until(o, TUESDAY_9AM + timedelta(days=3))
    assert rows(o, third)["E1"].reason == "No Communication: Email Bounced"
    assert len(sent(o)) == 1
    # A different address is a new chance: the introductory email goes to it
    new_address = f"success+new@{SIM}"
    import_patients(o, tmp_path, [patient_row("E1", None, email=new_address)])
    fourth = email_campaign(o, "Fourth", ["E1"])
    run_until(o, TUESDAY_9AM + timedelta(days=4))
    assert rows(o, fourth)["E1"].status == "Introductory email needed"
    [again] = sent_to(o, new_address)
    assert again.message.subject == INTRO_SUBJECT
    assert_all_inside_windows(o, sent(o))


# -- 4. soft bounce ---------------------------------------------------------------------------

def test_soft_bounces_are_retried_inside_windows_and_the_fifth_ends_the_communication(
        make_outreach, tmp_path):
    # Tuesday 20:00: the retries run into the night, when the email window is closed
    evening = TUESDAY_9AM + timedelta(hours=11)
    clock = SimulatedClock(evening)
    o: Outreach = make_outreach(clock=clock, email_gateway=SoftBouncingGateway(
        now=clock.now, address=SUCCESS, times=5))
    import_patients(o, tmp_path, [patient_row("E1", None, email=SUCCESS)])
    cid = email_campaign(o, "Flu", ["E1"])
    runner = EmbeddedRunner(o)
    statuses = []
    for step in range(1, 6 * 24 * 2):  # look at the report every 10 minutes for two days
        runner.run_simulated(evening + timedelta(minutes=10 * step))
        row = rows(o, cid)["E1"]
        statuses.append((row.attempts, row.status))
    row = rows(o, cid)["E1"]
    assert (row.status, row.reason, row.attempts) == (
        "Unsuccessful", "Unsuccessful - Communication Retries Exceeded", 5)
    # Each failed attempt but the last waited for its retry (2, 3, …), the fifth ended it
    assert {(n, "Retry Pending") for n in range(1, 5)} <= set(statuses)
    assert [m.message.reference.rsplit(":", 1)[1] for m in sent(o)] == ["1", "2", "3", "4", "5"]
    # Some retries waited for Wednesday's window; none went outside one
    days = {m.at.astimezone(CHICAGO).date().isoformat() for m in sent(o)}
    assert days == {"2026-11-24", "2026-11-25"}
    assert_all_inside_windows(o, sent(o))


def test_a_soft_bounced_campaign_email_is_delivered_on_a_retry(make_outreach, tmp_path):
    o = outreach(make_outreach, SoftBouncingGateway, address=SUCCESS, times=0)
    introduced(o, tmp_path, [("E1", SUCCESS)])
    gateway = o.email_gateway
    assert isinstance(gateway, SoftBouncingGateway)
    gateway.remaining = 2  # the mail server is full for the next two emails
    cid = email_campaign(o, "Flu", ["E1"])
    run_until(o, o.clock.now() + timedelta(days=1))
    row = rows(o, cid)["E1"]
    assert (row.status, row.attempts, row.last_outcome) == ("Delivered", 3, "delivered")
    subjects = [m.message.subject for m in sent_to(o, SUCCESS)]
    # A soft bounce of a campaign email does not undo the introduction
    assert subjects == [INTRO_SUBJECT] + ["A reminder from Total Healthcare"] * 3
    assert_all_inside_windows(o, sent(o))


# -- 5. complaint, 6. out-of-office -----------------------------------------------------------

def test_a_complaint_opts_the_patient_out_of_health_reminder_emails(make_outreach, tmp_path):
    o = outreach(make_outreach)
    import_patients(o, tmp_path, [patient_row("E1", None, email=COMPLAINT)])
    assert email_opt_outs(o, "E1") == {}
    email_campaign(o, "First", ["E1"])
    run_until(o, TUESDAY_9AM + timedelta(days=1))
    assert email_opt_outs(o, "E1") == {"Health Reminders - Email": None}
    second = email_campaign(o, "Second", ["E1"])
    run_until(o, TUESDAY_9AM + timedelta(days=5))
    row = rows(o, second)["E1"]
    assert (row.status, row.reason) == ("Skipped", "opted out")
    assert len(sent(o)) == 1


def test_an_out_of_office_reply_is_a_delivery_not_a_bounce(make_outreach, tmp_path):
    o = outreach(make_outreach)
    introduced(o, tmp_path, [("E1", OOTO)])
    cid = email_campaign(o, "Flu", ["E1"])
    run_until(o, o.clock.now() + timedelta(days=1))
    row = rows(o, cid)["E1"]
    assert (row.status, row.attempts, row.last_outcome) == ("Delivered", 1, "delivered")
    assert len(sent_to(o, OOTO)) == 2
    assert email_opt_outs(o, "E1") == {}


# -- 7. what blocks an email ------------------------------------------------------------------

def test_email_opt_outs_and_unusable_addresses_skip_the_patient_with_their_reason(
        make_outreach, tmp_path):
    o = outreach(make_outreach)
    import_patients(o, tmp_path, [
        patient_row("G", None, email=f"success+g@{SIM}"),
        patient_row("HE", None, email=f"success+he@{SIM}"),
        patient_row("AE", None, email=f"success+ae@{SIM}"),
        patient_row("PD", None, email=f"success+pd@{SIM}"),
        patient_row("HT", None, email=f"success+ht@{SIM}"),
        patient_row("PF", None, email=f"success+pf@{SIM}"),
        patient_row("NONE", None, email=""),
    ])
    now = o.clock.now()
    today = o.settings.calendar.today(now)
    for pid, kind, protocol in [
            ("G", OptOutType.GLOBAL, ""), ("HE", OptOutType.HEALTH_EMAIL, ""),
            ("AE", OptOutType.APPT_EMAIL, ""), ("PD", OptOutType.PROTOCOL, "Diabetes"),
            ("HT", OptOutType.HEALTH_TEXT, ""), ("PF", OptOutType.PROTOCOL, "Flu")]:
        prefs = PatientPreferences(patient_id=pid)
        prefs.opt_out(kind, Duration(), today, now, "asked", protocol=protocol)
        o.store.save(prefs)
    cid = email_campaign(o, "Diabetes care", ["G", "HE", "AE", "PD", "HT", "PF", "NONE"],
                         protocol="Diabetes")
    run_until(o, TUESDAY_9AM + timedelta(days=1))
    got = {pid: (r.status, r.reason) for pid, r in rows(o, cid).items()}
    assert got == {
        "G": ("Skipped", "opted out"), "HE": ("Skipped", "opted out"),
        "AE": ("Skipped", "opted out"), "PD": ("Skipped", "opted out"),
        # A text opt-out and another protocol's do not stop this campaign's email
        "HT": ("Introductory email needed", "Introductory email needed"),
        "PF": ("Introductory email needed", "Introductory email needed"),
        "NONE": ("Skipped", "no email address"),
    }
    assert sorted(m.message.to for m in sent(o)) == [f"success+ht@{SIM}", f"success+pf@{SIM}"]


def test_an_address_of_invalid_format_is_skipped_with_that_reason(stack, tmp_path):
    # The import refuses such an address, so it reaches sending only from a directory that
    # did not check it (here the in-memory one): the dispatcher checks again.
    clock = SimulatedClock(TUESDAY_9AM)
    directory = InMemoryPatientDirectory([
        PatientContact("BAD", "Ann", "Lee", "Active", None, None, "not-an-email"),
        PatientContact("OK", "Bo", "Lee", "Active", None, None, SUCCESS)])
    o = build(Settings(database_url=stack), clock=clock, directory=directory,
              email_gateway=RecordingGateway(now=clock.now))
    try:
        cid = email_campaign(o, "Flu", ["BAD", "OK"])
        run_until(o, TUESDAY_9AM + timedelta(days=1))
        got = {pid: (r.status, r.reason) for pid, r in rows(o, cid).items()}
        assert got == {"BAD": ("Skipped", "invalid email address"),
                       "OK": ("Introductory email needed", "Introductory email needed")}
        assert [m.message.to for m in sent(o)] == [SUCCESS]
    finally:
        o.close()


# -- 8. duplicate SES events ------------------------------------------------------------------

def test_every_ses_event_delivered_again_changes_nothing(make_outreach, tmp_path):
    o = outreach(make_outreach)
    import_patients(o, tmp_path, [patient_row("S", None, email=SUCCESS),
                                  patient_row("B", None, email=BOUNCE),
                                  patient_row("C", None, email=COMPLAINT),
                                  patient_row("O", None, email=OOTO)])
    email_campaign(o, "First", ["S", "B", "C", "O"])
    run_until(o, TUESDAY_9AM + timedelta(days=1))
    clock_of(o).advance_to(TUESDAY_9AM + timedelta(days=3, hours=3))
    email_campaign(o, "Second", ["S", "B", "C", "O"])
    run_until(o, TUESDAY_9AM + timedelta(days=4))
    gateway = o.email_gateway
    assert isinstance(gateway, RecordingGateway)
    kinds = {e.kind for e in gateway.history}
    assert {EmailEventKind.SEND, EmailEventKind.DELIVERY, EmailEventKind.HARD_BOUNCE,
            EmailEventKind.COMPLAINT} <= kinds
    before = head(o)
    for event in gateway.history:
        o.email.on_email_event(event)
        o.email.on_email_event(event)
    assert head(o) == before


def test_a_late_duplicate_of_an_old_bounce_does_not_block_the_patients_new_address(
        make_outreach, tmp_path):
    o = outreach(make_outreach)
    import_patients(o, tmp_path, [patient_row("E1", None, email=BOUNCE)])
    email_campaign(o, "First", ["E1"])
    run_until(o, TUESDAY_9AM + timedelta(days=1))
    gateway = o.email_gateway
    assert isinstance(gateway, RecordingGateway)
    [bounce] = [e for e in gateway.history if e.kind == EmailEventKind.HARD_BOUNCE]
    # The patient's address changes; then SNS delivers the old bounce once more
    new_address = f"success+new@{SIM}"
    import_patients(o, tmp_path, [patient_row("E1", None, email=new_address)])
    before = head(o)
    o.email.on_email_event(bounce)
    assert head(o) == before
    second = email_campaign(o, "Second", ["E1"])
    run_until(o, TUESDAY_9AM + timedelta(days=2))
    assert rows(o, second)["E1"].status == "Introductory email needed"
    assert len(sent_to(o, new_address)) == 1


# -- 9. one-click unsubscribe over HTTP ---------------------------------------------------------

def forged(token_url: str) -> str:
    """The same link with one character of the signature changed."""
    last = token_url[-1]
    return token_url[:-1] + ("A" if last != "A" else "B")


def test_the_unsubscribe_link_opts_out_on_post_only_once_and_refuses_forgeries(
        make_outreach, tmp_path):
    o = outreach(make_outreach)
    import_patients(o, tmp_path, [patient_row("E1", None, email=SUCCESS)])
    email_campaign(o, "First", ["E1"])
    run_until(o, TUESDAY_9AM + timedelta(hours=1))
    [intro] = sent(o)
    path = "/unsubscribe/" + intro.message.unsubscribe_url.rsplit("/unsubscribe/", 1)[1]
    with TestClient(serving_app(o, insecure_dev_no_signatures=True)) as http:
        # GET: a page with a form, nothing changes (mail scanners follow links)
        before = head(o)
        page = http.get(path)
        assert page.status_code == 200
        assert '<form method="post"' in page.text and "Total Healthcare" in page.text
        assert head(o) == before and email_opt_outs(o, "E1") == {}
        # A forged token: 404, nothing changes
        for method in (http.get, http.post):
            refused = method(forged(path), **({} if method == http.get else ONE_CLICK))
            assert refused.status_code == 404
        assert head(o) == before and email_opt_outs(o, "E1") == {}
        # POST (RFC 8058 one-click): opted out at once
        done = http.post(path, **ONE_CLICK)
        assert done.status_code == 200 and "unsubscribed" in done.text
        assert email_opt_outs(o, "E1") == {"Health Reminders - Email": None}
        # Again: 200, nothing new stored
        after = head(o)
        again = http.post(path, **ONE_CLICK)
        assert again.status_code == 200
        assert head(o) == after
    # Nothing about the patient on the pages
    assert SUCCESS not in page.text + done.text and "Lee" not in page.text + done.text


def test_a_test_emails_unsubscribe_link_opts_nobody_out(make_outreach, tmp_path):
    o = outreach(make_outreach)
    import_patients(o, tmp_path, [patient_row("E1", None, email=SUCCESS)])
    cid = email_campaign(o, "Draft", ["E1"], active=False)
    o.campaigns.test_send(cid, "staff@clinic.example")
    [test_email] = sent(o)
    path = "/unsubscribe/" + test_email.message.unsubscribe_url.rsplit("/unsubscribe/", 1)[1]
    before = head(o)
    with TestClient(serving_app(o, insecure_dev_no_signatures=True)) as http:
        answer = http.post(path, **ONE_CLICK)
    assert answer.status_code == 200 and "test" in answer.text.lower()
    assert head(o) == before
    assert email_opt_outs(o, "E1") == {}


# -- 10. test sends ---------------------------------------------------------------------------

def test_a_test_send_sends_one_marked_email_and_never_changes_the_status(
        make_outreach, tmp_path):
    o = outreach(make_outreach)
    import_patients(o, tmp_path, [patient_row("E1", None, email=SUCCESS)])
    inactive = email_campaign(o, "Inactive one", ["E1"], active=False,
                              start=(TUESDAY_9AM + timedelta(days=7)).date())
    active = email_campaign(o, "Active one", ["E1"],
                            start=(TUESDAY_9AM + timedelta(days=7)).date())
    assert o.campaigns.get(active).status == "Pending"
    o.campaigns.test_send(inactive, "staff@clinic.example")
    o.campaigns.test_send(active, "staff@clinic.example")
    assert o.campaigns.get(inactive).status == "Inactive"
    assert o.campaigns.get(active).status == "Pending"
    first, second = sent(o)
    assert first.message.to == second.message.to == "staff@clinic.example"
    assert first.message.subject == "[TEST] A reminder from Total Healthcare"
    assert "Inactive one reminder" in first.message.html
    assert UNSUBSCRIBE_URL.fullmatch(first.message.unsubscribe_url)


def test_a_test_send_of_an_unsaved_campaign_saves_it_inactive(make_outreach, tmp_path):
    o = outreach(make_outreach)
    saved = o.campaigns.test_send(
        None, "staff@clinic.example", name="Draft", channel=Channel.EMAIL,
        subject="Hello {{ first_name }}", body="<p>Draft body</p>", audience=[])
    [row] = o.campaigns.campaigns()
    assert UUID(saved) == UUID(row.campaign_id)
    assert (row.name, row.channel, row.status) == ("Draft", "email", "Inactive")
    [only] = sent(o)
    assert only.message.subject.startswith("[TEST] Hello ")


def test_a_test_send_to_an_invalid_address_is_refused_and_sends_nothing(
        make_outreach, tmp_path):
    o = outreach(make_outreach)
    cid = email_campaign(o, "Draft", [], active=False)
    with pytest.raises(DomainError) as refused:
        o.campaigns.test_send(cid, "not-an-email")
    assert "\n" not in str(refused.value) and "valid email address" in str(refused.value)
    assert sent(o) == []
    assert o.campaigns.get(cid).status == "Inactive"


# -- 11. create-time errors -------------------------------------------------------------------

@pytest.mark.parametrize("fields, words", [
    ({"body": "<p>Your size: {{ shoe_size }}</p>"}, "shoe_size"),
    ({"template": "Mammogram reminder", "subject": None,
      "body": "<p>Come in for a mammogram, or not.</p>"}, "cannot be edited"),
    ({"from_address": "no-reply@@clinic"}, "from address"),
    ({"subject": ""}, "subject is required"),
])
def test_bad_email_content_is_refused_at_create_time_in_one_line_and_nothing_is_saved(
        make_outreach, tmp_path, fields, words):
    o = outreach(make_outreach)
    before = head(o)
    given = {"subject": "A reminder", "body": "<p>Hello {{ first_name }}</p>", **fields}
    with pytest.raises(InvalidContent) as refused:
        o.campaigns.create(name="Bad", channel=Channel.EMAIL, audience=[], active=True,
                           **given)
    message = str(refused.value)
    assert words in message and "\n" not in message
    assert head(o) == before
    assert o.campaigns.campaigns() == []


# -- 12. merge fields ---------------------------------------------------------------------------

def test_merge_fields_are_rendered_per_patient_and_html_in_a_name_is_escaped(
        make_outreach, tmp_path):
    o = outreach(make_outreach)
    import_patients(o, tmp_path, [
        patient_row("E1", None, first="Ann", email=f"success+ann@{SIM}"),
        patient_row("E2", None, first="<b>Bo</b>", email=f"success+bo@{SIM}")])
    email_campaign(o, "Intro", ["E1", "E2"])
    run_until(o, TUESDAY_9AM + timedelta(hours=1))
    clock_of(o).advance_to(TUESDAY_9AM + timedelta(days=3, hours=3))
    cid = email_campaign(o, "Flu", ["E1", "E2"], subject="{{ first_name }}, a flu reminder",
                         body="<p>Dear {{ first_name }}, flu shots are here.</p>")
    run_until(o, o.clock.now() + timedelta(days=1))
    assert {r.status for r in o.campaigns.report(cid)} == {"Delivered"}
    [ann] = [m.message for m in sent_to(o, f"success+ann@{SIM}")
             if m.message.subject != INTRO_SUBJECT]
    [bo] = [m.message for m in sent_to(o, f"success+bo@{SIM}")
            if m.message.subject != INTRO_SUBJECT]
    assert ann.subject == "Ann, a flu reminder"
    assert "Dear Ann, flu shots" in ann.html and "Dear Ann, flu shots" in ann.text
    assert "<b>Bo</b>" not in bo.html and "Dear &lt;b&gt;Bo&lt;/b&gt;, flu shots" in bo.html
    assert "Dear <b>Bo</b>, flu shots" in bo.text  # the text alternative shows it as typed
    assert bo.subject == "<b>Bo</b>, a flu reminder"  # a subject is plain text, not HTML
    # Links carry random unsubscribe tokens, which may spell any name: compare what is shown.
    def shown(html: str) -> str:
        return re.sub(r'(href|src)="[^"]*"', "", html)
    assert "Ann" not in shown(bo.html) and "Bo" not in shown(ann.html)
