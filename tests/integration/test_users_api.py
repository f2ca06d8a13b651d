"""The users routes over HTTP: sign-in sets a safe session cookie that needs its CSRF token
for changes, tokens for scripts, the administrator's directory, resets, and every refusal
as a problem (401 not signed in, 403 not allowed, 409 taken)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.staff.deps import CSRF_HEADER, SESSION_COOKIE
from api.staff.idempotency import IdempotencyStore
from api.staff.problems import add_problem_handlers
from api.staff.users import router
from application.bootstrap import Outreach
from application.clock import SimulatedClock
from application.staff_base import MemoryAudit
from application.staff_users import UsersFacade
from application.users import UserService
from domain.access import Role
from tests.integration.test_users_auth import ADMIN, GOOD, PAT, SECRET, CountingHash
from tests.patient_data import PROVIDER_HEADER, write_csv

ADMIN_PASSWORD = "Root-Cellar-77#"


class Api(SimpleNamespace):
    client: TestClient
    service: UserService
    audit: MemoryAudit
    clock: SimulatedClock
    outreach: Outreach


@pytest.fixture
def api(make_outreach: Callable[..., Outreach]) -> Iterator[Api]:
    o = make_outreach()
    assert isinstance(o.clock, SimulatedClock)
    service = UserService(o.store, o.db, o.clock, o.settings, SECRET, hasher=CountingHash())
    service.create_admin(ADMIN, "Ada Admin", ADMIN_PASSWORD)
    service.create(PAT, "Pat Jones", GOOD, [Role.CAMPAIGNS], ["North Clinic"], ADMIN)
    audit = MemoryAudit()
    app = FastAPI()
    add_problem_handlers(app)
    app.include_router(router)
    app.state.staff = SimpleNamespace(auth=service, users=UsersFacade(service, audit))
    app.state.idempotency = IdempotencyStore(o.db, o.clock.now)
    with TestClient(app) as client:
        yield Api(client=client, service=service, audit=audit, clock=o.clock, outreach=o)


def bearer(api: Api, email: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.service.issue_token(email)}"}


def test_signing_in_sets_an_httponly_lax_cookie_and_changes_need_the_csrf_token(
        api: Api) -> None:
    answer = api.client.post("/auth/login", json={"email": PAT, "password": GOOD})
    assert answer.status_code == 200, answer.text
    cookie = answer.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower() and "secure" not in cookie.lower()
    body = answer.json()
    assert body["user"]["email"] == PAT and body["user"]["roles"] == ["campaigns"]
    assert api.client.get("/me").json()["email"] == PAT  # the cookie alone reads
    refused = api.client.post("/auth/tokens", json={"name": "laptop"})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    made = api.client.post("/auth/tokens", json={"name": "laptop", "days": 7},
                           headers={CSRF_HEADER: body["csrf_token"]})
    assert made.status_code == 201
    assert ("pat.jones@example.org", "auth.login", "allowed") in [r[:3] for r in
                                                                  api.audit.records]


def test_the_cookie_is_secure_over_https(api: Api) -> None:
    with TestClient(api.client.app, base_url="https://testserver") as https:
        answer = https.post("/auth/login", json={"email": PAT, "password": GOOD})
    assert "secure" in answer.headers["set-cookie"].lower()


def test_the_cookie_is_secure_behind_a_proxy_when_the_public_url_is_https(api: Api) -> None:
    # TLS ends at the clinic's proxy, which forwards plain http: the public URL decides.
    api.service.settings = api.service.settings.model_copy(
        update={"public_url": "https://outreach.clinic.example"})
    answer = api.client.post("/auth/login", json={"email": PAT, "password": GOOD})
    assert "secure" in answer.headers["set-cookie"].lower()


def test_a_wrong_password_and_an_unknown_email_get_the_same_401_and_are_audited(
        api: Api) -> None:
    wrong = api.client.post("/auth/login", json={"email": PAT, "password": "Nope-Nope-1!"})
    unknown = api.client.post("/auth/login", json={"email": "who@example.org",
                                                   "password": "Nope-Nope-1!"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"] == "wrong email or password"
    failed = [r for r in api.audit.records if r[1] == "auth.login" and r[2] == "failed"]
    assert [r[0] for r in failed] == [PAT, "who@example.org"]
    assert all("Nope" not in str(r) for r in api.audit.records)  # no password recorded


def test_a_session_ends_when_idle_and_on_sign_out(api: Api) -> None:
    body = api.client.post("/auth/login", json={"email": PAT, "password": GOOD}).json()
    api.clock.advance_to(api.clock.now() + timedelta(minutes=16))
    assert api.client.get("/me").status_code == 401
    body = api.client.post("/auth/login", json={"email": PAT, "password": GOOD}).json()
    out = api.client.post("/auth/logout", headers={CSRF_HEADER: body["csrf_token"]})
    assert out.status_code == 204
    api.client.cookies.clear()
    assert api.client.get("/me").status_code == 401


def test_a_bearer_token_made_by_the_api_signs_in_scripts(api: Api) -> None:
    made = api.client.post("/auth/tokens", json={"name": "script", "days": 30},
                           headers=bearer(api, PAT)).json()
    me = api.client.get("/me", headers={"Authorization": f"Bearer {made['token']}"})
    assert me.status_code == 200 and me.json()["email"] == PAT
    assert api.client.get("/me", headers={"Authorization": "Bearer nonsense"}).status_code \
        == 401


def test_only_an_administrator_manages_users(api: Api) -> None:
    new = {"email": "sam@example.org", "name": "Sam Lee", "password": "Green-Finch-31!",
           "roles": ["opt_outs"], "groups": ["North Clinic"]}
    assert api.client.post("/users", json=new, headers=bearer(api, PAT)).status_code == 403
    assert api.client.get("/users", headers=bearer(api, PAT)).status_code == 403
    admin = bearer(api, ADMIN)
    made = api.client.post("/users", json=new, headers=admin)
    assert made.status_code == 201, made.text
    assert api.client.post("/users", json=new, headers=admin).status_code == 409
    page = api.client.get("/users", params={"page_size": 2}, headers=admin).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    uid = made.json()["user_id"]
    patched = api.client.patch(f"/users/{uid}", json={"roles": ["campaigns"], "active": False},
                               headers=admin)
    assert patched.json()["roles"] == ["campaigns"] and patched.json()["active"] is False
    assert api.client.get("/users/sam@example.org", headers=admin).json()["user_id"] == uid
    assert api.client.get("/users/nobody@example.org", headers=admin).status_code == 404


def test_a_weak_password_is_a_400_problem_with_every_reason(api: Api) -> None:
    new = {"email": "sam@example.org", "name": "Sam", "password": "password"}
    answer = api.client.post("/users", json=new, headers=bearer(api, ADMIN))
    assert answer.status_code == 400
    assert "upper-case" in answer.json()["detail"] and "common" in answer.json()["detail"]


def test_an_administrator_resets_a_password_with_a_one_time_token(api: Api) -> None:
    admin = bearer(api, ADMIN)
    made = api.client.post(f"/users/{PAT}/reset-token", headers=admin).json()
    reset = {"token": made["token"], "new_password": "Reset-Heron-44!"}
    assert api.client.post("/auth/reset", json=reset).status_code == 204
    assert api.client.post("/auth/reset", json=reset).status_code == 400
    assert api.client.post("/auth/login", json={"email": PAT, "password": "Reset-Heron-44!"}
                           ).status_code == 200


def test_own_password_change_and_revocation_end_older_tokens(api: Api) -> None:
    old = bearer(api, PAT)
    changed = api.client.post("/me/password", json={"current": GOOD, "new": "Other-Heron-43!"},
                              headers=old)
    assert changed.status_code == 204
    assert api.client.get("/me", headers=old).status_code == 401
    fresh = bearer(api, PAT)
    admin = bearer(api, ADMIN)
    assert api.client.post(f"/users/{PAT}/revoke-tokens", headers=admin).status_code == 204
    assert api.client.get("/me", headers=fresh).status_code == 401
    assert api.client.post(f"/users/{PAT}/password", json={"password": "Admin-Set-55!"},
                           headers=admin).status_code == 204


def test_a_service_account_gets_a_token_and_groups_are_listed(api: Api,
                                                               tmp_path: Path) -> None:
    providers = write_csv(tmp_path / "providers.csv", PROVIDER_HEADER, [
        ["D1", "Dr. Adams", "North Clinic", "Yes"], ["D2", "Dr. Baker", "South Clinic", "Yes"],
        ["D3", "Dr. Cole", "north clinic", "No"]])
    api.outreach.patients.import_file("providers", providers)
    made = api.client.post("/service-accounts", json={"name": "nightly export",
                                                      "roles": ["campaigns"]},
                           headers=bearer(api, ADMIN))
    assert made.status_code == 201
    token = made.json()["token"]
    me = api.client.get("/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["kind"] == "service" and me["email"] == "svc-nightly-export@service.local"
    groups = api.client.get("/groups", headers=bearer(api, PAT)).json()["groups"]
    assert groups == ["All Subscribers", "North Clinic", "South Clinic"]
