"""The console's campaign library and editor (issue 13), served by the real app on SQLite and
PostgreSQL and signed in through the console's own sign-in page: each channel's campaign
created through the form, the live counter equal to domain.sms for any text, the start-day
note for a Sunday or a holiday, Save & Send Test (a draft saved inactive, a status never
changed), the patients fixed by the lists page's Send Campaign, a restricted user refused
another group's patient, the CSRF check, and bad input answered in one line with the form
kept."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api.staff.app import add_staff_routes
from api.web.app import add_console
from api.web.session import Page, page_of
from application.bootstrap import Outreach
from application.clock import SimulatedClock
from domain.access import ALL_SUBSCRIBERS, SETUP_ACTOR, Role
from domain.sms import compose, segment
from gateways.simulator_sms import SimulatorSmsGateway
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from tests.patient_data import PROVIDER_HEADER, write_csv

MODULES = ("api.web.sign_in", "api.web.campaign_editor", "api.web.campaigns")
PASSWORD = "A long console Passphrase 7!"
BODY = "Flu shots are here. Call (555) 010-0100 to book."
HELP = "+15550100100"
HTMX = {"HX-Request": "true"}
ADDRESS = {"Address Line 1": "100 Main St", "City": "Springfield", "State": "IL",
           "Postal Code": "62701"}
TEST_NUMBER = "+13125550199"


@dataclass
class Browser:
    client: TestClient
    csrf: str

    def get(self, path: str) -> Any:
        return self.client.get(path, follow_redirects=False)

    def post(self, path: str, data: dict[str, str], *, htmx: bool = False,
             csrf: bool = True) -> Any:
        form = {**data, **({"csrf_token": self.csrf} if csrf else {})}
        return self.client.post(path, data=form, headers=HTMX if htmx else {},
                                follow_redirects=False)


@dataclass
class Console:
    o: Outreach
    app: FastAPI
    clock: SimulatedClock

    def sign_in(self, name: str, roles: list[Role],
                groups: tuple[str, ...] = (ALL_SUBSCRIBERS,)) -> Browser:
        self.o.users.create(f"{name}@example.org", name, PASSWORD, roles, groups, by="setup")
        return self.login(name)

    def login(self, name: str) -> Browser:
        """Sign in (again: a session ends after its idle minutes, and tests move the clock)."""
        client = TestClient(self.app, raise_server_exceptions=False)
        page = client.post("/console/sign-in", data={
            "email": f"{name}@example.org", "password": PASSWORD, "next": "/console/blank"})
        assert page.status_code == 200, page.text
        found = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
        assert found, "the signed-in page carries the session's CSRF token"
        return Browser(client, found.group(1))

    def campaign_ids(self) -> set[str]:
        return {r.campaign_id for r in self.o.campaigns.campaigns()}


@pytest.fixture
def console(make_outreach: Any, tmp_path: Path) -> Console:
    clock = SimulatedClock(TUESDAY_9AM)
    o = make_outreach(clock=clock, letters_dir=tmp_path / "letters",
                      return_addresses="Main=Total Healthcare|200 Clinic Rd|Springfield")
    o.patients.import_file("providers", write_csv(tmp_path / "providers.csv", PROVIDER_HEADER, [
        ["D1", "Dr. Adams", "North Clinic", "Yes"], ["D2", "Dr. Brown", "South Clinic", "Yes"]]),
        tmp_path / "rejects")
    import_patients(o, tmp_path, [
        {**patient_row("P1", "+13125550101", first="Ann", email="ann@example.com"),
         "PCP Provider ID": "D1", **ADDRESS},
        {**patient_row("P2", "+13125550102", first="Bob"), "PCP Provider ID": "D1", **ADDRESS},
        {**patient_row("P3", "+13125550103", first="Cara"), "PCP Provider ID": "D2",
         **ADDRESS}])
    app = FastAPI()
    add_staff_routes(app, o.staff, now=o.clock.now, modules=())
    add_console(app, o.staff, modules=MODULES)

    @app.get("/console/blank")
    async def blank(page: Annotated[Page, Depends(page_of)]) -> HTMLResponse:
        """A page any signed-in user may open (with the session's CSRF token)."""
        return page.render("base.html")

    return Console(o, app, clock)


def text_of(page: str) -> str:
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", page).split()))


def saved_id(answer: Any) -> str:
    assert answer.status_code == 303, text_of(answer.text)
    found = re.fullmatch(r"/console/campaigns/([0-9a-f-]{36})", answer.headers["location"])
    assert found, answer.headers["location"]
    return found.group(1)


def text_form(**changes: str) -> dict[str, str]:
    return {"editor": "1", "channel": "text", "name": "Flu shots", "body": BODY,
            "help_number": HELP, "action": "inactive", **changes}


# -- each channel through the form ------------------------------------------------------------
FORMS: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "text": (text_form(), {"body": BODY, "help_number": HELP}),
    "email": ({"channel": "email", "name": "Checkup", "template": "Ad hoc email",
               "subject": "Hello {{ first_name }}", "body": "<p>Call {{ help_number }}.</p>",
               "from_address": "clinic@example.org", "from_name": "The Clinic",
               "help_number": HELP, "logo": ""},
              {"template": "Ad hoc email", "subject": "Hello {{ first_name }}",
               "from_address": "clinic@example.org", "from_name": "The Clinic"}),
    "phone": ({"channel": "phone", "name": "Calls", "template": "Ad hoc phone call",
               "script": "Hello {{ first_name }}, please call {{ help_number }}.",
               "provider": "Dr. Adams", "care_manager": "", "callback_number": HELP,
               "caller_id": "+15005550006",
               "voicemail": "This is {{ organisation }}. Please call {{ help_number }}."},
              {"template": "Ad hoc phone call", "provider": "Dr. Adams",
               "callback_number": HELP, "caller_id": "+15005550006",
               "script": "Hello {{ first_name }}, please call {{ help_number }}."}),
    "letter": ({"channel": "letter", "name": "Letters", "page_size": "A4",
                "body": "<p>Please book your visit.</p>", "return_address": "Main",
                "logo": "", "mail_date": "2026-12-01"},
               {"page_size": "A4", "greeting": False, "mail_date": "2026-12-01",
                "return_address": ["Total Healthcare", "200 Clinic Rd", "Springfield"]}),
}


@pytest.mark.parametrize("channel", list(FORMS))
def test_a_campaigns_user_saves_each_channels_campaign_through_the_form_with_its_fields(
        console: Console, channel: str) -> None:
    user = console.sign_in("cara", [Role.CAMPAIGNS])
    form, expected = FORMS[channel]
    answer = user.post("/console/campaigns/new",
                       {"editor": "1", **form, "action": "active", "patients": "P1,P2"})
    detail = console.o.staff.campaigns.get(SETUP_ACTOR, saved_id(answer))
    assert (detail.channel, detail.status, detail.patients) == (channel, "Pending", 2)
    assert {k: detail.content.get(k) for k in expected} == expected
    assert detail.created_by == "cara@example.org"
    page = user.get(f"/console/campaigns/{detail.campaign_id}/edit")
    assert page.status_code == 200 and form["name"] in page.text, "the edit form is filled"


def test_a_prepopulated_templates_words_are_kept_whatever_the_form_sends(
        console: Console) -> None:
    user = console.sign_in("cara", [Role.CAMPAIGNS])
    library = user.get("/console/campaigns/library")
    assert library.status_code == 200
    assert "Mammogram reminder" in library.text and "Prepopulated: cannot be edited" in library.text
    form = user.get("/console/campaigns/new?channel=email&template=Mammogram%20reminder")
    assert "readonly" in form.text and "yearly mammogram" in form.text
    answer = user.post("/console/campaigns/new", {
        "editor": "1", "channel": "email", "name": "Mammograms", "template":
        "Mammogram reminder", "subject": "Changed", "body": "<p>Changed</p>", "logo": "",
        "from_address": "clinic@example.org", "from_name": "Clinic", "help_number": HELP,
        "action": "inactive", "patients": "P1"})
    content = console.o.staff.campaigns.get(SETUP_ACTOR, saved_id(answer)).content
    assert content["subject"] == "A reminder from {{ organisation }}"
    assert "yearly mammogram" in content["body"] and "Changed" not in content["body"]


# -- the live counter -------------------------------------------------------------------------
def counted(user: Browser, body: str) -> tuple[int, int, str, bool]:
    answer = user.post("/console/campaigns/editor/count", {"body": body}, htmx=True)
    assert answer.status_code == 200, answer.text
    found = re.search(r'data-units="(\d+)" data-segments="(\d+)" data-encoding="([^"]+)"',
                      answer.text)
    assert found, answer.text
    return (int(found.group(1)), int(found.group(2)), found.group(3),
            "Too long" in answer.text)


#: GSM-7 letters, its two-septet escapes, and what forces UCS-2 (accents, emoji with a skin
#: tone, a combining mark, CJK): any mix, up to well past two segments.
GSM_AND_MORE = st.lists(st.sampled_from(
    list("abc XYZ 0123456789.,!?@£$€[]{}^~|\\\néàÇ") + ["é", "😀", "👍🏽", "中", "\u0301"]),
    max_size=400).map("".join)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=GSM_AND_MORE)
@example(body="a" * 160)
@example(body="a" * 200)
@example(body="Café ☕ " * 12)
def test_the_live_counter_counts_a_text_as_the_server_segments_it_with_the_footer(
        console: Console, body: str) -> None:
    user = getattr(console, "_user", None) or console.sign_in("cara", [Role.CAMPAIGNS])
    console._user = user  # type: ignore[attr-defined]  # one sign-in for every example
    footer = console.o.settings.text_footer
    seg = segment(compose(body, footer)) if body.strip() else segment(footer)
    assert counted(user, body) == (seg.units, seg.segments, seg.encoding, seg.segments > 2)


def test_over_two_segments_the_text_is_refused_on_save_with_the_form_kept(
        console: Console) -> None:
    user = console.sign_in("cara", [Role.CAMPAIGNS])
    long_body = "Please call us about your visit. " * 12
    assert counted(user, long_body)[1] == 3
    before = console.campaign_ids()
    answer = user.post("/console/campaigns/new", text_form(body=long_body, name="Too long"))
    assert answer.status_code == 400
    assert "the text message needs 3 segments" in text_of(answer.text)
    assert 'value="Too long"' in answer.text and long_body.strip() in html.unescape(answer.text)
    fragment = user.post("/console/campaigns/new", text_form(body=long_body), htmx=True)
    assert fragment.status_code == 200 and fragment.headers["HX-Retarget"] == "#editor-message"
    assert "needs 3 segments" in fragment.text
    assert console.campaign_ids() == before


# -- the start day ----------------------------------------------------------------------------
@pytest.mark.parametrize(("day", "words"), [
    ("2026-11-29", "Sunday 2026-11-29 is not a sending day: the campaign will start "
                   "Monday 2026-11-30"),
    ("2026-11-26", "Thursday 2026-11-26 is not a sending day (a holiday): the campaign will "
                   "start Friday 2026-11-27"),
    ("2026-11-27", "Starts Friday 2026-11-27"),
    ("2026-11-20", "2026-11-20 is in the past"),
])
def test_the_start_note_says_when_a_sunday_or_holiday_start_really_starts(
        console: Console, day: str, words: str) -> None:
    user = console.sign_in("cara", [Role.CAMPAIGNS])
    answer = user.post("/console/campaigns/editor/start", {"start": day, "channel": "text"},
                       htmx=True)
    assert words in text_of(answer.text)


def test_a_campaign_saved_for_a_sunday_starts_on_monday_and_its_form_says_so(
        console: Console) -> None:
    user = console.sign_in("cara", [Role.CAMPAIGNS])
    cid = saved_id(user.post("/console/campaigns/new", text_form(start="2026-11-29")))
    detail = console.o.staff.campaigns.get(SETUP_ACTOR, cid)
    assert (detail.requested_start, detail.start_date) == ("2026-11-29", "2026-11-30")
    assert "the campaign will start Monday 2026-11-30" in text_of(
        user.get(f"/console/campaigns/{cid}/edit").text)


# -- Save & Send Test -------------------------------------------------------------------------
def test_save_and_send_test_saves_a_new_campaign_inactive_and_never_changes_a_status(
        console: Console) -> None:
    user = console.sign_in("cara", [Role.CAMPAIGNS])
    gateway = console.o.gateway
    assert isinstance(gateway, SimulatorSmsGateway)
    sent_before = len(gateway.sent)
    cid = saved_id(user.post("/console/campaigns/new", text_form(
        action="test", test_to=TEST_NUMBER, patients="P1")))
    detail = console.o.staff.campaigns.get(SETUP_ACTOR, cid)
    assert (detail.status, detail.test_sends) == ("Inactive", 1)
    sent = gateway.sent[sent_before:]
    assert [m.to for m in sent] == [TEST_NUMBER]
    assert sent[0].body == compose(BODY, console.o.settings.text_footer)

    next_week = "2026-12-01"
    active = saved_id(user.post("/console/campaigns/new", text_form(
        action="active", patients="P1", start=next_week)))
    again = saved_id(user.post(f"/console/campaigns/{active}/edit", text_form(
        action="test", test_to=TEST_NUMBER, name="Flu shots (tested)", start=next_week)))
    detail = console.o.staff.campaigns.get(SETUP_ACTOR, again)
    assert (detail.status, detail.test_sends, detail.name) == ("Pending", 1, "Flu shots (tested)")


def test_a_bad_test_number_saves_nothing_and_says_why(console: Console) -> None:
    user = console.sign_in("cara", [Role.CAMPAIGNS])
    before = console.campaign_ids()
    answer = user.post("/console/campaigns/new", text_form(action="test", test_to="12"))
    assert answer.status_code == 400
    assert "'12' is not a valid phone number" in text_of(answer.text)
    assert console.campaign_ids() == before


# -- the audience -----------------------------------------------------------------------------
def test_send_campaign_from_the_lists_page_fixes_the_audience_to_its_patients(
        console: Console) -> None:
    user = console.sign_in("cara", [Role.CAMPAIGNS])
    form = user.post("/console/campaigns/new", {"channel": "text", "patients": "P2,P1",
                                                "audience_note": "2 patients from Diabetics"})
    assert form.status_code == 200
    page = text_of(form.text)
    assert "2 patients chosen: 2 patients from Diabetics" in page
    assert 'name="patients" value="P2,P1"' in form.text and 'name="view"' not in form.text
    cid = saved_id(user.post("/console/campaigns/new", text_form(patients="P2,P1")))
    assert console.o.campaigns.get(UUID(cid)).audience == ["P2", "P1"]


def test_a_restricted_user_cannot_put_another_groups_patient_in_a_campaign(
        console: Console) -> None:
    north = console.sign_in("nora", [Role.CAMPAIGNS], ("North Clinic",))
    before = console.campaign_ids()
    answer = north.post("/console/campaigns/new", text_form(patients="P1,P3"))
    assert answer.status_code == 403
    assert "1 of the chosen patients are outside your groups" in text_of(answer.text)
    assert 'value="P1,P3"' in answer.text, "the form is kept"
    assert console.campaign_ids() == before
    refused = north.post("/console/campaigns/editor/preview",
                         {**text_form(), "preview_patient": "P3"}, htmx=True)
    assert "not one of your groups' patients" in html.unescape(refused.text)
    assert "Cara" not in refused.text
    mine = north.post("/console/campaigns/editor/preview",
                      {**text_form(), "preview_patient": "P1"}, htmx=True)
    assert "Ann" in mine.text and compose(BODY, console.o.settings.text_footer) in \
        html.unescape(mine.text)


def test_the_email_preview_is_the_message_merged_for_the_chosen_patient(
        console: Console) -> None:
    user = console.sign_in("cara", [Role.CAMPAIGNS])
    form, _ = FORMS["email"]
    answer = user.post("/console/campaigns/editor/preview",
                       {**form, "preview_patient": "P1"}, htmx=True)
    page = html.unescape(answer.text)
    assert "Subject: Hello Ann" in text_of(answer.text) and "ann@example.com" in page
    assert "Call +15550100100." in page


# -- refusals ---------------------------------------------------------------------------------
def test_a_form_without_the_sessions_csrf_token_is_refused_and_saves_nothing(
        console: Console) -> None:
    user = console.sign_in("cara", [Role.CAMPAIGNS])
    before = console.campaign_ids()
    answer = user.post("/console/campaigns/new", text_form(), csrf=False)
    assert answer.status_code == 403 and "this form is out of date" in text_of(answer.text)
    assert console.campaign_ids() == before


@pytest.mark.parametrize(("changes", "status", "words"), [
    ({"body": "   "}, 400, "the text message body is empty"),
    ({"start": "2026-13-01"}, 400, "the start date '2026-13-01' is not a date (YYYY-MM-DD)"),
    ({"start": "2026-11-01"}, 409, "the start date 2026-11-01 is in the past"),
    ({"name": ""}, 409, "a campaign needs a name"),
    ({"channel": "email", "template": "No such template", "subject": "Hi",
      "from_address": "a@example.org"}, 404, "no template named 'No such template'"),
    ({"channel": "phone", "script": "Hello", "callback_number": "",
      "voicemail": "This is {{ organisation }}. Please call {{ help_number }}.",
      "template": ""}, 400, "a phone campaign needs a call-back number"),
])
def test_bad_input_is_answered_in_one_line_with_the_form_kept(
        console: Console, changes: dict[str, str], status: int, words: str) -> None:
    user = console.sign_in("cara", [Role.CAMPAIGNS])
    answer = user.post("/console/campaigns/new", text_form(**changes, description="kept!"))
    assert answer.status_code == status
    assert words in text_of(answer.text)
    assert "kept!" in answer.text and "Traceback" not in answer.text


def test_an_active_campaign_cannot_be_edited_after_midnight_before_its_start_day(
        console: Console) -> None:
    user = console.sign_in("cara", [Role.CAMPAIGNS])
    tomorrow = (date(2026, 11, 24) + timedelta(days=1)).isoformat()
    cid = saved_id(user.post("/console/campaigns/new", text_form(
        action="active", start=tomorrow, patients="P1")))
    # Wednesday 00:30 US Central: the start day has begun.
    console.clock.advance_to(datetime.fromisoformat("2026-11-25T06:30:00+00:00"))
    user = console.login("cara")  # the night ended the session too
    answer = user.post(f"/console/campaigns/{cid}/edit",
                       text_form(action="active", start=tomorrow, name="Renamed too late"))
    assert answer.status_code == 409
    assert ("an active campaign can be changed only until midnight before its start day"
            in text_of(answer.text))
    assert 'value="Renamed too late"' in answer.text, "nothing lost from the form"
    assert console.o.staff.campaigns.get(SETUP_ACTOR, cid).name == "Flu shots"


def test_a_user_without_the_campaigns_role_gets_no_editor(console: Console) -> None:
    user = console.sign_in("otto", [Role.OPT_OUTS])
    assert user.get("/console/campaigns/new").status_code == 403
    assert user.get("/console/campaigns/library").status_code == 403
    before = console.campaign_ids()
    assert user.post("/console/campaigns/new", text_form()).status_code == 403
    assert console.campaign_ids() == before


def test_without_chosen_patients_a_saved_view_is_the_audience(console: Console) -> None:
    user = console.sign_in("cara", [Role.CAMPAIGNS])
    view = next(v for v in console.o.patients.views("cara@example.org")
                if v.name == "Pts w/ Appts in 1 week")  # nobody here has one
    form = user.get("/console/campaigns/new")
    assert f'<option value="{view.view_id}">Saved view: {html.escape(view.name)}</option>' \
        in form.text
    expected = console.o.staff.campaigns.create(
        SETUP_ACTOR, name="Same view", body=BODY, help_number=HELP, view=view.view_id)
    cid = saved_id(user.post("/console/campaigns/new", text_form(view=view.view_id)))
    audience = console.o.campaigns.get(UUID(cid)).audience
    assert audience == console.o.campaigns.get(UUID(expected.campaign_id)).audience
    assert audience == []
    everyone = saved_id(user.post("/console/campaigns/new", text_form()))
    assert sorted(console.o.campaigns.get(UUID(everyone)).audience) == ["P1", "P2", "P3"]
