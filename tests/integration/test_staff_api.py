"""The staff API's conventions, as a script or a browser meets them: refusals are RFC 9457
problem details (never a traceback, never a bare 500), a retried create with its
Idempotency-Key creates nothing twice, and the API describes itself at /openapi.json."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from api.staff.app import add_staff_routes
from api.staff.idempotency import KEEP_FOR, IdempotencyStore
from application.bootstrap import Outreach
from application.clock import SimulatedClock
from domain.access import Actor
from projections.db import open_database
from tests.fixtures_app import TUESDAY_9AM
from tests.integration.staff_app import StaffApi, bearer, open_staff_api, seed_patients

PROBLEM = "application/problem+json"


@pytest.fixture
def api(make_outreach: Callable[..., Outreach], tmp_path: Path) -> StaffApi:
    opened = open_staff_api(make_outreach(), tmp_path)
    seed_patients(opened)
    return opened


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    assert body["status"] == status
    assert "Traceback" not in body["detail"]
    return body


def test_a_request_without_credentials_is_a_401_problem_asking_for_a_bearer_token(
        api: StaffApi) -> None:
    response = api.client.get("/views")
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert body["instance"] == "/views"
    assert_problem(api.client.get("/views", headers=bearer("forged")), 401)


def test_a_missing_role_is_a_403_problem_naming_the_role_needed(api: StaffApi) -> None:
    body = assert_problem(api.client.get("/views", headers=bearer(api.tokens["opt_outs"])), 403)
    assert "Campaigns" in body["detail"]
    assert ("opt_outs", "views.list", "denied") in [r[:3] for r in api.audit.records]


def test_unknown_routes_and_methods_are_problems_too(api: StaffApi) -> None:
    admin = api.user("root")
    assert_problem(api.client.get("/no-such-thing", headers=admin), 404)
    assert_problem(api.client.put("/views", headers=admin), 405)


def test_unusable_input_is_a_422_problem_listing_the_fields_without_their_values(
        api: StaffApi) -> None:
    secret_name = "Zebulon-Quixote"
    response = api.client.post("/views", headers=api.user("root"),
                               json={"name": "", "filters": secret_name})
    body = assert_problem(response, 422)
    fields = {tuple(e["loc"]) for e in body["errors"]}
    assert ("body", "name") in fields and ("body", "filters") in fields
    assert secret_name not in response.text


def test_a_refused_command_is_its_one_line_reason(api: StaffApi) -> None:
    admin = api.user("root")
    body = assert_problem(api.client.get("/views/nope", headers=admin), 404)
    assert body["detail"].startswith("no view 'nope'")
    assert body["code"] == "not_found"
    assert api.client.post("/views", headers=admin, json={"name": "Mine"}).status_code == 201
    taken = assert_problem(api.client.post("/views", headers=admin, json={"name": "mine"}), 409)
    assert "already have a view" in taken["detail"]


def test_a_database_outage_is_a_503_and_a_bug_a_500_without_details(
        api: StaffApi, caplog: pytest.LogCaptureFixture) -> None:
    @api.app.get("/test-outage")
    async def outage() -> None:
        raise psycopg.OperationalError("connection refused to 10.0.0.9 for Ann Lee")

    @api.app.get("/test-bug")
    async def bug() -> None:
        raise ZeroDivisionError("patient Ann Lee divided by zero")

    strict = TestClient(api.app)  # raises whatever the app lets escape to the server
    assert_problem(strict.get("/test-outage"), 503)
    with caplog.at_level(logging.DEBUG):
        body = assert_problem(strict.get("/test-bug"), 500)
    assert "Ann Lee" not in body["detail"] and "Ann Lee" not in caplog.text
    assert "ZeroDivisionError" in caplog.text


def test_a_retried_create_with_its_idempotency_key_returns_the_first_answer(
        api: StaffApi) -> None:
    admin = {**api.user("root"), "Idempotency-Key": "k-1"}
    first = api.client.post("/views", headers=admin, json={"name": "Due", "filters": [
        "status|is|Active"]})
    again = api.client.post("/views", headers=admin, json={"name": "Due", "filters": [
        "status|is|Active"]})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers.get("idempotent-replayed") == "true"
    names = [v["name"] for v in api.client.get("/views", headers=admin).json()["items"]]
    assert names.count("Due") == 1


def test_the_same_key_with_another_body_is_refused(api: StaffApi) -> None:
    admin = {**api.user("root"), "Idempotency-Key": "k-2"}
    assert api.client.post("/views", headers=admin, json={"name": "A"}).status_code == 201
    body = assert_problem(api.client.post("/views", headers=admin, json={"name": "B"}), 422)
    assert "Idempotency-Key" in body["detail"]


def test_keys_belong_to_their_user_and_a_refusal_frees_the_key(api: StaffApi) -> None:
    one = {**api.user("one"), "Idempotency-Key": "shared"}
    two = {**api.user("two"), "Idempotency-Key": "shared"}
    assert api.client.post("/views", headers=one, json={"name": "A"}).status_code == 201
    assert api.client.post("/views", headers=two, json={"name": "A"}).status_code == 201
    bad = {**api.user("three"), "Idempotency-Key": "k-3"}
    assert_problem(api.client.post("/views", headers=bad, json={
        "name": "X", "filters": ["nosuchfield|is|1"]}), 400)
    fixed = api.client.post("/views", headers=bad, json={"name": "X"})
    assert fixed.status_code == 201


def test_keys_are_forgotten_after_24_hours(api: StaffApi) -> None:
    admin = {**api.user("root"), "Idempotency-Key": "k-4"}
    assert api.client.post("/views", headers=admin, json={"name": "A"}).status_code == 201
    clock: Any = api.o.clock
    clock.advance_to(clock.now() + timedelta(hours=24, seconds=1))
    # Forgotten: the request runs again, and the name is now taken.
    assert_problem(api.client.post("/views", headers=admin, json={"name": "A"}), 409)


def test_the_api_describes_itself_offline(api: StaffApi) -> None:
    schema = api.client.get("/openapi.json").json()
    assert schema["info"]["title"] == "outreach staff API"
    schemes = schema["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} >= {"http", "apiKey"}
    for path in schema["paths"].values():
        for operation in path.values():
            assert PROBLEM in operation["responses"]["403"]["content"]
    docs = api.client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    assert "cdn" not in docs.text.lower()


def test_the_staff_routes_mount_onto_another_app(api: StaffApi) -> None:
    host = FastAPI()

    @host.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    add_staff_routes(host, api.staff, now=api.o.clock.now)
    client = TestClient(host)
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/views", headers=api.user("root")).status_code == 200


@settings(max_examples=40, deadline=None)
@given(delay=st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=48)),
       key=st.text(min_size=1, max_size=40))
def test_a_key_answers_for_exactly_24_hours(tmp_path_factory: pytest.TempPathFactory,
                                            delay: timedelta, key: str) -> None:
    db = open_database(f"sqlite:///{tmp_path_factory.mktemp('keys')}/keys.db")
    clock = SimulatedClock(TUESDAY_9AM)
    store = IdempotencyStore(db, clock.now)
    actor = Actor("u1", "ann")
    try:
        assert store.claim(actor, key, "POST", "/views", "sha") is None
        store.remember(actor, key, 201, '{"id": "v1"}')
        clock.advance_to(TUESDAY_9AM + delay)
        replay = store.claim(actor, key, "POST", "/views", "sha")
        if delay <= KEEP_FOR:
            assert replay == (201, '{"id": "v1"}')
        else:
            assert replay is None  # forgotten: the request runs again
    finally:
        db.close()
