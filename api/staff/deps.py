"""What every staff route shares: the acting user (a bearer token, or a browser session with
its CSRF token on unsafe methods), the facades (app.state.staff), and paging parameters.

`request.app.state.staff` is an application.staff.Staff: `.auth` (application.users.
UserService: tokens, sessions, logins), and the facades `.users`, `.patients`, `.campaigns`,
`.replies`, `.audit`, each taking the Actor first.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from domain.access import AccessDenied, Actor, NotSignedIn

SESSION_COOKIE = "outreach_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_PAGE_SIZE = 1000

# auto_error=False: a missing credential is our own problem-details 401, not FastAPI's.
bearer = HTTPBearer(auto_error=False, description="A token from POST /auth/tokens or "
                    "`outreach login`")
session_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False,
                              description="The browser session from POST /auth/login")


class CsrfRefused(AccessDenied):
    """An unsafe request on a session without the session's CSRF token."""


def staff_of(request: Request) -> Any:
    return request.app.state.staff


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def current_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    session: Annotated[str | None, Depends(session_cookie)],
) -> Actor:
    staff = staff_of(request)
    source = client_address(request)
    if credentials is not None:
        if credentials.scheme.lower() != "bearer":
            raise NotSignedIn("use an Authorization: Bearer token")
        actor: Actor = await run_in_threadpool(staff.auth.actor_for_token,
                                               credentials.credentials, source)
        return actor
    if request.headers.get("authorization"):
        raise NotSignedIn("use an Authorization: Bearer token")
    if session:
        actor, opened = await run_in_threadpool(staff.auth.actor_for_session, session, source)
        if request.method not in SAFE_METHODS:
            given = request.headers.get(CSRF_HEADER, "")
            if not given or not hmac.compare_digest(given.encode(), opened.csrf.encode()):
                raise CsrfRefused(f"missing or wrong {CSRF_HEADER} for this session")
        return actor
    raise NotSignedIn("sign in first: an Authorization: Bearer token, or a session")


CurrentActor = Annotated[Actor, Depends(current_actor)]
PageNumber = Annotated[int, Query(ge=1, le=1_000_000, description="From 1")]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Rows per page")]
