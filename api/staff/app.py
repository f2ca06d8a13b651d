"""The staff JSON API: the routers of api/staff/*, their problem details, the
Idempotency-Key store, and the OpenAPI document (/openapi.json) with a small /docs page.

`create_staff_app(staff, now=...)` is the API alone (tests, a separate process);
`add_staff_routes(app, staff)` mounts the same onto the webhook app of api/http.py, so
`outreach serve` is one process. /docs is a static page linking /openapi.json and showing
how to call the API: FastAPI's Swagger UI loads its scripts from a CDN, which a clinic's
offline server cannot reach.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

from api.staff.idempotency import IdempotencyStore
from api.staff.problems import add_problem_handlers, document_problems

log = logging.getLogger(__name__)

TITLE = "outreach staff API"
#: The route modules, each exposing `router`. Until issue 12 is integrated, a module that
#: does not import yet is left out (and logged); the lead makes them all required.
ROUTER_MODULES = ("api.staff.users", "api.staff.patients", "api.staff.campaigns",
                  "api.staff.replies", "api.staff.audit", "api.staff.organisation")
DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>outreach staff API</title></head>
<body style="font-family: sans-serif; max-width: 46em; margin: 2em auto">
<h1>outreach staff API</h1>
<p>The API's description is the OpenAPI document: <a href="/openapi.json">/openapi.json</a>
(open it in any OpenAPI viewer, or import it into an HTTP client).</p>
<p>Every call needs <code>Authorization: Bearer &lt;token&gt;</code> (from
<code>outreach login</code> or <code>POST /auth/tokens</code>), or a browser session with its
<code>X-CSRF-Token</code> header on changes. Collections take <code>page</code> and
<code>page_size</code> and answer <code>{items, total, page, page_size}</code>; refusals are
<code>application/problem+json</code>. POSTs that create accept an
<code>Idempotency-Key</code> header.</p>
<pre>curl -H "Authorization: Bearer $TOKEN" "$URL/patients?search=555-0101"</pre>
</body></html>
"""


class WithoutQueryStrings(logging.Filter):
    """Access-log lines without their query strings: `GET /patients?search=` carries a
    patient's name or phone number (uvicorn's access record: client, method, path with
    query, HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


ACCESS_LOGGER = "uvicorn.access"


def hide_query_strings() -> None:
    access = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, WithoutQueryStrings) for f in access.filters):
        access.addFilter(WithoutQueryStrings())


def api_version() -> str:
    try:
        return version("outreach")
    except PackageNotFoundError:
        return "0"


def staff_routers(modules: Sequence[str] = ROUTER_MODULES) -> list[APIRouter]:
    # Imported by name so a test of one area can serve only its own routes; a module that
    # fails to import fails the app (never a silently missing part of the API).
    return [importlib.import_module(name).router for name in modules]


def create_staff_app(staff: Any, *, now: Callable[[], datetime],
                     modules: Sequence[str] = ROUTER_MODULES) -> FastAPI:
    app = FastAPI(title=TITLE, version=api_version(), openapi_url=None, docs_url=None,
                  redoc_url=None)
    add_staff_routes(app, staff, now=now, modules=modules)
    return app


def add_staff_routes(app: FastAPI, staff: Any, *, now: Callable[[], datetime] | None = None,
                     modules: Sequence[str] = ROUTER_MODULES) -> None:
    """The staff API on `app` (the webhook app of api/http.py, or a new one); `modules`:
    the route modules to serve (tests of one area serve theirs)."""
    app.state.staff = staff
    hide_query_strings()
    db = staff.patients.patients.db
    app.state.idempotency = IdempotencyStore(db, now or staff.patients.patients.clock.now)
    for router in staff_routers(modules):
        app.include_router(router)
    add_problem_handlers(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=TITLE, version=api_version(), routes=app.routes,
                                 description="The staff JSON API of outreach (issue 12).")
            app.openapi_schema = document_problems(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(openapi())

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(DOCS_PAGE)
