"""Letter campaigns: the files are made in the background, then staff download and mail them.

Activation plans one communication per patient, as for every channel. On the start day (or
when staff ask, `outreach letters make`), the letter worker decides each patient just as a
dispatcher would — Global and protocol opt-outs, a usable postal address — prints the
letters and their address labels (at most 200 per file, gateways/pdf_letters.py) into
`OUTREACH_LETTERS_DIR/<campaign id>/`, records each letter as sent on its mail date (the
provider reference names its file and place), skips the others with the reason, and tells
staff with `Campaign.LettersReady` (the files' names and sizes; the files hold the PHI).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from uuid import UUID, uuid4

import structlog
from eventsourcing.application import AggregateNotFoundError

from application.campaigns import load_campaign
from application.ports import PatientContact, PatientDirectory
from application.settings import Settings
from application.store import EventStore
from domain.campaign import Campaign
from domain.channels import Channel
from domain.clock import Clock
from domain.communication import Communication, SkipReason
from domain.errors import CampaignRuleViolation, DomainError
from domain.preferences import PatientPreferences, patient_preferences_id
from gateways.letters import (
    LetterContent,
    LetterFile,
    LetterPrinter,
    LetterRecipient,
    address_problem,
)
from projections.db import Database

log = structlog.get_logger("letters")

SAVE_CHUNK = 500  # skipped communications per save
MAIL_HOUR = time(9)  # a letter counts as sent on its mail date, at 09:00 local


@dataclass(frozen=True)
class LettersResult:
    campaign_id: UUID
    letters: int
    skipped: int
    files: list[dict[str, object]]
    folder: Path


class LetterService:
    def __init__(self, store: EventStore, db: Database, directory: PatientDirectory,
                 clock: Clock, settings: Settings, printer: LetterPrinter,
                 catch_up: Callable[[], object]) -> None:
        self.store = store
        self.db = db
        self.directory = directory
        self.clock = clock
        self.settings = settings
        self.printer = printer
        self.catch_up = catch_up

    def folder(self, campaign_id: UUID) -> Path:
        return self.settings.letters_dir / str(campaign_id)

    # -- the worker's step -----------------------------------------------------------------
    def make_due(self) -> list[LettersResult]:
        """Make the files of every active letter campaign whose start day has come and that
        has letters still planned."""
        today = self.settings.calendar.today(self.clock.now()).isoformat()
        rows = self.db.fetchall(
            "SELECT DISTINCT c.campaign_id FROM campaigns c JOIN communications m"
            " ON m.campaign_id = c.campaign_id WHERE c.channel = 'letter'"
            " AND c.status = 'Pending' AND c.start_date <= ? AND m.status = 'Planned'",
            (today,))
        return [self.make(UUID(r[0])) for r in rows]

    # -- staff's command ---------------------------------------------------------------------
    def make(self, campaign_id: UUID,
             progress: Callable[[int, int], None] | None = None) -> LettersResult:
        campaign = self._campaign(campaign_id)
        if not campaign.is_active:
            raise CampaignRuleViolation(f"the campaign is {campaign.status}: letters are made "
                                        "for an active campaign (activate it first)")
        self.catch_up()
        planned = [str(r[0]) for r in self.db.fetchall(
            "SELECT patient_id FROM communications WHERE campaign_id = ? AND status = 'Planned'"
            " ORDER BY sequence", (str(campaign_id),))]
        now = self.clock.now()
        today = self.settings.calendar.today(now)
        contacts = self.directory.contacts(planned)
        protocol = str(campaign.content.get("protocol", ""))
        mail_date = date.fromisoformat(str(campaign.content.get("mail_date")
                                           or campaign.start_date))
        sent_at = datetime.combine(mail_date, MAIL_HOUR, self.settings.calendar.timezone)
        comms: list[Communication] = []
        recipients: list[LetterRecipient] = []
        to_print: list[Communication] = []
        skipped = 0
        for patient_id in planned:
            comm: Communication = self.store.repository.get(
                Communication.create_id(campaign.id, patient_id))
            contact = contacts.get(patient_id)
            reason = self._skip_reason(contact, today, protocol)
            if reason is not None:
                comm.skip(now, reason)
                comms.append(comm)
                skipped += 1
                continue
            assert contact is not None
            recipients.append(LetterRecipient(patient_id, contact.first_name,
                                              contact.last_name, contact.postal_address))
            to_print.append(comm)
        folder = self.folder(campaign.id)
        folder.mkdir(parents=True, exist_ok=True)
        # A name of its own for each run: a worker killed half-way and started again prints
        # the rest into new files, never over files already listed.
        base = f"{_base_name(campaign)}-{uuid4().hex[:6]}"
        files = self.printer.render(self._content(campaign, mail_date), recipients, folder,
                                    base_name=base, progress=progress)
        for start in range(0, len(comms), SAVE_CHUNK):  # the skipped ones
            self.store.save(*comms[start:start + SAVE_CHUNK])
        described: list[dict[str, object]] = []
        labels = {f.first: f for f in files if f.kind == "labels"}
        for made in (f for f in files if f.kind == "letters"):
            printed: list[Communication] = []
            for place, comm in enumerate(to_print[made.first:made.first + made.count], 1):
                comm.start_attempt(1, now)
                comm.accept(1, sent_at, f"{made.path.name}#{place}")
                printed.append(comm)
            pair = [_describe(made)] + ([_describe(labels[made.first])]
                                        if made.first in labels else [])
            # The file's letters and its listing in one save: all or nothing.
            campaign.letter_file_printed(now=now, files=pair)
            self.store.save(campaign, *printed)
            described.extend(pair)
        campaign.letters_ready(now=now, files=described, letters=len(recipients),
                               skipped=skipped)
        self.store.save(campaign)
        log.info("letters_ready", campaign=str(campaign.id), letters=len(recipients),
                 skipped=skipped, files=len(files))
        return LettersResult(campaign.id, len(recipients), skipped, described, folder)

    def files(self, campaign_id: UUID) -> tuple[list[dict[str, object]], Path]:
        """The campaign's letter files (from its LettersReady event) and their folder."""
        campaign = self._campaign(campaign_id)
        return list(campaign.letter_files), self.folder(campaign.id)

    # -- rules -------------------------------------------------------------------------------
    def _skip_reason(self, contact: PatientContact | None, today: date,
                     protocol: str) -> str | None:
        if contact is None:
            return str(SkipReason.UNKNOWN_PATIENT)
        try:
            prefs: PatientPreferences = self.store.repository.get(
                patient_preferences_id(contact.patient_id))
            if prefs.blocks_campaign(Channel.LETTER, today, protocol):
                return str(SkipReason.OPTED_OUT)
        except AggregateNotFoundError:
            pass
        problem = address_problem(contact.postal_address)
        if problem is not None:
            return f"{SkipReason.NO_ADDRESS}: {problem}"
        return None

    def _content(self, campaign: Campaign, mail_date: date) -> LetterContent:
        content = campaign.content
        logo: bytes | None = None
        name = str(content.get("logo") or "")
        if name:
            path = self.settings.letter_logo_files.get(name)
            try:
                logo = path.read_bytes() if path else None
            except OSError as exc:
                raise DomainError(f"cannot read the letterhead logo {name!r}: "
                                  f"{exc.strerror or exc}") from None
        return LetterContent(
            page_size=str(content.get("page_size", "Letter")),  # type: ignore[arg-type]
            greeting=bool(content.get("greeting", True)), body_html=str(content["body"]),
            logo=logo, return_address=tuple(content.get("return_address") or ()),
            mail_date=mail_date, organisation=self.settings.organisation)

    def _campaign(self, campaign_id: UUID) -> Campaign:
        campaign = load_campaign(self.store, campaign_id)
        if campaign.channel != Channel.LETTER:
            raise CampaignRuleViolation("not a letter campaign")
        return campaign


def _describe(made: LetterFile) -> dict[str, object]:
    return {"name": made.path.name, "kind": made.kind, "count": made.count,
            "pages": made.pages, "bytes": made.bytes}


def _base_name(campaign: Campaign) -> str:
    """Files named for the campaign (its name slugged, never a patient's) and start date."""
    slug = re.sub(r"[^a-z0-9]+", "-", campaign.name.lower()).strip("-")[:40] or "letters"
    return f"{slug}-{campaign.start_date}"
