"""Calling every staff route about a patient with a distinctive name, phone and email leaves
none of them in any log line, nor the caller's bearer token.

Logs are captured raw (the standard library's at DEBUG, and structlog's own output on
stdout/stderr, before any redaction a deployment adds): the routes and facades must not
write these values at all, not rely on the masking of application/logging.py.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from api.staff.app import ACCESS_LOGGER
from api.staff.patients import router
from application.bootstrap import Outreach
from application.logging import configure_logging
from tests.integration.staff_app import bearer, open_staff_api, seed_patients
from tests.integration.test_role_matrix import MATRIX, PUBLIC, Scene, call, scene
from tests.patient_data import PATIENT_HEADER, patient_row

FIRST, LAST = "Xanthippe", "Quetzalcoatl"
PHONE, PHONE_DIGITS = "512-555-0177", "5125550177"
EMAIL = "xanthippe.q@example.org"
TOKEN = "tok-7f3a9c1e-do-not-log"
SECRETS = (FIRST, LAST, PHONE, PHONE_DIGITS, EMAIL, TOKEN)
__all__ = ["scene"]  # the role matrix's fixture: what the calls act on


@pytest.fixture(autouse=True)
def every_log_line() -> None:
    # As a server configures itself, at DEBUG: a test before this one may have left
    # structlog filtering at WARNING, and a line never written would prove nothing.
    configure_logging("console", "DEBUG")


def upload() -> bytes:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(PATIENT_HEADER)
    writer.writerow(patient_row("PX", FIRST, LAST, "1961-06-07", mobile=PHONE, email=EMAIL,
                                pcp="D1"))
    writer.writerow(patient_row("PY", FIRST, LAST, "bad-date", mobile=PHONE, email=EMAIL))
    return text.getvalue().encode()


def every_call() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, route, concrete path, request kwargs) for each route of the patients API
    (an empty path: the rejects download the import answered with)."""
    view_filter = [f"name|contains|{LAST}", f"mobile|is|{PHONE}"]
    return [
        ("POST", "/imports/{kind}", "/imports/patients",
         {"files": {"file": (f"{LAST}.csv", upload(), "text/csv")}}),
        ("GET", "/imports/{import_id}/rejects.csv", "", {}),
        ("GET", "/patients", "/patients", {"params": {"search": f"{LAST}, {FIRST}"}}),
        ("GET", "/patients", "/patients", {"params": {"search": PHONE}}),
        ("GET", "/patients/{patient_id}", "/patients/PX", {}),
        ("GET", "/lists", "/lists", {"params": {"filter": view_filter}}),
        ("GET", "/lists.csv", "/lists.csv", {"params": {"filter": view_filter}}),
        ("POST", "/audience", "/audience", {"json": {"channel": "email",
                                                     "filters": view_filter}}),
        ("POST", "/views", "/views", {"json": {"name": LAST, "filters": view_filter}}),
        ("GET", "/views", "/views", {}),
        ("GET", "/views/{ref}", f"/views/{LAST}", {}),
        ("PATCH", "/views/{ref}", f"/views/{LAST}", {"json": {"filters": view_filter}}),
        ("POST", "/views/{ref}/share", f"/views/{LAST}/share", {"json": {"users": [FIRST]}}),
        ("POST", "/views/{ref}/unshare", f"/views/{LAST}/unshare",
         {"json": {"users": [FIRST]}}),
        ("DELETE", "/views/{ref}", f"/views/{LAST}", {}),
        ("GET", "/views/{ref}", f"/views/{FIRST}", {}),  # a refusal quoting the name
        ("POST", "/patients/{patient_id}/opt-outs", "/patients/PX/opt-outs",
         {"json": {"type": "Global", "reason": f"{FIRST} asked", "comment": EMAIL}}),
        ("GET", "/patients/{patient_id}/opt-outs", "/patients/PX/opt-outs", {}),
        ("DELETE", "/patients/{patient_id}/opt-outs", "/patients/PX/opt-outs",
         {"params": {"type": "Global"}}),
        ("POST", "/patients/{patient_id}/opt-outs", "/patients/PX/opt-outs",  # refused
         {"json": {"type": "Global", "reason": f"{FIRST} asked", "days": 3}}),
        ("POST", "/views", "/views", {"json": {"name": LAST, "filters": FIRST}}),  # invalid
    ]


def test_no_route_logs_the_patients_details_or_the_token(
        make_outreach: Callable[..., Outreach], tmp_path: Path,
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    api = open_staff_api(make_outreach(), tmp_path)
    seed_patients(api)
    headers = bearer(api.auth.add(TOKEN, api.auth.actors[api.user("root")[
        "Authorization"].removeprefix("Bearer ")]))
    capfd.readouterr()
    called: set[tuple[str, str]] = set()
    rejects_url = ""
    with caplog.at_level(logging.DEBUG):
        for method, route, path, kwargs in every_call():
            response = api.client.request(method, path or rejects_url, headers=headers,
                                          **kwargs)
            assert response.status_code < 500, (method, route, response.text)
            if route == "/imports/{kind}":
                rejects_url = response.json()["rejects_url"]
                assert rejects_url
            called.add((method, route))
    output = capfd.readouterr()
    # httpx's lines are the test client's (the caller's side), not the server's.
    server_lines = [caplog.handler.format(r) for r in caplog.records
                    if not r.name.startswith("httpx")]
    logged = "\n".join([*server_lines, output.out, output.err])
    assert "patients.search" in logged  # the capture sees the service's own lines
    leaked = [s for s in SECRETS if s.casefold() in logged.casefold()]
    assert leaked == []
    served = {(m, r.path) for r in router.routes if isinstance(r, APIRoute)
              for m in r.methods or ()}
    assert served - called == set(), "call the new routes here too"


def test_the_access_log_leaves_out_query_strings(make_outreach: Callable[..., Outreach],
                                                  tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    open_staff_api(make_outreach(), tmp_path)  # installs the filter
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        # What uvicorn writes for each request (uvicorn.protocols.http: access_logger.info)
        logging.getLogger(ACCESS_LOGGER).info(
            '%s - "%s %s HTTP/%s" %d', "10.0.0.1:5000", "GET",
            f"/patients?search={LAST}%2C+{FIRST}", "1.1", 200)
    assert '"GET /patients HTTP/1.1" 200' in caplog.text
    assert LAST not in caplog.text


def test_no_route_of_the_whole_api_logs_a_patients_number_a_reply_or_a_token(
        scene: Scene, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str]) -> None:
    """Every route of every area (the role matrix's realistic calls, as a user with every
    role): no patient's phone number or address, no reply's words, no bearer token in the
    server's log lines."""
    api = scene.api
    token = api.tokens["setup"]
    secrets = ("5125550101", "512-555-0101", "+15125550101", "5125550102", "100 Main St",
               "Can I come Friday", token)
    with caplog.at_level(logging.DEBUG):
        calls = [*((k, v, {}) for k, v in PUBLIC.items()),
                 *((k, v, bearer(token)) for k, v in MATRIX.items())]
        for (method, route), spec, headers in calls:
            assert call(scene, method, route, spec, headers).status_code < 500, route
    output = capfd.readouterr()
    server_lines = [caplog.handler.format(r) for r in caplog.records
                    if not r.name.startswith("httpx")]
    logged = "\n".join([*server_lines, output.out, output.err])
    assert "campaign" in logged  # the capture sees the services' own lines
    assert [s for s in secrets if s.casefold() in logged.casefold()] == []
