"""The console's Patient Management page, server side, on SQLite and PostgreSQL: filter rows
(a semicolon is "or"), sorting on several keys, columns, paging, saved views (save, update,
delete, share), a restricted user's lists narrowed to their groups, the Send Campaign
audience check (removals, the cap), the domain's words for bad input, CSRF on every change,
and no 500 whatever the query string holds.

The clinic (seeded below): North is provider D1, South D2. Tuesday 9:00 is "today".
P1 Ann Lee (1950, Medicare, PCP D1, appointment with D2 tomorrow), P2 Bob Lee (1960,
Anthem, D1, appointment with D1 in two days), P3 Cy Lee (1970, Aetna, D2, appointment with
D2 in three days), P4 Dee Fox (1940, Medicare Advantage, D2, Inactive, no mobile), P5 Eli
Ray (1955, Cigna, D1, appointment reminders only, appointment with D1 tomorrow).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.staff.deps import SESSION_COOKIE
from api.web.app import add_console
from application.bootstrap import Outreach
from domain.access import Actor, Role
from tests.integration.staff_app import PROVIDERS, StaffApi, open_staff_api
from tests.integration.test_console_patients import FixedSessions
from tests.patient_data import APPOINTMENT_HEADER, PATIENT_HEADER, PROVIDER_HEADER, patient_row
from tests.patient_data import write_csv as write_rows

MODULES = ("api.web.lists", "api.web.sign_in")
CAMPAIGNS = frozenset({Role.CAMPAIGNS})
SHARER = frozenset({Role.CAMPAIGNS, Role.SHARE_VIEWS})
HTMX = {"HX-Request": "true", "HX-Target": "list-page"}
WEEK_VIEW = "Pts w/ Appts in 1 week"

PATIENTS = [
    patient_row("P1", "Ann", "Lee", "1950-02-03", mobile="512-555-0101", pcp="D1",
                email="ann@example.com", payor="Medicare"),
    patient_row("P2", "Bob", "Lee", "1960-01-01", mobile="512-555-0102", pcp="D1",
                payor="Anthem"),
    patient_row("P3", "Cy", "Lee", "1970-01-01", mobile="512-555-0103", pcp="D2",
                payor="Aetna"),
    patient_row("P4", "Dee", "Fox", "1940-04-04", pcp="D2", payor="Medicare Advantage",
                status="Inactive", home="512-555-0204"),
    patient_row("P5", "Eli", "Ray", "1955-05-05", mobile="512-555-0105", pcp="D1",
                payor="Cigna", reminders_only="Yes"),
]


class Console:
    def __init__(self, api: StaffApi) -> None:
        self.api = api
        self.sessions = FixedSessions()
        api.staff.auth = self.sessions
        add_console(api.app, api.staff, modules=MODULES)

    def browser(self, name: str, roles: frozenset[Role] = CAMPAIGNS,
                groups: tuple[str, ...] = ("All Subscribers",), csrf: bool = True
                ) -> TestClient:
        self.sessions.add(name, Actor(f"id-{name}", name, roles, groups, via="session"))
        client = TestClient(self.api.app, raise_server_exceptions=False,
                            follow_redirects=False)
        client.cookies.set(SESSION_COOKIE, name)
        if csrf:
            client.headers["X-CSRF-Token"] = f"csrf-{name}"
        return client


def seed(o: Outreach, folder: Path) -> None:
    now = o.clock.now()

    def at(days: int) -> str:
        return (now + timedelta(days=days)).strftime("%Y-%m-%d 10:00")

    o.patients.import_file("providers", write_rows(folder / "pr.csv", PROVIDER_HEADER,
                                                   PROVIDERS))
    o.patients.import_file("patients", write_rows(folder / "p.csv", PATIENT_HEADER, PATIENTS))
    o.patients.import_file("appointments", write_rows(folder / "a.csv", APPOINTMENT_HEADER, [
        ["A1", "P1", at(1), "D2", "Main", "Office Visit", "Scheduled", ""],
        ["A2", "P2", at(2), "D1", "Main", "Office Visit", "Scheduled", ""],
        ["A3", "P3", at(3), "D2", "Main", "Flu Shot", "Scheduled", ""],
        ["A5", "P5", at(1), "D1", "Main", "Office Visit", "Scheduled", ""],
        ["A9", "P4", at(20), "D2", "Main", "Office Visit", "Scheduled", ""],
    ]))
    o.catch_up()


@pytest.fixture
def make_console(make_outreach: Callable[..., Outreach], tmp_path: Path
                 ) -> Callable[..., Console]:
    def make(**settings: Any) -> Console:
        api = open_staff_api(make_outreach(**settings), tmp_path)
        seed(api.o, tmp_path / "seed")
        return Console(api)
    return make


@pytest.fixture
def console(make_console: Callable[..., Console]) -> Console:
    return make_console()


def picks(html: str) -> list[str]:
    """The patient ids of the rows shown, in order (each row's selection checkbox)."""
    return re.findall(r'name="pick" value="([^"]+)"', html)


def headings(html: str) -> list[str]:
    table = html.split("<thead>", 1)[1].split("</thead>", 1)[0]
    return re.findall(r'<th scope="col">([^<]+)</th>', table)


def new_list(**extra: Any) -> dict[str, Any]:
    return {"defined": "1", "focus": "patient", **extra}


def week_view_id(client: TestClient) -> str:
    page = client.get("/console/lists")
    found = re.search(r'<option value="([^"]+)"[^>]*>' + re.escape(WEEK_VIEW), page.text)
    assert found, page.text
    return found[1]


def test_a_semicolon_in_a_filter_value_lists_patients_matching_either_value(
        console: Console) -> None:
    boss = console.browser("boss")
    page = boss.get("/console/lists", params=new_list(
        f_field="payor", f_action="contains", f_value="Medicare;Anthem"))
    assert page.status_code == 200, page.text
    assert picks(page.text) == ["P4", "P1", "P2"]  # Fox, then Lee Ann, Lee Bob
    assert "3 patients</h2>" in page.text


def test_a_list_sorted_on_two_keys_orders_by_the_first_then_the_second(
        console: Console) -> None:
    boss = console.browser("boss")
    page = boss.get("/console/lists", params=new_list(
        s_field=["last_name", "first_name"], s_dir=["asc", "desc"]))
    assert picks(page.text) == ["P4", "P3", "P2", "P1", "P5"]
    flipped = boss.get("/console/lists", params=new_list(
        s_field=["last_name", "first_name"], s_dir=["desc", "asc"]))
    assert picks(flipped.text) == ["P5", "P1", "P2", "P3", "P4"]


def test_the_chosen_columns_are_the_tables_headings_in_their_order(console: Console) -> None:
    boss = console.browser("boss")
    page = boss.get("/console/lists", params=new_list(col=["payor", "name", "age"]))
    assert headings(page.text) == ["Payor", "Patient Name", "Age"]
    default = boss.get("/console/lists", params=new_list())
    assert headings(default.text) == ["Patient Name", "Age", "Date of Birth", "Phone", "Email",
                                      "PCP", "Payor"]


def test_a_long_list_pages_with_previous_and_next(console: Console) -> None:
    boss = console.browser("boss")
    first = boss.get("/console/lists", params=new_list(size="2"))
    assert picks(first.text) == ["P4", "P1"]
    assert "Page 1 of 3" in first.text and "Next →" in first.text
    assert "← Previous" not in first.text
    last = boss.get("/console/lists", params=new_list(size="2", page="3"))
    assert picks(last.text) == ["P5"]
    assert "Page 3 of 3" in last.text and "← Previous" in last.text
    assert "Next →" not in last.text


def test_the_week_view_is_grouped_by_appointment_provider_with_appointment_columns(
        console: Console) -> None:
    boss = console.browser("boss")
    page = boss.get("/console/lists", params={"view": week_view_id(boss)})
    assert page.status_code == 200, page.text
    assert "Appt Date/Time" in headings(page.text)
    groups = re.findall(r'scope="rowgroup"[^>]*>Appt Provider: ([^<]+)<', page.text)
    assert groups == ["Dr. Adams", "Dr. Brown"]
    assert picks(page.text) == ["P5", "P2", "P1", "P3"]  # by provider, then time


def test_a_user_saves_updates_shares_and_deletes_a_view(console: Console) -> None:
    maya = console.browser("maya", SHARER)
    saved = maya.post("/console/lists/views", data=new_list(
        name="Medicare or Anthem", f_field="payor", f_action="contains",
        f_value="Medicare;Anthem"))
    assert saved.status_code == 303, saved.text
    opened = maya.get(saved.headers["location"])
    assert "Medicare or Anthem" in opened.text and picks(opened.text) == ["P4", "P1", "P2"]
    view_id = re.search(r"view=([^&\"]+)", saved.headers["location"])[1]  # type: ignore[index]
    updated = maya.post(f"/console/lists/views/{view_id}/update", data=new_list(
        view=view_id, name="Medicare only", f_field="payor", f_action="contains",
        f_value="Medicare"))
    assert updated.status_code == 303, updated.text
    again = maya.get("/console/lists", params={"view": view_id})
    assert "Medicare only" in again.text and picks(again.text) == ["P4", "P1"]
    shared = maya.post(f"/console/lists/views/{view_id}/share", data={"users": "raj"})
    assert shared.status_code == 303
    raj = console.browser("raj")
    assert "Medicare only (maya)" in raj.get("/console/lists").text
    assert "Share this view" not in raj.get("/console/lists", params={"view": view_id}).text
    refused = raj.post(f"/console/lists/views/{view_id}/share", data={"users": "ola"})
    assert refused.status_code == 403
    gone = maya.post(f"/console/lists/views/{view_id}/delete")
    assert gone.status_code == 303
    assert "Medicare only" not in maya.get("/console/lists").text


def test_removing_every_filter_row_then_update_saves_a_view_without_filters(
        console: Console) -> None:
    maya = console.browser("maya")
    saved = maya.post("/console/lists/views", data=new_list(
        name="Medicare", f_field="payor", f_action="contains", f_value="Medicare"))
    view_id = re.search(r"view=([^&\"]+)", saved.headers["location"])[1]  # type: ignore[index]
    assert picks(maya.get("/console/lists", params={"view": view_id}).text) == ["P4", "P1"]
    cleared = maya.post(f"/console/lists/views/{view_id}/update",
                        data=new_list(view=view_id, name=""))
    assert cleared.status_code == 303, cleared.text
    everyone = picks(maya.get("/console/lists", params=new_list()).text)
    assert picks(maya.get("/console/lists", params={"view": view_id}).text) == everyone


def test_a_taken_view_name_is_said_in_the_domains_words(console: Console) -> None:
    maya = console.browser("maya")
    plain = maya.post("/console/lists/views", data=new_list(name="Patients Ages 65+"))
    assert plain.status_code == 409
    assert "already have a view called" in plain.text
    htmx = maya.post("/console/lists/views", data=new_list(name="Patients Ages 65+"),
                     headers={"HX-Request": "true"})
    assert htmx.status_code == 200 and htmx.headers["HX-Retarget"] == "#lists-message"
    assert "already have a view called" in htmx.text


def test_a_restricted_user_sees_their_groups_patients_and_is_refused_other_groups(
        console: Console) -> None:
    nora = console.browser("nora", groups=("North",))
    page = nora.get("/console/lists", params=new_list())
    assert sorted(picks(page.text)) == ["P1", "P2", "P5"]
    assert "Scope: group North" in page.text
    assert 'value="South"' not in page.text  # only her groups are offered
    refused = nora.get("/console/lists", params=new_list(group="South"))
    assert refused.status_code == 403
    assert "outside your groups: South" in refused.text
    assert picks(refused.text) == []


def send(client: TestClient, **form: Any) -> Any:
    return client.post("/console/lists/audience", data=new_list(**form),
                       headers={"HX-Request": "true"})


def facts(html: str) -> dict[str, str]:
    return dict(re.findall(r"<dt>([^<]+)</dt><dd>(?:<strong>)?([\d,]+)", html))


def test_send_campaign_checks_the_audience_and_offers_to_keep_the_removed(
        console: Console) -> None:
    boss = console.browser("boss")
    whole = send(boss, all="1", channel="text")
    assert whole.status_code == 200, whole.text
    assert facts(whole.text) == {
        "Selected": "5", "Inactive, removed": "1", "Appointment reminders only, removed": "1",
        "Without the channel’s contact, left out": "0", "To contact": "3"}
    assert 'name="patients" value="P1,P2,P3"' in whole.text
    assert 'action="/console/campaigns/new"' in whole.text
    assert 'name="audience_note" value="Patient list: 3 patients"' in whole.text
    kept = send(boss, all="1", channel="text", keep_inactive="1", keep_reminders_only="1")
    assert facts(kept.text)["Without the channel’s contact, left out"] == "1"  # P4: no mobile
    assert facts(kept.text)["To contact"] == "4"
    chosen = send(boss, pick=["P4", "P2"], channel="phone")
    assert facts(chosen.text)["Selected"] == "2" and facts(chosen.text)["To contact"] == "1"
    assert 'name="patients" value="P2"' in chosen.text
    assert 'name="channel" value="phone"' in chosen.text
    nothing = send(boss, channel="text")
    assert "choose patients on the list" in nothing.text


def test_an_audience_over_the_cap_says_so_and_offers_no_way_on(
        make_console: Callable[..., Console]) -> None:
    console = make_console(campaign_size_cap=2)
    boss = console.browser("boss")
    over = send(boss, all="1", channel="text")
    assert "a campaign can contact at most 2" in over.text
    assert "/console/campaigns/new" not in over.text
    plain = boss.post("/console/lists/audience", data=new_list(all="1", channel="text"))
    assert plain.status_code == 200 and "<h1>Patient lists</h1>" in plain.text
    assert "a campaign can contact at most 2" in plain.text


def test_bad_filter_input_gets_the_domains_message_and_a_4xx_or_a_fragment(
        console: Console) -> None:
    boss = console.browser("boss")
    bad = new_list(f_field="age", f_action="greater than", f_value="old")
    plain = boss.get("/console/lists", params=bad)
    assert plain.status_code == 400
    assert "the value for Age must be a whole number" in plain.text
    assert 'value="old"' in plain.text  # the form kept as typed
    fragment = boss.get("/console/lists", params=bad, headers=HTMX)
    assert fragment.status_code == 200 and "<h1>" not in fragment.text
    assert "the value for Age must be a whole number" in fragment.text
    wrong = boss.get("/console/lists", params=new_list(f_field="age", f_action="contains",
                                                       f_value="3"))
    assert wrong.status_code == 400 and "valid actions: is equal to" in wrong.text


def test_every_change_needs_the_sessions_csrf_token(console: Console) -> None:
    forged = console.browser("boss", csrf=False)
    for path in ("/console/lists/views", "/console/lists/audience",
                 "/console/lists/views/x/update", "/console/lists/views/x/delete",
                 "/console/lists/views/x/share"):
        answer = forged.post(path, data=new_list(name="x", all="1", users="raj"))
        assert answer.status_code == 403, path
        assert "form is out of date" in answer.text


@pytest.mark.parametrize("query", [
    "page=abc&size=-4", "focus=zzz&defined=1", "view=nope", "f_field=" + "x" * 5000,
    "f_field=payor&f_action=contains&f_value=%00", "s_field=conditions&s_dir=up",
    "col=appt_type&defined=1&focus=patient", "remove=99&defined=1", "blank=9999&add=1",
    "group=%FF%FE", "defined=1&f_field=payor|x&f_action=|&f_value=|",
])
def test_garbage_in_the_query_string_never_gives_a_500(console: Console, query: str) -> None:
    boss = console.browser("boss")
    answer = boss.get(f"/console/lists?{query}")
    assert answer.status_code < 500, answer.text
    if answer.status_code == 200:
        assert "<h1>Patient lists</h1>" in answer.text


def test_removing_a_filter_row_goes_back_to_the_lists_own_address(console: Console) -> None:
    boss = console.browser("boss")
    answer = boss.get("/console/lists", params=new_list(
        f_field=["payor", "age"], f_action=["contains", "greater than"],
        f_value=["Medicare", "70"], remove="1"))
    assert answer.status_code == 303
    assert "remove" not in answer.headers["location"]
    page = boss.get(answer.headers["location"])
    assert picks(page.text) == ["P4", "P1", "P5"]  # only Age > 70 left (86, 76, 71)


def test_the_list_downloads_as_csv(console: Console) -> None:
    boss = console.browser("boss")
    answer = boss.get("/console/lists.csv", params=new_list(
        f_field="payor", f_action="contains", f_value="Medicare;Anthem", col=["name", "payor"]))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == ["Patient ID", "Patient Name", "Payor"]
    assert [(r[0], r[2]) for r in rows[1:]] == [
        ("P4", "Medicare Advantage"), ("P1", "Medicare"), ("P2", "Anthem")]


def test_a_user_without_the_campaigns_role_is_refused_the_lists(console: Console) -> None:
    clerk = console.browser("clerk", frozenset({Role.OPT_OUTS}))
    answer = clerk.get("/console/lists")
    assert answer.status_code == 403
    assert "pick" not in answer.text
    assert clerk.get("/console/lists.csv").status_code == 403
    assert send(clerk, all="1", channel="text").status_code == 403
