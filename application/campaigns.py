"""Campaign application services: the commands staff give, and the views they read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from application.campaign_content import (
    EMAIL_FIELDS,
    LETTER_FIELDS,
    PHONE_FIELDS,
    email_content,
    letter_content,
    phone_content,
    text_content,
)
from application.email_compose import EmailComposition
from application.email_merge import render
from application.ports import PatientDirectory
from application.settings import Settings
from application.store import EventStore
from domain.calendar import SendingCalendar
from domain.campaign import Campaign
from domain.channels import Channel
from domain.clock import Clock
from domain.communication import Communication, communication_id
from domain.email import MESSAGE
from domain.errors import DomainError, NotFound
from domain.follow_ups import FOLLOW_UPS_CAMPAIGN_ID
from domain.pacing import plan_slots
from domain.phone_numbers import valid_number
from domain.sms import DEFAULT_FOOTER, compose
from domain.voice import live_twiml
from gateways.email import EmailGateway, OutboundEmail
from gateways.sms import OutboundText, SmsGateway
from gateways.voice import OutboundCall, VoiceGateway
from projections.db import Database
from projections.timefmt import parse_iso

FINAL_STATES = ("Sent", "Delivered", "Unsuccessful", "Skipped", "Cancelled",
                "Introductory email needed")


@dataclass(frozen=True)
class CampaignRow:
    campaign_id: str
    name: str
    channel: str
    status: str
    start_date: str
    to_contact: int
    completed: int
    groups: tuple[str, ...] = ()  # the creator's subscriber groups; () = All Subscribers

    @property
    def progress(self) -> str:
        return f"{self.completed} completed of {self.to_contact} to be contacted"


@dataclass(frozen=True)
class ReportRow:
    sequence: int
    patient_id: str
    name: str
    contact: str
    status: str
    attempts: int
    last_outcome: str
    reason: str
    due_at: str | None


def load_campaign(store: EventStore, campaign_id: UUID) -> Campaign:
    """The campaign, or NotFound (an unknown id, or the id of something else)."""
    try:
        campaign: Campaign = store.repository.get(campaign_id)
    except AggregateNotFoundError:
        raise NotFound(f"no campaign {campaign_id}") from None
    if not isinstance(campaign, Campaign):
        raise NotFound(f"no campaign {campaign_id}")
    return campaign


class CampaignService:
    def __init__(
        self,
        store: EventStore,
        db: Database,
        directory: PatientDirectory,
        clock: Clock,
        settings: Settings,
        gateway: SmsGateway,
        catch_up: Callable[[], Any],
        email_gateway: EmailGateway | None = None,
        email_composition: EmailComposition | None = None,
        voice_gateway: VoiceGateway | None = None,
    ) -> None:
        self.store = store
        self.db = db
        self.directory = directory
        self.clock = clock
        self.settings = settings
        self.gateway = gateway
        self.email_gateway = email_gateway
        self.email_composition = email_composition
        self.voice_gateway = voice_gateway
        self.catch_up = catch_up

    @property
    def calendar(self) -> SendingCalendar:
        # Read each time: an administrator may change windows and holidays while this
        # process runs (application/organisation.py replaces the settings' calendar).
        return self.settings.calendar

    # -- commands ------------------------------------------------------------------------
    def create(
        self,
        *,
        name: str,
        body: str | None = None,
        help_number: str | None = None,
        start: date | None = None,
        description: str = "",
        channel: Channel = Channel.TEXT,
        audience: Sequence[str] | None = None,
        active: bool = False,
        by: str | None = None,
        protocol: str = "",
        groups: Sequence[str] = (),
        **fields: Any,
    ) -> UUID:
        """A text campaign needs `body` and `help_number`; an email campaign takes the
        EMAIL_FIELDS (template, logo, subject, body, from_address, from_name, help_number),
        a phone campaign the PHONE_FIELDS (template, script, voicemail, callback_number,
        caller_id, provider, care_manager), their template giving what is not set."""
        now = self.clock.now()
        channel = Channel(channel)
        fields = {k: v for k, v in fields.items() if v is not None}
        allowed = {Channel.EMAIL: EMAIL_FIELDS, Channel.PHONE: PHONE_FIELDS,
                   Channel.LETTER: LETTER_FIELDS}.get(channel, ())
        unknown = set(fields) - set(allowed)
        if unknown:
            raise DomainError(f"not a {channel} campaign's field: {', '.join(sorted(unknown))}")
        if channel == Channel.TEXT:
            content = text_content(self.settings, body or "", help_number or "", protocol)
        elif channel == Channel.EMAIL:
            content = email_content(self.settings, {
                **fields, "body": body, "help_number": help_number, "protocol": protocol})
        elif channel == Channel.PHONE:
            if body is not None and "script" not in fields:
                fields["script"] = body
            content = phone_content(self.settings, {**fields, "protocol": protocol or None})
            if protocol:
                content["protocol"] = protocol
        else:
            content = letter_content(self.settings, {**fields, "body": body})
            if protocol:
                content["protocol"] = protocol
        patients = list(audience) if audience is not None else \
            self.directory.default_audience(channel)
        campaign = Campaign.draft(
            name=name, description=description, channel=channel,
            content=content,
            start=start or self.calendar.today(now), audience=patients, now=now,
            calendar=self.calendar, size_cap=self.settings.campaign_size_cap,
            created_by=by or self.settings.user, groups=groups,
        )
        if active:
            campaign.activate(now=now, calendar=self.calendar, by=by or self.settings.user,
                              size_cap=self.settings.campaign_size_cap)
            self.store.save(campaign, *self._plan(campaign, now))
        else:
            self.store.save(campaign)
        return campaign.id

    def edit(self, campaign_id: UUID, *, by: str | None = None, **changes: Any) -> None:
        campaign = self.get(campaign_id)
        now = self.clock.now()
        if campaign.channel == Channel.EMAIL:
            given = {k: changes.pop(k, None) for k in EMAIL_FIELDS}
            if any(v is not None for v in given.values()):
                changes["content"] = email_content(self.settings, given, campaign.content)
        elif campaign.channel == Channel.LETTER:
            given = {k: changes.pop(k, None) for k in LETTER_FIELDS}
            if any(v is not None for v in given.values()):
                changes["content"] = letter_content(self.settings, given, campaign.content)
        elif campaign.channel == Channel.PHONE:
            given = {k: changes.pop(k, None) for k in PHONE_FIELDS}
            if changes.get("body") is not None:
                given["script"] = changes.pop("body")
            if any(v is not None for v in given.values()):
                changes["content"] = phone_content(self.settings, given, campaign.content)
        if "body" in changes or "help_number" in changes:
            content = dict(campaign.content)
            for key in ("body", "help_number"):
                if changes.get(key) is not None:
                    content[key] = changes[key]
            changes["content"] = content
        changes.pop("body", None)
        changes.pop("help_number", None)
        campaign.edit(now=now, calendar=self.calendar,
                      size_cap=self.settings.campaign_size_cap, by=by or self.settings.user,
                      **changes)
        replan = campaign.is_active and ({"audience", "start_date"} & set(changes))
        self.store.save(campaign, *(self._plan(campaign, now) if replan else ()))

    def activate(self, campaign_id: UUID, by: str | None = None) -> None:
        campaign = self.get(campaign_id)
        now = self.clock.now()
        campaign.activate(now=now, calendar=self.calendar, by=by or self.settings.user,
                          size_cap=self.settings.campaign_size_cap)
        self.store.save(campaign, *self._plan(campaign, now))

    def inactivate(self, campaign_id: UUID, by: str | None = None) -> None:
        campaign = self.get(campaign_id)
        campaign.inactivate(now=self.clock.now(), calendar=self.calendar,
                            by=by or self.settings.user)
        self.store.save(campaign)

    def stop(self, campaign_id: UUID, by: str | None = None) -> int:
        """Stop for good; cancels every communication not yet sent. Returns how many."""
        campaign = self.get(campaign_id)
        now = self.clock.now()
        campaign.stop(now=now, by=by or self.settings.user)
        self.catch_up()
        open_ids = [UUID(r[0]) for r in self.db.fetchall(
            "SELECT communication_id FROM communications WHERE campaign_id = ?"
            " AND status IN ('Planned', 'Retry Pending')", (str(campaign_id),))]
        cancelled = []
        for comm_id in open_ids:
            comm: Communication = self.store.repository.get(comm_id)
            if comm.cancel(now, "campaign stopped"):
                cancelled.append(comm)
        self.store.save(campaign, *cancelled)
        return len(cancelled)

    def test_send(self, campaign_id: UUID | None, to: str, **draft: Any) -> str:
        """Send the campaign's message to one number (text) or address (email). Never
        changes the status; an unsaved campaign (campaign_id None, draft fields given) is
        saved inactive first."""
        if campaign_id is None:
            if Channel(draft.get("channel", Channel.TEXT)) == Channel.EMAIL:
                self._email_recipient(to)  # a bad address saves nothing
            elif Channel(draft.get("channel", Channel.TEXT)) == Channel.PHONE \
                    and not valid_number(to):
                raise DomainError(f"{to!r} is not a valid phone number")
            campaign_id = self.create(active=False, **draft)
        campaign = self.get(campaign_id)
        if campaign.is_final:  # refused before anything is sent
            raise DomainError(f"cannot send a test: the campaign is {campaign.status}")
        if campaign.channel == Channel.EMAIL:
            result, hint = self._test_email(campaign, to)
        elif campaign.channel == Channel.PHONE:
            result, hint = self._test_call(campaign, to)
        else:
            body = compose(str(campaign.content.get("body", "")),
                           str(campaign.content.get("footer", DEFAULT_FOOTER)))
            result = self.gateway.send(OutboundText(to=to, body=body,
                                                    reference=f"{campaign.id}:test"))
            hint = to[-4:]
        outcome = "accepted" if result.accepted else f"failed {result.error_code}".strip()
        campaign.record_test_send(now=self.clock.now(), channel_address_hint=hint,
                                  outcome=outcome)
        self.store.save(campaign)
        if not result.accepted:
            what = {"email": "email", "phone": "call"}.get(str(campaign.channel), "text")
            raise DomainError(f"the test {what} was refused: {result.error_message} "
                              f"({result.error_code})")
        return campaign_id.hex

    def _test_call(self, campaign: Campaign, to: str) -> tuple[Any, str]:
        """The campaign's script, to one number, with a sample patient's merge values; the
        call carries its TwiML inline (a test call needs no callbacks of ours)."""
        if self.voice_gateway is None:
            raise DomainError("phone calls are not configured in this process")
        if not valid_number(to):
            raise DomainError(f"{to!r} is not a valid phone number")
        content = campaign.content
        values = {"first_name": "Pat", "last_name": "Example",
                  "provider": str(content.get("provider") or self.settings.organisation),
                  "help_number": str(content.get("callback_number", "")),
                  "organisation": self.settings.organisation}
        script = render(str(content.get("script", "")), values, html=False)
        base = self.settings.public_url or "http://127.0.0.1:8000"
        twiml = live_twiml(script, self.settings.voice, self.settings.voice_language,
                           f"{base}/webhooks/twilio/voice/gather?ref={campaign.id}:test")
        call = OutboundCall(to=to, from_number=content.get("caller_id") or None,
                            reference=f"{campaign.id}:test", twiml=twiml)
        return self.voice_gateway.place_call(call), to[-4:]

    def _email_recipient(self, to: str) -> str:
        address = self.email_composition.recipient(to) if self.email_composition else None
        if address is None:
            raise DomainError(f"{to!r} is not a valid email address")
        return address

    def _test_email(self, campaign: Campaign, to: str) -> tuple[Any, str]:
        if self.email_gateway is None or self.email_composition is None:
            raise DomainError("email is not configured in this process")
        composition = self.email_composition
        address = self._email_recipient(to)
        link = composition.tokens.url(composition.public_url, campaign.id)
        content = dict(campaign.content)
        rendered = composition.render(content, None, MESSAGE, link)
        message = OutboundEmail(
            to=address, from_address=str(content["from_address"]),
            from_name=str(content.get("from_name") or self.settings.organisation),
            subject=f"[TEST] {rendered.subject}", html=rendered.html, text=rendered.text,
            reference=f"{campaign.id}:test", unsubscribe_url=link)
        # The hint keeps the domain only: the test address is staff's, but still no PHI.
        return self.email_gateway.send(message), "…@" + address.rsplit("@", 1)[-1]

    # -- planning ------------------------------------------------------------------------
    def _plan(self, campaign: Campaign, now: datetime) -> list[Communication]:
        """One communication per patient with its planned slot: windows + rate cap, in
        audience order. Re-planning moves only what has not started and cancels patients
        taken out of the audience."""
        self.catch_up()
        existing = {
            r[0]: r[1] for r in self.db.fetchall(
                "SELECT patient_id, status FROM communications WHERE campaign_id = ?",
                (str(campaign.id),))
        }
        channel = Channel(campaign.channel)
        start_of_day = datetime.combine(campaign.start, time(0), self.calendar.timezone)
        slots = plan_slots(len(campaign.audience), max(now, start_of_day), self.calendar,
                           channel, self.settings.rate_cap_per_hour)
        changed: list[Communication] = []
        for sequence, (patient_id, slot) in enumerate(zip(campaign.audience, slots, strict=True)):
            status = existing.get(patient_id)
            if status is None:
                changed.append(Communication(campaign_id=campaign.id, patient_id=patient_id,
                                             channel=str(channel), sequence=sequence,
                                             due_at=slot))
            elif status == "Planned":
                comm: Communication = self.store.repository.get(
                    communication_id(campaign.id, patient_id))
                comm.reschedule(slot, sequence)
                changed.append(comm)
        removed = set(existing) - set(campaign.audience)
        for patient_id in removed:
            comm = self.store.repository.get(communication_id(campaign.id, patient_id))
            if comm.cancel(now, "removed from the campaign's patient list"):
                changed.append(comm)
        return changed

    # -- queries -------------------------------------------------------------------------
    def get(self, campaign_id: UUID) -> Campaign:
        return load_campaign(self.store, campaign_id)

    def resolve(self, prefix: str) -> UUID:
        """Accept a full id or an unambiguous prefix, as staff type them."""
        rows = self.db.fetchall("SELECT campaign_id FROM campaigns WHERE campaign_id LIKE ?",
                                (prefix.replace("%", "").replace("_", "") + "%",))
        if len(rows) == 1:
            return UUID(rows[0][0])
        try:
            return UUID(prefix)
        except ValueError:
            message = (f"no campaign matches {prefix!r}" if not rows else
                       f"{prefix!r} matches {len(rows)} campaigns: give more of the id")
            raise NotFound(message) from None

    def campaigns(self) -> list[CampaignRow]:
        self.catch_up()
        # One-to-one follow-ups (domain.follow_ups) are not a campaign: never listed.
        return self._rows("c.campaign_id <> ?", (str(FOLLOW_UPS_CAMPAIGN_ID),))

    def row(self, campaign_id: UUID) -> CampaignRow:
        """One campaign's list row (progress): one campaign's communications counted, not
        every campaign's."""
        self.catch_up()
        found = self._rows("c.campaign_id = ?", (str(campaign_id),))
        if not found:
            raise NotFound(f"no campaign {campaign_id}")
        return found[0]

    def _rows(self, where: str, params: tuple[str, ...]) -> list[CampaignRow]:
        rows = self.db.fetchall(
            "SELECT c.campaign_id, c.name, c.channel, c.status, c.start_date, c.audience_size,"
            " COALESCE(SUM(CASE WHEN m.status IN ('Sent', 'Delivered', 'Unsuccessful',"
            " 'Skipped', 'Cancelled', 'Introductory email needed') THEN 1 ELSE 0 END), 0),"
            " c.scope_groups"
            " FROM campaigns c LEFT JOIN communications m ON m.campaign_id = c.campaign_id"
            f" WHERE {where}"
            " GROUP BY c.campaign_id, c.name, c.channel, c.status, c.start_date,"
            " c.audience_size, c.created_at, c.scope_groups ORDER BY c.created_at DESC",
            params)
        return [CampaignRow(r[0], r[1], r[2], r[3], r[4], int(r[5]), int(r[6]),
                            tuple(g for g in str(r[7]).split("\n") if g)) for r in rows]

    def report(self, campaign_id: UUID) -> list[ReportRow]:
        self.catch_up()
        campaign = self.get(campaign_id)
        rows = self.db.fetchall(
            "SELECT sequence, patient_id, status, attempts, last_outcome, reason, due_at"
            " FROM communications WHERE campaign_id = ? ORDER BY sequence",
            (str(campaign_id),))
        contacts = self.directory.contacts([r[1] for r in rows])
        report = []
        for seq, pid, status, attempts, outcome, reason, due in rows:
            c = contacts.get(pid)
            name = f"{c.last_name}, {c.first_name}" if c else ""
            address = (c.address_for(Channel(campaign.channel)) if c else None) or ""
            report.append(ReportRow(int(seq) + 1, pid, name, address, status, int(attempts),
                                    outcome, reason, due))
        return report

    def schedule_preview(self, campaign_id: UUID, limit: int = 10) -> list[datetime]:
        self.catch_up()
        rows = self.db.fetchall(
            "SELECT due_at FROM communications WHERE campaign_id = ? AND due_at IS NOT NULL"
            " ORDER BY sequence LIMIT ?", (str(campaign_id), limit))
        return [t for t in (parse_iso(r[0]) for r in rows) if t is not None]
