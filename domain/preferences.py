"""Contact preferences: who must not be contacted, on which channel, until when.

Two aggregates:
- PhoneOptOut, one per phone number: a STOP texted from a number stops texts to every patient
  who has that number (health and appointment reminders alike); START restores.
- PatientPreferences, one per patient: staff-entered opt-outs by type (Global, Health
  Reminders - Text/Phone/Email, All Text, Appt Conf - …, protocol) with a duration.
Ids are uuid5 of a key, never the raw number or name, because ids stay readable even when
event state is encrypted at rest. A number's key is keyed (HMAC-SHA256 under the deployment's
contact-key secret, `ContactKeys`): a bare hash of a US number is reversed by trying all 10^10
of them. Opt-outs recorded before keyed hashes carry the bare SHA-256 key (`legacy_*`): they
are still looked up, never written.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.channels import Channel
from domain.errors import OptOutRuleViolation
from domain.keywords import Keyword

PREFERENCES_NAMESPACE = uuid5(NAMESPACE_URL, "outreach:preferences")


class OptOutType(StrEnum):
    GLOBAL = "Global"
    HEALTH_PHONE = "Health Reminders - Phone"
    HEALTH_EMAIL = "Health Reminders - Email"
    HEALTH_TEXT = "Health Reminders - Text"
    ALL_TEXT = "All Text"
    APPT_EMAIL = "Appt Conf - Email"
    APPT_TEXT = "Appt Conf - Text"
    APPT_PHONE = "Appt Conf - Phone"
    PROTOCOL = "Protocol"


# Which opt-out types stop a campaign (a "health reminder") on each channel.
BLOCKS_CAMPAIGN: dict[Channel, frozenset[OptOutType]] = {
    Channel.TEXT: frozenset({OptOutType.GLOBAL, OptOutType.HEALTH_TEXT, OptOutType.ALL_TEXT}),
    # Issue 11 (as for email): Appt Conf - Phone stops campaign calls too.
    Channel.PHONE: frozenset({OptOutType.GLOBAL, OptOutType.HEALTH_PHONE,
                              OptOutType.APPT_PHONE}),
    # The guide: Appt Conf - Email stops campaign emails too (it is "no email from us").
    Channel.EMAIL: frozenset({OptOutType.GLOBAL, OptOutType.HEALTH_EMAIL,
                              OptOutType.APPT_EMAIL}),
    Channel.LETTER: frozenset({OptOutType.GLOBAL}),
}


@dataclass(frozen=True)
class Duration:
    """Permanent (neither set), until a date (inclusive), or a number of days from today."""

    until: date | None = None
    days: int | None = None

    def last_day(self, today: date) -> date | None:
        if self.until is not None and self.days is not None:
            raise OptOutRuleViolation("choose a date or a number of days, not both")
        if self.days is not None:
            if self.days < 1:
                raise OptOutRuleViolation("an opt-out for a number of days needs at least 1 day")
            return today + timedelta(days=self.days - 1)
        if self.until is not None and self.until < today:
            raise OptOutRuleViolation(f"the opt-out end date {self.until} is in the past")
        return self.until


def check_duration(kind: OptOutType, last_day: date | None) -> None:
    if kind == OptOutType.HEALTH_PHONE and last_day is None:
        raise OptOutRuleViolation(
            "a Health Reminders - Phone opt-out cannot be permanent: choose a date or days"
        )
    if kind == OptOutType.GLOBAL and last_day is not None:
        raise OptOutRuleViolation("a Global opt-out is always permanent (no date or days)")


# A shorter secret could be guessed faster than the numbers it protects could be tried.
MIN_SECRET_BYTES = 32


def keyed_hash(secret: bytes, text: str) -> str:
    return hmac.new(secret, text.encode("utf-8"), hashlib.sha256).hexdigest()


def phone_key(e164: str, secret: bytes) -> str:
    """HMAC-SHA256 of "phone:+E164" under the contact-key secret (hex)."""
    return keyed_hash(secret, f"phone:{e164}")


def phone_opt_out_id(e164: str, secret: bytes) -> UUID:
    return uuid5(PREFERENCES_NAMESPACE, phone_key(e164, secret))


def legacy_phone_key(e164: str) -> str:
    """The bare SHA-256 key of opt-outs recorded before keyed hashes (read, never written)."""
    return hashlib.sha256(f"phone:{e164}".encode()).hexdigest()


def legacy_phone_opt_out_id(e164: str) -> UUID:
    return uuid5(PREFERENCES_NAMESPACE, legacy_phone_key(e164))


@dataclass(frozen=True)
class ContactKeys:
    """The contact-key secret, handed to whoever turns a number into a key. The application
    builds it from the configuration (application/contact_keys.py); the domain only uses it.
    Never change the secret of a deployment: every opt-out key would change with it."""

    secret: bytes = field(repr=False)  # never in a log line or a traceback's repr

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the contact-key secret needs at least {MIN_SECRET_BYTES} bytes")

    def phone_key(self, e164: str) -> str:
        return phone_key(e164, self.secret)

    def phone_opt_out_id(self, e164: str) -> UUID:
        return phone_opt_out_id(e164, self.secret)

    def email_key(self, address: str) -> str:
        """An email address's key (EmailState keeps this, never the address); case and
        surrounding space do not make another address."""
        return keyed_hash(self.secret, f"email:{address.strip().lower()}")

    def opt_out_ids(self, e164: str) -> tuple[UUID, UUID]:
        """Where a number's STOP may be recorded: keyed first, then the legacy id."""
        return self.phone_opt_out_id(e164), legacy_phone_opt_out_id(e164)

    def public_phone_key(self, stored_key: str) -> str:
        """What the public events topic shows for an opt-out key: keyed again, so an opt-out
        stored under the legacy bare SHA-256 key is not reversible there either."""
        return keyed_hash(self.secret, f"opt-out:{stored_key}")

    def public_number_key(self, e164: str) -> str:
        """A number's public pseudonym: the public key of its opt-out (so a STOP text and
        the opt-out it made match on the topic)."""
        return self.public_phone_key(self.phone_key(e164))


def patient_preferences_id(patient_id: str) -> UUID:
    return uuid5(PREFERENCES_NAMESPACE, f"patient:{patient_id}")


class PhoneOptOut(Aggregate):
    @staticmethod
    def create_id(key: str) -> UUID:  # type: ignore[override]
        return uuid5(PREFERENCES_NAMESPACE, key)

    @event("Registered")
    def __init__(self, key: str) -> None:
        self.key = key
        self.stopped = False
        self.changed_at: datetime | None = None

    @classmethod
    def for_number(cls, e164: str, keys: ContactKeys) -> PhoneOptOut:
        return cls(key=keys.phone_key(e164))

    def keyword(self, word: Keyword, at: datetime) -> bool:
        """Apply STOP/START; returns whether anything changed (a repeated STOP does not)."""
        if word == Keyword.STOP and not self.stopped:
            self._stopped(key=self.key, at=at)
            return True
        if word == Keyword.START and self.stopped:
            self._restarted(key=self.key, at=at)
            return True
        return False

    @event("TextsStopped")
    def _stopped(self, key: str, at: datetime) -> None:
        self.stopped = True
        self.changed_at = at

    @event("TextsRestarted")
    def _restarted(self, key: str, at: datetime) -> None:
        self.stopped = False
        self.changed_at = at


class PatientPreferences(Aggregate):
    @staticmethod
    def create_id(patient_id: str) -> UUID:  # type: ignore[override]
        return patient_preferences_id(patient_id)

    @event("Registered")
    def __init__(self, patient_id: str) -> None:
        self.patient_id = patient_id
        # type (plus protocol) → last day inclusive as ISO date, or None for permanent
        self.opt_outs: dict[str, str | None] = {}

    def opt_out(
        self,
        kind: OptOutType,
        duration: Duration,
        today: date,
        at: datetime,
        reason: str,
        comment: str = "",
        by: str = "staff",
        protocol: str = "",
    ) -> None:
        if not reason.strip():
            raise OptOutRuleViolation("choose a reason for the opt-out")
        if kind == OptOutType.PROTOCOL and not protocol:
            raise OptOutRuleViolation("a protocol opt-out names the protocol (e.g. Diabetes)")
        last = duration.last_day(today)
        check_duration(kind, last)
        self._opted_out(
            patient_id=self.patient_id, type=str(kind), protocol=protocol,
            last_day=last.isoformat() if last else None, reason=reason, comment=comment,
            by=by, at=at,
        )

    @event("OptedOut")
    def _opted_out(
        self, patient_id: str, type: str, protocol: str, last_day: str | None, reason: str,
        comment: str, by: str, at: datetime,
    ) -> None:
        key = f"{type}:{protocol}" if protocol else type
        self.opt_outs[key] = last_day

    def restore(self, kinds: list[str], at: datetime, by: str = "staff") -> None:
        missing = [k for k in kinds if k not in self.opt_outs]
        if missing:
            raise OptOutRuleViolation(f"no current opt-out of type {', '.join(missing)}")
        self._restored(patient_id=self.patient_id, types=list(kinds), at=at,
                       by=by)

    @event("OptOutsRemoved")
    def _restored(self, patient_id: str, types: list[str], at: datetime, by: str) -> None:
        for key in types:
            self.opt_outs.pop(key, None)

    def active_on(self, day: date) -> dict[str, str | None]:
        return {
            k: v for k, v in self.opt_outs.items()
            if v is None or date.fromisoformat(v) >= day
        }

    def blocks_campaign(self, channel: Channel, day: date, protocol: str = "") -> bool:
        """Does an opt-out active on `day` stop a campaign on `channel`? A protocol opt-out
        (e.g. Diabetes) stops the campaigns of that protocol, on every channel."""
        blocking = {str(t) for t in BLOCKS_CAMPAIGN[channel]}
        if protocol:
            blocking.add(f"{OptOutType.PROTOCOL}:{protocol}")
        return any(k in blocking for k in self.active_on(day))
