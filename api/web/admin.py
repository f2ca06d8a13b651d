"""The console's administration pages (the guide's "User Management"): the user list, the
Create User form, and a user's profile: name, roles, groups, deactivate/reactivate, an
administrator's password reset, a one-time reset link, and "sign out everywhere".

Every read and change goes through the users facade (application.staff_users) with the
signed-in user: USERS_MANAGE, the audit trail and the rules (the password policy, the last
active administrator) are its business. The Administration link is hidden from other users
as a courtesy; the facade refuses them all the same (the refusal page, 403).

Plain forms, no htmx: each change answers the whole page again, with the facade's words
beside the form (400) when a rule refuses it, so nothing typed is lost but the passwords.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from api.web.session import Page, checked_page, page_of
from application.staff_users import UsersFacade
from application.users import UserView
from domain.access import ROLE_LABELS, AccessDenied, NotSignedIn, Permission, Role
from domain.errors import DomainError
from domain.passwords import HISTORY, MIN_LENGTH

router = APIRouter(prefix="/console")

MANAGE = Permission.USERS_MANAGE
USERS = "/console/admin/users"
#: What each role allows, in the guide's words (shown beside its checkbox).
ROLE_HELP: dict[Role, str] = {
    Role.SHARE_VIEWS: "Send saved page views to other users.",
    Role.CAMPAIGNS: "See the patient lists, send campaigns, see the campaign pages and "
                    "their replies.",
    Role.OPT_OUTS: "Add and remove patients' opt-outs.",
    Role.ADMIN: "Users, roles and groups; the audit trail; patient-data imports.",
}
WEAK_PREFIX = "the password is refused: "
SAME_PASSWORD = "the password and its confirmation differ"

Text = Annotated[str, Form(max_length=320)]
Secret = Annotated[str, Form(max_length=1024)]
Choices = Annotated[list[str], Form(max_length=100)]


def _facade(page: Page) -> UsersFacade:
    found: UsersFacade = page.staff.users
    return found


def _min_length(page: Page) -> int:
    # The policy's length is a setting (password_min_length); the auth service has it.
    settings = getattr(page.staff.auth, "settings", None)
    return int(getattr(settings, "password_min_length", MIN_LENGTH))


def _site(page: Page) -> str:
    """Where users reach the console: the configured public URL (behind a proxy the
    request's own address is an inside one), else the address this request came to."""
    settings = getattr(page.staff.auth, "settings", None)
    public = str(getattr(settings, "public_url", None) or "")
    return (public or str(page.request.base_url)).rstrip("/")


def policy(min_length: int) -> str:
    """The password policy as the guide states it, for the hint beside the field."""
    return (f"At least {min_length} characters, with upper- and lower-case letters, a number "
            f"and a symbol; not containing the user name; not one of the last {HISTORY} "
            "passwords; not a common or breached password.")


def reasons(message: str) -> tuple[str, list[str]]:
    """A refusal as a headline and its reasons: the policy lists every reason on one line
    ("the password is refused: a; b"), which reads better as a list."""
    text = " ".join(message.split())
    if text.startswith(WEAK_PREFIX):
        return "The password is refused:", [r.strip() for r in
                                              text[len(WEAK_PREFIX):].split(";") if r.strip()]
    return text, []


def role_label(value: str) -> str:
    try:
        return ROLE_LABELS[Role(value)]
    except ValueError:
        return value


def when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else "never"


def _roles() -> list[tuple[str, str, str]]:
    return [(r.value, ROLE_LABELS[r], ROLE_HELP[r]) for r in Role]


def _groups(known: Sequence[str], held: Iterable[str]) -> list[str]:
    """The facade's groups (All Subscribers first), then any the user holds that the
    providers file no longer names: unticking them must stay possible."""
    seen = {g.casefold() for g in known}
    return [*known, *(g for g in held if g.casefold() not in seen)]


def _refused(exc: DomainError) -> None:
    # Not a rule to explain beside the form: the refusal page (403 / 401).
    if isinstance(exc, (AccessDenied, NotSignedIn)):
        raise exc


def _form_context(page: Page, groups: Sequence[str], *, message: str = "",
                  kind: str = "info") -> dict[str, Any]:
    headline, items = reasons(message) if message else ("", [])
    return {"section": "admin", "roles": _roles(), "groups": groups,
            "policy": policy(_min_length(page)), "min_length": _min_length(page),
            "message": headline, "items": items, "kind": kind, "role_label": role_label,
            "when": when}


# -- the user list ----------------------------------------------------------------------------

@router.get("/admin/users", response_class=HTMLResponse)
async def users(page: Annotated[Page, Depends(page_of)]) -> Response:
    found = await run_in_threadpool(_facade(page).list, page.actor)
    # The guide's list is alphabetical by name (the service orders by email).
    rows = sorted(found, key=lambda v: (v.name.casefold(), v.email))
    return page.render("admin_users.html", rows=rows, section="admin",
                       role_label=role_label, when=when)


# -- create a user ----------------------------------------------------------------------------

def _new_page(page: Page, groups: Sequence[str], form: dict[str, Any], *, message: str = "",
              status_code: int = 200) -> Response:
    return page.render("admin_user_new.html", status_code=status_code, form=form,
                       **_form_context(page, groups, message=message,
                                       kind="error" if message else "info"))


@router.get("/admin/users/new", response_class=HTMLResponse)
async def new_user(page: Annotated[Page, Depends(page_of)]) -> Response:
    facade = _facade(page)
    # A form without data, but the refusal is recorded like any other.
    await run_in_threadpool(facade.check, page.actor, MANAGE, "users.create")
    groups = await run_in_threadpool(facade.groups, page.actor)
    return _new_page(page, groups, {"roles": [], "groups": []})


@router.post("/admin/users/new", response_class=HTMLResponse)
async def create_user(page: Annotated[Page, Depends(checked_page)], email: Text = "",
                      name: Text = "", password: Secret = "", again: Secret = "",
                      roles: Choices = [],  # noqa: B006 (FastAPI copies defaults)
                      groups: Choices = []) -> Response:  # noqa: B006
    facade = _facade(page)
    form = {"email": email, "name": name, "roles": roles, "groups": groups}
    known = await run_in_threadpool(facade.groups, page.actor)
    if password != again:
        # Checked here, before the facade, but only once the role is known to be there.
        await run_in_threadpool(facade.check, page.actor, MANAGE, "users.create")
        return _new_page(page, known, form, message=SAME_PASSWORD, status_code=400)
    try:
        view = await run_in_threadpool(facade.create, page.actor, email, name, password,
                                       roles, groups)
    except DomainError as exc:
        _refused(exc)
        return _new_page(page, _groups(known, groups), form, message=str(exc),
                         status_code=400)
    return RedirectResponse(f"{USERS}/{quote(view.user_id, safe='')}?created=1",
                            status_code=303)


# -- a user's profile -------------------------------------------------------------------------

async def _edit_page(page: Page, view: UserView, *, message: str = "", kind: str = "ok",
                     status_code: int = 200, reset: tuple[str, str] | None = None,
                     name: str | None = None) -> Response:
    known = await run_in_threadpool(_facade(page).groups, page.actor)
    return page.render("admin_user_edit.html", status_code=status_code, user=view,
                       name=view.name if name is None else name, reset=reset,
                       **_form_context(page, _groups(known, view.groups), message=message,
                                       kind=kind))


@router.get("/admin/users/{user_id}", response_class=HTMLResponse)
async def user(page: Annotated[Page, Depends(page_of)], user_id: str,
               created: str = "") -> Response:
    view = await run_in_threadpool(_facade(page).get, page.actor, user_id)
    return await _edit_page(page, view, message="The user is created." if created else "")


async def _change(page: Page, user_id: str, change: Callable[[], Any], done: str, *,
                  name: str | None = None) -> Response:
    """Run one change of the profile page; the page again with its outcome."""
    facade = _facade(page)
    try:
        await run_in_threadpool(change)
    except DomainError as exc:
        _refused(exc)
        view = await run_in_threadpool(facade.get, page.actor, user_id)
        return await _edit_page(page, view, message=str(exc), kind="error", status_code=400,
                                name=name)
    view = await run_in_threadpool(facade.get, page.actor, user_id)
    return await _edit_page(page, view, message=done)


@router.post("/admin/users/{user_id}", response_class=HTMLResponse)
async def update_user(page: Annotated[Page, Depends(checked_page)], user_id: str,
                      name: Text = "", roles: Choices = [],  # noqa: B006
                      groups: Choices = []) -> Response:  # noqa: B006
    def change() -> None:
        _facade(page).update(page.actor, user_id, name=name, roles=roles, groups=groups)

    return await _change(page, user_id, change, "The profile is saved.", name=name)


@router.post("/admin/users/{user_id}/active", response_class=HTMLResponse)
async def set_active(page: Annotated[Page, Depends(checked_page)], user_id: str,
                     active: Annotated[str, Form(pattern="^(yes|no)$")]) -> Response:
    on = active == "yes"

    def change() -> None:
        _facade(page).update(page.actor, user_id, active=on)

    done = "The user is active again." if on else \
        "The user is deactivated: they cannot sign in, and their sessions are closed."
    return await _change(page, user_id, change, done)


@router.post("/admin/users/{user_id}/password", response_class=HTMLResponse)
async def set_password(page: Annotated[Page, Depends(checked_page)], user_id: str,
                       password: Secret = "", again: Secret = "") -> Response:
    def change() -> None:
        if password != again:
            _facade(page).check(page.actor, MANAGE, "users.set_password", user_id[:100])
            raise DomainError(SAME_PASSWORD)
        _facade(page).set_password(page.actor, user_id, password)

    return await _change(page, user_id, change,
                         "The new password is set: the user signs in with it next.")


@router.post("/admin/users/{user_id}/reset-link", response_class=HTMLResponse)
async def reset_link(page: Annotated[Page, Depends(checked_page)],
                     user_id: str) -> Response:
    facade = _facade(page)
    try:
        token, expires = await run_in_threadpool(facade.issue_reset, page.actor, user_id)
    except DomainError as exc:
        _refused(exc)
        view = await run_in_threadpool(facade.get, page.actor, user_id)
        return await _edit_page(page, view, message=str(exc), kind="error", status_code=400)
    view = await run_in_threadpool(facade.get, page.actor, user_id)
    # Shown this once (the page is not cached: no-store); the store keeps only its digest.
    link = f"{_site(page)}/console/reset?token={quote(token)}"
    return await _edit_page(page, view, message="A reset link is made: send it to the user.",
                            reset=(link, when(expires)))


@router.post("/admin/users/{user_id}/sign-out-everywhere", response_class=HTMLResponse)
async def sign_out_everywhere(page: Annotated[Page, Depends(checked_page)],
                              user_id: str) -> Response:
    def change() -> None:
        _facade(page).revoke_tokens(page.actor, user_id)

    return await _change(page, user_id, change,
                         "Every session and API token of the user is closed.")
