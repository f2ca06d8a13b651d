"""The console on the app `outreach serve` runs: its pages under /console (not in the API's
OpenAPI document), its static files (htmx, the stylesheet) from the package, a sign-in
redirect for pages without a session, and refusals shown as a page, not as JSON."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from api.staff.problems import status_of
from api.web.session import TEMPLATES, SignInNeeded, to_sign_in
from domain.errors import DomainError

STATIC = Path(__file__).parent / "static"
CONSOLE_MODULES = ("api.web.sign_in", "api.web.patients", "api.web.lists",
                   # the editor's and forecast's /campaigns/... routes before campaigns'
                   # /campaigns/{id} ones
                   "api.web.campaign_editor", "api.web.forecast", "api.web.campaigns",
                   "api.web.admin", "api.web.organisation", "api.web.replies")
PREFIX = "/console"


def add_console(app: FastAPI, staff: Any, modules: Sequence[str] = CONSOLE_MODULES) -> None:
    """After api.staff.app.add_staff_routes (whose refusal handlers this one wraps)."""
    app.state.staff = staff
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console-static")
    for name in modules:
        app.include_router(importlib.import_module(name).router, include_in_schema=False)
    app.add_exception_handler(SignInNeeded, to_sign_in)
    app.add_middleware(_NotKept)
    as_problem = app.exception_handlers.get(DomainError)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        if request.url.path.startswith(PREFIX) or as_problem is None:
            status = status_of(exc)
            return TEMPLATES.TemplateResponse(
                request, "refused.html" if not request.headers.get("HX-Request")
                else "_message.html", {"message": " ".join(str(exc).split()),
                                        "status": status, "kind": "error"},
                status_code=status)
        answer = as_problem(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    app.add_exception_handler(DomainError, refused)

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=303)


class _NotKept:
    """Console pages show patient data: `Cache-Control: no-store` keeps them out of the
    browser's caches (and its back/forward cache), so after signing out the back button
    shows nothing. Static files (htmx, the stylesheet) stay cacheable. Plain ASGI, as
    api.http._CountResponses: webhook bodies reach their routes as streams."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not path.startswith(PREFIX) \
                or path.startswith(f"{PREFIX}/static/"):
            await self.app(scope, receive, send)
            return

        async def not_kept(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"cache-control"]
                message = {**message, "headers": [*headers, (b"cache-control", b"no-store")]}
            await send(message)

        await self.app(scope, receive, not_kept)
