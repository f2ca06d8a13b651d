"""One Communication per (campaign, patient): the id is uuid5 of both, so a patient can never
get two communications of one campaign, whatever retries, crashes or redeliveries happen.

planned → attempt started (→ outcome unknown) → accepted (→ delivered) | attempt failed → … →
"Unsuccessful - Communication Retries Exceeded" after the fifth failed attempt, or
"Unsuccessful - retry not possible: campaign completed" when a transient failure's receipt
arrives after the campaign ended; or skipped (opted out, no mobile, invalid number), or
cancelled (campaign stopped).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.email import INTRODUCTION, MESSAGE
from domain.errors import DomainError
from domain.retry import MAX_ATTEMPTS, RETRIES_EXCEEDED, FailureKind

COMMUNICATION_NAMESPACE = uuid5(NAMESPACE_URL, "outreach:communication")
RETRY_NOT_POSSIBLE = "Unsuccessful - retry not possible"


class CommStatus(StrEnum):
    PLANNED = "Planned"
    SENDING = "Sending"  # attempt started; outcome not yet recorded
    RETRY_PENDING = "Retry Pending"
    SENT = "Sent"  # accepted by the provider
    #: email only: the patient had never received the introductory email, so it went
    #: instead of the campaign's (the guide's report result; a later campaign reaches them)
    INTRODUCED = "Introductory email needed"
    DELIVERED = "Delivered"
    UNSUCCESSFUL = "Unsuccessful"
    SKIPPED = "Skipped"
    CANCELLED = "Cancelled"


FINAL = frozenset(
    {CommStatus.SENT, CommStatus.DELIVERED, CommStatus.UNSUCCESSFUL, CommStatus.SKIPPED,
     CommStatus.CANCELLED, CommStatus.INTRODUCED}
)


class SkipReason(StrEnum):
    OPTED_OUT = "opted out"
    NO_MOBILE = "no mobile phone"
    INVALID_NUMBER = "invalid number"
    INACTIVE_PATIENT = "patient inactive"
    UNKNOWN_PATIENT = "patient not found"
    NO_PHONE = "no phone number"
    NO_ADDRESS = "no usable postal address"
    NO_EMAIL = "no email address"
    INVALID_EMAIL = "invalid email address"
    EMAIL_BOUNCED = "No Communication: Email Bounced"


def communication_id(campaign_id: UUID, patient_id: str) -> UUID:
    return uuid5(COMMUNICATION_NAMESPACE, f"{campaign_id}:{patient_id}")


class Communication(Aggregate):
    @staticmethod
    def create_id(campaign_id: UUID, patient_id: str) -> UUID:  # type: ignore[override]
        return communication_id(campaign_id, patient_id)

    @event("Planned")
    def __init__(
        self, campaign_id: UUID, patient_id: str, channel: str, sequence: int, due_at: datetime
    ) -> None:
        self.campaign_id = campaign_id
        self.patient_id = patient_id
        self.channel = channel
        self.sequence = sequence
        self.due_at: datetime | None = due_at
        self.status = CommStatus.PLANNED
        self.attempts = 0
        self.last_outcome = ""
        self.last_code = ""
        self.provider_ref = ""
        self.reason = ""
        self.attempt_started_at: datetime | None = None
        #: what the current attempt sends: the campaign's message, or (email) the
        #: introductory email in its place (domain.email)
        self.purpose = MESSAGE
        self.address_key = ""  # the current attempt's address, keyed (email only)
        #: the attempt whose provider call was made but whose outcome nobody knows
        self.unknown_attempt: int | None = None

    # -- queries -----------------------------------------------------------------------
    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    @property
    def awaiting_outcome(self) -> bool:
        return self.status == CommStatus.SENDING

    def may_attempt(self, attempt: int) -> bool:
        """Is `attempt` the next one this communication is waiting for?"""
        return (
            self.status in (CommStatus.PLANNED, CommStatus.RETRY_PENDING)
            and attempt == self.attempts + 1
        )

    # -- commands ------------------------------------------------------------------------
    def _require_open(self, action: str) -> None:
        if self.is_final:
            raise DomainError(f"cannot {action}: the communication is already {self.status}")

    def reschedule(self, due_at: datetime, sequence: int) -> None:
        """Re-planning after an edit or re-activation moves only what has not started."""
        if self.status != CommStatus.PLANNED:
            raise DomainError(f"cannot reschedule a communication that is {self.status}")
        if due_at != self.due_at or sequence != self.sequence:
            self._rescheduled(due_at=due_at, sequence=sequence)

    @event("Rescheduled")
    def _rescheduled(self, due_at: datetime, sequence: int) -> None:
        self.due_at = due_at
        self.sequence = sequence

    def defer(self, until: datetime, reason: str) -> None:
        """Not now (window closed, rate cap reached, campaign inactive): try again `until`."""
        if self.status not in (CommStatus.PLANNED, CommStatus.RETRY_PENDING):
            raise DomainError(f"cannot defer a communication that is {self.status}")
        self._deferred(until=until, reason=reason)

    @event("Deferred")
    def _deferred(self, until: datetime, reason: str) -> None:
        self.due_at = until
        self.reason = reason

    def start_attempt(self, attempt: int, at: datetime, purpose: str = MESSAGE,
                      address_key: str = "") -> None:
        """`address_key`: the keyed hash of the address this attempt goes to (email), so a
        bounce reported later marks that address, not one the patient has had since."""
        if not self.may_attempt(attempt):
            raise DomainError(
                f"attempt {attempt} cannot start: communication is {self.status} "
                f"after {self.attempts} attempts"
            )
        if purpose not in (MESSAGE, INTRODUCTION):
            raise DomainError(f"unknown attempt purpose {purpose!r}")
        self._attempt_started(attempt=attempt, at=at, purpose=purpose, address_key=address_key)

    @event("AttemptStarted")
    def _attempt_started(self, attempt: int, at: datetime, purpose: str = MESSAGE,
                         address_key: str = "") -> None:
        # Defaults: AttemptStarted events stored before email existed still load.
        self.purpose = purpose
        self.address_key = address_key
        self.attempts = attempt
        self.status = CommStatus.SENDING
        self.due_at = None
        self.attempt_started_at = at

    @property
    def call_made(self) -> bool:
        """Did the current attempt reach the provider call (its outcome unknown)? A
        dispatcher that died after "attempt started" may not have called at all."""
        return self.awaiting_outcome and self.unknown_attempt == self.attempts

    def outcome_unknown(self, attempt: int, at: datetime, reason: str, code: str) -> None:
        """The provider call was made and its answer lost (timeout after sending, connection
        reset, unreadable reply). Not a failure: the attempt stays open until the provider
        is asked whether the message went, or its receipt tells."""
        if attempt != self.attempts or self.status != CommStatus.SENDING:
            raise DomainError(f"no attempt {attempt} awaiting an outcome")
        self._outcome_unknown(attempt=attempt, at=at, reason=reason, code=code)

    @event("OutcomeUnknown")
    def _outcome_unknown(self, attempt: int, at: datetime, reason: str, code: str) -> None:
        self.unknown_attempt = attempt
        self.last_outcome = reason
        self.last_code = code

    def accept(
        self, attempt: int, at: datetime, provider_ref: str, segments: int | None = None
    ) -> None:
        """The provider took the message (Twilio: queued/sent). Final unless a receipt fails.
        `segments`: what the provider says it will bill (Twilio's num_segments), None when
        it did not say (a delivery receipt settled the attempt)."""
        if attempt != self.attempts or self.status != CommStatus.SENDING:
            raise DomainError(f"no attempt {attempt} awaiting an outcome")
        if self.purpose == INTRODUCTION:
            self._introduction_sent(attempt=attempt, at=at, provider_ref=provider_ref)
            return
        self._accepted(attempt=attempt, at=at, provider_ref=provider_ref, segments=segments)

    @property
    def introduced(self) -> bool:
        return self.status == CommStatus.INTRODUCED

    @event("IntroductionSent")
    def _introduction_sent(self, attempt: int, at: datetime, provider_ref: str) -> None:
        # Final for this campaign: the campaign email itself waits for a later campaign.
        self.status = CommStatus.INTRODUCED
        self.provider_ref = provider_ref
        self.last_outcome = "introductory email sent"
        self.reason = "Introductory email needed"

    @event("Accepted")
    def _accepted(
        self, attempt: int, at: datetime, provider_ref: str, segments: int | None = None
    ) -> None:
        # `segments` has a default: Accepted events stored before it existed still load.
        self.status = CommStatus.SENT
        self.provider_ref = provider_ref
        self.last_outcome = "accepted"

    def confirm_delivery(self, at: datetime, outcome: str = "") -> bool:
        """A delivery receipt (a call: answered, by a person or a machine, in `outcome`).
        Returns False (and changes nothing) when it is a duplicate."""
        if self.status != CommStatus.SENT:
            return False
        self._delivered(at=at, outcome=outcome)
        return True

    @event("Delivered")
    def _delivered(self, at: datetime, outcome: str = "") -> None:
        # `outcome` has a default: Delivered events stored before calls existed still load.
        self.status = CommStatus.DELIVERED
        self.last_outcome = outcome or "delivered"

    def fail(
        self,
        attempt: int,
        at: datetime,
        reason: str,
        code: str,
        kind: FailureKind,
        next_attempt_at: datetime | None,
        max_attempts: int = MAX_ATTEMPTS,
        no_retry_because: str = "no later attempt could be planned",
    ) -> None:
        """Record a failed attempt; the fifth, or any permanent one, ends the communication.

        Failure may arrive while the attempt is under way (provider refused the call) or later
        as a delivery receipt on an accepted message (undelivered). A transient failure with
        no `next_attempt_at` (its receipt came after the campaign ended) ends it too, but as
        what it is: "retry not possible", `no_retry_because`, never a permanent failure.
        """
        # An introductory email that bounces after it was taken fails like a message would.
        failable = (CommStatus.SENDING, CommStatus.SENT, CommStatus.INTRODUCED)
        if attempt != self.attempts or self.status not in failable:
            raise DomainError(f"no attempt {attempt} that can fail (status {self.status})")
        ends = kind == FailureKind.PERMANENT or attempt >= max_attempts or next_attempt_at is None
        self._attempt_failed(
            attempt=attempt, at=at, reason=reason, code=code, kind=str(kind),
            next_attempt_at=None if ends else next_attempt_at,
        )
        if ends and kind != FailureKind.PERMANENT and attempt >= max_attempts:
            self._retries_exceeded(at=at, attempts=attempt)
        elif ends and kind == FailureKind.PERMANENT:
            self._failed_permanently(at=at, reason=reason, code=code)
        elif ends:
            self._retry_not_possible(at=at, reason=no_retry_because, code=code)

    @event("AttemptFailed")
    def _attempt_failed(
        self, attempt: int, at: datetime, reason: str, code: str, kind: str,
        next_attempt_at: datetime | None,
    ) -> None:
        self.last_outcome = reason
        self.last_code = code
        self.status = CommStatus.RETRY_PENDING
        self.due_at = next_attempt_at

    @event("RetriesExceeded")
    def _retries_exceeded(self, at: datetime, attempts: int) -> None:
        self.status = CommStatus.UNSUCCESSFUL
        self.reason = RETRIES_EXCEEDED
        self.due_at = None

    @event("FailedPermanently")
    def _failed_permanently(self, at: datetime, reason: str, code: str) -> None:
        self.status = CommStatus.UNSUCCESSFUL
        self.reason = f"Unsuccessful - {reason}"
        self.due_at = None

    @event("RetryNotPossible")
    def _retry_not_possible(self, at: datetime, reason: str, code: str) -> None:
        # `reason` says why no later attempt can be made (e.g. "campaign completed"); the
        # failure itself (its code, kind transient) is the AttemptFailed just before.
        self.status = CommStatus.UNSUCCESSFUL
        self.reason = f"{RETRY_NOT_POSSIBLE}: {reason}"
        self.due_at = None

    def skip(self, at: datetime, reason: SkipReason | str) -> None:
        self._require_open("skip")
        if self.status == CommStatus.SENDING:
            raise DomainError("cannot skip a communication whose attempt is under way")
        self._skipped(at=at, reason=str(reason))

    @event("Skipped")
    def _skipped(self, at: datetime, reason: str) -> None:
        self.status = CommStatus.SKIPPED
        self.reason = reason
        self.due_at = None

    def cancel(self, at: datetime, reason: str) -> bool:
        """Stop cancels what was not yet sent. An attempt under way is left to finish."""
        if self.is_final or self.status == CommStatus.SENDING:
            return False
        self._cancelled(at=at, reason=reason)
        return True

    @event("Cancelled")
    def _cancelled(self, at: datetime, reason: str) -> None:
        self.status = CommStatus.CANCELLED
        self.reason = reason
        self.due_at = None

    # -- calls (issue 11) ------------------------------------------------------------------
    # A call is accepted (placed → Sent), then settled by the provider's callbacks:
    # confirm_delivery(outcome=CallOutcome) for a live answer or a message left, fail(...)
    # for busy / no answer / failed. What a call needs beyond that is the answering-machine
    # verdict, which may come before, with or after the final status.
    def answer_of(self, attempt: int) -> str | None:
        """The answering-machine verdict heard for `attempt` (Twilio's AnsweredBy), if any."""
        heard: list[object] | None = getattr(self, "answer", None)
        if heard and heard[0] == attempt:
            return str(heard[1])
        return None

    def note_answer(self, attempt: int, at: datetime, answered_by: str) -> bool:
        """Keep who (or what) answered the current attempt's call, so a later "completed"
        without AnsweredBy still classifies. A definite verdict replaces none or "unknown",
        never the other way round; a repeat changes nothing (returns False)."""
        who = answered_by.strip().lower()
        if not who or attempt != self.attempts or self.status not in (
                CommStatus.SENDING, CommStatus.SENT):
            return False
        known = self.answer_of(attempt)
        if known is not None and (known != "unknown" or who == "unknown"):
            return False
        self._answer_detected(attempt=attempt, at=at, answered_by=who)
        return True

    @event("AnswerDetected")
    def _answer_detected(self, attempt: int, at: datetime, answered_by: str) -> None:
        # A list, not a tuple: event state comes back from JSON as lists.
        self.answer = [attempt, answered_by]
