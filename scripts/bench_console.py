"""Benchmark: the console's Patient Management page next to the list query under it.

Called by scripts/bench_patients after its list timings, on the same imported database
(100,000 patients on SQLite, 1,000,000 on PostgreSQL). For each list case it times, in the
same run:
- the page: GET /console/lists?... as a signed-in administrator's browser asks for it, served
  in-process by the app `outreach serve` runs (api.http.serving_app: the session check, the
  facade's scope and audit record, the query, the template) — server time, no network;
- the bare query: PatientService.list of the same ListQuery (count + first page).
It prints p50 and p95 of each, and the ratio (issue 13: the page answers in the time of the
list query under it). The page's total is checked against the query's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi.testclient import TestClient

from api.http import serving_app
from application.bootstrap import build
from application.clock import SimulatedClock
from application.logging import configure_logging
from application.settings import Settings
from domain.lists import ListQuery
from domain.lists_views import BUILT_IN_VIEWS
from scripts.bench_patients import _percentiles, _timed

ADMIN_EMAIL = "bench-admin@clinic.example"
# A throw-away benchmark database only; printed nowhere.
ADMIN_PASSWORD = "Bench-Only-Pass-2026!"
TOTAL = re.compile(r"([\d,]+)\s+(?:patients?|appointments?)\b")


def page_url(query: ListQuery) -> str:
    """The console address of `query` (api/web/lists.py's URL state): a built-in view by its
    id, any other list by its whole definition."""
    for view in BUILT_IN_VIEWS:
        if view.query == query:
            return f"/console/lists?{urlencode({'view': str(view.view_id)})}"
    params: list[tuple[str, str]] = [("defined", "1"), ("focus", query.focus.value)]
    for c in query.filters:
        params += [("f_field", c.field), ("f_action", c.action.value), ("f_value", c.value)]
    for s in query.sort:
        params += [("s_field", s.field), ("s_dir", "desc" if s.descending else "asc")]
    return f"/console/lists?{urlencode(params)}"


class ServerTime:
    """ASGI middleware: how long the app took to answer each request (the last one), from its
    first byte in to its last byte out; the test client's own thread hops are not in it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.last_ms = 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        await self.app(scope, receive, send)
        self.last_ms = (time.perf_counter() - started) * 1000


def bench_list_page(url: str, now: datetime, cases: list[tuple[str, ListQuery]],
                    repeats: int, emit: Callable[..., None]) -> None:
    configure_logging("console", "WARNING")  # a line per list would drown the figures
    o = build(Settings(database_url=url), clock=SimulatedClock(now))
    try:
        if not o.users.any_users():
            o.users.create_admin(ADMIN_EMAIL, "Bench Admin", ADMIN_PASSWORD)
        o.catch_up()
        timer = ServerTime(serving_app(o, insecure_dev_no_signatures=True))
        with TestClient(timer, raise_server_exceptions=True) as client:
            signed_in = client.post("/auth/login", json={"email": ADMIN_EMAIL,
                                                         "password": ADMIN_PASSWORD})
            if signed_in.status_code != 200:
                raise RuntimeError(f"benchmark sign-in failed: {signed_in.status_code}")
            for name, query in cases:
                address = page_url(query)

                html = ""

                def page(address: str = address) -> float:
                    nonlocal html
                    answer = client.get(address)
                    if answer.status_code != 200:
                        raise RuntimeError(f"{address}: {answer.status_code}")
                    html = answer.text
                    return timer.last_ms

                def bare(query: ListQuery = query) -> int:
                    return o.patients.list(query).total

                page()  # warm: staff open a list more than once
                page_samples = [page() for _ in range(repeats)]
                bare_samples, total = _timed(bare, repeats)
                p50, p95 = _percentiles(page_samples)
                b50, b95 = _percentiles(bare_samples)
                shown = {int(m.replace(",", "")) for m in TOTAL.findall(html)}
                note = f"total {total:,}"
                if total not in shown:
                    note += " (the page does not show this total: they differ!)"
                emit(f"list page {name}: p50", p50, "ms", baseline=b50,
                     note=f"{note}; baseline: the list query alone")
                emit(f"list page {name}: p95", p95, "ms", baseline=b95)
    finally:
        o.close()
