"""The phone channel on the one send path: which number a call goes to, which opt-outs stop
it, what the gateway is given, and how the provider is asked whether a call was placed.

A call goes to the patient's mobile, else their home phone (a recorded message suits a
landline too). The script itself is not composed here: Twilio fetches it from our TwiML
webhook when the call connects (application.voice_events), so no PHI travels in the call
request and an edit that lands before the call is answered is what the patient hears.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from application.ports import PatientContact
from application.store import EventStore
from domain.calendar import SendingCalendar
from domain.campaign import Campaign
from domain.channels import Channel
from domain.communication import Communication, SkipReason
from domain.email import MESSAGE
from domain.preferences import patient_preferences_id
from gateways.sms import SendResult
from gateways.voice import OutboundCall, VoiceGateway
from workers.provider_pace import ProviderPace
from workers.senders import BatchReads, ChannelSender, Skip, Verdict, valid_mobile


def call_number(contact: PatientContact) -> str | None:
    """The number a campaign call rings: the mobile, else the home phone."""
    return contact.mobile or contact.home_phone or None


class PhoneSender(ChannelSender):
    channel = Channel.PHONE

    def __init__(self, gateway: VoiceGateway, store: EventStore, calendar: SendingCalendar,
                 pace: ProviderPace | None = None) -> None:
        """`pace`: the account's calls-per-second budget shared by every dispatcher
        (Twilio's own queue is not relied upon: it could ring outside the window)."""
        self.gateway = gateway
        self.store = store
        self.calendar = calendar
        self._pace = pace
        self.reads = BatchReads(store)  # the batch's preferences, read in one query

    def begin_batch(self, contacts: Sequence[PatientContact] = ()) -> None:
        self.reads.load(patient_preferences_id(c.patient_id) for c in contacts)

    def end_batch(self) -> None:
        self.reads.clear()

    def decide(self, comm: Communication, campaign: Campaign, contact: PatientContact,
               now: datetime) -> Verdict:
        number = call_number(contact)
        if not number:
            return Skip(SkipReason.NO_PHONE)
        if not valid_mobile(number):
            return Skip(SkipReason.INVALID_NUMBER)
        prefs = self.reads.preferences(contact.patient_id)
        if prefs is not None and prefs.blocks_campaign(
                Channel.PHONE, self.calendar.today(now),
                str(campaign.content.get("protocol") or "")):
            return Skip(SkipReason.OPTED_OUT)
        return MESSAGE

    def compose(self, comm: Communication, attempt: int, campaign: Campaign,
                contact: PatientContact, purpose: str) -> OutboundCall:
        number = call_number(contact)
        assert number is not None  # decide skipped patients without one
        caller_id = str(campaign.content.get("caller_id") or "").strip() or None
        return OutboundCall(to=number, from_number=caller_id, reference=f"{comm.id}:{attempt}")

    def send(self, message: OutboundCall) -> SendResult:
        return self.gateway.place_call(message)

    def find_sent(self, message: OutboundCall, since: datetime) -> SendResult | None:
        return self.gateway.find_call(message.to, since, message.from_number)

    def pace(self, count: int, now: datetime) -> list[datetime] | None:
        return self._pace.reserve(count, now) if self._pace is not None else None
