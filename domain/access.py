"""Who may do what: the guide's security roles, the permissions they grant, and the acting
user every application call that reads or changes patient data is made for.

The roles are the guide's (product notes, "Users and access"):
- share page views: send saved page views to other users;
- campaigns: see the patient lists, send campaigns, see the campaign pages (and their
  replies: the responses belong to the campaigns that asked);
- opt-out management: add and remove patients' opt-outs;
- administrator: users, roles, groups; the audit trail; patient-data imports.
Every signed-in user may find a patient and read the summary, within their groups.

Groups scope what a user sees: the subscriber (provider) groups of the providers file, or
"All Subscribers". A user in no group sees no patient (least privilege: an administrator
grants a group, as the guide tells them to).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from domain.errors import DomainError

ALL_SUBSCRIBERS = "All Subscribers"


class Role(StrEnum):
    SHARE_VIEWS = "share_views"
    CAMPAIGNS = "campaigns"
    OPT_OUTS = "opt_outs"
    ADMIN = "admin"


ROLE_LABELS: dict[Role, str] = {
    Role.SHARE_VIEWS: "Share page views",
    Role.CAMPAIGNS: "Campaigns",
    Role.OPT_OUTS: "Opt-out management",
    Role.ADMIN: "Administrator",
}


class Permission(StrEnum):
    PATIENTS_READ = "patients.read"  # search, summary
    LISTS_READ = "lists.read"  # run lists, own saved views, audiences, list downloads
    VIEWS_SHARE = "views.share"
    CAMPAIGNS_READ = "campaigns.read"  # campaigns, reports, attempts, letters' files
    CAMPAIGNS_SEND = "campaigns.send"  # create, edit, activate, inactivate, stop, test
    OPT_OUTS_MANAGE = "opt_outs.manage"
    REPLIES_READ = "replies.read"
    REPLIES_HANDLE = "replies.handle"  # mark handled, follow-up texts
    IMPORTS_RUN = "imports.run"
    USERS_MANAGE = "users.manage"  # users, roles, groups, password resets
    AUDIT_READ = "audit.read"
    SETTINGS_MANAGE = "settings.manage"  # organisation settings: windows, caps, holidays, ...


#: The roles that grant each permission; None: every signed-in user.
GRANTED_BY: dict[Permission, frozenset[Role] | None] = {
    Permission.PATIENTS_READ: None,
    Permission.LISTS_READ: frozenset({Role.CAMPAIGNS}),
    Permission.VIEWS_SHARE: frozenset({Role.SHARE_VIEWS}),
    Permission.CAMPAIGNS_READ: frozenset({Role.CAMPAIGNS}),
    Permission.CAMPAIGNS_SEND: frozenset({Role.CAMPAIGNS}),
    Permission.OPT_OUTS_MANAGE: frozenset({Role.OPT_OUTS}),
    Permission.REPLIES_READ: frozenset({Role.CAMPAIGNS}),
    Permission.REPLIES_HANDLE: frozenset({Role.CAMPAIGNS}),
    Permission.IMPORTS_RUN: frozenset({Role.ADMIN}),
    Permission.USERS_MANAGE: frozenset({Role.ADMIN}),
    Permission.AUDIT_READ: frozenset({Role.ADMIN}),
    Permission.SETTINGS_MANAGE: frozenset({Role.ADMIN}),
}


class AccessDenied(DomainError):
    """The acting user lacks the role, or the patient/campaign is outside their groups."""


class NotSignedIn(DomainError):
    """No valid credentials: a missing, expired or revoked token or session."""


_ROLE_ALIASES = {
    "share_views": Role.SHARE_VIEWS, "share_page_views": Role.SHARE_VIEWS,
    "campaigns": Role.CAMPAIGNS, "campaign": Role.CAMPAIGNS,
    "opt_outs": Role.OPT_OUTS, "opt_out": Role.OPT_OUTS, "opt_out_management": Role.OPT_OUTS,
    "admin": Role.ADMIN, "administrator": Role.ADMIN,
}


def parse_role(text: str) -> Role:
    """A role by its name or the guide's label, in any case, with spaces or dashes."""
    role = _ROLE_ALIASES.get(text.strip().lower().replace("-", "_").replace(" ", "_"))
    if role is None:
        raise DomainError(f"unknown role {text!r}: use one of "
                          f"{', '.join(r.value for r in Role)}")
    return role


@dataclass(frozen=True)
class Actor:
    """The authenticated user a call is made for. `source` says from where (the client's
    address for HTTP, "cli" for the command line); it goes into the audit trail."""

    user_id: str
    username: str
    roles: frozenset[Role] = frozenset()
    groups: tuple[str, ...] = ()
    source: str = "cli"
    via: str = "cli"  # cli, token, session, setup

    def can(self, permission: Permission) -> bool:
        needed = GRANTED_BY[permission]
        return needed is None or bool(needed & self.roles)

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            needed = GRANTED_BY[permission] or frozenset()
            names = " or ".join(sorted(ROLE_LABELS[r] for r in needed))
            raise AccessDenied(f"{self.username} may not {permission.value}: it needs the "
                               f"{names} role")

    @property
    def sees_all(self) -> bool:
        """In "All Subscribers": every patient, list, campaign and reply."""
        return any(g.casefold() == ALL_SUBSCRIBERS.casefold() for g in self.groups)

    def sees_groups(self, groups: Sequence[str]) -> bool:
        """May see what was made within `groups` (a campaign's, from its creator): every
        one of them must be among the user's; () means All Subscribers."""
        if self.sees_all:
            return True
        mine = {g.strip().casefold() for g in self.groups}
        return bool(groups) and {g.strip().casefold() for g in groups} <= mine

    @property
    def role_names(self) -> str:
        return ",".join(sorted(r.value for r in self.roles))


#: The command line before the first user exists (a fresh install, the demo's first step):
#: whoever can reach the database acts with every role, and the audit trail says so. Once a
#: user exists, the command line needs a token (`outreach login`, or a service account's).
SETUP_ACTOR = Actor(user_id="setup", username="setup (no users yet)",
                    roles=frozenset(Role), groups=(ALL_SUBSCRIBERS,), source="cli",
                    via="setup")
