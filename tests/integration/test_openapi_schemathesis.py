"""The staff API keeps the promises of its own /openapi.json: schemathesis generates
requests from the document (valid and not) and checks that no answer is a server error and
every answer is one the document describes (status, content type, schema).

A real app on SQLite with a few imported patients and real users (application.users); a
user in every role (so the calls reach the facades, not only the role check). Few examples
per operation: the whole run stays well under a minute.

Generated ids rarely name anything that exists, so most answers to routes with an id are
404s; the second test makes the role matrix's realistic calls (a campaign to edit and
activate, a letters file, a reply to mark handled, another user to manage) as a user with
every role, on both databases, and holds each answer to the same document.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.staff.app import ROUTER_MODULES
from application.bootstrap import build
from application.clock import SimulatedClock
from application.settings import Settings
from domain.lists import ListQuery
from tests.fixtures_app import TUESDAY_9AM
from tests.integration.staff_app import bearer, open_staff_api, seed_patients
from tests.integration.test_role_matrix import MATRIX, PUBLIC, Scene, call, scene

__all__ = ["scene"]  # the role matrix's fixture: what the realistic calls act on

EXAMPLES = 10  # per operation and mode
ROOT = "root"  # every role, All Subscribers: tests/integration/staff_app.py
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture
def staff_schema(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    # SQLite only: the routes and their documents are the same on both databases, and
    # the facades' SQL runs on PostgreSQL in the other staff tests.
    clock = SimulatedClock(TUESDAY_9AM)
    o = build(Settings(database_url=f"sqlite:///{tmp_path}/outreach.db"), clock=clock)
    try:
        api = open_staff_api(o, tmp_path, ROUTER_MODULES, real_users=True)
        seed_patients(api)
        api.user(ROOT)
        o.patients.save_view(api.usernames[ROOT], "Mine", ListQuery())
        yield schemathesis.openapi.from_asgi("/openapi.json", api.app), api.tokens[ROOT]
    finally:
        o.close()


def check_operation(operation: Any, mode: GenerationMode, token: str) -> str | None:
    """Run one operation's examples; the first failure's description, if any."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        case.call_and_validate(headers=bearer(token), checks=CHECKS)

    try:
        run()
    # schemathesis' FailureGroup is a BaseExceptionGroup, not an Exception.
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - reported below
        return f"{operation.label} ({mode.value}): {str(exc)[:1500]}"
    return None


# Why not `schemathesis.pytest.from_fixture`: its lazy schema reads `node._nodeid`, which
# pytest 9 no longer has; the operations are walked here instead.
def test_the_api_answers_as_its_document_says(staff_schema: tuple[Any, str]) -> None:
    schema, token = staff_schema
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failure = check_operation(operation, mode, token)
            if failure:
                failures.append(failure)
    assert failures == [], "\n\n".join(failures)


#: Realistic calls that, by the data the scene holds, are not a success.
NOT_FOUND_BY_DESIGN = {("GET", "/imports/{import_id}/rejects.csv")}  # no such import


def documented(schema: Any, method: str, route: str, response: Any) -> list[str]:
    """What is wrong with `response` by the document: undocumented status or content type,
    a body off its schema."""
    operation = schema.find_operation_by_label(f"{method} {route}")
    if operation is None:
        return [f"{method} {route}: not in the document"]
    status = response.status_code
    if operation.responses.find_by_status_code(status) is None:
        return [f"{method} {route}: status {status} is not documented"]
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    types = schema.get_content_types(operation, schemathesis.Response.from_any(response))
    if status != 204 and types and kind not in {t.split(";")[0].strip() for t in types}:
        return [f"{method} {route}: {status} as {kind!r}, documented {types}"]
    try:
        operation.validate_response(response)
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - reported below
        return [f"{method} {route}: {status} off its schema: {str(exc)[:800]}"]
    return []


def test_realistic_calls_answer_as_the_document_says(scene: Scene) -> None:
    api = scene.api
    api.o.patients.save_view(api.usernames["setup"], "Mine", ListQuery())
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    headers = bearer(api.tokens["setup"])  # every role, All Subscribers
    wrong: list[str] = []
    # The public ones first: the last calls below change the caller's password.
    calls = [*((k, v, {}) for k, v in PUBLIC.items()),
             *((k, v, headers) for k, v in MATRIX.items())]
    for (method, route), spec, given_headers in calls:
        response = call(scene, method, route, spec, given_headers)
        expected_success = (method, route) not in NOT_FOUND_BY_DESIGN
        if expected_success != (200 <= response.status_code < 300):
            wrong.append(f"{method} {route}: {response.status_code} {response.text[:200]}")
        wrong += documented(schema, method, route, response)
    assert wrong == [], "\n".join(wrong)
