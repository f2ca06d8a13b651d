"""The campaigns area of the staff boundary (issue 12): every campaign command and view,
made for an acting user, checked against their role and groups, and audited.

A campaign belongs to the groups of the user who created it (() when that user sees All
Subscribers, and then only All Subscribers users see it: it may hold any patient); a user
whose groups do not cover a campaign's does not see it at all. A restricted user (not in All
Subscribers) may only put patients of their own groups on a campaign's list; the check uses
the same provider relation (PCP, appointment, billing) as the patient lists do
(`patients_in_scope`; PatientsFacade.visible in application/staff_patients.py is the same
rule for the patients area).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

from application.attempts import AttemptRow, campaign_attempts
from application.campaigns import CampaignRow, CampaignService, ReportRow
from application.csv_safe import SafeCsvWriter
from application.forecast import Forecast, forecaster
from application.letters import LetterService, LettersResult
from application.patients import PatientService
from application.staff_base import AuditSink
from application.staff_campaign_editor import CampaignEditing
from application.staff_scope import patients_in_scope
from application.store import EventStore
from application.templates import Template, template, templates
from domain.access import Actor, Permission
from domain.campaign import Campaign
from domain.channels import Channel
from domain.errors import DomainError, NotFound
from domain.follow_ups import FOLLOW_UPS_CAMPAIGN_ID
from domain.lists import ListQuery, Scope
from domain.preferences import ContactKeys
from projections.db import Database

READ = Permission.CAMPAIGNS_READ
SEND = Permission.CAMPAIGNS_SEND

REPORT_CSV_HEADER = ("#", "Patient ID", "Name", "Contact", "Status", "Attempts",
                     "Last Outcome", "Reason", "Due At")


@dataclass(frozen=True)
class CampaignDetail:
    campaign_id: str
    name: str
    description: str
    channel: str
    status: str
    start_date: str
    requested_start: str
    created_by: str
    groups: tuple[str, ...]
    patients: int
    to_contact: int
    completed: int
    progress: str
    test_sends: int
    content: dict[str, Any]
    schedule_preview: tuple[str, ...]  # the first planned slots (ISO instants)


@dataclass(frozen=True)
class ReportPage:
    rows: list[ReportRow]
    total: int


class CampaignsFacade(CampaignEditing):
    def __init__(self, audit: AuditSink, *, campaigns: CampaignService, letters: LetterService,
                 patients: PatientService, store: EventStore, db: Database,
                 catch_up: Callable[[], Any], contact_keys: ContactKeys | None = None) -> None:
        super().__init__(audit)
        self.contact_keys = contact_keys
        self.service = campaigns
        self.letters = letters
        self.patients = patients
        self.store = store
        self.db = db
        self.catch_up = catch_up

    @classmethod
    def from_outreach(cls, o: Any, audit: AuditSink) -> CampaignsFacade:
        """Over an application.bootstrap.Outreach."""
        return cls(audit, campaigns=o.campaigns, letters=o.letters, patients=o.patients,
                   store=o.store, db=o.db, catch_up=o.catch_up,
                   contact_keys=o.contact_keys)

    # -- finding a campaign the actor may see -------------------------------------------------
    def _visible(self, actor: Actor, action: str, ref: str) -> Campaign:
        """The campaign by id or unique prefix; one the actor's groups do not see is refused,
        and the refusal audited. A campaign's groups are its creator's; () is All Subscribers,
        seen only by users in All Subscribers (domain.access.Actor.sees_groups)."""
        self.catch_up()  # a prefix is looked up in the campaigns read model
        campaign = self.service.get(self.service.resolve(ref))
        if campaign.id == FOLLOW_UPS_CAMPAIGN_ID:
            # One-to-one texts are not a campaign: stopping or editing it would end them
            # (application.follow_ups); they are read and written from the replies inbox.
            raise NotFound(f"no campaign {ref}")
        if not actor.sees_groups(campaign.groups):
            raise self.deny(actor, action, f"campaign {campaign.id} belongs to other groups",
                            target=str(campaign.id))
        return campaign

    def _row(self, campaign_id: UUID) -> CampaignRow:
        return self.service.row(campaign_id)

    # -- reading --------------------------------------------------------------------------------
    def campaigns(self, actor: Actor, *, status: str | None = None,
                  channel: str | None = None) -> list[CampaignRow]:
        """The campaigns the actor's groups see, newest first, with their progress."""
        self.check(actor, READ, "campaign.list")
        rows = [r for r in self.service.campaigns() if actor.sees_groups(r.groups)]
        if status:
            rows = [r for r in rows if r.status.casefold() == status.strip().casefold()]
        if channel:
            rows = [r for r in rows if r.channel == channel.strip().lower()]
        return rows

    def get(self, actor: Actor, ref: str) -> CampaignDetail:
        with self.audited(actor, READ, "campaign.read", target=ref) as note:
            campaign = self._visible(actor, "campaign.read", ref)
            note.target = str(campaign.id)
            row = self._row(campaign.id)
            preview = self.service.schedule_preview(campaign.id)
            return CampaignDetail(
                campaign_id=str(campaign.id), name=campaign.name,
                description=campaign.description, channel=str(campaign.channel),
                status=str(campaign.status), start_date=campaign.start_date,
                requested_start=campaign.requested_start, created_by=campaign.created_by,
                groups=tuple(campaign.groups), patients=len(campaign.audience),
                to_contact=row.to_contact, completed=row.completed, progress=row.progress,
                test_sends=campaign.test_sends, content=dict(campaign.content),
                schedule_preview=tuple(t.isoformat() for t in preview))

    def report(self, actor: Actor, ref: str, page: int = 1,
               page_size: int | None = None) -> ReportPage:
        """Each patient's result; the audit records the patients shown (one page's)."""
        with self.audited(actor, READ, "campaign.report", target=ref) as note:
            campaign = self._visible(actor, "campaign.report", ref)
            note.target = str(campaign.id)
            rows = self.service.report(campaign.id)
            shown = rows if page_size is None else \
                rows[(page - 1) * page_size:page * page_size]
            note.patient_ids = [r.patient_id for r in shown]
            return ReportPage(shown, len(rows))

    def report_csv(self, actor: Actor, ref: str) -> str:
        """The whole report for a spreadsheet: formula-safe (names came from imports)."""
        with self.audited(actor, READ, "campaign.report_csv", target=ref) as note:
            campaign = self._visible(actor, "campaign.report_csv", ref)
            note.target = str(campaign.id)
            rows = self.service.report(campaign.id)
            note.patient_ids = [r.patient_id for r in rows]
            out = io.StringIO()
            writer = SafeCsvWriter(out)
            writer.writerow(REPORT_CSV_HEADER)
            writer.writerows([r.sequence, r.patient_id, r.name, r.contact, r.status,
                              r.attempts, r.last_outcome, r.reason, r.due_at] for r in rows)
            return out.getvalue()

    def attempts(self, actor: Actor, ref: str) -> list[AttemptRow]:
        """Every attempt of every patient, from the stored events (the audit truth)."""
        with self.audited(actor, READ, "campaign.attempts", target=ref) as note:
            campaign = self._visible(actor, "campaign.attempts", ref)
            note.target = str(campaign.id)
            rows = campaign_attempts(self.store, campaign.id)
            note.patient_ids = list(dict.fromkeys(r.patient_id for r in rows))
            return rows

    # -- the audience ---------------------------------------------------------------------------
    def _audience(self, actor: Actor, action: str, channel: Channel,
                  patients: Sequence[str] | None, view: str | None, keep_inactive: bool,
                  keep_reminders_only: bool) -> list[str] | None:
        """Chosen ids (as given, like `campaign create --patients`), a saved view's cleaned
        audience (like `patients audience --view`), or None: every Active patient with the
        channel's contact — for a restricted user, only those of their groups."""
        if patients is not None and view is not None:
            raise DomainError("give patients or a view, not both")
        if view is not None:
            query = self.patients.find_view(actor.username, view).query
            if not actor.sees_all and query.scope.all_subscribers:
                # The restricted user's "All Subscribers" is their own groups.
                query = ListQuery(query.focus, Scope(groups=tuple(actor.groups)),
                                  query.filters, query.sort, query.columns)
            check = self.patients.audience_from(
                query, channel, remove_inactive=not keep_inactive,
                remove_appointment_reminders_only=not keep_reminders_only)
            if check.cap_message:
                raise DomainError(check.cap_message)
            chosen: list[str] = list(check.patient_ids)
        elif patients is not None:
            chosen = list(dict.fromkeys(p.strip() for p in patients if p.strip()))
        elif actor.sees_all:
            return None
        else:
            everyone = self.service.directory.default_audience(channel)
            allowed = patients_in_scope(self.db, actor, everyone)
            return [p for p in everyone if p in allowed]
        outside = len(set(chosen) - patients_in_scope(self.db, actor, chosen))
        if outside:
            # The count only: a patient id outside the user's groups is not theirs to learn.
            raise self.deny(actor, action, f"{outside} of the chosen patients are outside "
                            "your groups")
        return chosen

    # -- commands -------------------------------------------------------------------------------
    def create(self, actor: Actor, *, name: str, channel: Channel | str = Channel.TEXT,
               body: str | None = None, help_number: str | None = None,
               description: str = "", start: date | None = None,
               patients: Sequence[str] | None = None, view: str | None = None,
               keep_inactive: bool = False, keep_appointment_reminders_only: bool = False,
               active: bool = False, protocol: str = "", **content: Any) -> CampaignDetail:
        """Every channel, as `outreach campaign create` takes it; `content` holds the
        channel's own fields (subject, template, script, page_size, ...). Created by the
        actor, within the actor's groups."""
        with self.audited(actor, SEND, "campaign.create") as note:
            try:
                chosen = Channel(channel)
            except ValueError:
                raise DomainError(f"unknown channel {channel!r}: use one of "
                                  f"{', '.join(c.value for c in Channel)}") from None
            audience = self._audience(actor, "campaign.create", chosen, patients, view,
                                      keep_inactive, keep_appointment_reminders_only)
            groups = () if actor.sees_all else tuple(actor.groups)
            cid = self.service.create(
                name=name, body=body, help_number=help_number, start=start,
                description=description, channel=chosen, audience=audience, active=active,
                by=actor.username, protocol=protocol, groups=groups, **content)
            note.target = str(cid)
            note.patient_ids = list(self.service.get(cid).audience)
        return self._detail_unaudited(cid)

    def edit(self, actor: Actor, ref: str, *, patients: Sequence[str] | None = None,
             view: str | None = None, keep_inactive: bool = False,
             keep_appointment_reminders_only: bool = False, start: date | None = None,
             **changes: Any) -> CampaignDetail:
        """Name, description, start, patients and content (an active campaign only until
        midnight before its start day: CampaignRuleViolation after)."""
        with self.audited(actor, SEND, "campaign.edit", target=ref) as note:
            campaign = self._visible(actor, "campaign.edit", ref)
            note.target = str(campaign.id)
            audience = None
            if patients is not None or view is not None:
                audience = self._audience(actor, "campaign.edit", Channel(campaign.channel),
                                          patients, view, keep_inactive,
                                          keep_appointment_reminders_only)
                note.patient_ids = list(audience or ())
            # Only what was given: a key present (even as None) makes the service re-plan.
            given = {k: v for k, v in {**changes, "start_date": start,
                                       "audience": audience}.items() if v is not None}
            self.service.edit(campaign.id, by=actor.username, **given)
        return self._detail_unaudited(campaign.id)

    def _transition(self, actor: Actor, ref: str, action: str) -> tuple[CampaignDetail, Any]:
        with self.audited(actor, SEND, f"campaign.{action}", target=ref) as note:
            campaign = self._visible(actor, f"campaign.{action}", ref)
            note.target = str(campaign.id)
            result = getattr(self.service, action)(campaign.id, by=actor.username)
            if action == "stop":
                note.detail = f"{result} communications cancelled"
        return self._detail_unaudited(campaign.id), result

    def activate(self, actor: Actor, ref: str) -> CampaignDetail:
        return self._transition(actor, ref, "activate")[0]

    def inactivate(self, actor: Actor, ref: str) -> CampaignDetail:
        return self._transition(actor, ref, "inactivate")[0]

    def stop(self, actor: Actor, ref: str) -> tuple[CampaignDetail, int]:
        """Stop for good; returns the campaign and how many communications were cancelled."""
        detail, cancelled = self._transition(actor, ref, "stop")
        return detail, int(cancelled)

    def test_send(self, actor: Actor, ref: str, to: str) -> CampaignDetail:
        """The campaign's message to one staff number or address; the status is unchanged.
        The audit keeps only the campaign (the address is staff's, but not ours to keep)."""
        with self.audited(actor, SEND, "campaign.test_send", target=ref) as note:
            campaign = self._visible(actor, "campaign.test_send", ref)
            note.target = str(campaign.id)
            self.service.test_send(campaign.id, to)
        return self._detail_unaudited(campaign.id)

    def test_send_draft(self, actor: Actor, to: str, **draft: Any) -> CampaignDetail:
        """A test of a campaign not yet saved: saved Inactive first (created by the actor,
        within the actor's groups), unless the address is refused (then nothing is saved)."""
        channel = Channel(draft.pop("channel", Channel.TEXT))
        return self._test_new(actor, to, channel, None, None, draft)

    def _test_new(self, actor: Actor, to: str, channel: Channel,
                  patients: Sequence[str] | None, view: str | None, draft: dict[str, Any],
                  check: Callable[[], None] | None = None) -> CampaignDetail:
        """Save a draft Inactive with its audience (chosen patients, a view or the default),
        then test it; `check` runs first, inside the audit record."""
        with self.audited(actor, SEND, "campaign.test_send") as note:
            if check is not None:
                check()
            audience = self._audience(actor, "campaign.test_send", channel, patients, view,
                                      False, False)
            groups = () if actor.sees_all else tuple(actor.groups)
            hex_id = self.service.test_send(None, to, channel=channel, audience=audience,
                                            by=actor.username, groups=groups, **draft)
            note.target = str(UUID(hex_id))
        return self._detail_unaudited(UUID(hex_id))

    def _detail_unaudited(self, campaign_id: UUID) -> CampaignDetail:
        """After a command the caller already audited: the campaign as it now is."""
        self.catch_up()
        campaign = self.service.get(campaign_id)
        row = self._row(campaign_id)
        preview = self.service.schedule_preview(campaign_id)
        return CampaignDetail(
            campaign_id=str(campaign.id), name=campaign.name, description=campaign.description,
            channel=str(campaign.channel), status=str(campaign.status),
            start_date=campaign.start_date, requested_start=campaign.requested_start,
            created_by=campaign.created_by, groups=tuple(campaign.groups),
            patients=len(campaign.audience), to_contact=row.to_contact,
            completed=row.completed, progress=row.progress, test_sends=campaign.test_sends,
            content=dict(campaign.content),
            schedule_preview=tuple(t.isoformat() for t in preview))

    # -- letters --------------------------------------------------------------------------------
    def letter_files(self, actor: Actor, ref: str) -> list[dict[str, object]]:
        with self.audited(actor, READ, "letters.list", target=ref) as note:
            campaign = self._visible(actor, "letters.list", ref)
            note.target = str(campaign.id)
            files, _folder = self.letters.files(campaign.id)
            return files

    def letter_download(self, actor: Actor, ref: str, name: str) -> Path:
        """The path of one of the campaign's listed files: only a name the campaign itself
        recorded is served, so no path (`../`, `/etc/...`) can reach another file. The
        letters hold the patients' names and addresses: the audit names every one."""
        with self.audited(actor, READ, "letters.download", target=ref) as note:
            campaign = self._visible(actor, "letters.download", ref)
            note.target = str(campaign.id)
            files, folder = self.letters.files(campaign.id)
            listed = {str(f["name"]) for f in files}
            if name not in listed or Path(name).name != name:
                raise NotFound(f"no letter file {name!r} for this campaign")
            note.detail = name
            note.patient_ids = self._patients_in_file(campaign.id, name)
            path = folder / name
            if not path.is_file():
                raise NotFound(f"the letter file {name!r} is no longer in the letters folder")
            return path

    def _patients_in_file(self, campaign_id: UUID, name: str) -> list[str]:
        # A letter's provider reference is "<letters file>#<place>" (application/letters.py);
        # a labels file holds the same patients as the letters file of its number.
        letters_name = re.sub(r"-labels-(\d+)\.pdf$", r"-letters-\1.pdf", name)
        rows = self.db.fetchall(
            "SELECT patient_id, provider_ref FROM communications WHERE campaign_id = ?"
            " ORDER BY sequence", (str(campaign_id),))
        return [str(r[0]) for r in rows if str(r[1]).rpartition("#")[0] == letters_name]

    def letters_make(self, actor: Actor, ref: str,
                     progress: Callable[[int, int], None] | None = None) -> LettersResult:
        with self.audited(actor, SEND, "letters.make", target=ref) as note:
            campaign = self._visible(actor, "letters.make", ref)
            note.target = str(campaign.id)
            made = self.letters.make(campaign.id, progress=progress)
            note.detail = f"{made.letters} letters, {made.skipped} skipped"
            return made

    # -- templates ------------------------------------------------------------------------------
    def templates(self, actor: Actor, channel: str | None = None) -> list[Template]:
        self.check(actor, READ, "templates.list")
        return templates(channel)

    def template(self, actor: Actor, name: str) -> Template:
        self.check(actor, READ, "templates.read", target=name)
        return template(name)

    # -- before activation (issue 13) -----------------------------------------------------------
    def forecast(self, actor: Actor, ref: str) -> Forecast:
        """If activated now: when the first and last patient are reached, and who is not
        and why (application/forecast.py). The audit names the excluded patients shown."""
        with self.audited(actor, READ, "campaign.forecast", target=ref) as note:
            campaign = self._visible(actor, "campaign.forecast", ref)
            note.target = str(campaign.id)
            made = forecaster(self.service, self.contact_keys).forecast(campaign)
            note.patient_ids = list(made.shown_ids)
            return made
