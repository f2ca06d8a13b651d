"""Twilio Voice webhooks (status callbacks, the async AMD verdict, key presses) → plain
values. The HTTP layer has already checked X-Twilio-Signature with
gateways.twilio_webhooks.verify_signature (Voice signs exactly as Messaging does).

Reasons in WebhookError go into HTTP answers and logs, so they name fields, never values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from gateways.twilio_webhooks import MAX_REFERENCE_LENGTH, Form, WebhookError

CALL_STATUSES = frozenset({
    "queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer",
    "failed", "canceled"})
ANSWERED_BY = frozenset({
    "human", "machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other",
    "fax", "unknown"})
_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
_DIGITS = re.compile(r"^[0-9*#]{0,32}$")
_SINGLE_VALUED = frozenset({
    "CallSid", "CallStatus", "AnsweredBy", "ErrorCode", "CallDuration", "SequenceNumber",
    "Timestamp", "Digits", "MachineDetectionDuration", "AccountSid"})


@dataclass(frozen=True)
class CallStatus:
    call_sid: str
    reference: str
    status: str  # one of CALL_STATUSES
    answered_by: str | None  # one of ANSWERED_BY, when Twilio said
    error_code: str | None
    duration: int | None  # seconds, on the completed callback
    #: Twilio numbers one call's callbacks 0, 1, 2…: the order they were sent in
    sequence_number: int | None
    #: when Twilio sent it (its Timestamp), else when we received it
    timestamp: datetime


@dataclass(frozen=True)
class AmdResult:
    call_sid: str
    reference: str
    answered_by: str
    machine_detection_duration: int | None  # milliseconds
    received_at: datetime


@dataclass(frozen=True)
class GatherResult:
    call_sid: str
    reference: str
    digits: str  # "" when the caller pressed nothing before the action was posted
    received_at: datetime


def parse_call_status(form: Form, ref: str | None, now: datetime) -> CallStatus:
    fields = _fields(form)
    status = _required(fields, "CallStatus").lower()
    if status not in CALL_STATUSES:
        raise WebhookError("field CallStatus has an unknown value")
    return CallStatus(
        call_sid=_call_sid(fields),
        reference=_reference(ref),
        status=status,
        answered_by=_answered_by(fields.get("AnsweredBy", "")),
        error_code=fields.get("ErrorCode", "").strip() or None,
        duration=_count(fields, "CallDuration"),
        sequence_number=_count(fields, "SequenceNumber"),
        timestamp=_timestamp(fields.get("Timestamp", ""), now),
    )


def parse_amd(form: Form, ref: str | None, now: datetime) -> AmdResult:
    fields = _fields(form)
    answered_by = _answered_by(_required(fields, "AnsweredBy"))
    return AmdResult(
        call_sid=_call_sid(fields),
        reference=_reference(ref),
        answered_by=answered_by or "unknown",
        machine_detection_duration=_count(fields, "MachineDetectionDuration"),
        received_at=now,
    )


def parse_gather(form: Form, ref: str | None, now: datetime) -> GatherResult:
    fields = _fields(form)
    digits = fields.get("Digits", "").strip()
    if not _DIGITS.match(digits):
        raise WebhookError("field Digits is not key presses")
    return GatherResult(call_sid=_call_sid(fields), reference=_reference(ref), digits=digits,
                        received_at=now)


def _fields(form: Form) -> dict[str, str]:
    pairs: Iterable[tuple[str, str]] = form.items() if isinstance(form, Mapping) else form
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        values.setdefault(name, []).append(value)
    for name, found in values.items():
        # Twilio never repeats these; two different values leave no safe choice.
        if name in _SINGLE_VALUED and len(set(found)) > 1:
            raise WebhookError(f"field {name} repeated with different values")
    return {name: found[0] for name, found in values.items()}


def _required(fields: dict[str, str], name: str) -> str:
    value = fields.get(name, "").strip()
    if not value:
        raise WebhookError(f"missing field {name}")
    return value


def _reference(ref: str | None) -> str:
    if not ref or not ref.strip():
        raise WebhookError("missing ref query parameter")
    if len(ref) > MAX_REFERENCE_LENGTH:
        raise WebhookError("ref query parameter too long")
    return ref.strip()


def _call_sid(fields: dict[str, str]) -> str:
    sid = _required(fields, "CallSid")
    if not _CALL_SID.match(sid):
        raise WebhookError("field CallSid is not a call id")
    return sid


def _answered_by(value: str) -> str | None:
    text = value.strip().lower()
    if not text:
        return None
    # A value Twilio adds one day: not knowing who answered is "unknown", retried later.
    return text if text in ANSWERED_BY else "unknown"


def _count(fields: dict[str, str], name: str) -> int | None:
    text = fields.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise WebhookError(f"field {name} is not a whole number")
    return int(text)


def _timestamp(text: str, now: datetime) -> datetime:
    """Twilio's Timestamp is RFC 2822 ("Mon, 16 Aug 2010 03:45:01 +0000"); an absent or
    unreadable one is not worth refusing a callback over: our receiving time stands in."""
    if not text.strip():
        return now
    try:
        stamp = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError):
        return now
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
