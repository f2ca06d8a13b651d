"""Organisation settings changed by an administrator (issue 13), server side, with the
application's own users, sessions and audit trail (tests/integration/staff_app.py):

- a change made in the console reaches a scheduler/dispatcher already running in another
  process (its own bootstrap on the same database) without a restart: a send outside the
  new text window does not happen, and a campaign planned after the change uses it;
- closed dates move a campaign's start day like a holiday;
- stored values outlast a restart and override the environment's;
- refusals are one line naming the key (API problem, console page), a non-administrator and
  a form without its CSRF token are refused, and the audit trail records the change.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.web.app import add_console
from application.bootstrap import Outreach
from application.clock import SimulatedClock
from gateways.simulator_sms import SimulatorSmsGateway
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from tests.integration.staff_app import PASSWORD, StaffApi, bearer, open_staff_api
from workers.runner import EmbeddedRunner

MODULES = ("api.web.organisation", "api.web.patients", "api.web.sign_in")
SERVED = ("api.staff.organisation",)
SETTINGS = "/console/admin/settings"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CHICAGO = ZoneInfo("America/Chicago")
BODY = "Flu shots are here. Call (555) 010-0100 to book."


class Clinic:
    """One process's application with the staff API and the console on it."""

    def __init__(self, api: StaffApi) -> None:
        self.api = api
        self.o = api.o
        api.folder.mkdir(parents=True, exist_ok=True)  # uploads and imported files
        add_console(api.app, api.staff, modules=MODULES)

    def browser(self, name: str, *, with_csrf: bool = True) -> TestClient:
        client = TestClient(self.api.app, raise_server_exceptions=False,
                            follow_redirects=False)
        answer = client.post("/console/sign-in", data={
            "email": f"{name}@example.org", "password": PASSWORD, "next": "/console/"})
        assert answer.status_code == 303, answer.text
        found = CSRF.search(client.get("/console/patients").text)
        assert found
        if with_csrf:
            client.headers["X-CSRF-Token"] = found.group(1)
        return client

    def token(self, role: str) -> dict[str, str]:
        return bearer(self.api.tokens[role])

    def audit(self, action: str) -> list[tuple[str, str, str]]:
        self.o.catch_up()
        rows = self.o.db.fetchall(
            "SELECT outcome, username, detail FROM audit_log WHERE action = ?"
            " ORDER BY position", (action,))
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


@pytest.fixture
def clinic(make_outreach: Callable[..., Outreach], tmp_path: Path) -> Clinic:
    return Clinic(open_staff_api(make_outreach(letters_dir=tmp_path / "letters"),
                                 tmp_path / "console", SERVED, real_users=True))


def numbers(n: int) -> list[str]:
    return [f"+1312555{i:04d}" for i in range(n)]


def local_hours(times: list[datetime]) -> set[int]:
    return {t.astimezone(CHICAGO).hour for t in times}


def due_times(o: Outreach, campaign_id: object) -> list[datetime]:
    o.catch_up()
    rows = o.db.fetchall("SELECT due_at FROM communications WHERE campaign_id = ?",
                         (str(campaign_id),))
    return [datetime.fromisoformat(str(r[0])) for r in rows]


# -- live: another process's change, no restart ----------------------------------------------

@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_a_text_window_changed_in_the_console_is_honoured_by_a_running_dispatcher(
        make_outreach: Callable[..., Outreach], tmp_path: Path) -> None:
    # Given the workers running in their own process (the default 11:00-20:00 window) and a
    # campaign planned under that window, its texts due from 11:00
    clock = SimulatedClock(TUESDAY_9AM)
    texts = SimulatorSmsGateway(now=clock.now)
    worker = make_outreach(clock=clock, gateway=texts, letters_dir=tmp_path / "letters")
    import_patients(worker, tmp_path, [patient_row(f"P{i}", m)
                                       for i, m in enumerate(numbers(6))])
    before = worker.campaigns.create(name="Before", body=BODY, help_number="555-0100",
                                     active=True)
    assert local_hours(due_times(worker, before)) == {11}
    runner = EmbeddedRunner(worker)
    runner.step()
    # When an administrator narrows the text window to 15:00-16:00 in the console (served
    # by another process on the same database)
    console = Clinic(open_staff_api(make_outreach(clock=clock,
                                                  letters_dir=tmp_path / "letters"),
                                    tmp_path / "console", SERVED, real_users=True))
    client = console.browser("admin")
    saved = client.post(SETTINGS, data={"section": "windows", "text_window": "15:00-16:00"})
    assert saved.status_code == 303 and saved.headers["location"].startswith(
        f"{SETTINGS}?saved=1")
    # Then the running workers, not restarted, send nothing before 15:00 or after 16:00
    runner.run_simulated(TUESDAY_9AM + timedelta(days=1))
    sent = texts.sent
    assert len(sent) == 6 and local_hours([m.at for m in sent]) == {15}
    # And a campaign planned after the change, in the workers' process, uses the new window
    after = worker.campaigns.create(name="After", body=BODY, help_number="555-0100",
                                    active=True)
    assert local_hours(due_times(worker, after)) == {15}


def test_closed_dates_move_a_start_day_like_a_holiday(clinic: Clinic) -> None:
    # Given Tuesday 24 and Wednesday 25 November 2026 made closed dates (Thursday 26 is
    # Thanksgiving, a US holiday already)
    answer = clinic.api.client.patch("/organisation/settings", headers=clinic.token("admin"),
                                     json={"values": {"closed_dates": "2026-11-24, 2026-11-25"}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["changed"] == ["closed_dates"]
    o = clinic.o
    import_patients(o, clinic.api.folder, [patient_row("P1", "+13125550001")])
    # When a campaign is created for today
    cid = o.campaigns.create(name="Closed", body=BODY, help_number="555-0100", active=True)
    # Then it starts on the next sending day, Friday, and its texts are planned then
    assert o.campaigns.get(cid).start_date == "2026-11-27"
    assert {t.astimezone(CHICAGO).date() for t in due_times(o, cid)} == {date(2026, 11, 27)}
    # And without the closed dates the same campaign would start today
    clinic.api.client.patch("/organisation/settings", headers=clinic.token("admin"),
                            json={"values": {"closed_dates": ""}})
    cid = o.campaigns.create(name="Open", body=BODY, help_number="555-0100", active=True)
    assert o.campaigns.get(cid).start_date == "2026-11-24"


def test_stored_values_override_the_environment_after_a_restart(
        make_outreach: Callable[..., Outreach], tmp_path: Path) -> None:
    first = Clinic(open_staff_api(make_outreach(campaign_size_cap=4000), tmp_path / "a",
                                  SERVED, real_users=True))
    answer = first.api.client.patch(
        "/organisation/settings", headers=first.token("admin"),
        json={"values": {"campaign_size_cap": "2500", "text_footer": "Text END to stop."}})
    assert answer.status_code == 200, answer.text
    first.o.close()
    # A new process on the same database, its environment still saying 4000
    again = make_outreach(campaign_size_cap=4000)
    assert again.settings.campaign_size_cap == 2500
    assert again.settings.text_footer == "Text END to stop."
    rows = {r.key: r for r in again.organisation.current()}
    assert rows["campaign_size_cap"].source == "changed"
    assert rows["campaign_size_cap"].by == "admin@example.org"
    assert rows["help_number"].source == "environment"


# -- refusals ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "words"), [
    ({"text_window": "25:00-26:00"}, "text_window: window '25:00-26:00' is not HH:MM-HH:MM"),
    ({"holidays": "XX"}, "holidays: no holidays known for country 'XX'"),
    ({"campaign_size_cap": "0"}, "campaign_size_cap: Input should be greater than or equal"),
    ({"closed_dates": "Christmas"}, "closed_dates: 'Christmas' is not a date"),
    ({"database_url": "sqlite:///elsewhere.db"}, "database_url: not an organisation setting"),
])
def test_a_bad_value_is_refused_whole_in_one_line_naming_its_key(
        clinic: Clinic, values: dict[str, str], words: str) -> None:
    answer = clinic.api.client.patch(
        "/organisation/settings", headers=clinic.token("admin"),
        json={"values": {"text_footer": "Changed too?", **values}})
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert detail.startswith(words) and "\n" not in detail
    # Nothing of the request was saved
    assert clinic.o.settings.text_footer == "Reply STOP to opt out."
    assert clinic.audit("settings.change")[-1][0] == "failed"


def test_the_console_keeps_what_was_typed_and_says_why_in_one_line(clinic: Clinic) -> None:
    client = clinic.browser("admin")
    answer = client.post(SETTINGS, data={"section": "caps", "rate_cap_per_hour": "500",
                                         "campaign_size_cap": "0"})
    assert answer.status_code == 400
    assert "campaign_size_cap: Input should be greater than or equal to 1" in answer.text
    assert 'value="0"' in answer.text and 'value="500"' in answer.text
    assert clinic.o.settings.campaign_size_cap == 4000


@pytest.mark.parametrize("role", ["campaigns", "opt_outs", "share_views", "none"])
def test_only_an_administrator_reads_or_changes_the_settings(clinic: Clinic,
                                                             role: str) -> None:
    client = clinic.api.client
    assert client.get("/organisation/settings", headers=clinic.token(role)).status_code == 403
    answer = client.patch("/organisation/settings", headers=clinic.token(role),
                          json={"values": {"campaign_size_cap": "10"}})
    assert answer.status_code == 403
    assert clinic.o.settings.campaign_size_cap == 4000
    assert clinic.audit("settings.change")[-1][0] == "denied"


def test_a_campaigns_user_gets_the_refused_page_in_the_console(clinic: Clinic) -> None:
    client = clinic.browser("campaigns")
    assert client.get(SETTINGS).status_code == 403
    answer = client.post(SETTINGS, data={"section": "caps", "campaign_size_cap": "10"})
    assert answer.status_code == 403
    assert clinic.o.settings.campaign_size_cap == 4000


def test_a_form_without_its_csrf_token_changes_nothing(clinic: Clinic) -> None:
    client = clinic.browser("admin", with_csrf=False)
    answer = client.post(SETTINGS, data={"section": "texts", "text_footer": "Hijacked"})
    assert answer.status_code == 403
    assert clinic.o.settings.text_footer == "Reply STOP to opt out."


def test_the_audit_trail_names_the_keys_changed_and_who_changed_them(clinic: Clinic) -> None:
    client = clinic.browser("admin")
    answer = client.post(SETTINGS, data={"section": "texts", "organisation": "Total Healthcare",
                                         "text_footer": "Reply STOP to end.",
                                         "help_number": "(555) 010-0199"})
    assert answer.status_code == 303
    assert clinic.audit("settings.change")[-1] == (
        "allowed", "admin@example.org", "changed help_number,text_footer")
    page = client.get(SETTINGS)
    assert 'value="Reply STOP to end."' in page.text
    assert "Changed by admin@example.org" in page.text


def test_return_addresses_are_edited_as_rows(clinic: Clinic) -> None:
    client = clinic.browser("admin")
    answer = client.post(SETTINGS, data={
        "section": "addresses", "name_0": "Main", "lines_0": "Total Healthcare\n100 Main St\n"
        "Springfield, IL 62701", "name_1": "North", "lines_1": "North Clinic\n5 Elm St"})
    assert answer.status_code == 303
    assert clinic.o.settings.return_address_book == {
        "Main": ("Total Healthcare", "100 Main St", "Springfield, IL 62701"),
        "North": ("North Clinic", "5 Elm St")}
    # Emptying a name removes its address
    client.post(SETTINGS, data={"section": "addresses", "name_0": "", "lines_0": "x",
                                "name_1": "North", "lines_1": "North Clinic\n5 Elm St"})
    assert list(clinic.o.settings.return_address_book) == ["North"]


def test_an_uploaded_logo_must_be_an_image_and_becomes_a_letter_logo(clinic: Clinic) -> None:
    client = clinic.browser("admin")
    refused = client.post(f"{SETTINGS}/logo", data={"name": "main"},
                          files={"image": ("logo.png", b"\x89PNG\r\n\x1a\nnot really",
                                           "image/png")})
    assert refused.status_code == 400 and "logo: not a PNG or JPEG image" in refused.text
    assert clinic.o.settings.letter_logo_files == {}
    png = io.BytesIO()
    Image.new("RGB", (40, 20), "navy").save(png, format="PNG")
    saved = client.post(f"{SETTINGS}/logo", data={"name": "main"},
                        files={"image": ("logo.png", png.getvalue(), "image/png")})
    assert saved.status_code == 303
    path = clinic.o.settings.letter_logo_files["main"]
    assert path.is_file() and path.read_bytes() == png.getvalue()
    assert path.parent == Path(clinic.o.settings.logo_folder).resolve()


def test_a_changed_rate_cap_paces_sends_and_plans_from_then_on(clinic: Clinic) -> None:
    o = clinic.o
    assert o.limiter.per_hour == 1000
    answer = clinic.api.client.patch("/organisation/settings", headers=clinic.token("admin"),
                                     json={"values": {"rate_cap_per_hour": "2"}})
    assert answer.status_code == 200, answer.text
    # The dispatchers' limiter and the planner both use the new cap
    assert o.limiter.per_hour == 2
    import_patients(o, clinic.api.folder, [patient_row(f"P{i}", m)
                                           for i, m in enumerate(numbers(4))])
    cid = o.campaigns.create(name="Slow", body=BODY, help_number="555-0100", active=True)
    slots = sorted(due_times(o, cid))
    assert slots[-1] - slots[0] >= timedelta(minutes=59)  # 4 texts at 2 an hour
