"""The users read model: the directory staff see (GET /users) and what a token or session
check needs per request (active, roles, groups, generation) without replaying a user's
sign-in history. Password hashes and reset tokens never reach it.

Browser sessions live beside it (`SESSIONS_DDL`): they are not events (a session is
short-lived state, written on every request), so a rebuild leaves them alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.utils import get_topic

from domain.access import Actor, Role
from domain.users import User
from projections.base import Projection
from projections.db import Tx
from projections.timefmt import iso, parse_iso

DDL = """
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY, email TEXT NOT NULL, email_f TEXT NOT NULL, name TEXT NOT NULL,
    roles TEXT NOT NULL, groups_json TEXT NOT NULL, active INTEGER NOT NULL,
    kind TEXT NOT NULL, generation INTEGER NOT NULL, locked_until TEXT,
    last_login_at TEXT, created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS users_email ON users (email_f)
"""

SESSIONS_DDL = """
CREATE TABLE IF NOT EXISTS staff_sessions (
    id_sha256 TEXT PRIMARY KEY, user_id TEXT NOT NULL, csrf TEXT NOT NULL,
    generation INTEGER NOT NULL, created_at TEXT NOT NULL, last_seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS staff_sessions_expiry ON staff_sessions (expires_at);
CREATE INDEX IF NOT EXISTS staff_sessions_user ON staff_sessions (user_id)
"""

COLUMNS = ("user_id, email, name, roles, groups_json, active, kind, generation, locked_until,"
           " last_login_at, created_at")

_EVENTS = ("Created", "Updated", "Deactivated", "Reactivated", "PasswordSet", "LoginSucceeded",
           "LockedOut", "TokensRevoked")


def _topic(name: str) -> str:
    return get_topic(getattr(User, name))


def roles_text(roles: list[str]) -> str:
    return ",".join(sorted(set(roles)))


@dataclass(frozen=True)
class UserView:
    """A user as the directory shows them (application.users re-exports it); `generation`
    is what their tokens and sessions must carry to be valid."""

    user_id: str
    email: str
    name: str
    roles: tuple[str, ...]
    groups: tuple[str, ...]
    active: bool
    kind: str
    locked_until: datetime | None
    last_login_at: datetime | None
    created_at: datetime
    generation: int = 0

    def actor(self, source: str, via: str) -> Actor:
        return Actor(user_id=self.user_id, username=self.email,
                     roles=frozenset(Role(r) for r in self.roles), groups=self.groups,
                     source=source, via=via)


def view_of(row: Sequence[Any]) -> UserView:
    created = parse_iso(row[10])
    assert created is not None
    return UserView(str(row[0]), str(row[1]), str(row[2]),
                    tuple(r for r in str(row[3]).split(",") if r),
                    tuple(json.loads(row[4])), bool(row[5]), str(row[6]),
                    parse_iso(row[8]), parse_iso(row[9]), created, int(row[7]))


class UsersProjection(Projection):
    name = "users"
    schema_version = 1
    own_tables = ("users",)
    topics = tuple(_topic(n) for n in _EVENTS)

    def ddl(self) -> str:
        return DDL

    def reset(self, tx: Tx) -> None:
        tx.execute("DELETE FROM users")

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        name = type(event).__qualname__
        uid = str(event.originator_id)
        if name == "User.Created":
            tx.execute(
                "INSERT INTO users (user_id, email, email_f, name, roles, groups_json, active,"
                " kind, generation, created_at) VALUES (?,?,?,?,?,?,1,?,0,?)"
                " ON CONFLICT (user_id) DO NOTHING",
                (uid, event.email, event.email.casefold(), event.name, roles_text(event.roles),
                 json.dumps(list(event.groups)), event.kind, iso(event.at)))
        elif name == "User.Updated":
            tx.execute("UPDATE users SET name = ?, roles = ?, groups_json = ? WHERE user_id = ?",
                       (event.name, roles_text(event.roles), json.dumps(list(event.groups)),
                        uid))
        elif name == "User.Deactivated":
            tx.execute("UPDATE users SET active = 0, generation = generation + 1"
                       " WHERE user_id = ?", (uid,))
        elif name == "User.Reactivated":
            tx.execute("UPDATE users SET active = 1 WHERE user_id = ?", (uid,))
        elif name == "User.PasswordSet":
            tx.execute("UPDATE users SET generation = generation + 1, locked_until = NULL"
                       " WHERE user_id = ?", (uid,))
        elif name == "User.TokensRevoked":
            tx.execute("UPDATE users SET generation = generation + 1 WHERE user_id = ?", (uid,))
        elif name == "User.LoginSucceeded":
            tx.execute("UPDATE users SET last_login_at = ?, locked_until = NULL"
                       " WHERE user_id = ?", (iso(event.at), uid))
        elif name == "User.LockedOut":
            tx.execute("UPDATE users SET locked_until = ? WHERE user_id = ?",
                       (iso(event.until), uid))
