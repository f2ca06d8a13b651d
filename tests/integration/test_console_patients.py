"""The console's patient pages, server side, on SQLite and PostgreSQL: staff find a patient by
a partial phone or a name, read the summary (communication history expandable to each
attempt), and — with the opt-out role — add and remove opt-outs in place; everyone else
sees no form and is refused (403) when forging one; nobody reads a patient outside their
groups.

North (provider D1) has P1 and P2; South (D2) has P3 (tests/integration/staff_app.py).
Sessions come from `FixedSessions`, a real in-memory adapter of the session half of
application.users.UserService (the browser stories sign in for real).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.staff.deps import SESSION_COOKIE
from api.web.app import add_console
from application.bootstrap import Outreach
from application.user_credentials import Session
from domain.access import ALL_SUBSCRIBERS, Actor, NotSignedIn, Role
from tests.fixtures_app import TUESDAY_9AM
from tests.integration.staff_app import StaffApi, open_staff_api, seed_patients
from tests.patient_data import patient_row
from workers.runner import EmbeddedRunner

MODULES = ("api.web.patients", "api.web.sign_in")
NORTH = ("North",)
BODY = "Flu shots are here. Call (555) 010-0100 to book."
HELP = "+15550100100"


class FixedSessions:
    """Browser sessions known in advance: each cookie value is one Actor's session."""

    def __init__(self) -> None:
        self.sessions: dict[str, tuple[Actor, Session]] = {}

    def add(self, session_id: str, actor: Actor) -> None:
        self.sessions[session_id] = (actor, Session(session_id, f"csrf-{session_id}",
                                                    TUESDAY_9AM + timedelta(days=1)))

    def actor_for_session(self, session_id: str, source: str,
                          slide: bool = True) -> tuple[Actor, Session]:
        found = self.sessions.get(session_id)
        if found is None:
            raise NotSignedIn("signed out")
        return found


class Console:
    def __init__(self, api: StaffApi) -> None:
        self.api = api
        self.sessions = FixedSessions()
        api.staff.auth = self.sessions
        add_console(api.app, api.staff, modules=MODULES)

    def browser(self, name: str, roles: frozenset[Role] | set[Role] = frozenset(Role),
                groups: tuple[str, ...] = (ALL_SUBSCRIBERS,)) -> TestClient:
        """A signed-in browser of a user with these roles and groups."""
        self.sessions.add(name, Actor(f"id-{name}", name, frozenset(roles), groups,
                                      via="session"))
        client = TestClient(self.api.app, raise_server_exceptions=False,
                            follow_redirects=False)
        client.cookies.set(SESSION_COOKIE, name)
        client.headers["X-CSRF-Token"] = f"csrf-{name}"
        return client

    def audit(self, name: str, action: str) -> list[tuple[object, ...]]:
        """(outcome, patient ids, target) of the user's records of this action."""
        return [r[2:5] for r in self.api.audit.records if r[0] == name and r[1] == action]


@pytest.fixture
def console(make_outreach: Callable[..., Outreach], tmp_path: Path) -> Console:
    api = open_staff_api(make_outreach(), tmp_path)
    seed_patients(api)
    return Console(api)


HTMX = {"HX-Request": "true", "HX-Target": "results"}


def test_a_page_without_a_session_sends_the_browser_to_sign_in(console: Console) -> None:
    anonymous = TestClient(console.api.app, follow_redirects=False)
    answer = anonymous.get("/console/patients", params={"q": "Lee"})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/sign-in?next=%2Fconsole%2Fpatients")


def test_a_partial_phone_with_or_without_dashes_lists_the_matching_patients(
        console: Console) -> None:
    boss = console.browser("boss")
    for typed in ("555-010", "555010", "512 555 010"):
        page = boss.get("/console/patients", params={"q": typed})
        assert page.status_code == 200, page.text
        assert "<h1>Find a patient</h1>" in page.text
        assert re.findall(r'href="/console/patients/(P\d)"', page.text) == ["P1", "P2", "P3"]
        assert '<th scope="col">Home phone</th>' in page.text
    # htmx asks for the results only, swapped under the form
    fragment = boss.get("/console/patients", params={"q": "555-010"}, headers=HTMX)
    assert "<h1>" not in fragment.text and "Lee, Ann" in fragment.text
    assert fragment.headers["vary"] == "HX-Request"


def test_a_name_search_lists_only_the_patients_of_the_users_groups(console: Console) -> None:
    nora = console.browser("nora", set(), NORTH)
    page = nora.get("/console/patients", params={"q": "lee"})
    assert re.findall(r'href="/console/patients/(P\d)"', page.text) == ["P1", "P2"]
    assert ("allowed", ("P1", "P2"), "") in console.audit("nora", "patients.search")
    nothing = nora.get("/console/patients", params={"q": "Zed"}, headers=HTMX)
    assert "No patient in your groups matches" in nothing.text


def test_more_than_a_hundred_matches_show_a_hundred_and_say_more_matched(
        make_outreach: Callable[..., Outreach], tmp_path: Path) -> None:
    api = open_staff_api(make_outreach(), tmp_path)
    seed_patients(api, [patient_row(f"L{n:03}", f"Al{n:03}", "Lee",
                                    mobile=f"512-555-{n:04}") for n in range(101)])
    page = Console(api).browser("boss").get("/console/patients", params={"q": "lee"})
    assert page.text.count('<th scope="row">') == 100
    assert "More patients matched than the 100 shown" in page.text


def test_a_single_hit_opens_the_patients_summary(console: Console) -> None:
    boss = console.browser("boss")
    plain = boss.get("/console/patients", params={"q": "512-555-0103"})
    assert (plain.status_code, plain.headers["location"]) == (303, "/console/patients/P3")
    swapped = boss.get("/console/patients", params={"q": "5125550103"}, headers=HTMX)
    assert swapped.status_code == 204
    assert swapped.headers["HX-Redirect"] == "/console/patients/P3"


def test_too_little_or_too_much_to_search_on_is_explained_not_refused(
        console: Console) -> None:
    boss = console.browser("boss")
    page = boss.get("/console/patients", params={"q": "55"})
    assert page.status_code == 200
    assert "type at least 4 digits of the phone number" in page.text
    long = boss.get("/console/patients", params={"q": "Lee" * 100}, headers=HTMX)
    assert long.status_code == 200 and "type at most 200 characters" in long.text


def test_the_summary_shows_demographics_appointments_and_opt_outs(console: Console) -> None:
    boss = console.browser("boss")
    page = boss.get("/console/patients/P1")
    assert page.status_code == 200, page.text
    assert "<h1>Lee, Ann" in page.text and "<dd>512-555-0101</dd>" in page.text
    assert "ann@example.com" in page.text
    assert [h for h in re.findall(r"<h(\d)", page.text)] == ["1", "2", "2", "2", "2", "3", "2"]
    assert ("allowed", ("P1",), "P1") in console.audit("boss", "patients.summary")
    assert page.headers["cache-control"] == "no-store"  # patient data: no cached copy


def test_a_patient_outside_the_users_groups_is_refused_with_the_facades_words(
        console: Console) -> None:
    nora = console.browser("nora", set(Role), NORTH)
    refused = nora.get("/console/patients/P3")
    assert refused.status_code == 403
    assert "this patient is outside your groups" in refused.text
    assert "<h1>Not done</h1>" in refused.text and "Lee, Cy" not in refused.text
    assert ("denied", (), "P3") in console.audit("nora", "patients.summary")


def test_an_opt_out_manager_adds_and_removes_an_opt_out_in_place(console: Console) -> None:
    oscar = console.browser("oscar", {Role.OPT_OUTS})
    assert 'action="/console/patients/P1/opt-outs"' in oscar.get("/console/patients/P1").text
    added = oscar.post("/console/patients/P1/opt-outs", headers={"HX-Request": "true"}, data={
        "type": "All Text", "reason": "Patient request", "days": "30", "comment": "by phone"})
    assert added.status_code == 200, added.text
    assert added.text.startswith('<section id="opt-outs"')
    assert "Opted out: All Text." in added.text and "by oscar" in added.text
    assert ("allowed", ("P1",), "P1") in console.audit("oscar", "opt_outs.add")
    # The summary lists it, with its last day (30 days from today, today included)
    summary = oscar.get("/console/patients/P1").text
    assert "All Text" in summary and "2026-12-23" in summary
    removed = oscar.post("/console/patients/P1/opt-outs/remove",
                         headers={"HX-Request": "true"}, data={"type": "All Text"})
    assert "Removed: All Text." in removed.text and "No current opt-outs." in removed.text
    assert ("allowed", ("P1",), "P1") in console.audit("oscar", "opt_outs.remove")


def test_without_javascript_an_opt_out_goes_back_to_the_summary(console: Console) -> None:
    oscar = console.browser("oscar", {Role.OPT_OUTS})
    del oscar.headers["X-CSRF-Token"]
    added = oscar.post("/console/patients/P2/opt-outs", data={
        "type": "Protocol", "protocol": "Diabetes", "reason": "Moved away",
        "csrf_token": "csrf-oscar"})
    assert (added.status_code, added.headers["location"]) == (
        303, "/console/patients/P2#opt-outs")
    assert "Protocol:Diabetes" in oscar.get("/console/patients/P2").text


@pytest.mark.parametrize(("form", "words"), [
    ({"type": "Global", "reason": "Asked", "days": "5"},
     "a Global opt-out is always permanent"),
    ({"type": "Health Reminders - Phone", "reason": "Asked"},
     "a Health Reminders - Phone opt-out cannot be permanent"),
    ({"type": "Protocol", "reason": "Asked"}, "a protocol opt-out names the protocol"),
    ({"type": "All Text", "reason": "Asked", "until": "2026-12-01", "days": "3"},
     "choose a date or a number of days, not both"),
    ({"type": "All Text", "reason": "Asked", "until": "soon"}, "is not a date"),
    ({"type": "Sometimes", "reason": "Asked"}, "unknown opt-out type"),
])
def test_an_opt_out_the_rules_refuse_is_explained_in_the_domains_words(
        console: Console, form: dict[str, str], words: str) -> None:
    oscar = console.browser("oscar", {Role.OPT_OUTS})
    swapped = oscar.post("/console/patients/P1/opt-outs", headers={"HX-Request": "true"},
                         data=form)
    assert swapped.status_code == 200  # htmx swaps only a 2xx answer
    assert words in swapped.text and 'role="alert"' in swapped.text
    assert f'value="{form["reason"]}"' in swapped.text  # the form keeps what was typed
    plain = oscar.post("/console/patients/P1/opt-outs", data=form)
    assert plain.status_code == 400 and words in plain.text
    assert "No current opt-outs." in plain.text


def test_a_campaigns_only_user_sees_no_opt_out_form_and_a_forged_post_is_refused(
        console: Console) -> None:
    carl = console.browser("carl", {Role.CAMPAIGNS})
    page = carl.get("/console/patients/P1").text
    assert "Add an opt-out" not in page and "/opt-outs" not in page
    forged = carl.post("/console/patients/P1/opt-outs", data={
        "type": "Global", "reason": "x", "until": "not a date"})
    assert forged.status_code == 403 and "Opt-out management" in forged.text
    removal = carl.post("/console/patients/P1/opt-outs/remove", data={"type": "Global"},
                        headers={"HX-Request": "true"})
    assert removal.status_code == 403 and 'role="alert"' in removal.text
    assert console.audit("carl", "opt_outs.add") == [("denied", (), "P1")]


def test_an_opt_out_post_without_the_sessions_csrf_token_is_refused(console: Console) -> None:
    oscar = console.browser("oscar", {Role.OPT_OUTS})
    oscar.headers["X-CSRF-Token"] = "forged"
    answer = oscar.post("/console/patients/P1/opt-outs",
                        data={"type": "All Text", "reason": "x"})
    assert answer.status_code == 403 and console.audit("oscar", "opt_outs.add") == []


def test_the_north_user_cannot_change_a_south_patients_opt_outs(console: Console) -> None:
    nora = console.browser("nora", {Role.OPT_OUTS}, NORTH)
    answer = nora.post("/console/patients/P3/opt-outs", data={"type": "All Text",
                                                             "reason": "x"})
    assert answer.status_code == 403 and "outside your groups" in answer.text


def test_the_history_opens_to_each_attempts_type_time_and_outcome(console: Console) -> None:
    api = console.api
    alice = Actor("id-alice", "alice", frozenset({Role.CAMPAIGNS}), (ALL_SUBSCRIBERS,),
                  via="session")
    api.staff.campaigns.create(alice, name="Flu", body=BODY, help_number=HELP,
                               patients=["P1"], active=True)
    EmbeddedRunner(api.o).run_simulated(TUESDAY_9AM + timedelta(hours=10))
    page = console.browser("boss").get("/console/patients/P1").text
    history = page.split('id="history"')[1]
    assert history.count("<details") == 1 and "Flu" in history
    rows = re.findall(r"<tr><td>(\d)</td><td>(\w+)</td><td>([^<]+)</td>\s*<td>(\w+)", history)
    assert [(n, kind, outcome) for n, kind, _, outcome in rows] in (
        [("1", "Text", "accepted")], [("1", "Text", "delivered")])
    assert rows[0][2].startswith("2026-11-24 ")  # the clinic's local time
