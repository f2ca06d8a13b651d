"""What the email provider tells us, and what patients click, applied to the domain.

SES publishes events (through SNS to `outreach serve`; the simulator hands them to the
embedded runner): Send and Delivery settle an attempt; a definitive (hard) bounce marks the
address invalid and ends the communication "Email Bounced"; a soft bounce is a transient
failure, retried within the five-attempt rule; a complaint opts the patient out of Health
Reminders - Email. The one-click unsubscribe link does the same as a complaint, at once.
Every event changes a communication only when it moves it on, so a duplicate notification
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from application.inbound_service import ReceiptConflictError
from application.ports import PatientDirectory
from application.settings import Settings
from application.store import EventStore
from application.unsubscribe import UnsubscribeTokens
from domain.campaign import Campaign
from domain.channels import Channel
from domain.clock import Clock
from domain.communication import CommStatus, Communication
from domain.email import BOUNCED_REASON, EmailEvent, EmailEventKind, EmailState, email_state_id
from domain.errors import DomainError
from domain.preferences import ContactKeys, Duration, OptOutType, PatientPreferences
from domain.preferences import patient_preferences_id as preferences_id
from domain.retry import POLICIES, FailureKind

log = structlog.get_logger("email_events")

SAVE_ATTEMPTS = 8  # as for text receipts: a handful of re-reads settles any storm
UNSUBSCRIBE_REASON = "unsubscribe link"
COMPLAINT_REASON = "marked an email as spam"


@dataclass(frozen=True)
class Unsubscribed:
    changed: bool  # False: already opted out (a repeated click) or a test email
    test: bool = False


class EmailEventService:
    def __init__(self, store: EventStore, directory: PatientDirectory, clock: Clock,
                 settings: Settings, contact_keys: ContactKeys,
                 tokens: UnsubscribeTokens) -> None:
        self.store = store
        self.directory = directory
        self.clock = clock
        self.settings = settings
        self.contact_keys = contact_keys
        self.tokens = tokens

    # -- provider events -----------------------------------------------------------------
    def on_email_event(self, event: EmailEvent) -> None:
        reference = _reference(event.reference)
        if reference is None:
            log.info("email_event_without_reference", kind=str(event.kind))  # a test send
            return
        for _ in range(SAVE_ATTEMPTS):
            try:
                self._apply(reference[0], reference[1], event)
                return
            except IntegrityError:
                log.info("email_event_conflict_retried", communication=str(reference[0]))
        raise ReceiptConflictError(f"communication {reference[0]} kept changing under the "
                                   "email event")

    def _apply(self, comm_id: UUID, attempt: int, event: EmailEvent) -> None:
        try:
            comm: Communication = self.store.repository.get(comm_id)
        except AggregateNotFoundError:
            log.warning("email_event_for_unknown_communication", kind=str(event.kind))
            return
        if attempt != comm.attempts or comm.channel != Channel.EMAIL:
            return  # an older attempt's event: that attempt is already settled
        changed: list[object] = []
        at = event.occurred_at
        kind = event.kind
        if comm.status == CommStatus.SENDING and kind in (
                EmailEventKind.SEND, EmailEventKind.DELIVERY, EmailEventKind.DELAY,
                EmailEventKind.COMPLAINT):
            # The dispatcher died before recording the outcome: SES tells us it went.
            comm.accept(attempt, at, event.provider_ref)
            if comm.introduced:
                changed.append(self._introduced(comm, at))
        if kind == EmailEventKind.DELIVERY:
            comm.confirm_delivery(at)
        elif kind == EmailEventKind.HARD_BOUNCE:
            changed.extend(self._hard_bounce(comm, attempt, event))
        elif kind == EmailEventKind.SOFT_BOUNCE:
            changed.extend(self._soft_bounce(comm, attempt, event))
        elif kind == EmailEventKind.REJECT and self._failable(comm):
            comm.fail(attempt, at, "rejected by the email provider", "Reject",
                      FailureKind.PERMANENT, None)
        elif kind == EmailEventKind.COMPLAINT:
            prefs = self._opt_out(comm.patient_id, COMPLAINT_REASON, "email provider", at)
            if prefs is not None:
                changed.append(prefs)
        if comm.pending_events:
            changed.append(comm)
        changed = [a for a in changed if a is not None and getattr(a, "pending_events", None)]
        if changed:
            self.store.save(*changed)  # type: ignore[arg-type]
            log.info("email_event_applied", communication=str(comm.id), kind=str(kind))

    @staticmethod
    def _failable(comm: Communication) -> bool:
        return comm.status in (CommStatus.SENDING, CommStatus.SENT, CommStatus.INTRODUCED)

    def _state(self, patient_id: str) -> EmailState:
        try:
            state: EmailState = self.store.repository.get(email_state_id(patient_id))
        except AggregateNotFoundError:
            state = EmailState(patient_id=patient_id)
        return state

    def _introduced(self, comm: Communication, at: datetime) -> EmailState:
        state = self._state(comm.patient_id)
        state.introduction_sent(at, comm.id)
        return state

    def _hard_bounce(self, comm: Communication, attempt: int,
                     event: EmailEvent) -> list[object]:
        state = self._state(comm.patient_id)
        # The address the bounced attempt went to (recorded on it), not the patient's
        # current one: a late or repeated bounce must not block an address given since.
        key = getattr(comm, "address_key", "")
        if not key:  # an attempt recorded before keys were (none on email: a safeguard)
            contact = self.directory.contacts([comm.patient_id]).get(comm.patient_id)
            key = self.contact_keys.email_key(contact.email) if contact and contact.email \
                else ""
        if key:
            state.bounced(key, event.occurred_at, event.detail)
        if comm.purpose == "introduction":
            state.introduction_undelivered(event.occurred_at, comm.id)
        if self._failable(comm):
            comm.fail(attempt, event.occurred_at, BOUNCED_REASON,
                      f"bounce:{event.detail or 'Permanent'}", FailureKind.PERMANENT, None)
        return [state]

    def _soft_bounce(self, comm: Communication, attempt: int,
                     event: EmailEvent) -> list[object]:
        changed: list[object] = []
        if comm.purpose == "introduction":
            state = self._state(comm.patient_id)
            state.introduction_undelivered(event.occurred_at, comm.id)
            changed.append(state)
        if not self._failable(comm):
            return changed
        at = event.occurred_at
        campaign: Campaign = self.store.repository.get(comm.campaign_id)
        policy = POLICIES[Channel.EMAIL]
        next_at = None
        if campaign.is_active:
            next_at = policy.next_attempt_at(attempt, at, FailureKind.TRANSIENT, str(comm.id))
        if next_at is not None:
            next_at = self.settings.calendar.next_open(Channel.EMAIL, next_at)
        comm.fail(attempt, at, "email bounced (soft): the mail server could not take it now",
                  f"bounce:{event.detail or 'Transient'}", FailureKind.TRANSIENT, next_at,
                  policy.max_attempts,
                  no_retry_because=f"campaign {str(campaign.status).lower()}")
        return changed

    # -- patients' own opt-out -----------------------------------------------------------
    def unsubscribe(self, token: str) -> Unsubscribed:
        """The one-click link (RFC 8058): opt the patient out of Health Reminders - Email at
        once. A repeated click changes nothing; a test email's link opts nobody out."""
        target = self.tokens.read(token)  # InvalidToken (a DomainError) when forged
        try:
            comm: Communication = self.store.repository.get(target)
        except AggregateNotFoundError:
            comm = None  # type: ignore[assignment]
        if not isinstance(comm, Communication):
            try:
                self.store.repository.get(target)  # a campaign: its test email's link
                return Unsubscribed(changed=False, test=True)
            except AggregateNotFoundError:
                raise DomainError("this unsubscribe link is not known") from None
        for _ in range(SAVE_ATTEMPTS):
            prefs = self._opt_out(comm.patient_id, UNSUBSCRIBE_REASON, "patient",
                                  self.clock.now())
            if prefs is None:
                return Unsubscribed(changed=False)
            try:
                self.store.save(prefs)
                log.info("unsubscribed", communication=str(comm.id))
                return Unsubscribed(changed=True)
            except IntegrityError:
                continue  # a click and a complaint at once: read again
        raise ReceiptConflictError("the opt-out kept changing under the unsubscribe")

    def _opt_out(self, patient_id: str, reason: str, by: str,
                 at: datetime) -> PatientPreferences | None:
        """The patient's preferences with a permanent Health Reminders - Email opt-out
        added, or None when they already have one."""
        try:
            prefs: PatientPreferences = self.store.repository.get(preferences_id(patient_id))
        except AggregateNotFoundError:
            prefs = PatientPreferences(patient_id=patient_id)
        today = self.settings.calendar.today(at)
        if prefs.active_on(today).get(str(OptOutType.HEALTH_EMAIL), "x") is None:
            return None  # already out, for good
        prefs.opt_out(OptOutType.HEALTH_EMAIL, Duration(), today, at, reason, by=by)
        return prefs


def _reference(reference: str) -> tuple[UUID, int] | None:
    try:
        comm_part, attempt_part = reference.rsplit(":", 1)
        return UUID(comm_part), int(attempt_part)
    except ValueError:
        return None
