"""Email's own rules: the introductory email first, definitive bounces, the provider's events.

The guide ("Introductory Emails"): a patient who never received the introductory email gets
it instead of a campaign's email, and campaign emails go out only two days or more after it,
so that the patient can opt out before any further email. A definitive (hard) bounce marks the
address invalid: nothing more goes to it until the patient's address changes. Soft bounces and
mail-server downtime are transient: retried within the five-attempt rule.

One EmailState per patient (id = uuid5 of the patient id). It holds addresses only as keyed
hashes (ContactKeys.email_key), never the address itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

EMAIL_NAMESPACE = uuid5(NAMESPACE_URL, "outreach:email")
#: campaign emails only this long after the introductory email (the guide: two days)
INTRODUCTION_LEAD = timedelta(days=2)
INTRODUCTION = "introduction"  # a Communication attempt's purpose: the introductory email
MESSAGE = "message"  # … or the campaign's own message
BOUNCED_REASON = "Email Bounced"


class EmailEventKind(StrEnum):
    SEND = "send"
    DELIVERY = "delivery"
    HARD_BOUNCE = "hard bounce"
    SOFT_BOUNCE = "soft bounce"
    COMPLAINT = "complaint"
    DELAY = "delivery delay"
    REJECT = "reject"


@dataclass(frozen=True)
class EmailEvent:
    """What the email provider says happened to a message we sent, parsed and verified."""

    event_id: str  # the notification's id (SNS MessageId): a duplicate changes nothing
    kind: EmailEventKind
    provider_ref: str  # the provider's message id (SES MessageId)
    reference: str  # ours, "<communication id>:<attempt>"; "" when the message had none
    occurred_at: datetime
    detail: str = ""  # provider words (bounce type/subtype, complaint type); never an address


class Readiness(StrEnum):
    BOUNCED = "bounced"  # the current address bounced definitively: send nothing
    NEEDS_INTRODUCTION = "needs introduction"  # send the introductory email instead
    WAIT = "wait"  # introduced less than two days ago: the campaign email waits
    READY = "ready"


def email_state_id(patient_id: str) -> UUID:
    return uuid5(EMAIL_NAMESPACE, f"patient:{patient_id}")


class EmailState(Aggregate):
    @staticmethod
    def create_id(patient_id: str) -> UUID:  # type: ignore[override]
        return email_state_id(patient_id)

    @event("Registered")
    def __init__(self, patient_id: str) -> None:
        self.patient_id = patient_id
        self.introduced_at: datetime | None = None
        self.bounced_key: str | None = None  # keyed hash of the address that bounced

    # -- queries -----------------------------------------------------------------------
    def readiness(self, address_key: str, now: datetime) -> tuple[Readiness, datetime | None]:
        """What may go to the patient's current address now; with WAIT, from when."""
        if self.bounced_key is not None and self.bounced_key == address_key:
            return Readiness.BOUNCED, None
        if self.introduced_at is None:
            return Readiness.NEEDS_INTRODUCTION, None
        ready_at = self.introduced_at + INTRODUCTION_LEAD
        if now < ready_at:
            return Readiness.WAIT, ready_at
        return Readiness.READY, None

    # -- commands ------------------------------------------------------------------------
    def introduction_sent(self, at: datetime, communication_id: UUID) -> None:
        """The provider took the introductory email. A second one (another campaign's, or
        a receipt after the dispatcher recorded it) changes nothing."""
        if self.introduced_at is None:
            self._introduced(at=at, communication_id=communication_id)

    @event("IntroductionSent")
    def _introduced(self, at: datetime, communication_id: UUID) -> None:
        self.introduced_at = at

    def introduction_undelivered(self, at: datetime, communication_id: UUID) -> None:
        """The introductory email bounced (soft or hard): the patient never received it."""
        if self.introduced_at is not None:
            self._introduction_undelivered(at=at, communication_id=communication_id)

    @event("IntroductionUndelivered")
    def _introduction_undelivered(self, at: datetime, communication_id: UUID) -> None:
        self.introduced_at = None

    def bounced(self, address_key: str, at: datetime, detail: str) -> None:
        """A definitive bounce: this address gets nothing more. A new address (a later
        import) is a new chance; the same address bouncing again changes nothing."""
        if self.bounced_key != address_key:
            self._bounced(address_key=address_key, at=at, detail=detail)

    @event("AddressBounced")
    def _bounced(self, address_key: str, at: datetime, detail: str) -> None:
        self.bounced_key = address_key
