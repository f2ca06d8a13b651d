"""Users, roles, groups and sign-in for an acting user: the administrator's directory
(USERS_MANAGE), each user's own account (any signed-in user), and the sign-in itself.

Every call is recorded in the audit trail: changes and the administrator's reads with
`audited(...)`, a user's own account with `_own(...)` (no role needed, recorded all the
same), and every sign-in attempt, failed ones too, as "auth.login".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from application.staff_base import AuditNote, AuditSink, Guarded
from application.user_credentials import Session
from application.users import UserService, UserView
from domain.access import ALL_SUBSCRIBERS, Actor, NotSignedIn, Permission, Role
from domain.errors import DomainError

MANAGE = Permission.USERS_MANAGE


class UsersFacade(Guarded):
    def __init__(self, service: UserService, audit: AuditSink) -> None:
        super().__init__(audit)
        self.service = service

    @contextmanager
    def _own(self, actor: Actor, action: str, target: str = "") -> Iterator[AuditNote]:
        """Like `audited`, for what every signed-in user may do to their own account."""
        note = AuditNote(target=target or actor.username)
        try:
            yield note
        except DomainError as exc:
            self.audit.record(actor, action, "failed", target=note.target,
                              detail=str(exc)[:300])
            raise
        self.audit.record(actor, action, "allowed", target=note.target, detail=note.detail)

    # -- sign-in ------------------------------------------------------------------------
    def login(self, email: str, password: str, source: str) -> tuple[Actor, UserView]:
        try:
            actor = self.service.authenticate(email, password, source)
        except NotSignedIn as exc:
            known = self.service.find(email)
            who = (known.actor(source, "password") if known else
                   Actor(user_id="", username=email.strip()[:100], source=source,
                         via="password"))
            self.audit.record(who, "auth.login", "failed", target=who.username,
                              detail=str(exc)[:300])
            raise
        self.audit.record(actor, "auth.login", "allowed", target=actor.username)
        return actor, self.service.get(actor.user_id)

    def open_session(self, actor: Actor) -> Session:
        return self.service.open_session(actor)

    def logout(self, actor: Actor, session_id: str | None) -> None:
        with self._own(actor, "auth.logout"):
            if session_id:
                self.service.close_session(session_id)

    def reset_password(self, token: str, new: str, source: str) -> None:
        """No sign-in: the one-time token is the credential."""
        who = Actor(user_id="", username="(reset token)", source=source, via="reset")
        with self._own(who, "auth.reset"):
            self.service.reset_password(token, new)

    # -- one's own account ----------------------------------------------------------------
    def me(self, actor: Actor) -> UserView:
        return self.service.get(actor.user_id)

    def change_own_password(self, actor: Actor, current: str, new: str) -> None:
        with self._own(actor, "users.change_own_password"):
            self.service.change_password(actor.user_id, current, new)

    def issue_own_token(self, actor: Actor, name: str = "api",
                        days: int | None = None) -> tuple[str, datetime | None]:
        with self._own(actor, "auth.token", target=actor.username) as note:
            token = self.service.issue_token(actor.user_id, name, days)
            note.detail = f"token {name[:60]!r}"
        return token, self.service.token_expiry(token)

    def groups(self, actor: Actor) -> list[str]:
        """The subscriber groups of the providers file, and All Subscribers."""
        rows = self.service.db.fetchall(
            "SELECT MIN(group_name) FROM provider_groups GROUP BY group_f ORDER BY group_f")
        names = [str(r[0]) for r in rows
                 if str(r[0]).casefold() != ALL_SUBSCRIBERS.casefold()]
        return [ALL_SUBSCRIBERS, *names]

    # -- the directory (administrators) -------------------------------------------------
    def list(self, actor: Actor) -> list[UserView]:
        with self.audited(actor, MANAGE, "users.list"):
            return self.service.list()

    def get(self, actor: Actor, ref: str) -> UserView:
        with self.audited(actor, MANAGE, "users.get", target=ref[:100]):
            return self.service.get(ref)

    def create(self, actor: Actor, email: str, name: str, password: str,
               roles: Iterable[str | Role], groups: Sequence[str]) -> UserView:
        with self.audited(actor, MANAGE, "users.create", target=email[:100]) as note:
            view = self.service.create(email, name, password, roles, groups, actor.username)
            note.detail = f"roles {','.join(view.roles) or '-'}; groups {len(view.groups)}"
            return view

    def update(self, actor: Actor, ref: str, *, name: str | None = None,
               roles: Iterable[str | Role] | None = None,
               groups: Sequence[str] | None = None, active: bool | None = None) -> UserView:
        with self.audited(actor, MANAGE, "users.update", target=ref[:100]) as note:
            view = self.service.update(ref, name=name, roles=roles, groups=groups,
                                       active=active, by=actor.username)
            note.target = view.email
            changed = [k for k, v in (("name", name), ("roles", roles), ("groups", groups),
                                      ("active", active)) if v is not None]
            note.detail = f"changed {','.join(changed) or 'nothing'}; roles " \
                          f"{','.join(view.roles) or '-'}; active {view.active}"
            return view

    def set_password(self, actor: Actor, ref: str, new: str) -> None:
        with self.audited(actor, MANAGE, "users.set_password", target=ref[:100]):
            self.service.set_password(ref, new, actor.username)

    def issue_reset(self, actor: Actor, ref: str) -> tuple[str, datetime]:
        with self.audited(actor, MANAGE, "users.issue_reset", target=ref[:100]):
            token = self.service.issue_reset(ref, actor.username)
        hours = self.service.settings.password_reset_hours
        return token, self.service.clock.now() + timedelta(hours=hours)

    def revoke_tokens(self, actor: Actor, ref: str) -> None:
        with self.audited(actor, MANAGE, "users.revoke_tokens", target=ref[:100]):
            self.service.revoke_tokens(ref, actor.username)

    def create_service_account(self, actor: Actor, name: str, roles: Iterable[str | Role],
                               groups: Sequence[str]) -> tuple[UserView, str]:
        with self.audited(actor, MANAGE, "users.create_service_account",
                          target=name[:100]) as note:
            view, token = self.service.create_service_account(name, roles, groups,
                                                              actor.username)
            note.target = view.email
            return view, token
