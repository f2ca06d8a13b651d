"""What Twilio tells us about a call, and what the patient presses, applied to the domain.

Twilio fetches the script when the call connects (`twiml`), posts each status step
(`on_status`), the answering-machine verdict (`on_amd`) and key presses (`on_gather`).
A call is Sent once placed; its first final status settles it: a live answer or a
message left on a machine is Delivered with that outcome, busy / no answer / failed /
unknown answer are retried (three hours later at the earliest, inside the phone window),
a dial error or a cancelled call ends it. Callbacks come in any order and any number of
times: a late or repeated one never changes a settled attempt (the Communication's own
status guards it). Pressing 9 opts the patient out of Health Reminders - Phone for
OUTREACH_PHONE_OPT_OUT_DAYS days. Logs carry references and sids, never numbers or words.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from application.email_merge import render
from application.inbound_service import ReceiptConflictError
from application.ports import PatientContact, PatientDirectory
from application.settings import Settings
from application.store import EventStore
from domain.campaign import Campaign
from domain.channels import Channel
from domain.clock import Clock
from domain.communication import CommStatus, Communication
from domain.errors import DomainError
from domain.preferences import Duration, OptOutType, PatientPreferences
from domain.preferences import patient_preferences_id as preferences_id
from domain.retry import POLICIES, FailureKind
from domain.voice import (
    OPT_OUT_DIGIT,
    CallProgress,
    gather_reply_twiml,
    is_final_status,
    live_twiml,
    voicemail_twiml,
)
from gateways.twilio_voice_webhooks import AmdResult, CallStatus, GatherResult
from gateways.voice import GATHER_PATH, VoiceGateway

log = structlog.get_logger("voice_events")

SAVE_ATTEMPTS = 8  # as for text receipts: a handful of re-reads settles any storm
OPT_OUT_REASON = "pressed 9 in a call"
LOCAL_BASE = "http://127.0.0.1:8000"
#: what a call we cannot place in a campaign hears (an unknown or stale reference)
GENERIC_MESSAGE = "Sorry, we cannot play this message now. Goodbye."
#: a voicemail whose merge values brought in a word it must not say: name and number only
FALLBACK_VOICEMAIL = "This is {{ organisation }} calling. Please call us back at {{ help_number }}."
MACHINE_PREFIX = "machine_end_"

T = TypeVar("T")


@dataclass(frozen=True)
class _Target:
    comm: Communication
    campaign: Campaign
    contact: PatientContact | None



def phone_merge_values(settings: Settings, content: Mapping[str, Any],
                       contact: PatientContact | None) -> dict[str, str]:
    """A call's merge fields for one patient: what the script and voicemail say. The
    console's preview uses it too, so staff see the words the patient will hear."""
    organisation = settings.organisation
    provider = str(content.get("provider") or "") or (contact.provider if contact else "")
    return {
        "first_name": contact.first_name if contact else "",
        "last_name": contact.last_name if contact else "",
        "provider": provider or organisation,
        "help_number": str(content.get("callback_number") or settings.help_number),
        "organisation": organisation,
        "care_manager": str(content.get("care_manager") or ""),
    }

class VoiceEventService:
    def __init__(self, store: EventStore, directory: PatientDirectory, clock: Clock,
                 settings: Settings, gateway: VoiceGateway | None = None) -> None:
        """`gateway` plays the voicemail once a machine's beep is heard (asynchronous
        answering-machine detection); None: a process that cannot reach the provider."""
        self.store = store
        self.directory = directory
        self.clock = clock
        self.settings = settings
        self.gateway = gateway

    # -- what the call says --------------------------------------------------------------
    def gather_url(self, reference: str) -> str:
        base = (self.settings.public_url or LOCAL_BASE).rstrip("/")
        return f"{base}{GATHER_PATH}?ref={quote(reference, safe='')}"

    def twiml(self, reference: str, answered_by: str | None = None) -> str:
        """The script for the patient when the call connects; the voicemail when Twilio
        already knows a machine answered (synchronous detection). Never raises: a call we
        cannot place in a campaign hears a polite goodbye."""
        try:
            target = self._target(reference)
            if target is None:
                return self.generic_twiml()
            if (answered_by or "").strip().lower().startswith(MACHINE_PREFIX):
                return self._voicemail(target)
            return live_twiml(self._script(target), self.settings.voice,
                              self.settings.voice_language, self.gather_url(reference))
        except (DomainError, ValueError, KeyError) as exc:
            log.warning("twiml_unavailable", reference=reference, error=type(exc).__name__)
            return self.generic_twiml()

    def generic_twiml(self) -> str:
        response = ET.Element("Response")
        say = ET.SubElement(response, "Say", {"voice": self.settings.voice,
                                              "language": self.settings.voice_language})
        say.text = GENERIC_MESSAGE
        ET.SubElement(response, "Hangup")
        return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(response, "unicode")

    def _target(self, reference: str) -> _Target | None:
        parsed = _reference(reference)
        if parsed is None:
            return None
        comm = self._get(Communication, parsed[0])
        if comm is None or comm.channel != Channel.PHONE:
            return None
        campaign = self._get(Campaign, comm.campaign_id)
        if campaign is None:
            return None
        contact = self.directory.contacts([comm.patient_id]).get(comm.patient_id)
        return _Target(comm, campaign, contact)

    def _values(self, target: _Target) -> dict[str, str]:
        return phone_merge_values(self.settings, target.campaign.content, target.contact)

    def _script(self, target: _Target) -> str:
        return render(str(target.campaign.content.get("script", "")), self._values(target),
                      html=False)

    def _voicemail(self, target: _Target) -> str:
        """The campaign's voicemail for this patient, checked again once rendered (a
        provider's name can bring a health word in): then only a name and a number."""
        values = self._values(target)
        voice, language = self.settings.voice, self.settings.voice_language
        try:
            text = render(str(target.campaign.content.get("voicemail", "")), values,
                          html=False)
            return voicemail_twiml(text, voice, language)
        except DomainError:
            log.warning("voicemail_fallback", communication=str(target.comm.id))
            return voicemail_twiml(render(FALLBACK_VOICEMAIL, values, html=False), voice,
                                   language)

    # -- callbacks -----------------------------------------------------------------------
    def on_status(self, status: CallStatus) -> None:
        self._retrying(status.reference, lambda: self._apply_status(status))

    def on_amd(self, amd: AmdResult) -> None:
        """Keeps the verdict; a machine whose greeting has ended gets the voicemail now (the
        live script was playing over the greeting, which is not recorded)."""
        new_machine = self._retrying(amd.reference, lambda: self._apply_amd(amd))
        if not new_machine or self.gateway is None:
            return
        target = self._target(amd.reference)
        if target is None:
            return
        try:
            played = self.gateway.play(amd.call_sid, self._voicemail(target))
        except ConnectionError:
            log.warning("voicemail_not_played", reference=amd.reference, sid=amd.call_sid)
            return
        log.info("voicemail_played" if played else "voicemail_call_ended",
                 reference=amd.reference, sid=amd.call_sid)

    def on_gather(self, gather: GatherResult) -> str:
        """The reply to a key press: 1 replays the script, 9 opts the patient out (once,
        however often Twilio posts it) and says so, anything else repeats the keys."""
        target = self._target(gather.reference)
        if target is None:
            # A test call (reference "<campaign>:test") or an unknown one: never an opt-out.
            return self._test_reply(gather)
        if gather.digits == OPT_OUT_DIGIT:
            self._retrying(gather.reference, lambda: self._apply_opt_out(gather))
        else:
            self._retrying(gather.reference, lambda: self._apply_human(gather))
        try:
            return gather_reply_twiml(gather.digits, self._script(target), self.settings.voice,
                                      self.settings.voice_language,
                                      self.gather_url(gather.reference))
        except (DomainError, KeyError) as exc:
            log.warning("gather_reply_unavailable", reference=gather.reference,
                        error=type(exc).__name__)
            return self.generic_twiml()

    def _test_reply(self, gather: GatherResult) -> str:
        campaign_part = gather.reference.rsplit(":", 1)[0]
        try:
            campaign = self._get(Campaign, UUID(campaign_part))
        except ValueError:
            campaign = None
        if campaign is None or campaign.channel != Channel.PHONE:
            return self.generic_twiml()
        # The staff member's test call: a sample patient, as the call itself used
        # (application.campaigns); pressing 9 there opts nobody out.
        content = campaign.content
        values = {"first_name": "Pat", "last_name": "Example",
                  "provider": str(content.get("provider") or self.settings.organisation),
                  "help_number": str(content.get("callback_number", "")),
                  "organisation": self.settings.organisation,
                  "care_manager": str(content.get("care_manager") or "")}
        try:
            script = render(str(content.get("script", "")), values, html=False)
            return gather_reply_twiml(gather.digits, script, self.settings.voice,
                                      self.settings.voice_language,
                                      self.gather_url(gather.reference))
        except DomainError:
            return self.generic_twiml()

    # -- applying ------------------------------------------------------------------------
    def _retrying(self, reference: str, apply: Callable[[], T]) -> T:
        for _ in range(SAVE_ATTEMPTS):
            try:
                return apply()
            except IntegrityError:
                log.info("call_event_conflict_retried", reference=reference)
        raise ReceiptConflictError(f"call {reference} kept changing under the callback")

    def _current(self, reference: str, call_sid: str, at: datetime
                 ) -> tuple[Communication, int] | None:
        """The communication the callback is about, accepted if the dispatcher has not yet
        recorded that the call was placed; None for an older attempt or an unknown one."""
        parsed = _reference(reference)
        if parsed is None:
            log.info("call_event_without_reference", reference=reference)  # a test call
            return None
        comm = self._get(Communication, parsed[0])
        if comm is None or comm.channel != Channel.PHONE or parsed[1] != comm.attempts:
            return None  # unknown, or an older attempt: that attempt is already settled
        if comm.status == CommStatus.SENDING:
            # The dispatcher died, or has not saved yet: Twilio tells us the call exists.
            comm.accept(parsed[1], at, call_sid)
        return comm, parsed[1]

    def _apply_status(self, cs: CallStatus) -> None:
        found = self._current(cs.reference, cs.call_sid, cs.timestamp)
        if found is None:
            return
        comm, attempt = found
        if cs.answered_by:
            comm.note_answer(attempt, cs.timestamp, cs.answered_by)
        if is_final_status(cs.status) and comm.status == CommStatus.SENT:
            progress = CallProgress(status=cs.status, answered_by=comm.answer_of(attempt),
                                    error_code=cs.error_code)
            settled = progress.outcome()
            assert settled is not None  # a final status always has an outcome
            outcome, kind = settled
            if kind is None:
                comm.confirm_delivery(cs.timestamp, str(outcome))
            else:
                self._fail(comm, attempt, cs.timestamp, str(outcome),
                           cs.error_code or cs.status, kind)
        self._save(comm, f"status:{cs.status}")

    def _fail(self, comm: Communication, attempt: int, at: datetime, reason: str, code: str,
              kind: FailureKind) -> None:
        campaign = self._get(Campaign, comm.campaign_id)
        active = campaign is not None and campaign.is_active
        policy = POLICIES[Channel.PHONE]
        next_at = policy.next_attempt_at(attempt, at, kind, str(comm.id)) if active else None
        if next_at is not None:
            next_at = self.settings.calendar.next_open(Channel.PHONE, next_at)
        ended = str(campaign.status).lower() if campaign is not None else "gone"
        comm.fail(attempt, at, reason, code, kind, next_at, policy.max_attempts,
                  no_retry_because=f"campaign {ended}")

    def _apply_amd(self, amd: AmdResult) -> bool:
        """True when this verdict is news and says a machine's greeting has ended."""
        found = self._current(amd.reference, amd.call_sid, amd.received_at)
        if found is None:
            return False
        comm, attempt = found
        noted = comm.note_answer(attempt, amd.received_at, amd.answered_by)
        self._save(comm, "amd")
        return noted and amd.answered_by.startswith(MACHINE_PREFIX)

    def _apply_human(self, gather: GatherResult) -> None:
        # A key pressed: a person is on the line, whatever detection said.
        found = self._current(gather.reference, gather.call_sid, gather.received_at)
        if found is not None:
            comm, attempt = found
            comm.note_answer(attempt, gather.received_at, "human")
            self._save(comm, "gather")

    def _apply_opt_out(self, gather: GatherResult) -> None:
        target = self._target(gather.reference)
        if target is None:
            return
        # The patient said so, whichever attempt's call it was: the opt-out stands even
        # when a later attempt has started since.
        found = self._current(gather.reference, gather.call_sid, gather.received_at)
        comm = found[0] if found is not None else target.comm
        if found is not None:
            comm.note_answer(found[1], gather.received_at, "human")
        prefs = self._get(PatientPreferences, preferences_id(comm.patient_id)) \
            or PatientPreferences(patient_id=comm.patient_id)
        today = self.settings.calendar.today(gather.received_at)
        duration = Duration(days=self.settings.phone_opt_out_days)
        last_day = duration.last_day(today)
        assert last_day is not None
        current = prefs.active_on(today).get(str(OptOutType.HEALTH_PHONE), "")
        # Twilio posting the same key press twice (or the patient pressing 9 again) must
        # not move the end date; only a longer opt-out than the one in force is news.
        if current == "" or (current is not None and current < last_day.isoformat()):
            prefs.opt_out(OptOutType.HEALTH_PHONE, duration, today, gather.received_at,
                          OPT_OUT_REASON, by="patient")
        changed = [a for a in (prefs, comm) if a.pending_events]
        if changed:
            self.store.save(*changed)
            log.info("call_opt_out", reference=gather.reference, changed=prefs in changed)

    def _save(self, comm: Communication, what: str) -> None:
        if comm.pending_events:
            self.store.save(comm)
            log.info("call_event_applied", communication=str(comm.id), callback=what,
                     status=str(comm.status))

    def _get(self, cls: type[T], aggregate_id: UUID) -> T | None:
        try:
            found: object = self.store.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, cls) else None


def _reference(reference: str) -> tuple[UUID, int] | None:
    """`<communication id>:<attempt>`, or None for anything else (a test call's)."""
    try:
        comm_part, attempt_part = reference.rsplit(":", 1)
        return UUID(comm_part), int(attempt_part)
    except ValueError:
        return None
