"""The audit trail on both databases: what the staff facades record is listed by user, by
patient, by action and by time; refusals and failures are on it too; the retention export
is formula-safe and complete; reading the trail is itself recorded."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.staff import audit as audit_routes
from api.staff.problems import add_problem_handlers
from application.audit import EXPORT_BATCH, AuditTrail
from application.bootstrap import Outreach
from application.clock import SimulatedClock
from application.staff_audit import AuditFacade
from application.staff_base import Guarded
from domain.access import (
    ALL_SUBSCRIBERS,
    AccessDenied,
    Actor,
    NotSignedIn,
    Permission,
    Role,
)
from domain.audit import InvalidAuditQuery
from domain.errors import DomainError
from projections import runner as follower
from tests.fixtures_app import TUESDAY_9AM

ADMIN = Actor(user_id="u-admin", username="ada", roles=frozenset({Role.ADMIN}),
              groups=(ALL_SUBSCRIBERS,), source="10.0.0.1", via="token")
MAYA = Actor(user_id="u-maya", username="maya", roles=frozenset({Role.CAMPAIGNS}),
             groups=("North",), source="10.0.0.2", via="session")
NOBODY = Actor(user_id="u-nobody", username="ned", source="10.0.0.3", via="token")


class Clinic(Guarded):
    """A staff facade as the areas write them (application/staff_base.py)."""

    def search(self, actor: Actor, text: str, found: list[str]) -> list[str]:
        with self.audited(actor, Permission.PATIENTS_READ, "patients.search",
                          target=f"search {text!r}") as note:
            note.patient_ids = found
        return found

    def activate(self, actor: Actor, campaign_id: str, refuse: str = "") -> None:
        with self.audited(actor, Permission.CAMPAIGNS_SEND, "campaign.activate",
                          target=campaign_id):
            if refuse:
                raise DomainError(refuse)


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(TUESDAY_9AM)


@pytest.fixture
def outreach(make_outreach: Callable[..., Outreach], clock: SimulatedClock) -> Outreach:
    return make_outreach(clock=clock)


@pytest.fixture
def trail(outreach: Outreach) -> AuditTrail:
    return AuditTrail(outreach.store, outreach.db, outreach.clock)


def test_what_a_facade_records_is_listed_by_user_patient_action_and_time(
        trail: AuditTrail, clock: SimulatedClock) -> None:
    clinic = Clinic(trail)
    clinic.search(MAYA, "lee", ["P1", "P2"])
    clock.advance_to(TUESDAY_9AM + timedelta(hours=1))
    clinic.activate(MAYA, "c-1")
    clock.advance_to(TUESDAY_9AM + timedelta(hours=2))
    clinic.search(ADMIN, "ray", ["P2", "P3"])

    everything = trail.query()
    assert everything.total == 3
    assert [r.action for r in everything.rows] == [  # newest first
        "patients.search", "campaign.activate", "patients.search"]
    newest = everything.rows[0]
    assert (newest.username, newest.user_id, newest.roles, newest.via, newest.source,
            newest.outcome, newest.patient_ids, newest.patient_count) == (
        "ada", "u-admin", "admin", "token", "10.0.0.1", "allowed", ("P2", "P3"), 2)
    assert newest.at == TUESDAY_9AM + timedelta(hours=2)

    assert [r.target for r in trail.query(user="maya").rows] == ["c-1", "search 'lee'"]
    assert trail.query(user="u-maya").total == 2  # by id as well as by name
    assert [r.username for r in trail.query(patient="P2").rows] == ["ada", "maya"]
    assert [r.target for r in trail.query(patient="P1").rows] == ["search 'lee'"]
    assert [r.action for r in trail.query(action="campaign.").rows] == ["campaign.activate"]
    assert trail.query(action="campaign").total == 1  # "campaign" means campaign.*
    assert trail.query(action="campaign*").total == 1
    assert trail.query(action="patients.search").total == 2
    assert trail.query(action="patients.sea").total == 0  # exact unless a prefix is asked
    window = trail.query(since=TUESDAY_9AM + timedelta(minutes=30),
                         until=TUESDAY_9AM + timedelta(hours=2))
    assert [r.action for r in window.rows] == ["campaign.activate"]  # until is exclusive
    assert trail.query(since="2026-11-24T16:00Z").total == 2  # ISO text works too


def test_refusals_and_failures_are_on_the_trail_with_their_reason(trail: AuditTrail) -> None:
    clinic = Clinic(trail)
    with pytest.raises(AccessDenied):
        clinic.activate(NOBODY, "c-9")
    with pytest.raises(DomainError):
        clinic.activate(MAYA, "c-9", refuse="the campaign has no patients")
    denied = trail.query(outcome="denied").rows
    assert [(r.username, r.target) for r in denied] == [("ned", "c-9")]
    assert "Campaigns role" in denied[0].detail
    failed = trail.query(outcome="failed").rows
    assert [(r.username, r.detail) for r in failed] == [("maya", "the campaign has no patients")]


def test_twelve_hundred_patients_keep_the_first_thousand_and_the_true_count(
        trail: AuditTrail) -> None:
    ids = [f"P{i:04d}" for i in range(1200)]
    Clinic(trail).search(ADMIN, "everyone", ids)
    row = trail.query().rows[0]
    assert row.patient_ids == tuple(ids[:1000]) and row.patient_count == 1200
    assert trail.query(patient="P0999").total == 1
    # Beyond the first thousand, a patient is counted, not named (domain/audit.py).
    assert trail.query(patient="P1000").total == 0


def test_the_csv_export_is_formula_safe(trail: AuditTrail) -> None:
    evil = Actor(user_id="u-evil", username='=HYPERLINK("http://x","y")',
                 roles=frozenset({Role.CAMPAIGNS}), source="@10.0.0.9")
    Clinic(trail).search(evil, "x", ["+P1", "P2"])
    trail.record(evil, "campaign.activate", target="-2+3", detail="=1+1\nsecond line")
    out = io.StringIO()
    assert trail.export_csv(out) == 2
    header, first, second = list(csv.reader(io.StringIO(out.getvalue())))
    row = dict(zip(header, first, strict=True))
    assert row["Username"] == "'" + evil.username
    assert row["Source"] == "'@10.0.0.9"
    assert row["Patient IDs"] == "'+P1;P2" and row["Patient Count"] == "2"
    later = dict(zip(header, second, strict=True))
    assert later["Target"] == "'-2+3" and later["Detail"] == "'=1+1 second line"


def test_the_export_reads_page_by_page_and_writes_every_entry_once_oldest_first(
        trail: AuditTrail, clock: SimulatedClock) -> None:
    total = EXPORT_BATCH * 2 + 7
    for i in range(total):
        if i % 50 == 0:  # many entries share an instant: the position breaks the tie
            clock.advance_to(clock.now() + timedelta(seconds=1))
        trail.record(ADMIN, "patients.summary", patient_ids=[f"P{i}"], target=str(i))
    out = io.StringIO()
    assert trail.export_jsonl(out) == total
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [int(line["target"]) for line in lines] == list(range(total))
    assert lines[0]["patient_ids"] == ["P0"] and lines[0]["at"].endswith("Z")
    csv_out = io.StringIO()
    assert trail.export_csv(csv_out, patient="P5") == 1


def test_only_an_administrator_reads_the_trail_and_each_read_is_recorded(
        trail: AuditTrail) -> None:
    facade = AuditFacade(trail)
    Clinic(trail).search(MAYA, "lee", ["P1"])
    with pytest.raises(AccessDenied):
        facade.query(MAYA)
    page = facade.query(ADMIN, patient="P1", page_size=10)
    assert [r.action for r in page.rows] == ["patients.search"]
    reads = trail.query(action="audit.").rows
    assert [(r.username, r.outcome) for r in reads] == [("ada", "allowed"), ("maya", "denied")]
    assert reads[0].target == "patient=P1" and reads[0].patient_ids == ("P1",)
    assert facade.export(ADMIN, io.StringIO(), format="jsonl") == 3
    assert trail.query(action="audit.export").rows[0].detail == "jsonl export of 3 entries"


def test_a_bad_filter_is_refused_in_one_line_and_recorded_as_failed(
        trail: AuditTrail) -> None:
    facade = AuditFacade(trail)
    bads: list[dict[str, Any]] = [{"since": "last tuesday"}, {"outcome": "maybe"},
                                  {"since": "2026-11-25", "until": "2026-11-24"}]
    for bad in bads:
        with pytest.raises(InvalidAuditQuery) as refused:
            facade.query(ADMIN, **bad)
        assert "\n" not in str(refused.value)
    with pytest.raises(InvalidAuditQuery):
        facade.export(ADMIN, io.StringIO(), format="xlsx")
    assert trail.query(action="audit.", outcome="failed").total == 4


def test_pages_past_the_end_are_empty_and_the_total_stays(trail: AuditTrail) -> None:
    for i in range(5):
        trail.record(ADMIN, "auth.login", target=str(i))
    page = trail.query(page=2, page_size=2)
    assert ([r.target for r in page.rows], page.total, page.page) == (["2", "1"], 5, 2)
    assert trail.query(page=9, page_size=2).rows == []


def test_a_rebuilt_read_model_lists_the_same_entries(trail: AuditTrail) -> None:
    Clinic(trail).search(MAYA, "lee", ["P1", "P2"])
    trail.record(ADMIN, "auth.login")
    before = trail.query().rows
    follower.rebuild(trail.store, trail.db, trail.projections)
    assert trail.query().rows == before


# -- over HTTP (api/staff/audit.py), on an app with just this router ------------------------
class TokenBook:
    """The sign-in side of the staff container, in memory: token → actor."""

    def __init__(self, **actors: Actor) -> None:
        self.actors = actors

    def actor_for_token(self, token: str, source: str) -> Actor:
        if token not in self.actors:
            raise NotSignedIn("that token is not valid")
        return dataclasses.replace(self.actors[token], source=source)


@pytest.fixture
def client(trail: AuditTrail) -> TestClient:
    app = FastAPI()
    app.state.staff = SimpleNamespace(auth=TokenBook(admin=ADMIN, maya=MAYA),
                                      audit=AuditFacade(trail))
    app.include_router(audit_routes.router)
    add_problem_handlers(app)
    return TestClient(app, raise_server_exceptions=False)


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_administrator_pages_through_the_trail_over_http(
        client: TestClient, trail: AuditTrail) -> None:
    clinic = Clinic(trail)
    for i in range(3):
        clinic.search(MAYA, f"q{i}", [f"P{i}"])
    answer = client.get("/audit", params={"user": "maya", "page_size": 2, "page": 2},
                        headers=_as("admin"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["total"], body["page"], body["page_size"]) == (3, 2, 2)
    assert [(e["target"], e["patient_ids"]) for e in body["items"]] == [("search 'q0'", ["P0"])]
    read = trail.query(action="audit.read").rows[0]
    assert (read.username, read.via, read.source, read.target) == (
        "ada", "token", "testclient", "user=maya")


def test_the_csv_download_is_an_attachment_and_formula_safe(
        client: TestClient, trail: AuditTrail) -> None:
    trail.record(MAYA, "campaign.create", target="=cmd|' /C calc'!A0")
    answer = client.get("/audit.csv", params={"action": "campaign."}, headers=_as("admin"))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"].startswith("attachment")
    header, row = list(csv.reader(io.StringIO(answer.text)))
    assert dict(zip(header, row, strict=True))["Target"] == "'=cmd|' /C calc'!A0"
    assert trail.query(action="audit.export").rows[0].detail == "csv export of 1 entries"


def test_refusals_over_http_are_problems_and_on_the_trail(
        client: TestClient, trail: AuditTrail) -> None:
    denied = client.get("/audit", headers=_as("maya"))
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith("application/problem+json")
    assert client.get("/audit.csv", headers=_as("maya")).status_code == 403
    assert client.get("/audit").status_code == 401
    bad = client.get("/audit", params={"since": "soon"}, headers=_as("admin"))
    assert bad.status_code == 400 and bad.json()["detail"].startswith("since 'soon'")
    assert client.get("/audit.csv", params={"until": "x"}, headers=_as("admin")).status_code == 400
    assert [(r.username, r.outcome) for r in trail.query(action="audit.").rows] == [
        ("ada", "failed"), ("ada", "failed"), ("maya", "denied"), ("maya", "denied")]
