"""The campaign editor's part of the campaigns facade (issue 13): what the console's editor
offers for a channel, the live text counter, when a chosen start day really starts, one
patient's merged preview, and Save & Send Test of a campaign not yet saved.

A mixin of application.staff_campaigns.CampaignsFacade (which gives the service, the
database, the access checks and the audience rules): kept apart so each module stays small.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape
from typing import TYPE_CHECKING, Any
from uuid import UUID

from application.campaign_content import (
    DEFAULT_VOICEMAIL,
    email_content,
    letter_content,
    phone_content,
    text_content,
)
from application.email_merge import render
from application.staff_base import Guarded
from application.staff_scope import patients_in_scope
from application.templates import Template, templates
from application.voice_events import phone_merge_values
from domain.access import Actor, Permission
from domain.channels import Channel
from domain.email import MESSAGE
from domain.errors import DomainError, NotFound
from domain.phone_numbers import valid_number
from domain.sms import MAX_SEGMENTS, compose, segment

if TYPE_CHECKING:
    from application.campaigns import CampaignService
    from application.staff_campaigns import CampaignDetail
    from domain.campaign import Campaign
    from projections.db import Database

SEND = Permission.CAMPAIGNS_SEND


@dataclass(frozen=True)
class EditorChoices:
    """The editor's options for one channel (CampaignsFacade.editor_choices)."""

    templates: tuple[Template, ...]
    email_logos: tuple[str, ...]
    letter_logos: tuple[str, ...]
    return_addresses: dict[str, tuple[str, ...]]
    footer: str
    help_number: str
    from_address: str
    from_name: str
    voicemail: str
    today: date


@dataclass(frozen=True)
class TextCount:
    """A text body's live count, the footer added (domain.sms.segment)."""

    characters: int
    units: int
    encoding: str
    segments: int
    remaining: int
    too_long: bool
    footer: str


@dataclass(frozen=True)
class StartDay:
    requested: date
    start: date  # the sending day it starts on
    past: bool
    weekday_sends: bool  # False: a day of the week that never sends (Sunday); else a holiday


@dataclass(frozen=True)
class Preview:
    """One patient's merged message: text (texts, calls, emails' plain part) and HTML."""

    patient: str
    address: str
    subject: str
    text: str
    html: str


class CampaignEditing(Guarded):
    """The editor's calls (see the module docstring)."""

    service: CampaignService
    db: Database

    if TYPE_CHECKING:  # CampaignsFacade's own, which this mixin calls
        def _visible(self, actor: Actor, action: str, ref: str) -> Campaign: ...

        def _audience(self, actor: Actor, action: str, channel: Channel,
                      patients: Sequence[str] | None, view: str | None, keep_inactive: bool,
                      keep_reminders_only: bool) -> list[str] | None: ...

        def _detail_unaudited(self, campaign_id: UUID) -> CampaignDetail: ...

        def _test_new(self, actor: Actor, to: str, channel: Channel,
                      patients: Sequence[str] | None, view: str | None,
                      draft: dict[str, Any],
                      check: Callable[[], None] | None = None) -> CampaignDetail: ...

        def test_send(self, actor: Actor, ref: str, to: str) -> CampaignDetail: ...

    def editor_choices(self, actor: Actor, channel: str) -> EditorChoices:
        """What the editor offers for a channel: its templates and the organisation's own
        choices (logos, return addresses) and defaults, so the form starts as the service
        would fill it."""
        self.check(actor, SEND, "campaign.editor")
        settings = self.service.settings
        return EditorChoices(
            templates=tuple(templates(channel)), email_logos=tuple(sorted(settings.logos)),
            letter_logos=tuple(sorted(settings.letter_logo_files)),
            return_addresses={k: tuple(v) for k, v in settings.return_address_book.items()},
            footer=settings.text_footer, help_number=settings.help_number,
            from_address=settings.email_from_address,
            from_name=settings.email_from_name or settings.organisation,
            voicemail=DEFAULT_VOICEMAIL,
            today=self.service.calendar.today(self.service.clock.now()))

    def text_count(self, actor: Actor, body: str) -> TextCount:
        """The live counter: the body with the organisation's footer, segmented as the
        sender will (domain.sms), and whether check_body would refuse it."""
        self.check(actor, SEND, "campaign.editor")
        footer = self.service.settings.text_footer
        seg = segment(compose(body, footer)) if body.strip() else segment(footer)
        return TextCount(len(body), seg.units, seg.encoding, seg.segments, seg.remaining,
                         seg.segments > MAX_SEGMENTS, footer)

    def start_day(self, actor: Actor, day: date, channel: str) -> StartDay:
        """When a campaign asked to start on `day` starts: a Sunday or holiday moves to the
        next sending day (Campaign.draft's rule, the organisation's calendar)."""
        self.check(actor, SEND, "campaign.editor")
        calendar = self.service.calendar
        chosen = Channel(channel)
        return StartDay(day, calendar.next_sending_day(day, chosen),
                        day < calendar.today(self.service.clock.now()),
                        day.weekday() in calendar.windows[chosen].weekdays)

    def preview(self, actor: Actor, patient_id: str, *, channel: str, body: str | None = None,
                help_number: str | None = None, **fields: Any) -> Preview:
        """A draft's message as one patient would get it, merged by the senders' own code
        (texts: the footer; emails: EmailComposition; calls: the script's merge fields as
        the call webhook fills them; letters: the greeting). The patient must be one the
        actor sees; the audit names them."""
        pid = patient_id.strip()
        with self.audited(actor, SEND, "campaign.preview", target=pid) as note:
            if not pid:
                raise DomainError("choose a patient (their patient ID) for the preview")
            if pid not in patients_in_scope(self.db, actor, [pid]):
                raise self.deny(actor, "campaign.preview",
                                "the patient is not one of your groups' patients", target=pid)
            contact = self.service.directory.contacts([pid]).get(pid)
            if contact is None:
                raise NotFound(f"no patient {pid}")
            note.patient_ids = [pid]
            settings = self.service.settings
            chosen = Channel(channel)
            who = f"{contact.first_name} {contact.last_name} ({pid})"
            address = contact.address_for(chosen) or ""
            given = {k: v for k, v in fields.items() if v is not None}
            if chosen == Channel.TEXT:
                content = text_content(settings, body or "", help_number or "")
                return Preview(who, address, "", compose(str(content["body"]),
                                                         str(content["footer"])), "")
            if chosen == Channel.EMAIL:
                composition = self.service.email_composition
                if composition is None:
                    raise DomainError("email is not configured in this process")
                content = email_content(settings, {**given, "body": body,
                                                   "help_number": help_number})
                link = f"{composition.public_url.rstrip('/')}/unsubscribe/preview"
                shown = composition.render(content, contact, MESSAGE, link)
                return Preview(who, address, shown.subject, shown.text, shown.html)
            if chosen == Channel.PHONE:
                if body is not None and "script" not in given:
                    given["script"] = body
                content = phone_content(settings, given)
                values = phone_merge_values(settings, content, contact)
                script = render(str(content["script"]), values, html=False)
                voicemail = render(str(content["voicemail"]), values, html=False)
                return Preview(who, address, "", f"{script}\n\nVoicemail: {voicemail}", "")
            content = letter_content(settings, {**given, "body": body})
            greeting = f"<p>Dear {escape(contact.first_name)},</p>" \
                if content["greeting"] else ""
            lines = "\n".join(contact.postal_address)
            return Preview(who, lines, "", "", greeting + str(content["body"]))

    def test_send_new(self, actor: Actor, to: str, *, channel: str = "text",
                      patients: Sequence[str] | None = None, view: str | None = None,
                      **draft: Any) -> CampaignDetail:
        """Save & Send Test of a campaign not yet saved, with the audience the editor chose
        (fixed patients or a saved view; test_send_draft takes the default one): saved
        Inactive, then tested; a bad number or address saves nothing."""
        chosen = Channel(channel)
        return self._test_new(actor, to, chosen, patients, view, draft,
                              check=lambda: self._test_address(chosen, to))

    def test_send_checked(self, actor: Actor, ref: str, to: str) -> CampaignDetail:
        """test_send, the number or address checked first in one line (a text's too)."""
        campaign = self._visible(actor, "campaign.test_send", ref)
        self._test_address(Channel(campaign.channel), to)
        return self.test_send(actor, ref, to)

    @staticmethod
    def _test_address(channel: Channel, to: str) -> None:
        if channel == Channel.LETTER:
            raise DomainError("a letter campaign has no test send: make its letters and "
                              "check the PDF")
        if not to.strip():
            raise DomainError("enter a mobile number or an email address for the test")
        if channel in (Channel.TEXT, Channel.PHONE) and not valid_number(to):
            raise DomainError(f"{to!r} is not a valid phone number")
