"""What differs between channels on the one send path, as a table the dispatcher consults.

A ChannelSender holds a channel's own rules (which contact it needs and when that contact is
unusable, which opt-outs apply, email's introductory email and bounced addresses), how it
composes the message for the gateway, and how it asks its provider whether an attempt went.
Windows, the campaign's rate cap, attempts, retries and recording outcomes are the
dispatcher's, the same for every channel.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
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


def valid_mobile(number: str | None) -> bool:
    return valid_number(number)


def _preferences(store: EventStore, patient_id: str) -> PatientPreferences | None:
    try:
        prefs: PatientPreferences = store.repository.get(patient_preferences_id(patient_id))
    except AggregateNotFoundError:
        return None
    return prefs


class ChannelSender(ABC):
    channel: Channel

    def begin_batch(self) -> None:  # noqa: B027 - a hook most channels do not need
        """A new batch of intents is about to be decided."""

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
        for phone_id in self.contact_keys.opt_out_ids(contact.mobile):
            try:
                phone: PhoneOptOut = self.store.repository.get(phone_id)
            except AggregateNotFoundError:
                continue
            if phone.stopped:
                return True
            break
        prefs = _preferences(self.store, contact.patient_id)
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

    def begin_batch(self) -> None:
        self._introducing = set()

    def decide(self, comm: Communication, campaign: Campaign, contact: PatientContact,
               now: datetime) -> Verdict:
        if not contact.email:
            return Skip(SkipReason.NO_EMAIL)
        address = self.composer.recipient(contact.email)
        if address is None:
            return Skip(SkipReason.INVALID_EMAIL)
        prefs = _preferences(self.store, contact.patient_id)
        if prefs is not None and prefs.blocks_campaign(
                Channel.EMAIL, self.calendar.today(now),
                str(campaign.content.get("protocol", ""))):
            return Skip(SkipReason.OPTED_OUT)
        state = self._state(contact.patient_id)
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
