"""The console's signed-in user: the browser session of the staff API (api/staff/deps.py,
POST /auth/login), read from its cookie. A page without a valid session (never signed in,
signed out, or idle past the automatic logoff) redirects to the sign-in page; a change
(POST) must carry the session's CSRF token, as a form field or htmx's X-CSRF-Token header.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from api.staff.deps import CSRF_HEADER, SESSION_COOKIE, client_address, staff_of
from domain.access import ROLE_LABELS, AccessDenied, Actor, NotSignedIn, Permission
from domain.errors import DomainError

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
CSRF_FIELD = "csrf_token"
SIGN_IN = "/console/sign-in"
BACKGROUND_HEADER = "X-Background"


class SignInNeeded(Exception):
    """No usable session: the page answers with a redirect to the sign-in page."""

    def __init__(self, next_path: str, reason: str = "") -> None:
        super().__init__(reason)
        self.next_path = next_path
        self.reason = reason


@dataclass(frozen=True)
class Page:
    """One request's signed-in user, their session's CSRF token and the facades."""

    request: Request
    actor: Actor
    csrf: str
    staff: Any

    def can(self, permission: Permission) -> bool:
        return self.actor.can(permission)

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(
            self.request, template, {"page": self, "actor": self.actor, "csrf": self.csrf,
                                     "P": Permission, "role_labels": ROLE_LABELS, **context},
            status_code=status_code)


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def refusal(page: Page, exc: DomainError, target: str) -> Response:
    """A refused action, in the facade's own words. htmx does not swap a 4xx answer by
    default, so an htmx request gets the message as a 200 fragment aimed (HX-Retarget) at
    the page's message region; a plain form post gets the refused page (the app's handler).
    The facade has already refused and audited either way."""
    if not is_htmx(page.request):
        raise exc
    answer = page.render("_message.html", message=" ".join(str(exc).split()), kind="error")
    answer.headers["HX-Retarget"] = target
    answer.headers["HX-Reswap"] = "innerHTML"
    return answer


async def page_of(request: Request) -> Page:
    """The signed-in user of a console page (FastAPI dependency)."""
    session_id = request.cookies.get(SESSION_COOKIE)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not session_id:
        raise SignInNeeded(here)
    staff = staff_of(request)
    # A page refreshing itself (live progress, hx-headers X-Background: 1) is not the user
    # at work: it must not hold off the automatic logoff.
    slide = request.headers.get(BACKGROUND_HEADER) != "1"
    try:
        actor, session = await run_in_threadpool(staff.auth.actor_for_session, session_id,
                                                 client_address(request), slide)
    except NotSignedIn as exc:
        raise SignInNeeded(here, str(exc)) from None
    return Page(request, actor, session.csrf, staff)


async def checked_page(request: Request) -> Page:
    """A page for a change (POST): the session's CSRF token must come with it."""
    page = await page_of(request)
    given = request.headers.get(CSRF_HEADER, "")
    if not given:
        form = await request.form()
        given = str(form.get(CSRF_FIELD, ""))
    if not given or not hmac.compare_digest(given.encode(), page.csrf.encode()):
        raise AccessDenied("this form is out of date or was not sent by the console: "
                           "reload the page and try again")
    return page


def to_sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInNeeded)
    target = f"{SIGN_IN}?next={quote(exc.next_path, safe='')}"
    if exc.reason:
        target += "&expired=1"
    if request.headers.get("HX-Request"):
        # htmx follows HX-Redirect with a full page load (a 303 would be swapped in place).
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
