"""What differs between channels on the one send path, as a table the dispatcher consults.

A ChannelSender holds a channel's own rules (which contact it needs and when that contact is
unusable, which opt-outs apply, email's introductory email and bounced addresses), how it
composes the message for the gateway, and how it asks its provider whether an attempt went.
Windows, the campaign's rate cap, attempts, retries and recording outcomes are the
dispatcher's, the same for every channel.

Reads for a batch: the dispatcher announces each batch's patients (`begin_batch`) and a
sender reads every opt-out record and preference it will consult for them in one query
(`BatchReads`), instead of two or three "not found" SELECTs per send. What is read is never
kept past the batch (`end_batch`): an opt-out is never cached. Only a number's validity is
(`valid_mobile`): it depends on the number alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from application.ports import PatientContact
from application.store import EventStore
from domain.calendar import SendingCalendar
from domain.campaign import Campaign
from domain.channels import Channel
from domain.communication import Communication, SkipReason
from domain.email import INTRODUCTION, MESSAGE, EmailState, Readiness, email_state_id
from domain.follow_ups import FollowUp, follow_up_id, is_follow_up
from domain.phone_numbers import valid_number
from domain.preferences import ContactKeys, PatientPreferences, PhoneOptOut, patient_preferences_id
from domain.sms import DEFAULT_FOOTER, compose
from gateways.email import EmailGateway, OutboundEmail
from gateways.sms import OutboundText, SendResult, SmsGateway
from workers.provider_pace import ProviderPace


@dataclass(frozen=True)
class Skip:
    reason: SkipReason


@dataclass(frozen=True)
class Wait:
    until: datetime
    reason: str


#: what `decide` answers: skip the patient, wait until, or send (with the attempt's purpose)
Verdict = Skip | Wait | str


# Bounded: a dispatcher runs for months over a changing list of numbers (flat RSS).
@lru_cache(maxsize=65_536)
def valid_mobile(number: str | None) -> bool:
    """Parsing a number costs more than the rest of a send's rules; its validity depends
    on the number alone, so it is safe to remember (unlike anything about its owner)."""
    return valid_number(number)


@lru_cache(maxsize=65_536)
def _opt_out_ids(keys: ContactKeys, number: str) -> tuple[UUID, UUID]:
    """Where a number's STOP may be recorded: two keyed hashes of the number alone (the
    record itself is read from the store each batch, never remembered)."""
    return keys.opt_out_ids(number)


class BatchReads:
    """The aggregates one batch's decisions consult, read from the event store in one query
    when the batch begins (EventStore.get_many) and forgotten when its decisions are made.

    Why this keeps "checked just before the call, from the event store": the dispatcher
    announces a batch after taking it from the bus and before deciding it, exactly where
    each decision used to read for itself; between this read and the decisions there is
    only the loop over the batch's intents (no provider call, nothing recorded). So every
    rule is still read from the store after the intent arrived, and before "attempt
    started" is recorded and before any provider call; a STOP stored during a batch's
    calls was never seen by that batch, then as now (the recorded attempt and the STOP's
    own handling settle it). Ids not announced (a sender used on its own, as the unit
    tests do) are read one by one."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._ids: frozenset[UUID] = frozenset()
        self._found: dict[UUID, Any] = {}

    def load(self, ids: Iterable[UUID]) -> None:
        self._ids = frozenset(ids)
        self._found = self.store.get_many(self._ids) if self._ids else {}

    def clear(self) -> None:
        self._ids, self._found = frozenset(), {}

    def get(self, aggregate_id: UUID) -> Any | None:
        """The aggregate, None when it has no events."""
        if aggregate_id in self._ids:
            return self._found.get(aggregate_id)
        try:
            return self.store.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def preferences(self, patient_id: str) -> PatientPreferences | None:
        prefs: PatientPreferences | None = self.get(patient_preferences_id(patient_id))
        return prefs


class ChannelSender(ABC):
    channel: Channel

    def begin_batch(self, contacts: Sequence[PatientContact] = ()) -> None:  # noqa: B027
        """A new batch of intents for these patients is about to be decided (a hook: a
        channel may read what its rules consult for all of them at once)."""

    def end_batch(self) -> None:  # noqa: B027 - a hook most channels do not need
        """The batch's decisions are made: forget what was read for them."""

    @abstractmethod
    def decide(self, comm: Communication, campaign: Campaign, contact: PatientContact,
               now: datetime) -> Verdict:
        """The channel's rules, just before the call (from the event store, never a cache)."""

    @abstractmethod
    def compose(self, comm: Communication, attempt: int, campaign: Campaign,
                contact: PatientContact, purpose: str) -> Any:
        """The message for the gateway."""

    @abstractmethod
    def send(self, message: Any) -> SendResult: ...

    @abstractmethod
    def find_sent(self, message: Any, since: datetime) -> SendResult | None:
        """Did the provider take it? Raises ConnectionError when that cannot be known now."""

    def address_key(self, message: Any) -> str:
        """The keyed hash of where the message goes, recorded on the attempt ("": none)."""
        return ""

    def after_outcome(self, comm: Communication, at: datetime) -> list[Any]:
        """Other aggregates an outcome changes, saved with it (email: the introduction)."""
        return []

    def pace(self, count: int, now: datetime) -> list[datetime] | None:
        """When each of `count` sends may go under the provider's own quota (None: none)."""
        return None


class TextSender(ChannelSender):
    channel = Channel.TEXT

    def __init__(self, gateway: SmsGateway, store: EventStore, contact_keys: ContactKeys,
                 calendar: SendingCalendar) -> None:
        self.gateway = gateway
        self.store = store
        self.contact_keys = contact_keys
        self.calendar = calendar
        self.reads = BatchReads(store)

    def begin_batch(self, contacts: Sequence[PatientContact] = ()) -> None:
        ids: list[UUID] = []
        for contact in contacts:
            if contact.mobile and valid_mobile(contact.mobile):
                ids.extend(_opt_out_ids(self.contact_keys, contact.mobile))
            ids.append(patient_preferences_id(contact.patient_id))
        self.reads.load(ids)

    def end_batch(self) -> None:
        self.reads.clear()

    def decide(self, comm: Communication, campaign: Campaign, contact: PatientContact,
               now: datetime) -> Verdict:
        if not contact.mobile:
            return Skip(SkipReason.NO_MOBILE)
        if not valid_mobile(contact.mobile):
            return Skip(SkipReason.INVALID_NUMBER)
        if self._opted_out(contact, campaign, now):
            return Skip(SkipReason.OPTED_OUT)
        return MESSAGE

    def _opted_out(self, contact: PatientContact, campaign: Campaign, now: datetime) -> bool:
        assert contact.mobile is not None
        # The keyed record first; a STOP recorded before keyed hashes lives under the legacy
        # id. Once the keyed record exists it decides: it took over the legacy state.
        for phone_id in _opt_out_ids(self.contact_keys, contact.mobile):
            phone: PhoneOptOut | None = self.reads.get(phone_id)
            if phone is None:
                continue
            if phone.stopped:
                return True
            break
        prefs = self.reads.preferences(contact.patient_id)
        return prefs is not None and prefs.blocks_campaign(
            Channel.TEXT, self.calendar.today(now), str(campaign.content.get("protocol", "")))

    def compose(self, comm: Communication, attempt: int, campaign: Campaign,
                contact: PatientContact, purpose: str) -> OutboundText:
        words = str(campaign.content.get("body", ""))
        if is_follow_up(campaign.id):  # a one-to-one text: its own words (domain.follow_ups)
            follow_up: FollowUp = self.store.repository.get(follow_up_id(comm.id))
            words = follow_up.body
        body = compose(words, str(campaign.content.get("footer", DEFAULT_FOOTER)))
        return OutboundText(to=str(contact.mobile), body=body, reference=f"{comm.id}:{attempt}")

    def send(self, message: OutboundText) -> SendResult:
        return self.gateway.send(message)

    def find_sent(self, message: OutboundText, since: datetime) -> SendResult | None:
        return self.gateway.find_sent(message.to, message.body, since)


class EmailComposer(Protocol):
    """Renders a campaign's email, or the introductory email, for one patient
    (application/email_compose.py)."""

    def compose(self, communication_id: UUID, attempt: int, content: dict[str, Any],
                contact: PatientContact, purpose: str) -> OutboundEmail: ...

    def recipient(self, address: str) -> str | None:
        """The address normalised, or None when its format is invalid."""


class EmailSender(ChannelSender):
    channel = Channel.EMAIL

    def __init__(self, gateway: EmailGateway, store: EventStore, contact_keys: ContactKeys,
                 calendar: SendingCalendar, composer: EmailComposer,
                 pace: ProviderPace | None = None) -> None:
        self.gateway = gateway
        self.store = store
        self.contact_keys = contact_keys
        self.calendar = calendar
        self.composer = composer
        self._pace = pace
        #: patients given an introductory email in the batch being decided: a second
        #: campaign of the same batch must not send them another (see `begin_batch`)
        self._introducing: set[str] = set()
        self.reads = BatchReads(store)

    def begin_batch(self, contacts: Sequence[PatientContact] = ()) -> None:
        self._introducing = set()
        self.reads.load(id_ for contact in contacts for id_ in (
            patient_preferences_id(contact.patient_id), email_state_id(contact.patient_id)))

    def end_batch(self) -> None:
        self.reads.clear()

    def decide(self, comm: Communication, campaign: Campaign, contact: PatientContact,
               now: datetime) -> Verdict:
        if not contact.email:
            return Skip(SkipReason.NO_EMAIL)
        address = self.composer.recipient(contact.email)
        if address is None:
            return Skip(SkipReason.INVALID_EMAIL)
        prefs = self.reads.preferences(contact.patient_id)
        if prefs is not None and prefs.blocks_campaign(
                Channel.EMAIL, self.calendar.today(now),
                str(campaign.content.get("protocol", ""))):
            return Skip(SkipReason.OPTED_OUT)
        state: EmailState | None = self.reads.get(email_state_id(contact.patient_id))
        readiness, ready_at = (Readiness.NEEDS_INTRODUCTION, None) if state is None else \
            state.readiness(self.contact_keys.email_key(address), now)
        if readiness == Readiness.BOUNCED:
            return Skip(SkipReason.EMAIL_BOUNCED)
        if readiness == Readiness.NEEDS_INTRODUCTION:
            if contact.patient_id in self._introducing:
                # Another campaign's communication in this batch introduces them now: look
                # again shortly, when that introduction is recorded (then: two days on).
                return Wait(now + timedelta(minutes=10), "introductory email being sent")
            self._introducing.add(contact.patient_id)
            return INTRODUCTION
        if readiness == Readiness.WAIT:
            assert ready_at is not None
            return Wait(ready_at, "introductory email sent less than two days ago")
        return MESSAGE

    def _state(self, patient_id: str) -> EmailState | None:
        try:
            state: EmailState = self.store.repository.get(email_state_id(patient_id))
        except AggregateNotFoundError:
            return None
        return state

    def compose(self, comm: Communication, attempt: int, campaign: Campaign,
                contact: PatientContact, purpose: str) -> OutboundEmail:
        return self.composer.compose(comm.id, attempt, dict(campaign.content), contact, purpose)

    def send(self, message: OutboundEmail) -> SendResult:
        return self.gateway.send(message)

    def find_sent(self, message: OutboundEmail, since: datetime) -> SendResult | None:
        return self.gateway.find_sent(message.reference, since)

    def address_key(self, message: OutboundEmail) -> str:
        return self.contact_keys.email_key(message.to)

    def after_outcome(self, comm: Communication, at: datetime) -> list[Any]:
        if not comm.introduced:
            return []
        state = self._state(comm.patient_id) or EmailState(patient_id=comm.patient_id)
        state.introduction_sent(at, comm.id)
        return [state] if state.pending_events else []

    def pace(self, count: int, now: datetime) -> list[datetime] | None:
        return self._pace.reserve(count, now) if self._pace is not None else None
