"""The console's campaigns and replies pages (issue 13, slice 1), served by the real app on
SQLite and PostgreSQL, signed in through the console's own sign-in page: the campaigns list
with live progress, Activate / Inactivate / Stop (with a confirmation step) shown only to
users who may send and refused by the server to anyone else, the report and its CSV; the
replies inbox with its unexpected flag, filters, CSV and "Mark handled", and a patient's
conversation with a follow-up text."""

from __future__ import annotations

import csv
import io
import itertools
import re
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from api.staff.app import add_staff_routes
from api.web.app import add_console
from api.web.session import Page, page_of
from application.attempts import local_time
from application.bootstrap import Outreach
from application.clock import SimulatedClock
from domain.access import ALL_SUBSCRIBERS, SETUP_ACTOR, Role
from domain.inbound import InboundText
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from tests.patient_data import PROVIDER_HEADER, write_csv
from workers.runner import EmbeddedRunner

MODULES = ("api.web.sign_in", "api.web.campaigns", "api.web.replies")
PASSWORD = "A long console Passphrase 7!"
BODY = "Flu shots are here. Call (555) 010-0100 to book."
HELP = "+15550100100"
ANN, BOB = "+13125550101", "+13125550102"
HTMX = {"HX-Request": "true"}
ADDRESS = {"Address Line 1": "100 Main St", "City": "Springfield", "State": "IL",
           "Postal Code": "62701"}
_sids = itertools.count(1)


@dataclass
class Console:
    o: Outreach
    app: FastAPI
    folder: Path
    clock: SimulatedClock

    def sign_in(self, name: str, roles: list[Role],
                groups: tuple[str, ...] = (ALL_SUBSCRIBERS,)) -> Browser:
        email = f"{name}@example.org"
        self.o.users.create(email, name, PASSWORD, roles, groups, by="setup")
        client = TestClient(self.app, raise_server_exceptions=False)
        page = client.post("/console/sign-in", data={
            "email": email, "password": PASSWORD, "next": "/console/blank"})
        assert page.status_code == 200, page.text
        found = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
        assert found, "the signed-in page carries the session's CSRF token"
        return Browser(client, found.group(1))

    def campaign(self, name: str, audience: list[str], *, active: bool = True,
                 start: Any = None) -> str:
        return str(self.o.campaigns.create(name=name, body=BODY, help_number=HELP,
                                           active=active, audience=audience, start=start))

    def send_everything(self) -> None:
        EmbeddedRunner(self.o).run_simulated(self.o.clock.now() + timedelta(days=1))

    def text_in(self, number: str, body: str) -> None:
        self.clock.advance_to(self.clock.now() + timedelta(minutes=5))
        self.o.inbound.on_text(InboundText(f"SM{next(_sids):032d}", number, "+15005550006",
                                           body, self.o.clock.now()))


@dataclass
class Browser:
    client: TestClient
    csrf: str

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, **kw)

    def post(self, path: str, data: dict[str, str] | None = None, htmx: bool = True,
             csrf: bool = True) -> Any:
        headers = {**(HTMX if htmx else {}), **({"X-CSRF-Token": self.csrf} if csrf else {})}
        return self.client.post(path, data=data or {}, headers=headers)


@pytest.fixture
def console(make_outreach: Any, tmp_path: Path) -> Console:
    clock = SimulatedClock(TUESDAY_9AM)
    o = make_outreach(clock=clock, letters_dir=tmp_path / "letters",
                      return_addresses="Main=Total Healthcare|200 Clinic Rd|Springfield")
    o.patients.import_file("providers", write_csv(tmp_path / "providers.csv", PROVIDER_HEADER, [
        ["D1", "Dr. Adams", "North Clinic", "Yes"]]), tmp_path / "rejects")
    import_patients(o, tmp_path, [
        {**patient_row("P1", ANN, first="Ann"), "PCP Provider ID": "D1", **ADDRESS},
        {**patient_row("P2", BOB, first="Bob"), "PCP Provider ID": "D1", **ADDRESS}])
    app = FastAPI()
    add_staff_routes(app, o.staff, now=o.clock.now, modules=())
    add_console(app, o.staff, modules=MODULES)

    @app.get("/console/blank")
    async def blank(page: Annotated[Page, Depends(page_of)]) -> HTMLResponse:
        """Any signed-in page (the patients area is another module's): the banner's nav."""
        return page.render("base.html")

    return Console(o, app, tmp_path, clock)


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


# -- campaigns --------------------------------------------------------------------------------
def test_the_list_shows_each_campaign_with_its_status_in_words_and_its_progress(
        console: Console) -> None:
    console.campaign("Flu", ["P1", "P2"])
    carla = console.sign_in("carla", [Role.CAMPAIGNS])
    page = carla.get("/console/campaigns")
    assert page.status_code == 200
    shown = text_of(page.text)
    assert "Flu" in shown and "Text" in shown and "2026-11-24" in shown
    assert "Active (pending)" in shown  # the status's word, beside its icon
    assert "0 completed of 2 to be contacted" in shown
    # The progress refreshes itself, as a background request (no idle slide).
    assert 'hx-get="/console/campaigns/progress"' in page.text
    assert '"X-Background": "1"' in page.text


def test_progress_polls_bring_fresh_counts_and_stop_once_every_campaign_is_final(
        console: Console) -> None:
    cid = console.campaign("Flu", ["P1", "P2"])
    console.send_everything()  # a day of sending: sign in afterwards (idle logoff)
    carla = console.sign_in("carla", [Role.CAMPAIGNS])
    poll = carla.get("/console/campaigns/progress", headers={**HTMX, "X-Background": "1"})
    # Both sent: Completed, nothing left to poll for (286 is htmx's "stop polling").
    assert poll.status_code == 286
    assert f'id="progress-{cid}"' in poll.text and 'hx-swap-oob="true"' in poll.text
    assert "2 completed of 2 to be contacted" in text_of(poll.text)
    assert "Completed" in text_of(poll.text)


def test_progress_keeps_polling_while_a_campaign_can_still_change(console: Console) -> None:
    cid = console.campaign("Flu", ["P1"], active=False)
    carla = console.sign_in("carla", [Role.CAMPAIGNS])
    poll = carla.get("/console/campaigns/progress", headers={**HTMX, "X-Background": "1"})
    assert poll.status_code == 200 and f'id="status-{cid}"' in poll.text


def test_background_polls_do_not_keep_an_idle_session_signed_in(console: Console) -> None:
    console.campaign("Flu", ["P1"])
    carla = console.sign_in("carla", [Role.CAMPAIGNS])
    idle = console.o.settings.session_idle_minutes
    for _ in range(3):  # polls for longer than the idle timeout, and nothing else
        console.clock.advance_to(console.clock.now() + timedelta(minutes=idle / 2))
        carla.get("/console/campaigns/progress", headers={**HTMX, "X-Background": "1"})
    page = carla.get("/console/campaigns", follow_redirects=False)
    assert page.status_code == 303 and "/console/sign-in" in page.headers["location"]


def test_a_sender_activates_and_stops_after_a_confirmation_step(console: Console) -> None:
    cid = console.campaign("Flu", ["P1", "P2"], active=False)
    carla = console.sign_in("carla", [Role.CAMPAIGNS])
    listed = carla.get("/console/campaigns").text
    assert "Activate" in listed and "Stop…" in listed and "Inactivate" not in listed
    row = carla.post(f"/console/campaigns/{cid}/activate")
    assert row.status_code == 200
    assert "Active (pending)" in text_of(row.text) and "Inactivate" in row.text
    assert "is active" in text_of(row.text)  # the note, out of band
    without_htmx = carla.get(f"/console/campaigns/{cid}/stop")  # a page of its own
    assert "<h1>Stop a campaign</h1>" in without_htmx.text and "Yes, stop it" in without_htmx.text
    confirm = carla.get(f"/console/campaigns/{cid}/stop", headers=HTMX)
    assert "Stop “Flu” for good?" in text_of(confirm.text)
    assert "Yes, stop it" in confirm.text and "Keep it" in confirm.text
    assert console.o.campaigns.get(console.o.campaigns.resolve(cid)).status == "Pending"
    stopped = carla.post(f"/console/campaigns/{cid}/stop")
    assert "Stopped" in text_of(stopped.text) and "Stop…" not in stopped.text
    assert console.o.campaigns.get(console.o.campaigns.resolve(cid)).status == "Stopped"


def test_a_refused_action_shows_the_rule_in_the_domains_words(console: Console) -> None:
    cid = console.campaign("Flu", ["P1"])  # active, starting today: its start day has begun
    carla = console.sign_in("carla", [Role.CAMPAIGNS])
    shown = carla.post(f"/console/campaigns/{cid}/inactivate")
    # htmx does not swap a 4xx: the refusal comes as a fragment for the message region.
    assert shown.status_code == 200 and shown.headers["HX-Retarget"] == "#campaigns-message"
    assert "only until midnight before its start day" in text_of(shown.text)
    plain = carla.post(f"/console/campaigns/{cid}/inactivate", htmx=False)
    assert plain.status_code in (400, 409, 422)
    assert "only until midnight before its start day" in text_of(plain.text)
    assert console.o.campaigns.get(console.o.campaigns.resolve(cid)).status == "Pending"


def test_a_user_without_the_campaigns_role_neither_sees_nor_can_use_campaigns(
        console: Console) -> None:
    cid = console.campaign("Flu", ["P1"], active=False)
    olive = console.sign_in("olive", [Role.OPT_OUTS])
    home = olive.get("/console/blank")
    assert 'href="/console/campaigns"' not in home.text
    assert 'href="/console/campaigns"' in console.sign_in("carla", [Role.CAMPAIGNS]).get(
        "/console/blank").text
    page = olive.get("/console/campaigns")
    assert page.status_code == 403 and "Campaigns role" in text_of(page.text)
    refused = olive.post(f"/console/campaigns/{cid}/activate", htmx=False)
    assert refused.status_code == 403
    assert console.o.campaigns.get(console.o.campaigns.resolve(cid)).status == "Inactive"


def test_a_change_without_the_sessions_csrf_token_is_refused(console: Console) -> None:
    cid = console.campaign("Flu", ["P1"], active=False)
    carla = console.sign_in("carla", [Role.CAMPAIGNS])
    refused = carla.post(f"/console/campaigns/{cid}/activate", htmx=False, csrf=False)
    assert refused.status_code == 403
    assert console.o.campaigns.get(console.o.campaigns.resolve(cid)).status == "Inactive"


def test_the_report_pages_each_patients_result_and_downloads_formula_safe(
        console: Console) -> None:
    import_patients(console.o, console.folder, [
        {**patient_row(f"Q{i:02}", f"+1312555{2000 + i}", first="Quinn"),
         "PCP Provider ID": "D1"} for i in range(55)] + [
        {**patient_row("F1", "+13125559999", last='=HYPERLINK("http://x","y")'),
         "PCP Provider ID": "D1"}])
    audience = [f"Q{i:02}" for i in range(55)] + ["F1"]
    cid = console.campaign("Big", audience)
    console.send_everything()
    carla = console.sign_in("carla", [Role.CAMPAIGNS])
    first = carla.get(f"/console/campaigns/{cid}")
    assert first.status_code == 200
    shown = text_of(first.text)
    assert "56 patients" in shown and "Page 1 of 2" in shown and "Q00" in shown
    assert "F1" not in shown  # the 56th patient is on page 2
    second = text_of(carla.get(f"/console/campaigns/{cid}?page=2").text)
    assert "F1" in second and "Q00" not in second
    assert f'href="/console/campaigns/{cid}/report.csv"' in first.text
    download = carla.get(f"/console/campaigns/{cid}/report.csv")
    assert download.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.text)))
    assert len(rows) == 57
    names = [r[2] for r in rows[1:]]
    assert not any(n.startswith("=") for n in names)


def test_a_letter_campaigns_files_are_linked_once_made_and_only_they_are_served(
        console: Console) -> None:
    campaigns = console.o.staff.campaigns
    letter = campaigns.create(SETUP_ACTOR, name="Closure", channel="letter",
                              patients=["P1", "P2"], body="<p>Closed on Friday.</p>",
                              active=True)
    carla = console.sign_in("carla", [Role.CAMPAIGNS])
    before = text_of(carla.get(f"/console/campaigns/{letter.campaign_id}").text)
    assert "No letter files yet" in before
    campaigns.letters_make(SETUP_ACTOR, letter.campaign_id)
    page = carla.get(f"/console/campaigns/{letter.campaign_id}").text
    links = re.findall(rf'href="(/console/campaigns/{letter.campaign_id}/letters/[^"]+)"', page)
    assert len(links) == 2  # the letters and their labels
    pdf = carla.get(links[0])
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    for name in ("..%2F..%2Fetc%2Fpasswd", "other.pdf"):
        refused = carla.get(f"/console/campaigns/{letter.campaign_id}/letters/{name}")
        assert refused.status_code == 404 and not refused.content.startswith(b"%PDF")


# -- replies ----------------------------------------------------------------------------------
def test_the_inbox_flags_unexpected_replies_and_filters_them(console: Console) -> None:
    console.campaign("Flu", ["P1", "P2"])
    console.send_everything()
    console.text_in(ANN, "Can I come on Tuesday instead?")
    console.text_in(BOB, "Yes")
    carla = console.sign_in("carla", [Role.CAMPAIGNS])
    inbox = carla.get("/console/replies")
    shown = text_of(inbox.text)
    assert "Can I come on Tuesday instead?" in shown and "Yes" in shown
    assert "Flu" in shown and "LeeP1, Ann" in shown
    assert shown.count("⚑ Unexpected") == 1
    only = text_of(carla.get("/console/replies?show=unexpected").text)
    assert "Can I come on Tuesday instead?" in only and "Bob" not in only
    by_words = text_of(carla.get("/console/replies?sort=response&order=asc").text)
    assert by_words.index("Can I come") < by_words.index("LeeP2, Bob")
    download = carla.get("/console/replies.csv?show=unexpected")
    assert download.headers["content-type"].startswith("text/csv")
    assert len(list(csv.reader(io.StringIO(download.text)))) == 2


def test_a_reply_is_marked_handled_from_the_inbox(console: Console) -> None:
    console.campaign("Flu", ["P1"])
    console.send_everything()
    console.text_in(ANN, "Who is this?")
    carla = console.sign_in("carla", [Role.CAMPAIGNS])
    message_id = re.search(r'id="reply-([^"]+)"', carla.get("/console/replies").text)
    assert message_id
    row = carla.post(f"/console/replies/{message_id.group(1)}/handled")
    assert row.status_code == 200
    assert "Handled by carla@example.org" in text_of(row.text)
    assert "Mark handled" not in row.text
    new_only = text_of(carla.get("/console/replies?state=new").text)
    assert "Who is this?" not in new_only
    # Without htmx the form still works: back to the inbox page it was on.
    again = carla.client.post(f"/console/replies/{message_id.group(1)}/handled",
                              data={"csrf_token": carla.csrf}, follow_redirects=False,
                              headers={"Referer": "http://testserver/console/replies?state=new"})
    assert again.status_code == 303 and again.headers["location"] == "/console/replies?state=new"


def test_a_follow_up_joins_the_conversation_in_time_order(console: Console) -> None:
    console.campaign("Flu", ["P1"])
    console.send_everything()
    console.text_in(ANN, "Can I bring my husband?")
    carla = console.sign_in("carla", [Role.CAMPAIGNS])
    thread = carla.get("/console/replies/thread/P1")
    assert thread.status_code == 200
    assert text_of(thread.text).index("Flu shots are here") < \
        text_of(thread.text).index("Can I bring my husband?")
    console.clock.advance_to(console.clock.now() + timedelta(minutes=1))
    sent = carla.post("/console/replies/thread/P1/follow-up",
                      {"body": "Yes, both of you are welcome."})
    assert sent.status_code == 200
    shown = text_of(sent.text)
    assert shown.index("Can I bring my husband?") < shown.index("Yes, both of you are welcome.")
    assert "Your text is planned" in shown
    assert 'id="follow-up" class="card"' in sent.text and 'hx-swap-oob="true"' in sent.text


def test_the_follow_up_count_is_the_senders_and_a_too_long_text_is_refused(
        console: Console) -> None:
    carla = console.sign_in("carla", [Role.CAMPAIGNS])
    short = text_of(carla.post("/console/replies/count", {"body": "See you soon"}).text)
    assert "12 characters" in short and "1 of at most 2 segments" in short
    emoji = text_of(carla.post("/console/replies/count", {"body": "See you 🙂"}).text)
    assert "UCS-2" in emoji
    long = "x" * 400
    assert "too long" in text_of(carla.post("/console/replies/count", {"body": long}).text)
    refused = carla.post("/console/replies/thread/P1/follow-up", {"body": long})
    assert refused.headers.get("HX-Retarget") == "#follow-up-message"
    assert "at most 2 are allowed" in text_of(refused.text)


def test_a_user_without_the_replies_permission_cannot_open_the_inbox_or_answer(
        console: Console) -> None:
    olive = console.sign_in("olive", [Role.OPT_OUTS])
    assert olive.get("/console/replies").status_code == 403
    assert olive.get("/console/replies/thread/P1").status_code == 403
    assert olive.post("/console/replies/thread/P1/follow-up", {"body": "hi"},
                      htmx=False).status_code == 403


def test_times_are_shown_in_the_organisations_zone(console: Console) -> None:
    console.campaign("Flu", ["P1"])
    console.send_everything()
    console.text_in(ANN, "ok?")
    carla = console.sign_in("carla", [Role.CAMPAIGNS])
    zone = ZoneInfo(console.o.settings.timezone)
    local = console.o.clock.now().astimezone(zone).strftime("%Y-%m-%d %H:%M")
    utc = console.o.clock.now().astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    page = carla.get("/console/replies").text
    assert local in page and local != utc


def test_the_report_shows_planned_times_in_the_clinics_time_zone(console: Console) -> None:
    import_patients(console.o, console.folder, [
        {**patient_row("T1", "+13125554444"), "PCP Provider ID": "D1"}])
    cid = console.campaign("Next week", ["T1"],
                           start=console.o.clock.now().date() + timedelta(days=7))
    console.o.catch_up()
    stored = console.o.db.fetchone(
        "SELECT due_at FROM communications WHERE campaign_id = ?", (cid,))
    assert stored is not None and stored[0]  # planned, with its slot
    carla = console.sign_in("carla", [Role.CAMPAIGNS])
    shown = carla.get(f"/console/campaigns/{cid}").text
    assert stored[0] not in shown  # not the stored UTC text
    assert local_time(stored[0], ZoneInfo(console.o.settings.timezone)) in shown
