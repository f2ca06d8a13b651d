"""The wire format of stored events on Kafka (a versioned contract, schema_version 1).

The events topic carries the public view of each event (bus.public_events: an allowlist of
event types and fields, PHI left out or replaced by keyed pseudonyms; internal events are
not published), at least once (see bus.kafka_relay), as UTF-8 JSON keyed by the aggregate id
so one aggregate's events stay in order on one partition:

    {
      "schema_version": 1,
      "event_type": "Campaign.Activated",           # <Aggregate>.<Event>
      "topic": "domain.campaign:Campaign.Activated", # the stored eventsourcing topic
      "aggregate_id": "7f0c…",                       # str(UUID)
      "aggregate_version": 2,
      "position": 41,                                # notification id in the event store
      "occurred_at": "2025-03-04T15:00:00+00:00",
      "data": {"at": "2025-03-04T15:00:00+00:00"}    # the event's own fields
    }

`position` increases along the store's log but can have gaps (PostgreSQL). Consumers
deduplicate by (aggregate_id, aggregate_version): delivery is at least once.

Changing the meaning or removing a field needs a new schema_version; adding a key to
`data` (a new event field) does not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.utils import get_topic

WIRE_SCHEMA_VERSION = 1

# Envelope fields, not event data. `originator_topic` (on Created events) is the Python path
# of the aggregate class: an implementation detail that `topic` and `event_type` already say.
_ENVELOPE_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic"}
)

REQUIRED_KEYS = (
    "schema_version",
    "event_type",
    "topic",
    "aggregate_id",
    "aggregate_version",
    "position",
    "occurred_at",
    "data",
)


class WireFormatError(ValueError):
    """The bytes are not a stored event in a wire schema this code understands."""


def events_topic(prefix: str) -> str:
    return f"{prefix}.events"


def intents_topic(prefix: str) -> str:
    return f"{prefix}.send-intents"


def to_wire_value(value: Any) -> Any:
    """Event field → JSON value. Unknown types fail loudly: a silent str() would make the
    public contract depend on a Python repr."""
    if isinstance(value, Enum):  # first: a StrEnum is also a str, but its value is the contract
        return to_wire_value(value.value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime | date | time):  # datetime is a date: one branch for both
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # a JSON float would lose precision
    if isinstance(value, Mapping):
        return {str(k): to_wire_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire_value(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((to_wire_value(v) for v in value), key=repr)
    raise TypeError(f"cannot put a {type(value).__name__} on the wire")


def event_type_of(domain_event: object) -> str:
    # eventsourcing nests event classes in their aggregate: Campaign.Activated.
    return type(domain_event).__qualname__


def event_data(domain_event: DomainEventProtocol[Any]) -> dict[str, Any]:
    """The event's own fields (not the envelope's), as stored: Python values."""
    # The protocol only promises originator_id/_version; eventsourcing's events are
    # dataclasses whose fields (timestamp included) live in __dict__.
    return {k: v for k, v in vars(domain_event).items() if k not in _ENVELOPE_FIELDS}


def encode_message(
    domain_event: DomainEventProtocol[Any],
    position: int,
    data: Mapping[str, Any],
    *,
    aggregate_id: UUID | None = None,
) -> bytes:
    """The envelope around `data` (the event's own fields or a view of them, see
    bus.public_events); `aggregate_id` replaces the stored id when that id must not show."""
    timestamp = vars(domain_event).get("timestamp")
    if not isinstance(timestamp, datetime):
        raise TypeError(f"{type(domain_event).__qualname__} has no timestamp")
    message = {
        "schema_version": WIRE_SCHEMA_VERSION,
        "event_type": event_type_of(domain_event),
        "topic": get_topic(type(domain_event)),
        "aggregate_id": str(aggregate_id or domain_event.originator_id),
        "aggregate_version": int(domain_event.originator_version),
        "position": int(position),
        "occurred_at": timestamp.isoformat(),
        "data": {k: to_wire_value(v) for k, v in data.items()},
    }
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode_event(domain_event: DomainEventProtocol[Any], position: int) -> bytes:
    """The whole stored event: internal use (audits with `outreach events --internal`).
    The public events topic carries bus.public_events.encode_public_event instead."""
    return encode_message(domain_event, position, event_data(domain_event))


def decode_event(raw: bytes) -> dict[str, Any]:
    """Bytes → the message dict, after checking it is a schema this code reads."""
    try:
        message = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireFormatError(f"not a JSON event: {exc}") from None
    if not isinstance(message, dict):
        raise WireFormatError("an event message must be a JSON object")
    version = message.get("schema_version")
    if version != WIRE_SCHEMA_VERSION:
        raise WireFormatError(f"unsupported event schema_version {version!r}")
    missing = [k for k in REQUIRED_KEYS if k not in message]
    if missing:
        raise WireFormatError(f"event message lacks {', '.join(missing)}")
    if not isinstance(message["data"], dict):
        raise WireFormatError("event data must be a JSON object")
    return message
