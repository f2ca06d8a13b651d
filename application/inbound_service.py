"""Patients' texts and providers' receipts, applied to the domain.

A STOP from a number stops texts to every patient who has that number (the PhoneOptOut
aggregate is per number); START restores; HELP is answered with the campaign's help number.
Every inbound text is recorded once (id = uuid5 of the provider's message id), so a webhook
delivered twice changes nothing; receipts change a communication only when they move it on.
"""

from __future__ import annotations

from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from application.inbound import InboundHandler
from application.settings import Settings
from application.store import EventStore
from domain.campaign import Campaign
from domain.channels import Channel
from domain.clock import Clock
from domain.communication import CommStatus, Communication
from domain.inbound import DeliveryReceipt, InboundText
from domain.keywords import Keyword
from domain.preferences import ContactKeys, PhoneOptOut, legacy_phone_opt_out_id
from domain.replies import InboundMessage, inbound_message_id
from domain.retry import POLICIES
from projections.db import Database

log = structlog.get_logger("inbound")

DELIVERED = {"delivered", "read"}
ACCEPTED = {"queued", "accepted", "sending", "sent", "scheduled"}
FAILED = {"undelivered", "failed", "canceled"}


class InboundService(InboundHandler):
    def __init__(self, store: EventStore, db: Database, clock: Clock, settings: Settings,
                 contact_keys: ContactKeys) -> None:
        self.store = store
        self.db = db
        self.clock = clock
        self.settings = settings
        self.contact_keys = contact_keys  # STOP/START key a number with its secret

    # -- texts ---------------------------------------------------------------------------
    def on_text(self, message: InboundText) -> str | None:
        try:
            self.store.repository.get(inbound_message_id(message.message_ref))
            log.info("duplicate_inbound_ignored")
            return None
        except AggregateNotFoundError:
            pass
        keyword = message.keyword  # Twilio's OptOutType when it sent one, else our words
        record = InboundMessage(
            message_ref=message.message_ref, from_number=message.from_number,
            to_number=message.to_number, body=message.body,
            keyword=str(keyword) if keyword else "", received_at=message.received_at,
        )
        changed: list[object] = [record]
        if keyword in (Keyword.STOP, Keyword.START):
            keys = self.contact_keys
            try:
                phone: PhoneOptOut = self.store.repository.get(
                    keys.phone_opt_out_id(message.from_number))
            except AggregateNotFoundError:
                phone = PhoneOptOut.for_number(message.from_number, keys)
                # A STOP recorded before keyed hashes (bare SHA-256 id) carries over to the
                # keyed record, which decides from now on (a START then lifts it).
                try:
                    legacy: PhoneOptOut = self.store.repository.get(
                        legacy_phone_opt_out_id(message.from_number))
                    if legacy.stopped:
                        phone.keyword(Keyword.STOP, legacy.changed_at or message.received_at)
                except AggregateNotFoundError:
                    pass
            phone.keyword(keyword, message.received_at)
            if phone.pending_events:
                changed.append(phone)
        try:
            self.store.save(*changed)  # type: ignore[arg-type]
        except IntegrityError:
            # The same webhook delivered twice at once: the other delivery recorded it.
            log.info("duplicate_inbound_ignored")
            return None
        log.info("inbound_text", keyword=str(keyword) if keyword else "reply")
        if keyword == Keyword.HELP:
            return self.settings.help_reply.format(
                organisation=self.settings.organisation,
                help_number=self._help_number(message.from_number))
        return None

    def _help_number(self, from_number: str) -> str:
        """The help number of the latest text campaign that reached this number."""
        row = self.db.fetchone(
            "SELECT c.help_number FROM communications m"
            " JOIN campaigns c ON c.campaign_id = m.campaign_id"
            " JOIN patients p ON p.patient_id = m.patient_id"
            " WHERE p.mobile = ? AND m.attempts > 0 AND c.help_number <> ''"
            " ORDER BY m.updated_at DESC LIMIT 1", (from_number,))
        return str(row[0]) if row else self.settings.help_number

    # -- receipts ------------------------------------------------------------------------
    def on_receipt(self, receipt: DeliveryReceipt) -> None:
        reference = _receipt_reference(receipt)
        if reference is None:
            log.info("receipt_without_reference", status=receipt.status)  # e.g. a test send
            return
        comm_id, attempt = reference
        for _ in range(RECEIPT_SAVE_ATTEMPTS):
            try:
                self._apply_receipt(comm_id, attempt, receipt)
                return
            except IntegrityError:
                # Someone saved this communication between our read and our save: a copy of
                # this callback, another status of the same message (Twilio does not order
                # them) or the dispatcher. Read it again and re-apply: the receipt may still
                # move it on ('delivered' after a racing 'sent'), or now change nothing.
                log.info("receipt_conflict_retried", communication=str(comm_id))
        log.warning("receipt_not_applied", communication=str(comm_id),
                    attempts=RECEIPT_SAVE_ATTEMPTS)
        raise ReceiptConflictError(f"communication {comm_id} kept changing under the receipt")

    def _apply_receipt(self, comm_id: UUID, attempt: int, receipt: DeliveryReceipt) -> None:
        try:
            comm: Communication = self.store.repository.get(comm_id)
        except AggregateNotFoundError:
            log.warning("receipt_for_unknown_communication")
            return
        if attempt != comm.attempts:
            return  # a receipt for an older attempt: that attempt is already settled
        status = receipt.status.lower()
        at = receipt.received_at
        if comm.status == CommStatus.SENDING and (status in ACCEPTED | DELIVERED):
            # The dispatcher died before recording the outcome; the provider tells us.
            comm.accept(attempt, at, receipt.provider_ref)
        if status in DELIVERED:
            comm.confirm_delivery(at)
        elif status in FAILED and comm.status in (CommStatus.SENT, CommStatus.SENDING):
            campaign: Campaign = self.store.repository.get(comm.campaign_id)
            policy = POLICIES[Channel(comm.channel)]
            kind = receipt.kind
            next_at = None  # the campaign ended: no later attempt, whatever the failure
            if campaign.is_active:
                next_at = policy.next_attempt_at(attempt, at, kind, str(comm.id))
            if next_at is not None:
                next_at = self.settings.calendar.next_open(Channel(comm.channel), next_at)
            # A transient failure (30003: handset off) after the end is "retry not possible",
            # not permanent: the number may well be good (domain.communication.fail).
            comm.fail(attempt, at, receipt.reason or "not delivered", receipt.error_code, kind,
                      next_at, policy.max_attempts,
                      no_retry_because=f"campaign {str(campaign.status).lower()}")
        if comm.pending_events:
            self.store.save(comm)
            log.info("receipt_applied", communication=str(comm.id), status=status)


# Each lost race means another writer moved the communication on, and a text has only a few
# states a receipt can move it through (Sending → Sent → Delivered / failed): a handful of
# re-reads settles any storm of duplicates. More would only mean something else is wrong.
RECEIPT_SAVE_ATTEMPTS = 8


class ReceiptConflictError(RuntimeError):
    """A receipt lost every race to save its communication (the caller may retry later)."""


def _receipt_reference(receipt: DeliveryReceipt) -> tuple[UUID, int] | None:
    """Our callback reference `<communication id>:<attempt>`, or None for anything else."""
    try:
        comm_part, attempt_part = receipt.reference.rsplit(":", 1)
        return UUID(comm_part), int(attempt_part)
    except ValueError:
        return None
