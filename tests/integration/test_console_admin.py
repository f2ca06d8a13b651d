"""The console's administration pages, server side, on SQLite and PostgreSQL, with the
application's own users (real passwords, sessions and audit trail): an administrator lists
users alphabetically by name, creates one (the password policy's every reason shown when
refused), edits roles and groups, deactivates and reactivates (never the last active
administrator), sets a new password, makes a one-time reset link and signs a user out
everywhere; everyone else is refused, and the refusal is recorded.

Users (tests/integration/staff_app.py): none, share_views, campaigns, opt_outs, admin
(`<name>@example.org`, the admin has only the Administrator role), all in All Subscribers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.web.app import add_console
from application.bootstrap import Outreach
from domain.access import ALL_SUBSCRIBERS
from tests.integration.staff_app import PASSWORD, StaffApi, open_staff_api, seed_patients

MODULES = ("api.web.admin", "api.web.patients", "api.web.sign_in")
USERS = "/console/admin/users"
GOOD = "Harbor-Lights-42!"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Admin:
    def __init__(self, api: StaffApi) -> None:
        self.api = api
        add_console(api.app, api.staff, modules=MODULES)

    def browser(self, name: str, password: str = PASSWORD) -> TestClient:
        """A browser signed in through the form as `<name>@example.org`."""
        client = TestClient(self.api.app, raise_server_exceptions=False,
                            follow_redirects=False)
        answer = client.post("/console/sign-in", data={
            "email": f"{name}@example.org", "password": password, "next": "/console/"})
        assert answer.status_code == 303, answer.text
        page = client.get("/console/patients")  # every user's page: it carries the token
        found = CSRF.search(page.text)
        assert found, page.text
        client.headers["X-CSRF-Token"] = found.group(1)
        return client

    def id_of(self, email: str) -> str:
        assert self.api.users is not None
        found = self.api.users.find(email)
        assert found is not None
        return found.user_id

    def audit(self, action: str) -> list[str]:
        """The outcomes recorded for an action, oldest first."""
        self.api.o.catch_up()  # the trail is a read model of the audit events
        rows = self.api.o.db.fetchall(
            "SELECT outcome FROM audit_log WHERE action = ? ORDER BY position", (action,))
        return [str(r[0]) for r in rows]


@pytest.fixture
def admin(make_outreach: Callable[..., Outreach], tmp_path: Path) -> Admin:
    api = open_staff_api(make_outreach(), tmp_path, real_users=True)
    seed_patients(api)
    return Admin(api)


def _new(email: str = "pat@example.org", password: str = GOOD, again: str | None = None,
         roles: tuple[str, ...] = ("campaigns",),
         groups: tuple[str, ...] = (ALL_SUBSCRIBERS,)) -> dict[str, object]:
    return {"email": email, "name": "Pat Jones", "password": password,
            "again": password if again is None else again, "roles": list(roles),
            "groups": list(groups)}


def test_the_user_list_is_alphabetical_by_name_with_roles_as_the_guides_labels(
        admin: Admin) -> None:
    client = admin.browser("admin")
    page = client.get(USERS)
    assert page.status_code == 200
    names = re.findall(r'<th scope="row"><a href="[^"]+">([^<]+)</a>', page.text)
    assert names == sorted(names, key=str.casefold) and "admin" in names
    assert "opt_outs@example.org" in page.text and "Opt-out management" in page.text
    assert 'href="/console/admin/users/new"' in page.text
    assert 'aria-current="page">Administration' in page.text


def test_the_create_form_offers_the_roles_with_what_they_allow_and_all_subscribers_first(
        admin: Admin) -> None:
    page = admin.browser("admin").get(f"{USERS}/new")
    assert page.status_code == 200
    assert "See the patient lists, send campaigns" in page.text
    groups = re.findall(r'name="groups" value="([^"]+)"', page.text)
    assert groups[0] == ALL_SUBSCRIBERS and {"North", "South"} <= set(groups)
    assert "not one of the last 5 passwords" in page.text


def test_an_administrator_creates_a_user_who_can_then_sign_in(admin: Admin) -> None:
    client = admin.browser("admin")
    answer = client.post(f"{USERS}/new", data=_new())
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{USERS}/{admin.id_of('pat@example.org')}?created=1"
    profile = client.get(answer.headers["location"])
    assert "The user is created." in profile.text and "pat@example.org" in profile.text
    assert admin.audit("users.create") == ["allowed"]
    pat = admin.browser("pat", GOOD)
    assert pat.get(USERS).status_code == 403  # campaigns only: no administration


def test_a_weak_password_is_refused_with_every_reason_and_the_form_kept(admin: Admin) -> None:
    answer = admin.browser("admin").post(f"{USERS}/new", data=_new(password="pat"))
    assert answer.status_code == 400
    reasons = re.findall(r"<li>([^<]+)</li>", answer.text)
    assert "it needs at least 8 characters" in reasons
    assert "it needs an upper-case letter" in reasons
    assert "it needs a number" in reasons
    assert "it needs a symbol (not a letter or number)" in reasons
    assert 'value="pat@example.org"' in answer.text  # the form is still filled in
    assert admin.api.users is not None and admin.api.users.find("pat@example.org") is None


def test_a_confirmation_that_differs_is_refused_before_anything_is_made(admin: Admin) -> None:
    answer = admin.browser("admin").post(f"{USERS}/new", data=_new(again="Other-Pass-42!"))
    assert answer.status_code == 400
    assert "the password and its confirmation differ" in answer.text
    assert admin.api.users is not None and admin.api.users.find("pat@example.org") is None


def test_a_second_user_with_the_same_email_is_refused_in_words(admin: Admin) -> None:
    answer = admin.browser("admin").post(f"{USERS}/new",
                                         data=_new(email="campaigns@example.org"))
    assert answer.status_code == 400
    assert "already exists" in answer.text


def test_an_administrator_edits_roles_groups_and_name(admin: Admin) -> None:
    client = admin.browser("admin")
    ref = admin.id_of("campaigns@example.org")
    answer = client.post(f"{USERS}/{ref}", data={
        "name": "Camp Aigner", "roles": ["campaigns", "opt_outs"], "groups": ["North"]})
    assert answer.status_code == 200 and "The profile is saved." in answer.text
    assert admin.api.users is not None
    view = admin.api.users.get(ref)
    assert (view.name, view.roles, view.groups) == ("Camp Aigner", ("campaigns", "opt_outs"),
                                                    ("North",))


def test_the_last_administrator_cannot_be_deactivated_and_is_told_why(admin: Admin) -> None:
    client = admin.browser("admin")
    ref = admin.id_of("admin@example.org")
    answer = client.post(f"{USERS}/{ref}/active", data={"active": "no"})
    assert answer.status_code == 400
    assert "is the last active administrator" in answer.text
    assert admin.api.users is not None and admin.api.users.get(ref).active
    assert admin.audit("users.update") == ["failed"]


def test_a_deactivated_user_cannot_sign_in_until_reactivated(admin: Admin) -> None:
    client = admin.browser("admin")
    ref = admin.id_of("opt_outs@example.org")
    signed_in = admin.browser("opt_outs")
    assert "deactivated" in client.post(f"{USERS}/{ref}/active", data={"active": "no"}).text
    # Their open session ends with the deactivation.
    assert signed_in.get("/console/admin/users").status_code == 303
    anonymous = TestClient(admin.api.app, follow_redirects=False)
    refused = anonymous.post("/console/sign-in", data={
        "email": "opt_outs@example.org", "password": PASSWORD})
    assert refused.status_code == 401
    assert "active again" in client.post(f"{USERS}/{ref}/active", data={"active": "yes"}).text
    admin.browser("opt_outs")


def test_an_administrator_sets_a_new_password_under_the_policy(admin: Admin) -> None:
    client = admin.browser("admin")
    ref = admin.id_of("campaigns@example.org")
    weak = client.post(f"{USERS}/{ref}/password", data={"password": "short", "again": "short"})
    assert weak.status_code == 400 and "The password is refused:" in weak.text
    done = client.post(f"{USERS}/{ref}/password", data={"password": GOOD, "again": GOOD})
    assert done.status_code == 200 and "The new password is set" in done.text
    admin.browser("campaigns", GOOD)


def test_a_reset_link_is_shown_once_with_its_expiry_and_sets_a_password(
        admin: Admin) -> None:
    client = admin.browser("admin")
    ref = admin.id_of("share_views@example.org")
    answer = client.post(f"{USERS}/{ref}/reset-link")
    assert answer.status_code == 200
    link = re.search(r'value="(http://testserver/console/reset\?token=[^"]+)"', answer.text)
    assert link and "UTC" in answer.text
    assert "reset?token=" not in client.get(f"{USERS}/{ref}").text  # not shown again
    token = link.group(1).split("token=", 1)[1]
    anonymous = TestClient(admin.api.app, follow_redirects=False)
    set_it = anonymous.post("/console/reset", data={"token": token, "password": GOOD,
                                                     "again": GOOD})
    assert set_it.status_code == 200, set_it.text
    admin.browser("share_views", GOOD)


def test_sign_out_everywhere_ends_the_users_sessions(admin: Admin) -> None:
    client = admin.browser("admin")
    elsewhere = admin.browser("campaigns")
    ref = admin.id_of("campaigns@example.org")
    answer = client.post(f"{USERS}/{ref}/sign-out-everywhere")
    assert answer.status_code == 200 and "is closed" in answer.text
    assert elsewhere.get(USERS).status_code == 303  # back to sign-in
    assert admin.audit("users.revoke_tokens") == ["allowed"]


@pytest.mark.parametrize("path", [USERS, f"{USERS}/new"])
def test_a_user_without_the_administrator_role_gets_the_refusal_page(
        admin: Admin, path: str) -> None:
    client = admin.browser("campaigns")
    page = client.get(path)
    assert page.status_code == 403
    assert "Administrator role" in page.text and "<h1>Not done</h1>" in page.text
    assert "Administration" not in client.get("/console/patients").text  # no link either


def test_forged_administration_posts_are_refused_and_recorded(admin: Admin) -> None:
    client = admin.browser("opt_outs")
    ref = admin.id_of("admin@example.org")
    assert client.post(f"{USERS}/new", data=_new()).status_code == 403
    assert client.post(f"{USERS}/new", data=_new(again="x")).status_code == 403
    assert client.post(f"{USERS}/{ref}", data={"name": "x", "roles": ["admin"]}
                       ).status_code == 403
    assert client.post(f"{USERS}/{ref}/active", data={"active": "no"}).status_code == 403
    assert client.post(f"{USERS}/{ref}/password", data={"password": GOOD, "again": GOOD}
                       ).status_code == 403
    assert client.post(f"{USERS}/{ref}/reset-link").status_code == 403
    assert client.post(f"{USERS}/{ref}/sign-out-everywhere").status_code == 403
    assert admin.audit("users.create") == ["denied", "denied"]
    assert admin.audit("users.issue_reset") == ["denied"]
    assert admin.api.users is not None and admin.api.users.find("pat@example.org") is None


def test_a_post_without_the_session_csrf_token_is_refused(admin: Admin) -> None:
    client = admin.browser("admin")
    del client.headers["X-CSRF-Token"]
    assert client.post(f"{USERS}/new", data=_new()).status_code == 403
    assert admin.api.users is not None and admin.api.users.find("pat@example.org") is None
