"""SES event publishing (the JSON inside an SNS notification's Message) → EmailEvent.

Two shapes arrive: event publishing through a configuration set (`eventType`, with our
tags) and the older identity feedback notifications (`notificationType`, no tags). We send
one recipient per message, so one notification is one EmailEvent even when SES lists
several recipients. Details keep SES's type words only: diagnostic codes and SMTP
responses can quote the address, so they are never copied.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from domain.email import EmailEvent, EmailEventKind
from gateways.ses_email import REFERENCE_HEADER, REFERENCE_TAG, tag_to_reference

# eventType / notificationType → the object holding the event's own facts
SECTIONS: dict[str, str] = {
    "Send": "send",
    "Delivery": "delivery",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "DeliveryDelay": "deliveryDelay",
    "Reject": "reject",
}
_SIMPLE_KINDS: dict[str, EmailEventKind] = {
    "Send": EmailEventKind.SEND,
    "Delivery": EmailEventKind.DELIVERY,
    "Complaint": EmailEventKind.COMPLAINT,
    "DeliveryDelay": EmailEventKind.DELAY,
    "Reject": EmailEventKind.REJECT,
}
_WORD = re.compile(r"[^A-Za-z0-9 _-]")
MAX_DETAIL = 80


class SesEventError(ValueError):
    """An SES event we cannot read; the message names fields, never values."""


def parse_ses_event(sns_message_id: str, message: str | dict[str, Any]) -> list[EmailEvent]:
    """The events in one notification: [] for types we do not act on (Open, Click,
    Rendering Failure, Subscription, SES's subscription test message)."""
    record = _record(message)
    event_type = record.get("eventType", record.get("notificationType"))
    if not isinstance(event_type, str) or event_type not in SECTIONS:
        return []
    mail = record.get("mail")
    if not isinstance(mail, dict):
        raise SesEventError("missing object mail")
    provider_ref = mail.get("messageId")
    if not isinstance(provider_ref, str) or not provider_ref:
        raise SesEventError("missing field mail.messageId")
    section = record.get(SECTIONS[event_type])
    facts: dict[str, Any] = section if isinstance(section, dict) else {}
    kind, detail = _kind_and_detail(event_type, facts)
    occurred = _timestamp(facts.get("timestamp")) or _timestamp(mail.get("timestamp"))
    if occurred is None:
        raise SesEventError("missing timestamp")
    return [EmailEvent(
        event_id=sns_message_id,
        kind=kind,
        provider_ref=provider_ref,
        reference=_reference(mail),
        occurred_at=occurred,
        detail=detail,
    )]


def _record(message: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(message, dict):
        return message
    try:
        record = json.loads(message)
    except (TypeError, ValueError):
        raise SesEventError("SES event is not JSON") from None
    if not isinstance(record, dict):
        raise SesEventError("SES event is not a JSON object")
    return record


def _kind_and_detail(event_type: str, facts: dict[str, Any]) -> tuple[EmailEventKind, str]:
    if event_type == "Bounce":
        bounce_type = _word(facts.get("bounceType")) or "Undetermined"
        # Only "Permanent" is definitive. "Transient" (mailbox full, message too large,
        # and auto-replies SES reports as bounces) and "Undetermined" are not: the
        # address stays valid. An out-of-office reply is not a bounce at all: SES reports
        # the Delivery.
        kind = (EmailEventKind.HARD_BOUNCE if bounce_type == "Permanent"
                else EmailEventKind.SOFT_BOUNCE)
        return kind, f"{bounce_type}/{_word(facts.get('bounceSubType')) or 'Undetermined'}"
    if event_type == "Complaint":
        return EmailEventKind.COMPLAINT, _word(facts.get("complaintFeedbackType")) or "complaint"
    if event_type == "DeliveryDelay":
        return EmailEventKind.DELAY, _word(facts.get("delayType"))
    if event_type == "Reject":
        return EmailEventKind.REJECT, _word(facts.get("reason"))
    return _SIMPLE_KINDS[event_type], ""


def _word(value: object) -> str:
    """SES's type words only (letters, digits, spaces, '-', '_'): never an address."""
    if not isinstance(value, str):
        return ""
    return _WORD.sub("", value).strip()[:MAX_DETAIL]


def _reference(mail: dict[str, Any]) -> str:
    tags = mail.get("tags")
    if isinstance(tags, dict):
        values = tags.get(REFERENCE_TAG)
        if isinstance(values, list) and values and isinstance(values[0], str):
            found = tag_to_reference(values[0])
            if found:
                return found
    headers = mail.get("headers")
    if isinstance(headers, list):
        for header in headers:
            if (isinstance(header, dict)
                    and str(header.get("name", "")).lower() == REFERENCE_HEADER.lower()
                    and isinstance(header.get("value"), str)):
                return str(header["value"]).strip()[:200]
    return ""


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SesEventError("timestamp is not ISO 8601") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
