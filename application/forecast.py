"""Before activation (issue 13): when the first and the last patient of a campaign will be
reached, given the windows, Sundays and holidays and the rate cap, and who will not be
reached and why (opted out, no contact for the channel, over the size cap).

The times are the plan activation would make now: `domain.pacing.plan_slots` from the same
start (`plan_start`: the start day's midnight, or now when later; a closed window or a
non-sending day moves it to the next window), one slot per patient on the list in order.
The exclusions are the dispatcher's skips, decided from the same event-store aggregates it
reads just before a send (`SendRules`: a STOP from the number, the patient's opt-outs of the
channel or protocol, a missing or unusable contact), each on the day of the patient's slot.
Nothing is stored: a forecast is a reading, audited by the facade that makes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from eventsourcing.application import AggregateNotFoundError

from application.contact_keys import contact_keys
from application.email_content import valid_recipient
from application.ports import PatientContact, PatientDirectory
from application.settings import Settings
from application.store import EventStore
from domain.calendar import SendingCalendar
from domain.campaign import Campaign, CampaignStatus
from domain.channels import Channel
from domain.clock import Clock
from domain.communication import SkipReason
from domain.email import EmailState, Readiness, email_state_id
from domain.errors import CampaignRuleViolation
from domain.pacing import plan_slots, spacing
from domain.phone_numbers import valid_number
from domain.preferences import (
    BLOCKS_CAMPAIGN,
    ContactKeys,
    OptOutType,
    PatientPreferences,
    PhoneOptOut,
    patient_preferences_id,
)
from gateways.letters import address_problem

#: Patients named per reason (the count is always the true one).
SHOWN_PER_REASON = 50


class Exclusion(StrEnum):
    OPTED_OUT = "opted_out"
    NO_CONTACT = "no_contact"
    OVER_SIZE_CAP = "over_size_cap"
    NOT_FOUND = "not_found"


LABELS = {
    Exclusion.OPTED_OUT: "Opted out",
    Exclusion.NO_CONTACT: "No contact for the channel",
    Exclusion.OVER_SIZE_CAP: "Over the size cap",
    Exclusion.NOT_FOUND: "Not in the patient records",
}
STOP_KIND = "STOP texted from their mobile number"


@dataclass(frozen=True)
class Excluded:
    """Why one patient would not be reached: `kind` groups (e.g. "All Text"), `detail` is
    this patient's own words (e.g. "All Text until 2026-12-31")."""

    patient_id: str
    name: str
    kind: str
    detail: str


@dataclass(frozen=True)
class ExclusionGroup:
    reason: str  # an Exclusion value
    label: str
    count: int
    kinds: tuple[tuple[str, int], ...]  # (kind, how many), most first
    patients: tuple[Excluded, ...]  # the first SHOWN_PER_REASON, in list order


@dataclass(frozen=True)
class Forecast:
    campaign_id: str
    name: str
    channel: str
    status: str
    computed_at: datetime  # the clock's now: "if activated now"
    timezone: str
    start_date: str
    requested_start: str
    window: str  # the channel's daily window, local: "11:00–20:00"
    rate_cap_per_hour: int
    size_cap: int
    patients: int  # on the list
    to_contact: int
    excluded: int
    groups: tuple[ExclusionGroup, ...]
    first_at: datetime | None  # the first patient to be contacted: planned slot (UTC)
    last_at: datetime | None
    sending_days: int  # sending days from the first to the last, both included
    can_activate: bool
    blocked: str  # why it cannot be activated ("" when it can)
    notes: tuple[str, ...]
    shown_ids: tuple[str, ...] = field(default=(), repr=False)  # named patients (the audit)

    def local(self, at: datetime | None) -> str:
        """An instant in the organisation's time zone, ISO to the second ("" for none)."""
        if at is None:
            return ""
        from zoneinfo import ZoneInfo

        return at.astimezone(ZoneInfo(self.timezone)).isoformat(timespec="seconds")

    def as_dict(self) -> dict[str, Any]:
        """The numbers as the API and `outreach campaign forecast --json` give them."""
        return {
            "campaign_id": self.campaign_id, "name": self.name, "channel": self.channel,
            "status": self.status, "computed_at": self.local(self.computed_at),
            "timezone": self.timezone, "start_date": self.start_date,
            "requested_start": self.requested_start, "window": self.window,
            "rate_cap_per_hour": self.rate_cap_per_hour, "size_cap": self.size_cap,
            "patients": self.patients, "to_contact": self.to_contact,
            "excluded": self.excluded,
            "groups": [{"reason": g.reason, "label": g.label, "count": g.count,
                        "kinds": [{"kind": k, "count": n} for k, n in g.kinds],
                        "patients": [{"patient_id": p.patient_id, "name": p.name,
                                      "kind": p.kind, "detail": p.detail}
                                     for p in g.patients]} for g in self.groups],
            "first_at": self.local(self.first_at) or None,
            "last_at": self.local(self.last_at) or None,
            "sending_days": self.sending_days, "can_activate": self.can_activate,
            "blocked": self.blocked, "notes": list(self.notes),
        }


def plan_start(campaign: Campaign, now: datetime, calendar: SendingCalendar) -> datetime:
    """Where activation's plan begins (application.campaigns.CampaignService._plan): the
    start day's midnight, or now when that is later; plan_slots then moves it to the next
    open window."""
    return max(now, datetime.combine(campaign.start, time(0), calendar.timezone))


def check_forecastable(campaign: Campaign, now: datetime, calendar: SendingCalendar) -> None:
    """A forecast is for a campaign not yet sending: Inactive, or Pending before its start
    day (the plan is then still the one activation made)."""
    if campaign.is_final:
        raise CampaignRuleViolation(f"no forecast: the campaign is {campaign.status}; its "
                                    "report shows what happened")
    if campaign.status == CampaignStatus.PENDING and campaign.frozen(now, calendar):
        raise CampaignRuleViolation("no forecast: the campaign is active and its start day "
                                    f"({campaign.start_date}) has begun; its report shows "
                                    "each patient's planned time")


class SendRules:
    """The dispatcher's skip rules (workers/senders.py, workers/senders_phone.py,
    application/letters.py), in their order, from the same aggregates, with the opt-out
    named. A verdict: None (sent) or (Exclusion, kind, detail)."""

    def __init__(self, store: EventStore, keys: ContactKeys,
                 recipient: Callable[[str], str | None] = valid_recipient) -> None:
        self.store = store
        self.keys = keys
        self.recipient = recipient

    def _get(self, aggregate_id: Any) -> Any:
        try:
            return self.store.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def stopped(self, mobile: str) -> bool:
        """TextSender._opted_out's STOP part: the keyed record first, else the legacy one;
        once the keyed record exists it decides."""
        for phone_id in self.keys.opt_out_ids(mobile):
            phone: PhoneOptOut | None = self._get(phone_id)
            if phone is None:
                continue
            return bool(phone.stopped)
        return False

    def opt_outs(self, patient_id: str, channel: Channel, day: date,
                 protocol: str) -> list[str]:
        """The patient's opt-outs that stop this campaign on `day` (empty: none). The
        decision is PatientPreferences.blocks_campaign's; the names are its blocking keys."""
        prefs: PatientPreferences | None = self._get(patient_preferences_id(patient_id))
        if prefs is None or not prefs.blocks_campaign(channel, day, protocol):
            return []
        blocking = {str(t) for t in BLOCKS_CAMPAIGN[channel]}
        if protocol:
            blocking.add(f"{OptOutType.PROTOCOL}:{protocol}")
        active = prefs.active_on(day)
        return sorted(f"{k} until {v}" if v else k for k, v in active.items() if k in blocking)

    def verdict(self, channel: Channel, contact: PatientContact | None, protocol: str,
                at: datetime, day: date) -> tuple[Exclusion, str, str] | None:
        if contact is None:
            return Exclusion.NOT_FOUND, str(SkipReason.UNKNOWN_PATIENT), \
                str(SkipReason.UNKNOWN_PATIENT)
        if channel == Channel.LETTER:
            return self._letter(contact, protocol, day)
        if channel == Channel.EMAIL:
            return self._email(contact, protocol, at, day)
        address = contact.address_for(channel)
        if not address:
            missing = SkipReason.NO_MOBILE if channel == Channel.TEXT else SkipReason.NO_PHONE
            return Exclusion.NO_CONTACT, str(missing), str(missing)
        if not valid_number(address):
            return Exclusion.NO_CONTACT, str(SkipReason.INVALID_NUMBER), \
                f"{SkipReason.INVALID_NUMBER}: {address}"
        if channel == Channel.TEXT and self.stopped(address):
            return Exclusion.OPTED_OUT, STOP_KIND, f"STOP texted from {address}"
        return self._opted_out(contact.patient_id, channel, day, protocol)

    def _opted_out(self, patient_id: str, channel: Channel, day: date,
                   protocol: str) -> tuple[Exclusion, str, str] | None:
        found = self.opt_outs(patient_id, channel, day, protocol)
        if not found:
            return None
        kind = ", ".join(k.split(" until ")[0] for k in found)
        return Exclusion.OPTED_OUT, kind, ", ".join(found)

    def _email(self, contact: PatientContact, protocol: str, at: datetime,
               day: date) -> tuple[Exclusion, str, str] | None:
        if not contact.email:
            return Exclusion.NO_CONTACT, str(SkipReason.NO_EMAIL), str(SkipReason.NO_EMAIL)
        address = self.recipient(contact.email)
        if address is None:
            return Exclusion.NO_CONTACT, str(SkipReason.INVALID_EMAIL), \
                f"{SkipReason.INVALID_EMAIL}: {contact.email}"
        opted = self._opted_out(contact.patient_id, Channel.EMAIL, day, protocol)
        if opted is not None:
            return opted
        if self.email_readiness(contact.patient_id, address, at) == Readiness.BOUNCED:
            return Exclusion.NO_CONTACT, str(SkipReason.EMAIL_BOUNCED), \
                f"{SkipReason.EMAIL_BOUNCED}: {address}"
        return None

    def email_readiness(self, patient_id: str, address: str, at: datetime) -> Readiness:
        state: EmailState | None = self._get(email_state_id(patient_id))
        if state is None:
            return Readiness.NEEDS_INTRODUCTION
        return state.readiness(self.keys.email_key(address), at)[0]

    def _letter(self, contact: PatientContact, protocol: str,
                day: date) -> tuple[Exclusion, str, str] | None:
        opted = self._opted_out(contact.patient_id, Channel.LETTER, day, protocol)
        if opted is not None:
            return opted
        problem = address_problem(contact.postal_address)
        if problem is not None:
            return Exclusion.NO_CONTACT, str(SkipReason.NO_ADDRESS), \
                f"{SkipReason.NO_ADDRESS}: {problem}"
        return None


class Forecaster:
    """Makes the forecast of one campaign from the live settings (windows, holidays, rate
    and size caps may change while the process runs)."""

    def __init__(self, directory: PatientDirectory, clock: Clock, settings: Settings,
                 rules: SendRules) -> None:
        self.directory = directory
        self.clock = clock
        self.settings = settings
        self.rules = rules

    def forecast(self, campaign: Campaign) -> Forecast:
        now = self.clock.now()
        calendar = self.settings.calendar
        check_forecastable(campaign, now, calendar)
        channel = Channel(campaign.channel)
        audience: Sequence[str] = campaign.audience
        cap = self.settings.campaign_size_cap
        per_hour = self.settings.rate_cap_per_hour
        slots = plan_slots(len(audience), plan_start(campaign, now, calendar), calendar,
                           channel, per_hour)
        contacts = self.directory.contacts(list(audience[:cap]))
        protocol = str(campaign.content.get("protocol") or "")
        excluded: list[tuple[Exclusion, Excluded]] = []
        reached: list[datetime] = []
        introductions = 0
        for place, (patient_id, slot) in enumerate(zip(audience, slots, strict=True)):
            contact = contacts.get(patient_id)
            if place >= cap:
                verdict: tuple[Exclusion, str, str] | None = (
                    Exclusion.OVER_SIZE_CAP, f"beyond the first {cap}",
                    f"number {place + 1} on the list")
            else:
                verdict = self.rules.verdict(channel, contact, protocol, slot,
                                             calendar.today(slot))
            if verdict is None:
                reached.append(slot)
                if channel == Channel.EMAIL and contact is not None and contact.email:
                    address = self.rules.recipient(contact.email) or contact.email
                    if self.rules.email_readiness(patient_id, address, slot) \
                            == Readiness.NEEDS_INTRODUCTION:
                        introductions += 1
                continue
            reason, kind, detail = verdict
            name = f"{contact.last_name}, {contact.first_name}" if contact else ""
            excluded.append((reason, Excluded(patient_id, name, kind, detail)))
        groups = _groups(excluded)
        first, last = (reached[0], reached[-1]) if reached else (None, None)
        days = _sending_days(calendar, channel, first, last)
        window = _window(calendar, channel)
        blocked = "" if len(audience) <= cap else (
            f"The list has {len(audience)} patients; a campaign may contact at most {cap}: "
            "it cannot be activated until the list is narrowed (by provider, group or care "
            "gap).")
        notes = _notes(campaign, calendar, channel, now, slots, days, len(reached), window,
                       per_hour, introductions)
        return Forecast(
            campaign_id=str(campaign.id), name=campaign.name, channel=str(channel),
            status=str(campaign.status), computed_at=now, timezone=str(calendar.timezone),
            start_date=campaign.start_date, requested_start=campaign.requested_start,
            window=window, rate_cap_per_hour=per_hour, size_cap=cap,
            patients=len(audience), to_contact=len(reached), excluded=len(excluded),
            groups=groups, first_at=first, last_at=last, sending_days=days,
            can_activate=not blocked and bool(campaign.audience), blocked=blocked,
            notes=notes,
            shown_ids=tuple(p.patient_id for g in groups for p in g.patients))


def _groups(excluded: Sequence[tuple[Exclusion, Excluded]]) -> tuple[ExclusionGroup, ...]:
    found: list[ExclusionGroup] = []
    for reason in Exclusion:
        mine = [e for r, e in excluded if r == reason]
        if not mine:
            continue
        kinds: dict[str, int] = {}
        for e in mine:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
        found.append(ExclusionGroup(
            str(reason), LABELS[reason], len(mine),
            tuple(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
            tuple(mine[:SHOWN_PER_REASON])))
    return tuple(found)


def _sending_days(calendar: SendingCalendar, channel: Channel, first: datetime | None,
                  last: datetime | None) -> int:
    if first is None or last is None:
        return 0
    day, end = calendar.today(first), calendar.today(last)
    count = 0
    while day <= end:
        count += calendar.is_sending_day(day, channel)
        day += timedelta(days=1)
    return count


def _window(calendar: SendingCalendar, channel: Channel) -> str:
    w = calendar.windows[channel]
    return f"{w.start:%H:%M}–{w.end:%H:%M}"


def _per_day(calendar: SendingCalendar, channel: Channel, per_hour: int) -> int:
    """How many slots one whole window holds at the rate cap."""
    w = calendar.windows[channel]
    length = datetime.combine(date.min, w.end) - datetime.combine(date.min, w.start)
    return -(-length // spacing(per_hour))


def _notes(campaign: Campaign, calendar: SendingCalendar, channel: Channel, now: datetime,
           slots: Sequence[datetime], days: int, reached: int,
           window: str, per_hour: int, introductions: int) -> tuple[str, ...]:
    notes: list[str] = []
    if campaign.requested_start != campaign.start_date:
        notes.append(f"The start asked for, {campaign.requested_start}, is not a sending day "
                     f"(a Sunday or a holiday): the campaign starts {campaign.start_date}.")
    begin = plan_start(campaign, now, calendar)
    if slots and calendar.today(slots[0]) > calendar.today(begin):
        day = calendar.today(begin)
        why = (f"{day} is not a sending day" if not calendar.is_sending_day(day, channel)
               else f"the {channel} window ({window}) has closed for {day}")
        notes.append(f"Activated now, {why}: sending begins on the next sending day, "
                     f"{calendar.today(slots[0])}.")
    if reached == 0:
        notes.append("Nobody on the list would be contacted.")
    elif days > 1:
        notes.append(f"At most {per_hour:,} per hour inside the {channel} window ({window}), "
                     f"{_per_day(calendar, channel, per_hour):,} a day at most: the "
                     f"{reached:,} patients to be contacted take {days} sending days "
                     "(Sundays and holidays are skipped).")
    if introductions:
        notes.append(f"{introductions:,} of them have not had the introductory email yet: "
                     "they get it at their time, instead of this email.")
    return tuple(notes)


def forecaster(service: Any, keys: ContactKeys | None = None) -> Forecaster:
    """Over an application.campaigns.CampaignService: its directory, clock and settings,
    the store, and the deployment's contact keys (the process's own, else read as the
    patients' service reads them)."""
    composition = getattr(service, "email_composition", None)
    recipient = composition.recipient if composition is not None else valid_recipient
    rules = SendRules(service.store, keys or contact_keys(service.settings), recipient)
    return Forecaster(service.directory, service.clock, service.settings, rules)
