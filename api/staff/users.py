"""Sign-in, one's own account, and the administrator's users, service accounts and groups
(issue 12).

Every route calls `staff_of(request).users` (application.staff_users.UsersFacade) with the
acting user; the role checks and the audit trail are the facade's. Routes are plain `def`:
hashing a password takes a while and the facade blocks on the database, so FastAPI runs
them in its thread pool. Answers that hold a secret (a token) are never replayed from the
idempotency table: that table would keep the secret in clear.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.staff.deps import (
    SESSION_COOKIE,
    CurrentActor,
    PageNumber,
    PageSize,
    client_address,
    staff_of,
)
from api.staff.idempotency import IdempotencyKey, idempotent
from api.staff.problems import refusal_status
from application.users import UserView
from domain.access import Role
from domain.users import UserExists

router = APIRouter(tags=["users"])
refusal_status(UserExists, 409)

UserRef = Annotated[str, PathParam(min_length=1, max_length=320,
                                   description="A user id, or the user's email")]
Password = Annotated[str, Field(min_length=1, max_length=1024)]
EMAIL_EXAMPLE = "pat.jones@example.org"


# -- answers ------------------------------------------------------------------------------
class UserOut(BaseModel):
    user_id: str
    email: str
    name: str
    roles: list[Role]
    groups: list[str]
    active: bool
    kind: str = Field(description='"person" or "service"')
    locked_until: datetime | None
    last_login_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, v: UserView) -> UserOut:
        return cls(user_id=v.user_id, email=v.email, name=v.name,
                   roles=[Role(r) for r in v.roles], groups=list(v.groups), active=v.active,
                   kind=v.kind, locked_until=v.locked_until, last_login_at=v.last_login_at,
                   created_at=v.created_at)


class UserPage(BaseModel):
    items: list[UserOut]
    total: int
    page: int
    page_size: int


class LoginOut(BaseModel):
    user: UserOut
    csrf_token: str = Field(description="Send it as X-CSRF-Token on every unsafe request "
                                        "made with the session cookie")
    expires_at: datetime = Field(description="When the session ends unless it is used")


class TokenOut(BaseModel):
    token: str = Field(description="Authorization: Bearer <token>. Shown once: keep it safe")
    expires_at: datetime | None = Field(description="None: a service account's token that "
                                                    "lasts until revoked")


class ServiceAccountOut(BaseModel):
    user: UserOut
    token: str = Field(description="The account's bearer token. Shown once")


class GroupsOut(BaseModel):
    groups: list[str]


# -- requests -----------------------------------------------------------------------------
class LoginIn(BaseModel):
    email: str = Field(min_length=1, max_length=320, examples=[EMAIL_EXAMPLE])
    password: Password


class TokenIn(BaseModel):
    name: str = Field(default="api", min_length=1, max_length=60, examples=["reporting"])
    days: int | None = Field(default=None, ge=1, le=3650, examples=[90],
                             description="Omit for the default (90 days)")


class OwnPasswordIn(BaseModel):
    current: Password
    new: Password = Field(examples=["Blue-Heron-42!"])


class PasswordIn(BaseModel):
    password: Password = Field(examples=["Blue-Heron-42!"])


class ResetIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)
    new_password: Password


class UserIn(BaseModel):
    email: str = Field(min_length=3, max_length=320, examples=[EMAIL_EXAMPLE])
    name: str = Field(min_length=1, max_length=200, examples=["Pat Jones"])
    password: Password = Field(examples=["Blue-Heron-42!"])
    roles: list[Role] = Field(default_factory=list, examples=[["campaigns"]])
    groups: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=100, examples=[["North Clinic"]])


class UserPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    roles: list[Role] | None = None
    groups: list[Annotated[str, Field(max_length=200)]] | None = Field(default=None,
                                                                       max_length=100)
    active: bool | None = None


class ServiceAccountIn(BaseModel):
    name: str = Field(min_length=1, max_length=60, examples=["nightly export"])
    roles: list[Role] = Field(default_factory=list)
    groups: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list,
                                                                max_length=100)


# -- sign-in ------------------------------------------------------------------------------
@router.post("/auth/login", response_model=LoginOut)
def login(request: Request, response: Response, body: LoginIn) -> LoginOut:
    users = staff_of(request).users
    actor, view = users.login(body.email, body.password, client_address(request))
    session = users.open_session(actor)
    # Secure when served over https, whether seen directly or through the public URL the
    # clinic publishes (a TLS-terminating proxy forwards plain http to us).
    public = str(getattr(staff_of(request).auth.settings, "public_url", None) or "")
    secure = request.url.scheme == "https" or public.startswith("https://")
    response.set_cookie(SESSION_COOKIE, session.id, httponly=True, samesite="lax",
                        secure=secure, path="/")
    return LoginOut(user=UserOut.of(view), csrf_token=session.csrf,
                    expires_at=session.expires_at)


@router.post("/auth/logout", status_code=204, response_class=Response)
def logout(request: Request, actor: CurrentActor,
           session: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None) -> Response:
    staff_of(request).users.logout(actor, session if actor.via == "session" else None)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/auth/tokens", response_model=TokenOut, status_code=201)
def issue_own_token(request: Request, actor: CurrentActor, body: TokenIn) -> TokenOut:
    token, expires = staff_of(request).users.issue_own_token(actor, body.name, body.days)
    return TokenOut(token=token, expires_at=expires)


@router.post("/auth/reset", status_code=204, response_class=Response)
def reset_password(request: Request, body: ResetIn) -> Response:
    staff_of(request).users.reset_password(body.token, body.new_password,
                                           client_address(request))
    return Response(status_code=204)


@router.get("/me", response_model=UserOut)
def me(request: Request, actor: CurrentActor) -> UserOut:
    return UserOut.of(staff_of(request).users.me(actor))


@router.post("/me/password", status_code=204, response_class=Response)
def change_own_password(request: Request, actor: CurrentActor, body: OwnPasswordIn) -> Response:
    """Every token and session of the user ends with the old password: sign in again."""
    staff_of(request).users.change_own_password(actor, body.current, body.new)
    return Response(status_code=204)


# -- the directory ------------------------------------------------------------------------
@router.get("/users", response_model=UserPage)
def list_users(request: Request, actor: CurrentActor, page: PageNumber = 1,
               page_size: PageSize = 100) -> UserPage:
    found = staff_of(request).users.list(actor)
    start = (page - 1) * page_size
    return UserPage(items=[UserOut.of(v) for v in found[start:start + page_size]],
                    total=len(found), page=page, page_size=page_size)


@router.post("/users", response_model=UserOut, status_code=201)
async def create_user(request: Request, actor: CurrentActor, body: UserIn,
                      key: IdempotencyKey = None) -> Response:
    async def create() -> tuple[int, dict[str, Any]]:
        view = await run_in_threadpool(
            staff_of(request).users.create, actor, body.email, body.name, body.password,
            body.roles, body.groups)
        return 201, UserOut.of(view).model_dump(mode="json")

    return await idempotent(request, actor, create)


@router.get("/users/{user_id}", response_model=UserOut)
def get_user(request: Request, actor: CurrentActor, user_id: UserRef) -> UserOut:
    return UserOut.of(staff_of(request).users.get(actor, user_id))


@router.patch("/users/{user_id}", response_model=UserOut)
def update_user(request: Request, actor: CurrentActor, user_id: UserRef,
                body: UserPatch) -> UserOut:
    return UserOut.of(staff_of(request).users.update(
        actor, user_id, name=body.name, roles=body.roles, groups=body.groups,
        active=body.active))


@router.post("/users/{user_id}/password", status_code=204, response_class=Response)
def set_password(request: Request, actor: CurrentActor, user_id: UserRef,
                 body: PasswordIn) -> Response:
    staff_of(request).users.set_password(actor, user_id, body.password)
    return Response(status_code=204)


@router.post("/users/{user_id}/reset-token", response_model=TokenOut, status_code=201)
def issue_reset(request: Request, actor: CurrentActor, user_id: UserRef) -> TokenOut:
    token, expires = staff_of(request).users.issue_reset(actor, user_id)
    return TokenOut(token=token, expires_at=expires)


@router.post("/users/{user_id}/revoke-tokens", status_code=204, response_class=Response)
def revoke_tokens(request: Request, actor: CurrentActor, user_id: UserRef) -> Response:
    staff_of(request).users.revoke_tokens(actor, user_id)
    return Response(status_code=204)


@router.post("/service-accounts", response_model=ServiceAccountOut, status_code=201)
def create_service_account(request: Request, actor: CurrentActor,
                           body: ServiceAccountIn) -> ServiceAccountOut:
    view, token = staff_of(request).users.create_service_account(actor, body.name,
                                                                 body.roles, body.groups)
    return ServiceAccountOut(user=UserOut.of(view), token=token)


@router.get("/groups", response_model=GroupsOut)
def groups(request: Request, actor: CurrentActor) -> GroupsOut:
    return GroupsOut(groups=staff_of(request).users.groups(actor))
