"""The replies area of the staff boundary (issue 12): the inbox, its download, a patient's
conversation, marking a reply handled, and one-to-one follow-up texts; each made for an
acting user, checked against their role and groups, and audited with the patients shown.

A restricted user (not in All Subscribers) sees only replies of patients related (PCP,
appointment or billing) to the active providers of their groups, the lists' own relation;
a reply whose patient is unknown is theirs to see only in All Subscribers. A user in no
group sees no reply.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from application.follow_ups import FollowUps, FollowUpSent
from application.replies import ReplyInbox, ReplyPage, ReplyRow, Sort, ThreadItem
from application.staff_base import AuditSink, Guarded
from domain.access import Actor, Permission
from domain.errors import DomainError
from domain.lists import ListQuery, Scope
from projections.patient_queries import resolve_scope

if TYPE_CHECKING:
    from application.bootstrap import Outreach

READ = Permission.REPLIES_READ
HANDLE = Permission.REPLIES_HANDLE


class RepliesFacade(Guarded):
    def __init__(self, audit: AuditSink, inbox: ReplyInbox,
                 follow_ups: FollowUps | None = None) -> None:
        super().__init__(audit)
        self.inbox = inbox
        self.follow_ups = follow_ups  # None: one-to-one texts are refused

    # -- scope -----------------------------------------------------------------------------
    def providers_of(self, actor: Actor) -> builtins.list[str] | None:
        """None: every patient (All Subscribers); else the active providers of the actor's
        groups ([] for a user in no group: nobody)."""
        if actor.sees_all:
            return None
        if not actor.groups:
            return []
        with self.inbox.db.transaction() as tx:
            return resolve_scope(tx, ListQuery(scope=Scope(groups=tuple(actor.groups)))) or []

    def _require_patient(self, actor: Actor, action: str, patient_id: str | None,
                         target: str) -> None:
        """Refused (and recorded) when the patient is outside the actor's groups."""
        providers = self.providers_of(actor)
        if providers is None:
            return
        if patient_id is None or not self.inbox.in_scope(patient_id, providers):
            raise self.deny(actor, action, "this patient is outside your subscriber groups",
                            target=target)

    # -- the inbox -------------------------------------------------------------------------
    def list(self, actor: Actor, *, unexpected: bool | None = None,
             handled: bool | None = None, campaign_id: str | None = None,
             patient_id: str | None = None, sort: Sort = "received", descending: bool = True,
             page: int = 1, page_size: int = 50) -> ReplyPage:
        with self.audited(actor, READ, "reply.list") as note:
            found = self.inbox.list(
                unexpected=unexpected, handled=handled, campaign_id=campaign_id,
                patient_id=patient_id, provider_ids=self.providers_of(actor), sort=sort,
                descending=descending, page=page, page_size=page_size)
            note.patient_ids = _distinct(r.patient_id for r in found.rows)
            note.detail = f"{len(found.rows)} of {found.total}"
        return found

    def export_csv(self, actor: Actor, out: TextIO, *, unexpected: bool | None = None,
                   handled: bool | None = None, campaign_id: str | None = None,
                   patient_id: str | None = None, sort: Sort = "received",
                   descending: bool = True) -> int:
        with self.audited(actor, READ, "reply.export") as note:
            shown: set[str] = set()
            written = self.inbox.export_csv(
                out, sort=sort, descending=descending, patient_ids=shown,
                unexpected=unexpected, handled=handled, campaign_id=campaign_id,
                patient_id=patient_id, provider_ids=self.providers_of(actor))
            note.patient_ids = sorted(shown)
            note.detail = f"{written} replies"
        return written

    def thread(self, actor: Actor, patient_id: str) -> builtins.list[ThreadItem]:
        self.check(actor, READ, "reply.thread", target=patient_id)
        self._require_patient(actor, "reply.thread", patient_id, patient_id)
        with self.audited(actor, READ, "reply.thread", target=patient_id,
                          patient_ids=(patient_id,)):
            return self.inbox.thread(patient_id)

    def mark_handled(self, actor: Actor, message_id: str) -> ReplyRow:
        self.check(actor, HANDLE, "reply.handle", target=message_id)
        reply = self.inbox.get(message_id)  # NotFound for an unknown id
        self._require_patient(actor, "reply.handle", reply.patient_id, message_id)
        with self.audited(actor, HANDLE, "reply.handle", target=message_id,
                          patient_ids=_distinct([reply.patient_id])):
            return self.inbox.mark_handled(message_id, actor.username)

    # -- one-to-one texts (part 2) ---------------------------------------------------------
    def follow_up(self, actor: Actor, patient_id: str, body: str) -> FollowUpSent:
        self.check(actor, HANDLE, "reply.follow_up", target=patient_id)
        self._require_patient(actor, "reply.follow_up", patient_id, patient_id)
        with self.audited(actor, HANDLE, "reply.follow_up", target=patient_id,
                          patient_ids=(patient_id,)) as note:
            if self.follow_ups is None:
                raise DomainError("one-to-one follow-up texts are not set up")
            sent = self.follow_ups.send(patient_id, body, by=actor.username)
            note.detail = f"communication {sent.communication_id}"
            return sent


def build_replies(o: Outreach, audit: AuditSink) -> RepliesFacade:
    """The replies facade of a built application (bootstrap.build)."""
    inbox = ReplyInbox(o.store, o.db, o.clock, o.settings, o.catch_up)
    return RepliesFacade(audit, inbox, FollowUps(o.store, o.db, o.clock, o.settings,
                                                 o.catch_up))


def _distinct(ids: Any) -> Sequence[str]:
    return sorted({str(i) for i in ids if i})
