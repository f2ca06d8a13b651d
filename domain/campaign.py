"""The Campaign aggregate: one message to a chosen list of patients, and its lifecycle.

Saved Inactive (never sends) or Active (Pending until sent). An active campaign can be edited
or inactivated only until midnight before its start day (organisation time zone); after that
only Stop, which works any time before completion, cancels what was not yet sent and is final.
A start date on a Sunday or holiday moves to the next sending day. A test send never changes
the status.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate, event

from domain.calendar import SendingCalendar
from domain.channels import Channel
from domain.errors import CampaignRuleViolation, InvalidContent
from domain.sms import DEFAULT_FOOTER, check_body

DEFAULT_SIZE_CAP = 4000


class CampaignStatus(StrEnum):
    INACTIVE = "Inactive"
    PENDING = "Pending"  # active and waiting to send or sending
    COMPLETED = "Completed"
    STOPPED = "Stopped"


EDITABLE_FIELDS = ("name", "description", "content", "start_date", "audience")


def check_content(channel: str, content: dict[str, Any]) -> None:
    if channel == Channel.TEXT:
        check_body(str(content.get("body", "")), str(content.get("footer", DEFAULT_FOOTER)))
        if not str(content.get("help_number", "")).strip():
            raise InvalidContent("a text campaign needs a help number (the answer to HELP)")
    elif channel == Channel.EMAIL:
        # The full check (sanitised body, merge fields, template, address format) is the
        # application's (application/email_content.py); these hold whatever calls us.
        for key, words in (("subject", "a subject"), ("body", "a body"),
                           ("from_address", "a from address")):
            if not str(content.get(key, "")).strip():
                raise InvalidContent(f"an email campaign needs {words}")
    elif channel == Channel.LETTER:
        if not str(content.get("body", "")).strip():
            raise InvalidContent("a letter campaign needs a body")
        if content.get("page_size") not in ("Letter", "A4"):
            raise InvalidContent("a letter's page size is Letter or A4")
        if not content.get("return_address"):
            raise InvalidContent("a letter campaign needs a return address")
    elif channel == Channel.PHONE:
        # The full check (template, merge fields, the voicemail's HIPAA words) is the
        # application's (application/campaign_content.py).
        for key, words in (("script", "a script"), ("voicemail", "a voicemail script"),
                           ("callback_number", "a call-back number")):
            if not str(content.get(key, "")).strip():
                raise InvalidContent(f"a phone campaign needs {words}")
    elif not content:
        raise InvalidContent(f"a {channel} campaign needs content")


def check_audience(audience: Sequence[str], size_cap: int) -> None:
    if len(set(audience)) != len(audience):
        raise CampaignRuleViolation("the audience lists a patient more than once")
    if len(audience) > size_cap:
        raise CampaignRuleViolation(
            f"the audience has {len(audience)} patients; a campaign may contact at most "
            f"{size_cap}: narrow the list (by provider, group or care gap) and try again"
        )


class Campaign(Aggregate):
    """Event-sourced campaign. Event names and fields are the public contract (docs/events.md)."""

    @event("Created")
    def __init__(
        self,
        name: str,
        description: str,
        channel: str,
        content: dict[str, Any],
        requested_start: str,
        start_date: str,
        audience: list[str],
        created_at: datetime,
        created_by: str,
        groups: list[str] | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.channel = channel
        self.content = content
        self.requested_start = requested_start
        self.start_date = start_date
        self.audience = audience
        self.created_by = created_by
        # The subscriber groups of the user who created it when that user does not see All
        # Subscribers (issue 12): only users of all those groups see the campaign. Empty (and
        # every campaign stored before): made for All Subscribers, so it may hold any patient:
        # only All Subscribers users see it (domain.access.Actor.sees_groups).
        self.groups = list(groups or [])
        self.status = CampaignStatus.INACTIVE
        self.activated_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.test_sends = 0
        self.letter_files: list[dict[str, Any]] = []  # letter campaigns: the files made

    # -- factory ----------------------------------------------------------------------
    @classmethod
    def draft(
        cls,
        *,
        name: str,
        description: str,
        channel: Channel,
        content: dict[str, Any],
        start: date,
        audience: Sequence[str],
        now: datetime,
        calendar: SendingCalendar,
        size_cap: int = DEFAULT_SIZE_CAP,
        created_by: str = "system",
        groups: Sequence[str] = (),
    ) -> Campaign:
        if not name.strip():
            raise CampaignRuleViolation("a campaign needs a name")
        check_content(channel, content)
        check_audience(audience, size_cap)
        if start < calendar.today(now):
            raise CampaignRuleViolation(f"the start date {start} is in the past")
        return cls(
            name=name.strip(),
            description=description,
            channel=str(channel),
            content=dict(content),
            requested_start=start.isoformat(),
            start_date=calendar.next_sending_day(start, channel).isoformat(),
            audience=list(audience),
            created_at=now,
            created_by=created_by,
            groups=list(groups),
        )

    # -- queries -----------------------------------------------------------------------
    @property
    def start(self) -> date:
        return date.fromisoformat(self.start_date)

    @property
    def is_active(self) -> bool:
        return self.status == CampaignStatus.PENDING

    @property
    def is_final(self) -> bool:
        return self.status in (CampaignStatus.COMPLETED, CampaignStatus.STOPPED)

    def frozen(self, now: datetime, calendar: SendingCalendar) -> bool:
        """From midnight before the start day an active campaign can only be stopped."""
        return now >= calendar.midnight_before(self.start)

    # -- rules ---------------------------------------------------------------------------
    def _check_not_final(self, action: str) -> None:
        if self.status == CampaignStatus.STOPPED:
            raise CampaignRuleViolation(
                f"cannot {action}: the campaign was stopped, which is final; create a new one"
            )
        if self.status == CampaignStatus.COMPLETED:
            raise CampaignRuleViolation(f"cannot {action}: the campaign is completed")

    def _check_changeable(self, action: str, now: datetime, calendar: SendingCalendar) -> None:
        self._check_not_final(action)
        if self.is_active and self.frozen(now, calendar):
            raise CampaignRuleViolation(
                f"cannot {action}: the campaign is active and its start day ({self.start_date}) "
                "has begun; an active campaign can be changed only until midnight before its "
                "start day. Stop it and create a new one instead"
            )

    # -- commands ------------------------------------------------------------------------
    def edit(
        self,
        *,
        now: datetime,
        calendar: SendingCalendar,
        size_cap: int = DEFAULT_SIZE_CAP,
        by: str = "system",
        **changes: Any,
    ) -> None:
        self._check_changeable("edit", now, calendar)
        unknown = set(changes) - set(EDITABLE_FIELDS)
        if unknown:
            raise CampaignRuleViolation(
                f"cannot edit {', '.join(sorted(unknown))}; editable: {', '.join(EDITABLE_FIELDS)}"
            )
        fields: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
        if "name" in fields and not str(fields["name"]).strip():
            raise CampaignRuleViolation("a campaign needs a name")
        if "content" in fields:
            check_content(self.channel, fields["content"])
        if "audience" in fields:
            fields["audience"] = list(fields["audience"])
            check_audience(fields["audience"], size_cap)
        if "start_date" in fields:
            start = fields["start_date"]
            start = start if isinstance(start, date) else date.fromisoformat(str(start))
            if start < calendar.today(now):
                raise CampaignRuleViolation(f"the start date {start} is in the past")
            fields["requested_start"] = start.isoformat()
            channel = Channel(self.channel)
            fields["start_date"] = calendar.next_sending_day(start, channel).isoformat()
        if not fields:
            raise CampaignRuleViolation("nothing to change")
        self._edited(changes=fields, at=now, by=by)

    # `by` (the signed-in user) was added to Edited, Activated and Inactivated in issue 12;
    # events stored before it load with "" (the default).
    @event("Edited")
    def _edited(self, changes: dict[str, Any], at: datetime, by: str = "") -> None:
        for key, value in changes.items():
            setattr(self, key, value)

    def activate(self, *, now: datetime, calendar: SendingCalendar, by: str = "system",
                 size_cap: int = DEFAULT_SIZE_CAP) -> None:
        self._check_not_final("activate")
        if self.is_active:
            raise CampaignRuleViolation("the campaign is already active")
        if not self.audience:
            raise CampaignRuleViolation("the campaign has no patients to contact")
        # Checked again here, not only when the list was saved: the organisation's cap may
        # have been lowered since (an administrator's setting).
        check_audience(self.audience, size_cap)
        self._activated(at=now, by=by)

    @event("Activated")
    def _activated(self, at: datetime, by: str = "") -> None:
        self.status = CampaignStatus.PENDING
        self.activated_at = at

    def inactivate(self, *, now: datetime, calendar: SendingCalendar, by: str = "system") -> None:
        if self.status == CampaignStatus.INACTIVE:
            raise CampaignRuleViolation("the campaign is already inactive")
        self._check_changeable("inactivate", now, calendar)
        self._inactivated(at=now, by=by)

    @event("Inactivated")
    def _inactivated(self, at: datetime, by: str = "") -> None:
        self.status = CampaignStatus.INACTIVE

    def stop(self, *, now: datetime, by: str = "system") -> None:
        self._check_not_final("stop")
        self._stopped(at=now, by=by)

    @event("Stopped")
    def _stopped(self, at: datetime, by: str) -> None:
        self.status = CampaignStatus.STOPPED
        self.finished_at = at

    def complete(self, *, now: datetime, sent: int, delivered: int, unsuccessful: int,
                 introduced: int = 0) -> None:
        """`sent`: accepted by the provider, no receipt; `delivered`: with a delivery receipt;
        `unsuccessful`: ended without reaching the patient (failed or skipped);
        `introduced` (email): got the introductory email instead of the campaign's."""
        if not self.is_active:
            raise CampaignRuleViolation(f"only an active campaign completes, not {self.status}")
        self._completed(at=now, accepted=sent + delivered, sent=sent, delivered=delivered,
                        unsuccessful=unsuccessful, introduced=introduced)

    class Completed(Aggregate.Event):
        """Every communication ended. Version 2 counts `sent` (accepted, no receipt) apart
        from `delivered` (receipt); `accepted` is their sum. Version 1 recorded that sum as
        `delivered`: it is upcast to `accepted`, with `sent` and `delivered` null (never
        counted apart), so an old event keeps meaning what it meant (docs/events.md).
        Version 3 adds `introduced` (email: patients sent the introductory email instead);
        earlier versions predate email, so theirs is 0."""

        class_version = 3
        at: datetime
        accepted: int
        sent: int | None
        delivered: int | None
        unsuccessful: int
        introduced: int

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["accepted"] = state.pop("delivered")
            state["sent"] = None
            state["delivered"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["introduced"] = 0

    @event(Completed)
    def _completed(self, at: datetime, accepted: int, sent: int | None, delivered: int | None,
                   unsuccessful: int, introduced: int = 0) -> None:
        self.status = CampaignStatus.COMPLETED
        self.finished_at = at

    def letter_file_printed(self, *, now: datetime, files: list[dict[str, Any]]) -> None:
        """One file of letters (and its labels) is printed; saved with its letters' outcomes,
        so a worker killed half-way lists exactly the files whose letters it recorded."""
        if self.channel != Channel.LETTER:
            raise CampaignRuleViolation("only a letter campaign has letter files")
        self._letter_file_printed(at=now, files=files)

    @event("LetterFilePrinted")
    def _letter_file_printed(self, at: datetime, files: list[dict[str, Any]]) -> None:
        self.letter_files = [*self.letter_files, *files]

    def letters_ready(self, *, now: datetime, files: list[dict[str, Any]], letters: int,
                      skipped: int) -> None:
        """The letter files are made (a worker renders them in the background): staff are
        told, and download them. `files`: name, kind (letters / labels), count, pages,
        bytes of each — names only, the files hold the PHI."""
        if self.channel != Channel.LETTER:
            raise CampaignRuleViolation("only a letter campaign has letter files")
        self._letters_ready(at=now, files=files, letters=letters, skipped=skipped)

    @event("LettersReady")
    def _letters_ready(self, at: datetime, files: list[dict[str, Any]], letters: int,
                       skipped: int) -> None:
        # The files were listed as each was printed (LetterFilePrinted); this tells staff.
        pass

    def record_test_send(self, *, now: datetime, channel_address_hint: str, outcome: str) -> None:
        """A test send never changes the status. The hint is the last digits only (no PHI)."""
        self._check_not_final("send a test")
        self._test_sent(at=now, to_hint=channel_address_hint, outcome=outcome)

    @event("TestSent")
    def _test_sent(self, at: datetime, to_hint: str, outcome: str) -> None:
        self.test_sends += 1


