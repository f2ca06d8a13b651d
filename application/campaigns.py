"""Campaign application services: the commands staff give, and the views they read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from application.ports import PatientDirectory
from application.settings import Settings
from application.store import EventStore
from domain.campaign import Campaign
from domain.channels import Channel
from domain.clock import Clock
from domain.communication import Communication, communication_id
from domain.errors import DomainError, NotFound
from domain.pacing import plan_slots
from domain.sms import DEFAULT_FOOTER, compose
from gateways.sms import OutboundText, SmsGateway
from projections.db import Database
from projections.timefmt import parse_iso

FINAL_STATES = ("Sent", "Delivered", "Unsuccessful", "Skipped", "Cancelled")


@dataclass(frozen=True)
class CampaignRow:
    campaign_id: str
    name: str
    channel: str
    status: str
    start_date: str
    to_contact: int
    completed: int

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
    ) -> None:
        self.store = store
        self.db = db
        self.directory = directory
        self.clock = clock
        self.settings = settings
        self.calendar = settings.calendar
        self.gateway = gateway
        self.catch_up = catch_up

    # -- commands ------------------------------------------------------------------------
    def create(
        self,
        *,
        name: str,
        body: str,
        help_number: str,
        start: date | None = None,
        description: str = "",
        channel: Channel = Channel.TEXT,
        audience: Sequence[str] | None = None,
        active: bool = False,
        by: str | None = None,
    ) -> UUID:
        now = self.clock.now()
        if channel != Channel.TEXT:
            raise DomainError(f"the {channel} channel is not available yet: only text")
        patients = list(audience) if audience is not None else \
            self.directory.default_audience(channel)
        campaign = Campaign.draft(
            name=name, description=description, channel=channel,
            content={"body": body, "help_number": help_number,
                     "footer": self.settings.text_footer},
            start=start or self.calendar.today(now), audience=patients, now=now,
            calendar=self.calendar, size_cap=self.settings.campaign_size_cap,
            created_by=by or self.settings.user,
        )
        if active:
            campaign.activate(now=now, calendar=self.calendar)
            self.store.save(campaign, *self._plan(campaign, now))
        else:
            self.store.save(campaign)
        return campaign.id

    def edit(self, campaign_id: UUID, **changes: Any) -> None:
        campaign = self.get(campaign_id)
        now = self.clock.now()
        if "body" in changes or "help_number" in changes:
            content = dict(campaign.content)
            for key in ("body", "help_number"):
                if changes.get(key) is not None:
                    content[key] = changes[key]
            changes["content"] = content
        changes.pop("body", None)
        changes.pop("help_number", None)
        campaign.edit(now=now, calendar=self.calendar,
                      size_cap=self.settings.campaign_size_cap, **changes)
        replan = campaign.is_active and ({"audience", "start_date"} & set(changes))
        self.store.save(campaign, *(self._plan(campaign, now) if replan else ()))

    def activate(self, campaign_id: UUID) -> None:
        campaign = self.get(campaign_id)
        now = self.clock.now()
        campaign.activate(now=now, calendar=self.calendar)
        self.store.save(campaign, *self._plan(campaign, now))

    def inactivate(self, campaign_id: UUID) -> None:
        campaign = self.get(campaign_id)
        campaign.inactivate(now=self.clock.now(), calendar=self.calendar)
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

    def test_send(self, campaign_id: UUID | None, to_number: str, **draft: Any) -> str:
        """Send the campaign's text to one number. Never changes the status; an unsaved
        campaign (campaign_id None, draft fields given) is saved inactive first."""
        if campaign_id is None:
            campaign_id = self.create(active=False, **draft)
        campaign = self.get(campaign_id)
        body = compose(str(campaign.content.get("body", "")),
                       str(campaign.content.get("footer", DEFAULT_FOOTER)))
        result = self.gateway.send(OutboundText(to=to_number, body=body,
                                                reference=f"{campaign.id}:test"))
        outcome = "accepted" if result.accepted else f"failed {result.error_code}".strip()
        campaign.record_test_send(now=self.clock.now(), channel_address_hint=to_number[-4:],
                                  outcome=outcome)
        self.store.save(campaign)
        if not result.accepted:
            raise DomainError(f"the test text was refused: {result.error_message} "
                              f"({result.error_code})")
        return campaign_id.hex

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
        try:
            campaign: Campaign = self.store.repository.get(campaign_id)
        except AggregateNotFoundError:
            raise NotFound(f"no campaign {campaign_id}") from None
        if not isinstance(campaign, Campaign):
            raise NotFound(f"no campaign {campaign_id}")
        return campaign

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
        rows = self.db.fetchall(
            "SELECT c.campaign_id, c.name, c.channel, c.status, c.start_date, c.audience_size,"
            " COALESCE(SUM(CASE WHEN m.status IN ('Sent', 'Delivered', 'Unsuccessful',"
            " 'Skipped', 'Cancelled') THEN 1 ELSE 0 END), 0)"
            " FROM campaigns c LEFT JOIN communications m ON m.campaign_id = c.campaign_id"
            " GROUP BY c.campaign_id, c.name, c.channel, c.status, c.start_date,"
            " c.audience_size, c.created_at ORDER BY c.created_at DESC")
        return [CampaignRow(r[0], r[1], r[2], r[3], r[4], int(r[5]), int(r[6])) for r in rows]

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
