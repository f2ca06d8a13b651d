"""Who may call what: every route of the assembled staff API × every role, from a table
kept here. A denied call is a 403 problem; an allowed one is never a 401, 403 or 5xx (it
may be a 404 or 409: the matrix asks about roles, not about data). A route without a row
fails the test: a new route must say who may call it.

The application is the real one (bootstrap.build: its users, audit trail, campaigns,
letters, replies inbox and follow-ups), the users real (created with a password, then a
bearer token issued), each in "All Subscribers", so groups never decide;
test_staff_patients.py and test_replies_inbox.py cover groups. The table is written out,
not derived from domain.access.GRANTED_BY: changing who a permission is granted to must
fail here until the table says so too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from api.staff.app import ROUTER_MODULES
from application.bootstrap import Outreach
from domain.inbound import InboundText
from domain.lists import ListQuery
from domain.replies import inbound_message_id
from tests.fixtures_app import TUESDAY_9AM
from tests.integration.staff_app import (
    PASSWORD,
    ROLE_SETS,
    StaffApi,
    bearer,
    open_staff_api,
    seed_patients,
)
from tests.patient_data import patient_row

ALL = frozenset(ROLE_SETS)
CAMPAIGNS = frozenset({"campaigns"})
ADMIN = frozenset({"admin"})
OPT_OUTS = frozenset({"opt_outs"})
SHARE_VIEWS = frozenset({"share_views"})
#: Served beside the staff API but not part of it (api/http.py's, and the documents).
EXCLUDED = {"/openapi.json", "/docs", "/healthz", "/readyz", "/metrics"}


@dataclass(frozen=True)
class Call:
    allowed: frozenset[str]  # the ROLE_SETS names that may call it
    # The concrete path (default: the route's own); {text}, {letter}, {file}, {reply} and
    # {target} are filled in with what `Scene` made for the calls to act on.
    path: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    files: dict[str, Any] | None = None


PATIENTS_CSV = b"Patient ID,First Name,Last Name,DOB\nP9,Di,Lee,1970-01-01\n"
OPT_OUT = {"type": "All Text", "reason": "Patient request", "days": 5}
BODY = "Flu shots are here. Call (555) 010-0100 to book."
HELP = "+15550100100"
# Starting next week: it can be activated, then inactivated again, before it sends.
TEXT_CAMPAIGN = {"name": "Flu", "body": BODY, "help_number": HELP, "patients": ["P1", "P2"],
                 "start_date": (TUESDAY_9AM + timedelta(days=7)).date().isoformat()}
NEW_PASSWORD = "Another long Passphrase 5 staff!"
ADMIN_SETS = "A third long Passphrase 6 staff!"  # not NEW_PASSWORD: no reuse of the last 5
TARGET = "target@example.org"  # the user the administrator's calls act on (never the caller)

# The order is the order of the calls: each role's user makes them all, one after another,
# so a campaign is edited before it is activated, and the calls that change the caller
# (logging out, then a new password, which ends their tokens) come last.
MATRIX: dict[tuple[str, str], Call] = {
    # -- patients, lists, views, imports, opt-outs (api.staff.patients)
    ("GET", "/patients"): Call(ALL, params={"search": "Lee"}),
    ("GET", "/patients/{patient_id}"): Call(ALL, "/patients/P1"),
    ("GET", "/lists"): Call(CAMPAIGNS),
    ("GET", "/lists.csv"): Call(CAMPAIGNS),
    ("POST", "/audience"): Call(CAMPAIGNS, json={"channel": "text"}),
    ("GET", "/views"): Call(CAMPAIGNS),
    ("POST", "/views"): Call(CAMPAIGNS, json={"name": "Matrix"}),
    ("GET", "/views/{ref}"): Call(CAMPAIGNS, "/views/Matrix"),
    ("PATCH", "/views/{ref}"): Call(CAMPAIGNS, "/views/Matrix", json={"rename": "Matrix 2"}),
    ("DELETE", "/views/{ref}"): Call(CAMPAIGNS, "/views/Matrix 2"),
    ("POST", "/views/{ref}/share"): Call(SHARE_VIEWS, "/views/Mine/share",
                                         json={"users": ["bob"]}),
    ("POST", "/views/{ref}/unshare"): Call(SHARE_VIEWS, "/views/Mine/unshare",
                                           json={"users": ["bob"]}),
    ("POST", "/imports/{kind}"): Call(ADMIN, "/imports/patients",
                                      files={"file": ("p.csv", PATIENTS_CSV, "text/csv")}),
    ("GET", "/imports/{import_id}/rejects.csv"): Call(
        ADMIN, "/imports/00000000-0000-0000-0000-000000000000/rejects.csv"),
    ("GET", "/patients/{patient_id}/opt-outs"): Call(ALL, "/patients/P1/opt-outs"),
    ("POST", "/patients/{patient_id}/opt-outs"): Call(OPT_OUTS, "/patients/P1/opt-outs",
                                                      json=OPT_OUT),
    ("DELETE", "/patients/{patient_id}/opt-outs"): Call(
        OPT_OUTS, "/patients/P2/opt-outs", params={"type": "All Text"}),
    # -- campaigns, their reports, letters and the templates (api.staff.campaigns)
    ("GET", "/campaigns"): Call(CAMPAIGNS),
    ("POST", "/campaigns"): Call(CAMPAIGNS, json={**TEXT_CAMPAIGN, "name": "Matrix"}),
    ("GET", "/campaigns/{campaign_id}"): Call(CAMPAIGNS, "/campaigns/{text}"),
    ("GET", "/campaigns/{campaign_id}/forecast"): Call(CAMPAIGNS,
                                                       "/campaigns/{text}/forecast"),
    ("PATCH", "/campaigns/{campaign_id}"): Call(CAMPAIGNS, "/campaigns/{text}",
                                                json={"description": "Edited"}),
    ("POST", "/campaigns/{campaign_id}/test-send"): Call(
        CAMPAIGNS, "/campaigns/{text}/test-send", json={"to": "+13125550199"}),
    ("POST", "/campaigns/{campaign_id}/activate"): Call(CAMPAIGNS,
                                                        "/campaigns/{text}/activate"),
    ("GET", "/campaigns/{campaign_id}/report"): Call(CAMPAIGNS, "/campaigns/{text}/report"),
    ("GET", "/campaigns/{campaign_id}/report.csv"): Call(CAMPAIGNS,
                                                         "/campaigns/{text}/report.csv"),
    ("GET", "/campaigns/{campaign_id}/attempts"): Call(CAMPAIGNS,
                                                       "/campaigns/{text}/attempts"),
    ("POST", "/campaigns/{campaign_id}/inactivate"): Call(CAMPAIGNS,
                                                          "/campaigns/{text}/inactivate"),
    ("POST", "/campaigns/{campaign_id}/stop"): Call(CAMPAIGNS, "/campaigns/{text}/stop"),
    ("GET", "/campaigns/{campaign_id}/letters"): Call(CAMPAIGNS, "/campaigns/{letter}/letters"),
    ("GET", "/campaigns/{campaign_id}/letters/{name}"): Call(
        CAMPAIGNS, "/campaigns/{letter}/letters/{file}"),
    ("POST", "/campaigns/{campaign_id}/letters"): Call(CAMPAIGNS,
                                                       "/campaigns/{letter}/letters"),
    ("GET", "/templates"): Call(CAMPAIGNS, params={"channel": "text"}),
    ("GET", "/templates/{name}"): Call(CAMPAIGNS, "/templates/Ad hoc text"),
    # -- the replies inbox (api.staff.replies)
    ("GET", "/replies"): Call(CAMPAIGNS),
    ("GET", "/replies.csv"): Call(CAMPAIGNS),
    ("GET", "/patients/{patient_id}/thread"): Call(CAMPAIGNS, "/patients/P1/thread"),
    ("POST", "/replies/{message_id}/handled"): Call(CAMPAIGNS, "/replies/{reply}/handled"),
    ("POST", "/patients/{patient_id}/follow-ups"): Call(
        CAMPAIGNS, "/patients/P1/follow-ups", json={"body": "Friday at 10 is free."}),
    # -- the audit trail (api.staff.audit)
    ("GET", "/audit"): Call(ADMIN),
    ("GET", "/audit.csv"): Call(ADMIN),
    # -- organisation settings (api.staff.organisation)
    ("GET", "/organisation/settings"): Call(ADMIN),
    ("PATCH", "/organisation/settings"): Call(
        ADMIN, json={"values": {"text_footer": "Reply STOP to end texts."}}),
    # -- the users directory (api.staff.users): another user, never the caller
    ("GET", "/groups"): Call(ALL),
    ("GET", "/users"): Call(ADMIN),
    ("POST", "/users"): Call(ADMIN, json={"email": "new@example.org", "name": "New",
                                          "password": PASSWORD, "roles": ["campaigns"],
                                          "groups": ["North"]}),
    ("GET", "/users/{user_id}"): Call(ADMIN, f"/users/{TARGET}"),
    ("PATCH", "/users/{user_id}"): Call(ADMIN, f"/users/{TARGET}", json={"name": "Tess"}),
    ("POST", "/users/{user_id}/password"): Call(ADMIN, f"/users/{TARGET}/password",
                                                json={"password": ADMIN_SETS}),
    ("POST", "/users/{user_id}/reset-token"): Call(ADMIN, f"/users/{TARGET}/reset-token"),
    ("POST", "/users/{user_id}/revoke-tokens"): Call(ADMIN,
                                                     f"/users/{TARGET}/revoke-tokens"),
    ("POST", "/service-accounts"): Call(ADMIN, json={"name": "nightly export",
                                                     "roles": ["campaigns"]}),
    # -- one's own account: every signed-in user; the caller-changing ones last
    ("GET", "/me"): Call(ALL),
    ("POST", "/auth/tokens"): Call(ALL, json={"name": "matrix", "days": 1}),
    ("POST", "/auth/logout"): Call(ALL),
    ("POST", "/me/password"): Call(ALL, json={"current": PASSWORD, "new": NEW_PASSWORD}),
}

#: The routes that need no sign-in: they must answer without a token (and never a 5xx).
#: {email} is a real user's, {reset} a real one-time reset token of the target user.
PUBLIC: dict[tuple[str, str], Call] = {
    ("POST", "/auth/login"): Call(ALL, json={"email": "{email}", "password": PASSWORD}),
    ("POST", "/auth/reset"): Call(ALL, json={"token": "{reset}",
                                             "new_password": NEW_PASSWORD}),
}


@dataclass
class Scene:
    """What the calls act on, made by a setup user with every role before the role's run."""

    api: StaffApi
    ids: dict[str, str]


def with_an_address(pid: str, first: str, mobile: str, pcp: str) -> list[str]:
    return patient_row(pid, first, "Lee", "1960-01-01", mobile=mobile, pcp=pcp,
                       address=("100 Main St", "Springfield", "IL", "62701"))


@pytest.fixture
def scene(make_outreach: Callable[..., Outreach], tmp_path: Path) -> Scene:
    o = make_outreach(letters_dir=tmp_path / "letters",
                      return_addresses="Main=Total Healthcare|200 Clinic Rd|Springfield")
    api = open_staff_api(o, tmp_path, ROUTER_MODULES, real_users=True)
    seed_patients(api, [with_an_address("P1", "Ann", "512-555-0101", "D1"),
                        with_an_address("P2", "Bob", "512-555-0102", "D1"),
                        with_an_address("P3", "Cy", "512-555-0103", "D2")])
    setup = api.user("setup")
    api.user("target", ())

    def made(method: str, path: str, **kw: Any) -> Any:
        response = api.client.request(method, path, headers=setup, **kw)
        assert response.status_code < 300, (method, path, response.text)
        return response.json()

    made("POST", "/patients/P2/opt-outs", json=OPT_OUT)  # for the DELETE to remove
    text = made("POST", "/campaigns", json=TEXT_CAMPAIGN)["campaign_id"]
    letter = made("POST", "/campaigns", json={
        "name": "Letter", "channel": "letter", "patients": ["P1"],
        "body": "<p>Closed on Friday.</p>", "active": True})["campaign_id"]
    file = made("POST", f"/campaigns/{letter}/letters")["files"][0]["name"]
    ref = "SM" + "7" * 32  # a patient's text back: a reply to mark handled
    o.inbound.on_text(InboundText(ref, "+15125550101", "+15005550006", "Can I come Friday?",
                                  o.clock.now()))
    o.catch_up()
    return Scene(api, {"text": text, "letter": letter, "file": file,
                       "reply": str(inbound_message_id(ref)), "email": "setup@example.org",
                       "reset": o.users.issue_reset(TARGET, by="setup")})


def api_routes(routes: Sequence[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every APIRoute with its full path; FastAPI (0.16x) keeps an included router as one
    entry holding the original router, so the walk goes into it."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from api_routes(inner.routes, prefix + route.include_context.prefix)
        elif isinstance(route, APIRoute):
            yield prefix + route.path, route


def routes(api: StaffApi) -> dict[tuple[str, str], str]:
    """(method, path) → the module serving it, for every staff route of the app."""
    found: dict[tuple[str, str], str] = {}
    for path, route in api_routes(api.app.routes):
        if path in EXCLUDED:
            continue
        for method in route.methods or ():
            found[(method, path)] = route.endpoint.__module__
    return found


def test_every_route_has_a_row_and_every_row_a_route(scene: Scene) -> None:
    served = routes(scene.api)
    assert {m for m in served.values()} == set(ROUTER_MODULES)  # the walk finds them all
    rows = {**MATRIX, **PUBLIC}
    assert len(rows) == len(MATRIX) + len(PUBLIC)  # no route both public and signed-in
    missing = sorted(k for k in served if k not in rows)
    assert missing == [], f"routes without a row in MATRIX or PUBLIC: {missing}"
    stale = sorted(k for k in rows if k not in served)
    assert stale == [], f"rows without a route: {stale}"


def filled(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format_map(ids)
    if isinstance(value, dict):
        return {k: filled(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [filled(v, ids) for v in value]
    return value


def call(scene: Scene, method: str, route: str, spec: Call, headers: dict[str, str]) -> Any:
    return scene.api.client.request(
        method, filled(spec.path or route, scene.ids) if spec.path else route,
        params=spec.params, json=filled(spec.json, scene.ids), files=spec.files,
        headers=headers)


@pytest.mark.parametrize("role", sorted(ROLE_SETS))
def test_each_role_may_call_exactly_its_routes(scene: Scene, role: str) -> None:
    api = scene.api
    headers = bearer(api.tokens[role])
    api.o.patients.save_view(api.usernames[role], "Mine", ListQuery())  # the role's own
    wrong: list[str] = []
    for (method, route), spec in MATRIX.items():
        response = call(scene, method, route, spec, headers)
        allowed = role in spec.allowed
        if allowed and response.status_code in (401, 403):
            wrong.append(f"{method} {route}: {response.status_code}, expected allowed")
        elif allowed and response.status_code >= 500:
            wrong.append(f"{method} {route}: {response.status_code}")
        elif not allowed and (response.status_code != 403 or not response.headers[
                "content-type"].startswith("application/problem+json")):
            wrong.append(f"{method} {route}: {response.status_code}, expected 403 problem")
    assert wrong == []


def test_no_route_answers_without_credentials(scene: Scene) -> None:
    for (method, route), spec in MATRIX.items():
        assert call(scene, method, route, spec, {}).status_code == 401, (method, route)


def test_signing_in_and_resetting_a_password_need_no_credentials(scene: Scene) -> None:
    for (method, route), spec in PUBLIC.items():
        response = call(scene, method, route, spec, {})
        assert 200 <= response.status_code < 300, (method, route, response.status_code)
    # Wrong ones are refused as problems, never a server error.
    refused = scene.api.client.post("/auth/login", json={"email": "setup@example.org",
                                                         "password": "wrong"})
    assert refused.status_code == 401
    reused = call(scene, "POST", "/auth/reset", PUBLIC[("POST", "/auth/reset")], {})
    assert 400 <= reused.status_code < 500 and reused.status_code != 403
