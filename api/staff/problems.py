"""Every refusal of the staff API as an RFC 9457 problem (`application/problem+json`):
{type, title, status, detail, instance}, plus `code` (the kind of refusal, for scripts) and,
for unusable input, `errors` (the fields at fault).

The `detail` is the domain's one-line reason, shown to staff as it is (domain/errors.py
says those messages are written for them); never a traceback. An unexpected exception is a
500 without details, its type alone logged: the goal is that there is none.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.staff.idempotency import KeyInFlight, KeyReused
from application.import_projector import ImportProjectionError
from domain.access import AccessDenied, NotSignedIn
from domain.errors import CampaignRuleViolation, DomainError, NotFound
from domain.lists_views import ViewError
from workers.resilience import DATABASE_OUTAGE_ERRORS

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"

#: DomainError kinds that are not a 400, most specific first. Other areas add theirs with
#: `refusal_status` (e.g. a username taken → 409).
_STATUS: list[tuple[type[DomainError], int]] = [
    (NotSignedIn, 401),
    (AccessDenied, 403),
    (NotFound, 404),
    (CampaignRuleViolation, 409),
    (ViewError, 409),  # a view name taken, a built-in view changed
    (KeyReused, 422),  # an Idempotency-Key sent again with another request
    (KeyInFlight, 409),
]


def refusal_status(kind: type[DomainError], status: int) -> None:
    """Answer refusals of `kind` (and its subclasses) with `status` (e.g. 409)."""
    _STATUS.insert(0, (kind, status))


def status_of(exc: DomainError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 400


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")
    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    instance: str = ""
    code: str = ""
    errors: list[FieldError] | None = None


def _code(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def problem(request: Request, status: int, detail: str = "", *, code: str = "",
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
        "detail": detail, "instance": request.url.path,
        "code": code or _code(HTTPStatus(status).name.title().replace("_", "")),
    }
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_TYPE)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return problem(request, status, _one_line(str(exc)), code=_code(type(exc).__name__),
                   headers=headers)


def _field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    # The rejected input value is left out on purpose: it may be a patient's name or a
    # password.
    return [{"loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
             "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in errors]


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc.errors())
    where = ", ".join(".".join(str(p) for p in e["loc"]) for e in errors[:5])
    return problem(request, 422, f"invalid request: {where}" if where else "invalid request",
                   code="invalid_request", errors=errors)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else ""
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such resource: {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed here"
    return problem(request, exc.status_code, detail, headers=dict(exc.headers or {}))


async def _outage(request: Request, exc: Exception) -> JSONResponse:
    log.warning("staff API: database unavailable (%s)", type(exc).__name__)
    return problem(request, 503, "the database is unavailable: try again shortly",
                   code="database_unavailable", headers={"Retry-After": "5"})


async def _projection(request: Request, exc: Exception) -> JSONResponse:
    log.warning("staff API: import projection failed (%s)", type(exc).__name__)
    return problem(request, 503, "the import could not finish projecting its rows; the rows "
                   "recorded are kept: import the file again to add the rest",
                   code="import_projection_failed")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The type alone: a message or traceback may carry patient data.
    route = request.scope.get("route")
    log.error("staff API: unexpected %s on %s %s", type(exc).__name__, request.method,
              getattr(route, "path", "?"))
    return problem(request, 500, "an unexpected error: it has been logged",
                   code="internal_error")


class AnswerUnexpected:
    """The 500 problem for an exception no handler took, answered here so it is not
    re-raised: Starlette's last-resort handler would send our answer and then hand the
    exception (message and traceback, which may hold patient data) to the server's log."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if started:
                raise
            response = await _unexpected(Request(scope), exc)
            await response(scope, receive, send)


def add_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(ImportProjectionError, _projection)
    for kind in DATABASE_OUTAGE_ERRORS:
        app.add_exception_handler(kind, _outage)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(AnswerUnexpected)


#: What each operation may answer besides its success, for the OpenAPI document.
PROBLEM_STATUSES = (400, 401, 403, 404, 409, 422, 503)


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Every operation's refusals in the OpenAPI document as problem details (replacing
    FastAPI's own 422 shape, which these handlers never send)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/"
                                                      "{model}")
    defs = components["Problem"].pop("$defs", {})
    components.update(defs)
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    content = {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status in PROBLEM_STATUSES:
                responses[str(status)] = {"description": HTTPStatus(status).phrase,
                                          "content": content}
    return schema
