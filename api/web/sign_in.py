"""Signing in and out of the console, the landing page, and setting a password from a reset
token. The session is the staff API's (application.users: idle timeout = automatic logoff,
a lockout after repeated failures); its cookie is HttpOnly and SameSite=Lax."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from api.staff.deps import SESSION_COOKIE, client_address, staff_of
from api.web.session import TEMPLATES, Page, checked_page, page_of
from domain.access import NotSignedIn
from domain.errors import DomainError

router = APIRouter(prefix="/console")


def _safe_next(target: str | None) -> str:
    # Only back into the console: never an open redirect to another site.
    if target and target.startswith("/console/") and not target.startswith("//"):
        return target
    return "/console/"


def _sign_in_page(request: Request, status: int = 200, *, message: str = "",
                  email: str = "", next_path: str = "/console/") -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request, "sign_in.html", {"message": message, "email": email, "next": next_path,
                                  "kind": "error" if status >= 400 else "info"},
        status_code=status)


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_form(request: Request, next: str = "/console/",  # noqa: A002
                       expired: str = "") -> HTMLResponse:
    message = "You were signed out after a time without activity. Sign in again." \
        if expired else ""
    return _sign_in_page(request, message=message, next_path=_safe_next(next))


@router.post("/sign-in", response_model=None)
async def sign_in(request: Request, email: Annotated[str, Form(max_length=320)],
                  password: Annotated[str, Form(max_length=1024)],
                  next: Annotated[str, Form(max_length=2000)] = "/console/",  # noqa: A002
                  ) -> Response:
    users = staff_of(request).users
    try:
        actor, _view = await run_in_threadpool(users.login, email, password,
                                               client_address(request))
    except NotSignedIn as exc:
        return _sign_in_page(request, 401, message=str(exc), email=email,
                             next_path=_safe_next(next))
    session = await run_in_threadpool(users.open_session, actor)
    answer = RedirectResponse(_safe_next(next), status_code=303)
    public = str(getattr(staff_of(request).auth.settings, "public_url", None) or "")
    answer.set_cookie(SESSION_COOKIE, session.id, httponly=True, samesite="lax", path="/",
                      secure=request.url.scheme == "https" or public.startswith("https://"))
    return answer


@router.post("/sign-out")
async def sign_out(page: Annotated[Page, Depends(checked_page)]) -> RedirectResponse:
    session_id = page.request.cookies.get(SESSION_COOKIE)
    await run_in_threadpool(page.staff.users.logout, page.actor, session_id)
    answer = RedirectResponse("/console/sign-in", status_code=303)
    answer.delete_cookie(SESSION_COOKIE, path="/")
    return answer


@router.get("/", response_class=HTMLResponse)
async def home(page: Annotated[Page, Depends(page_of)]) -> RedirectResponse:
    return RedirectResponse("/console/patients", status_code=303)


@router.get("/reset", response_class=HTMLResponse)
async def reset_form(request: Request, token: str = "") -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, "reset.html", {"token": token, "message": ""})


@router.post("/reset", response_class=HTMLResponse)
async def reset(request: Request, token: Annotated[str, Form(max_length=200)],
                password: Annotated[str, Form(max_length=1024)],
                again: Annotated[str, Form(max_length=1024)]) -> HTMLResponse:
    if password != again:
        return TEMPLATES.TemplateResponse(
            request, "reset.html", {"token": token, "message": "The two passwords differ."},
            status_code=400)
    try:
        await run_in_threadpool(staff_of(request).users.reset_password, token, password,
                                client_address(request))
    except DomainError as exc:
        return TEMPLATES.TemplateResponse(
            request, "reset.html", {"token": token, "message": str(exc)}, status_code=400)
    return _sign_in_page(request, message="Your password is set: sign in with it.")
