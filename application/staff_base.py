"""The staff boundary: every call that reads or changes patient data is made for an acting
user (domain.access.Actor); the role check and the audit record happen here, so the command
line, the HTTP API and the console cannot disagree (architecture notes, "Access at the
service boundary").

Each area's facade (staff_patients, staff_campaigns, staff_users, staff_replies,
staff_audit) derives from `Guarded` and wraps every call in `audited(...)`:

    with self.audited(actor, Permission.CAMPAIGNS_SEND, "campaign.activate",
                      target=str(campaign_id)) as note:
        self.campaigns.activate(campaign_id)
        note.patient_ids = ...  # the patients the call showed or touched, when any

A refused role is recorded as "denied" and raises AccessDenied; a refused command (any
DomainError) is recorded as "failed" with its one-line reason and re-raised; success is
recorded as "allowed" with the patients the call read or changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from domain.access import AccessDenied, Actor, Permission
from domain.errors import DomainError


class AuditSink(Protocol):
    """Where audit records go (application.audit.AuditTrail is the real one)."""

    def record(self, actor: Actor, action: str, outcome: str = "allowed", *,
               patient_ids: Sequence[str] = (), target: str = "", detail: str = "") -> None:
        ...


@dataclass
class AuditNote:
    """Filled in by the wrapped call: what it showed or touched."""

    patient_ids: Sequence[str] = field(default_factory=tuple)
    target: str = ""
    detail: str = ""


class Guarded:
    def __init__(self, audit: AuditSink) -> None:
        self.audit = audit

    def check(self, actor: Actor, permission: Permission, action: str,
              target: str = "") -> None:
        """The role check alone (recorded when refused)."""
        try:
            actor.require(permission)
        except AccessDenied as exc:
            self.audit.record(actor, action, "denied", target=target, detail=str(exc))
            raise

    def deny(self, actor: Actor, action: str, reason: str, target: str = "") -> AccessDenied:
        """A refusal decided by the facade itself (a patient outside the user's groups):
        recorded, and returned for the caller to raise."""
        self.audit.record(actor, action, "denied", target=target, detail=reason)
        return AccessDenied(reason)

    @contextmanager
    def audited(self, actor: Actor, permission: Permission, action: str, *,
                target: str = "", patient_ids: Sequence[str] = ()) -> Iterator[AuditNote]:
        self.check(actor, permission, action, target)
        note = AuditNote(patient_ids=patient_ids, target=target)
        try:
            yield note
        except AccessDenied:
            raise  # recorded by deny()
        except DomainError as exc:
            self.audit.record(actor, action, "failed", patient_ids=note.patient_ids,
                              target=note.target, detail=str(exc)[:300])
            raise
        self.audit.record(actor, action, "allowed", patient_ids=note.patient_ids,
                          target=note.target, detail=note.detail)


class MemoryAudit:
    """An in-memory AuditSink (tests of a facade that do not look at the stored trail)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, str, tuple[str, ...], str, str]] = []

    def record(self, actor: Actor, action: str, outcome: str = "allowed", *,
               patient_ids: Sequence[str] = (), target: str = "", detail: str = "") -> None:
        self.records.append((actor.username, action, outcome, tuple(patient_ids), target,
                             detail))
