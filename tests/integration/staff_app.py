"""The staff API under test: a real application (bootstrap.build) on SQLite or PostgreSQL,
the real facades and routes, a few imported patients in two provider groups, and signed-in
users of every role.

The auth is either the application's own (`real_users=True`: bootstrap's o.users and
o.audit, users created with a password, tokens issued and checked as in production; the role
matrix, the OpenAPI run) or `FixedTokens`, a real in-memory adapter giving the Actor of each
fixed bearer token (quicker: no password hashing) with a MemoryAudit. Either way the replies
facade reads bootstrap's inbox, whose projections o.catch_up() keeps current.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.staff.app import create_staff_app
from application.bootstrap import Outreach
from application.staff import Staff, build_staff
from application.staff_base import MemoryAudit
from application.staff_replies import RepliesFacade
from application.users import UserService
from domain.access import ALL_SUBSCRIBERS, Actor, NotSignedIn, Role
from tests.patient_data import APPOINTMENT_HEADER, PATIENT_HEADER, PROVIDER_HEADER, patient_row
from tests.patient_data import write_csv as write_rows

#: The role sets the matrix tries: each signed-in user has exactly these roles.
ROLE_SETS: dict[str, frozenset[Role]] = {
    "none": frozenset(),
    "share_views": frozenset({Role.SHARE_VIEWS}),
    "campaigns": frozenset({Role.CAMPAIGNS}),
    "opt_outs": frozenset({Role.OPT_OUTS}),
    "admin": frozenset({Role.ADMIN}),
}
EVERY_ROLE = frozenset(Role)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class FixedTokens:
    """Bearer tokens known in advance, each the token of one Actor."""

    def __init__(self) -> None:
        self.actors: dict[str, Actor] = {}

    def add(self, token: str, actor: Actor) -> str:
        self.actors[token] = actor
        return token

    def actor_for_token(self, token: str, source: str) -> Actor:
        found = self.actors.get(token)
        if found is None:
            raise NotSignedIn("unknown or expired token")
        return Actor(found.user_id, found.username, found.roles, found.groups, source, "token")

    def actor_for_session(self, session: str, source: str) -> tuple[Actor, object]:
        raise NotSignedIn("no sessions in this test")


@dataclass
class StaffApi:
    o: Outreach
    staff: Staff
    app: FastAPI
    client: TestClient
    auth: FixedTokens
    audit: Any  # MemoryAudit, or the AuditTrail with real users
    folder: Path
    users: UserService | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    usernames: dict[str, str] = field(default_factory=dict)  # what Actor.username will be

    def user(self, name: str, roles: Iterable[Role] = EVERY_ROLE,
             groups: tuple[str, ...] = (ALL_SUBSCRIBERS,)) -> dict[str, str]:
        if self.users is not None:
            created = self.users.create(f"{name}@example.org", name, PASSWORD, list(roles),
                                        groups, by="setup")
            token = self.users.issue_token(created.user_id)
            self.usernames[name] = created.email
        else:
            token = self.auth.add(f"token-of-{name}", Actor(
                f"id-{name}", name, frozenset(roles), groups, via="token"))
            self.usernames[name] = name
        self.tokens[name] = token
        return bearer(token)


#: The route modules whose facades these tests build (the lead widens it at integration).
SERVED = ("api.staff.patients",)


PASSWORD = "A long test Passphrase 4 staff!"


def open_staff_api(o: Outreach, folder: Path, modules: tuple[str, ...] = SERVED, *,
                   real_users: bool = False) -> StaffApi:
    auth = FixedTokens()
    audit: Any = o.audit if real_users else MemoryAudit()
    users = o.users if real_users else None
    # Bootstrap's inbox and follow-ups, recording to this audit (the MemoryAudit's records
    # are what the quicker tests read).
    replies = RepliesFacade(audit, o.staff.replies.inbox, o.staff.replies.follow_ups)
    # The test's own folder for uploads' rejects (bootstrap's would be under var/).
    staff = build_staff(o, users or auth, audit, replies, imports_dir=folder / "imports")
    app = create_staff_app(staff, now=o.clock.now, modules=modules)
    client = TestClient(app, raise_server_exceptions=False)
    api = StaffApi(o, staff, app, client, auth, audit, folder, users)
    for role, roles in ROLE_SETS.items():
        api.user(role, roles)
    return api


# Two clinics: North (D1) and South (D2). P1, P2 are North's; P3 is South's.
PROVIDERS = [["D1", "Dr. Adams", "North", "Yes"], ["D2", "Dr. Brown", "South", "Yes"]]


def seed_patients(api: StaffApi, patients: list[list[str]] | None = None) -> None:
    """Import providers, patients and a confirmed appointment each (so search finds them)."""
    o, folder = api.o, api.folder / "seed"
    rows = patients or [
        patient_row("P1", "Ann", "Lee", "1950-02-03", mobile="512-555-0101", pcp="D1",
                    email="ann@example.com"),
        patient_row("P2", "Bob", "Lee", "1960-01-01", mobile="512-555-0102", pcp="D1"),
        patient_row("P3", "Cy", "Lee", "1970-01-01", mobile="512-555-0103", pcp="D2"),
    ]
    when = (o.clock.now() - timedelta(days=30)).strftime("%Y-%m-%d 10:00")
    o.patients.import_file("providers", write_rows(folder / "pr.csv", PROVIDER_HEADER,
                                                   PROVIDERS))
    o.patients.import_file("patients", write_rows(folder / "p.csv", PATIENT_HEADER, rows))
    o.patients.import_file("appointments", write_rows(
        folder / "a.csv", APPOINTMENT_HEADER,
        [[f"A{r[0]}", r[0], when, r[9] or "D1", "Main", "Office Visit", "Confirmed", ""]
         for r in rows]))
    o.catch_up()
