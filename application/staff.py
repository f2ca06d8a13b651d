"""The staff container: the user service and the access-checked facades the HTTP API (and
the console) call, one per area, all recording to one audit trail.

`build_staff(o, users, audit, replies)` makes it from a built application (bootstrap.build):
`users` is the application.users.UserService (tokens, sessions, logins), `audit` the
AuditSink every facade records to (application.audit.AuditTrail), `replies` the replies
facade. The users, campaigns and audit facades are built here unless given (the audit
facade only when `audit` is an AuditTrail, which it queries).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from application.audit import AuditTrail
from application.opt_outs import OptOutService
from application.staff_audit import AuditFacade
from application.staff_base import AuditSink
from application.staff_campaigns import CampaignsFacade
from application.staff_organisation import OrganisationFacade
from application.staff_patients import PatientsFacade
from application.staff_users import UsersFacade
from application.users import UserService

if TYPE_CHECKING:
    from application.bootstrap import Outreach


@dataclass
class Staff:
    auth: Any  # application.users.UserService
    users: Any  # application.staff_users.UsersFacade
    patients: PatientsFacade
    campaigns: Any  # application.staff_campaigns.CampaignsFacade
    replies: Any  # application.staff_replies.RepliesFacade
    audit: Any  # application.staff_audit.AuditFacade
    trail: AuditSink  # where every facade records
    # Organisation settings (administrators); None when built without a running application.
    organisation: Any = None  # application.staff_organisation.OrganisationFacade


def imports_dir_of(o: Outreach) -> Path:
    """Uploaded files' rejected rows are kept beside the letters' files (var/imports)."""
    return Path(o.settings.letters_dir).parent / "imports"


def opt_out_service(o: Outreach) -> OptOutService:
    return OptOutService(o.store, o.db, o.clock, o.settings, o.catch_up)


def build_staff(o: Outreach, users: Any, audit: AuditSink, replies: Any = None, *,
                users_facade: Any = None, campaigns: Any = None, audit_facade: Any = None,
                imports_dir: Path | None = None) -> Staff:
    patients = PatientsFacade(audit, o.patients, opt_out_service(o),
                              imports_dir or imports_dir_of(o), o.contact_keys)
    if campaigns is None:
        campaigns = _campaigns_facade(o, audit)
    if users_facade is None and isinstance(users, UserService):
        users_facade = UsersFacade(users, audit)
    if audit_facade is None and isinstance(audit, AuditTrail):
        audit_facade = AuditFacade(audit, audit)
    return Staff(auth=users, users=users_facade, patients=patients, campaigns=campaigns,
                 replies=replies, audit=audit_facade, trail=audit,
                 organisation=OrganisationFacade(o.organisation, audit))


def _campaigns_facade(o: Outreach, audit: AuditSink) -> CampaignsFacade:
    return CampaignsFacade.from_outreach(o, audit)
