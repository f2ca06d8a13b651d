"""The user directory and sign-in: users and their roles and groups, passwords (Argon2 via
pwdlib, the policy of domain/passwords.py), sign-ins with lockout, API tokens and browser
sessions (application/user_credentials.py).

Writes go to the User aggregate (domain/users.py); reads of the directory, and the token and
session checks made on every request, use the users read model (projections/users.py),
caught up first so a password change in another process is seen at once.
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Callable, Container, Iterable
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from pwdlib import PasswordHash

from application.settings import Settings
from application.user_credentials import (
    Session,
    SessionStore,
    TokenSigner,
    sha256_hex,
)
from domain.access import ALL_SUBSCRIBERS, Actor, NotSignedIn, Role, parse_role
from domain.clock import Clock
from domain.errors import DomainError, NotFound
from domain.passwords import check_password
from domain.users import (
    InvalidUser,
    LockoutPolicy,
    ResetRefused,
    User,
    UserExists,
    UserKind,
    normalize_email,
    user_id_for,
)
from projections import runner as follower
from projections.base import Projection
from projections.db import Database
from projections.users import COLUMNS, SESSIONS_DDL, UsersProjection, UserView, view_of

WRONG = "wrong email or password"
SERVICE_DOMAIN = "service.local"


@cache
def common_passwords() -> frozenset[str]:
    """The packaged list of common and breached passwords (lower case)."""
    text = resources.files("application").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(w.strip() for w in text.splitlines() if w.strip() and w[0] != "#")


def _roles(roles: Iterable[str | Role]) -> list[str]:
    return sorted({parse_role(str(r)).value for r in roles})


def _groups(groups: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    for g in groups:
        name = " ".join(str(g).split())
        if name:
            seen.setdefault(name.casefold(), name)
    return list(seen.values())


def _name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise InvalidUser("a user needs a name (at most 200 characters)")
    return name


class UserService:
    def __init__(self, store: Any, db: Database, clock: Clock, settings: Settings,
                 secret: bytes, *, hasher: PasswordHash | None = None,
                 common: Container[str] | None = None) -> None:
        self.store = store
        self.db = db
        self.clock = clock
        self.settings = settings
        self.hasher = hasher or PasswordHash.recommended()
        self.common = common if common is not None else common_passwords()
        self.lockout = LockoutPolicy(settings.login_max_failures,
                                     timedelta(minutes=settings.login_lockout_minutes),
                                     timedelta(hours=settings.login_lockout_max_hours))
        self.tokens = TokenSigner(secret)
        self.sessions = SessionStore(db, timedelta(minutes=settings.session_idle_minutes),
                                     timedelta(hours=settings.session_max_hours))
        self.projection = UsersProjection()
        self.projections: builtins.list[Projection] = [self.projection]
        follower.prepare(db, self.projections)
        db.migrate(SESSIONS_DDL)
        self._seen: int | None = None
        self._dummy: str | None = None

    # -- reading ----------------------------------------------------------------------------
    def _fresh(self) -> None:
        head = self.store.recorder.max_notification_id()
        if head is None or head != self._seen:
            follower.catch_up(self.store, self.db, self.projections)
            self._seen = head

    def any_users(self) -> bool:
        self._fresh()
        return self.db.fetchone("SELECT 1 FROM users LIMIT 1") is not None

    def list(self) -> builtins.list[UserView]:
        self._fresh()
        return [view_of(r) for r in self.db.fetchall(
            f"SELECT {COLUMNS} FROM users ORDER BY email_f")]

    def _id(self, ref: str | UUID) -> UUID:
        if isinstance(ref, UUID):
            return ref
        try:
            return UUID(ref)
        except ValueError:
            return user_id_for(ref)

    def find(self, ref: str | UUID) -> UserView | None:
        self._fresh()
        row = self.db.fetchone(f"SELECT {COLUMNS} FROM users WHERE user_id = ?",
                               (str(self._id(ref)),))
        return view_of(row) if row else None

    def get(self, ref: str | UUID) -> UserView:
        found = self.find(ref)
        if found is None:
            raise NotFound("no such user")
        return found

    # -- writing ----------------------------------------------------------------------------
    def _load(self, ref: str | UUID) -> User:
        try:
            user: User = self.store.repository.get(self._id(ref))
        except AggregateNotFoundError:
            raise NotFound("no such user") from None
        return user

    def _change(self, ref: str | UUID, change: Callable[[User], None]) -> User:
        """Load, change, save; again on a concurrent write (two sign-ins at once)."""
        for _ in range(4):
            user = self._load(ref)
            change(user)
            try:
                self.store.save(user)
                return user
            except IntegrityError:
                continue
        user = self._load(ref)  # the last try: a conflict now is an error
        change(user)
        self.store.save(user)
        return user

    def _check_new(self, user: User, new: str) -> str:
        previous = any(self.hasher.verify(new, h) for h in user.password_hashes)
        check_password(new, user.email, self.common, previous,
                       min_length=self.settings.password_min_length)
        return self.hasher.hash(new)

    def _create(self, email: str, name: str, roles: Iterable[str | Role],
                groups: Iterable[str], kind: UserKind, by: str,
                password: str | None) -> UserView:
        user = User(email=email, name=_name(name), roles=_roles(roles),
                    groups=_groups(groups), kind=str(kind), by=by, at=self.clock.now())
        if password is not None:
            user.set_password(self._check_new(user, password), by, self.clock.now())
        try:
            self.store.save(user)
        except IntegrityError:
            raise UserExists(f"a user with the email {email} already exists") from None
        return self.get(user.id)

    def create(self, email: str, name: str, password: str, roles: Iterable[str | Role],
               groups: Iterable[str], by: str) -> UserView:
        email = normalize_email(email)
        if self.find(email) is not None:
            raise UserExists(f"a user with the email {email} already exists")
        return self._create(email, name, roles, groups, UserKind.PERSON, by, password)

    def create_admin(self, email: str, name: str, password: str) -> UserView:
        return self.create(email, name, password, list(Role), (ALL_SUBSCRIBERS,), "setup")

    def create_service_account(self, name: str, roles: Iterable[str | Role],
                               groups: Iterable[str], by: str) -> tuple[UserView, str]:
        slug = "-".join("".join(c if c.isascii() and c.isalnum() else " "
                                for c in name.lower()).split())[:60]
        if not slug:
            raise InvalidUser("a service account needs a name of letters or digits")
        email = f"svc-{slug}@{SERVICE_DOMAIN}"
        if self.find(email) is not None:
            raise UserExists(f"a service account named {slug} already exists")
        view = self._create(email, name, roles, groups, UserKind.SERVICE, by, None)
        return view, self.issue_token(view.user_id, name="service", days=None)

    def _active_admins(self) -> set[str]:
        return {v.user_id for v in self.list() if v.active and v.kind == UserKind.PERSON
                and Role.ADMIN.value in v.roles}

    def update(self, ref: str | UUID, *, name: str | None = None,
               roles: Iterable[str | Role] | None = None, groups: Iterable[str] | None = None,
               active: bool | None = None, by: str) -> UserView:
        new_roles = _roles(roles) if roles is not None else None
        new_groups = _groups(groups) if groups is not None else None
        new_name = _name(name) if name is not None else None

        def change(user: User) -> None:
            losing_admin = Role.ADMIN.value in user.roles and user.active and (
                active is False or (new_roles is not None and Role.ADMIN.value not in new_roles))
            if losing_admin and self._active_admins() <= {str(user.id)}:
                raise DomainError(f"{user.email} is the last active administrator: make "
                                  "another administrator first")
            now = self.clock.now()
            user.update(name=new_name or user.name,
                        roles=new_roles if new_roles is not None else user.roles,
                        groups=new_groups if new_groups is not None else user.groups,
                        by=by, at=now)
            if active is False:
                user.deactivate(by, now)
            elif active is True:
                user.reactivate(by, now)

        user = self._change(ref, change)
        if not user.active:
            self.sessions.close_all(str(user.id))
        return self.get(user.id)

    # -- passwords --------------------------------------------------------------------------
    def set_password(self, ref: str | UUID, new: str, by: str) -> None:
        """An administrator's reset (the guide): the user signs in with it next."""
        user = self._load(ref)
        hashed = self._check_new(user, new)
        self._change(ref, lambda u: u.set_password(hashed, by, self.clock.now()))
        self.sessions.close_all(str(user.id))

    def change_password(self, ref: str | UUID, current: str, new: str) -> None:
        user = self._load(ref)
        now = self.clock.now()
        if user.is_locked(now) or not user.password_hash:
            raise DomainError(self._locked_message(user) if user.is_locked(now) else
                              "this account has no password to change")
        if not self.hasher.verify(current, user.password_hash):
            self._change(ref, lambda u: u.record_failure(now, "password change",
                                                         self.lockout))
            raise DomainError("the current password is not right")
        hashed = self._check_new(user, new)
        self._change(ref, lambda u: u.set_password(hashed, user.email, self.clock.now()))
        self.sessions.close_all(str(user.id))

    def issue_reset(self, ref: str | UUID, by: str) -> str:
        """A one-time token for the user to choose a new password (expires in
        password_reset_hours); only its hash is kept. A new one replaces the last."""
        user = self._load(ref)
        if user.kind == UserKind.SERVICE or not user.active:
            raise DomainError("only an active person's password can be reset")
        token = f"{user.id.hex}.{secrets.token_urlsafe(32)}"
        now = self.clock.now()
        expires = now + timedelta(hours=self.settings.password_reset_hours)
        self._change(ref, lambda u: u.issue_reset(sha256_hex(token), expires, by, now))
        return token

    def reset_password(self, token: str, new: str) -> None:
        user_hex, _, rest = token.partition(".")
        try:
            user = self._load(UUID(hex=user_hex)) if rest else None
        except (ValueError, NotFound):
            user = None
        if user is None:
            raise ResetRefused("this reset token is not valid: it was used, replaced or has "
                               "expired; ask an administrator for a new one")
        digest = sha256_hex(token)
        user.check_reset(digest, self.clock.now())  # before the policy: a clear reason first
        hashed = self._check_new(user, new)

        def change(u: User) -> None:
            u.use_reset(digest, self.clock.now())
            u.set_password(hashed, "reset", self.clock.now())

        self._change(user.id, change)
        self.sessions.close_all(str(user.id))

    # -- signing in -------------------------------------------------------------------------
    def _locked_message(self, user: User) -> str:
        until = user.locked_until
        when = until.strftime("%Y-%m-%d %H:%M UTC") if until else "later"
        return f"too many failed sign-ins: the account is locked; try again after {when}"

    def _same_work(self, password: str) -> None:
        # An unknown email costs what a known one does, so timing does not tell them apart.
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_urlsafe(16))
        self.hasher.verify(password, self._dummy)

    def authenticate(self, email: str, password: str, source: str) -> Actor:
        try:
            user: User | None = self._load(user_id_for(email))
        except NotFound:
            user = None
        if user is None or user.kind != UserKind.PERSON or not user.password_hash:
            self._same_work(password)
            raise NotSignedIn(WRONG)
        now = self.clock.now()
        if user.is_locked(now):
            raise NotSignedIn(self._locked_message(user))
        valid, rehashed = self.hasher.verify_and_update(password, user.password_hash)
        if not valid:
            user = self._change(user.id, lambda u: u.record_failure(now, source, self.lockout))
            raise NotSignedIn(self._locked_message(user) if user.is_locked(now) else WRONG)
        if not user.active:
            raise NotSignedIn("this account is deactivated: ask an administrator")
        self._change(user.id, lambda u: u.record_success(now, source, rehashed))
        return self.get(user.id).actor(source, "password")

    # -- tokens -----------------------------------------------------------------------------
    def issue_token(self, ref: str | UUID, name: str = "api", days: int | None = 90) -> str:
        view = self.get(ref)
        if not view.active:
            raise DomainError("a deactivated user gets no token")
        if days is None and view.kind != UserKind.SERVICE:
            days = self.settings.api_token_days  # only a service account's never expires
        if days is not None and not 1 <= days <= self.settings.api_token_max_days:
            raise DomainError(f"a token lasts 1 to {self.settings.api_token_max_days} days")
        now = self.clock.now()
        expires = now + timedelta(days=days) if days is not None else None
        return self.tokens.issue(view.user_id, view.generation, name, now, expires)

    def token_expiry(self, token: str) -> datetime | None:
        return self.tokens.read(token, self.clock.now()).expires_at

    def _current(self, user_id: str, generation: int) -> UserView:
        view = self.find(user_id)
        if view is None or not view.active or view.generation != generation:
            raise NotSignedIn("the credential was revoked (password changed, user deactivated "
                              "or tokens revoked): sign in again")
        return view

    def actor_for_token(self, token: str, source: str) -> Actor:
        claims = self.tokens.read(token, self.clock.now())
        return self._current(claims.user_id, claims.generation).actor(source, "token")

    def revoke_tokens(self, ref: str | UUID, by: str) -> None:
        """Every token and session of the user stops working ("sign out everywhere")."""
        user = self._change(ref, lambda u: u.revoke_tokens(by, self.clock.now()))
        self.sessions.close_all(str(user.id))

    # -- browser sessions -------------------------------------------------------------------
    def open_session(self, actor: Actor) -> Session:
        view = self.get(actor.user_id)
        return self.sessions.open(view.user_id, view.generation, self.clock.now())

    def actor_for_session(self, session_id: str, source: str,
                          slide: bool = True) -> tuple[Actor, Session]:
        """`slide=False`: a background refresh (the console's live progress) that does not
        count as activity for the idle timeout."""
        opened = self.sessions.use(session_id, self.clock.now(), slide)
        try:
            view = self._current(opened.user_id, opened.generation)
        except NotSignedIn:
            self.sessions.close(session_id)
            raise
        return view.actor(source, "session"), opened.session

    def close_session(self, session_id: str) -> None:
        self.sessions.close(session_id)

