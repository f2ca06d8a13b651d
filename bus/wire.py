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
      "occurred_at": "2025-03-04T15:00:01.5+00:00",  # when it was recorded (wall clock)
      "at": "2025-03-04T15:00:00+00:00",            # when it happened in the domain
      "data": {"at": "2025-03-04T15:00:00+00:00"}    # the event's own fields
    }

`at` is the one domain-time field of every event (its stored `at`, `created_at`,
`received_at`, … per bus.public_events' rule; `occurred_at` for an event without one). The
JSON Schema of every public message is bus/schemas/events.schema.json (bus/event_schema.py).

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


def envelope(
    domain_event: DomainEventProtocol[Any],
    position: int,
    data: Mapping[str, Any],
    *,
    aggregate_id: UUID | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The message (JSON values): the envelope around `data` (the event's own fields or a
    view of them, see bus.public_events); `aggregate_id` replaces the stored id when that id
    must not show; `at` is the domain time (default: the recorded time)."""
    timestamp = vars(domain_event).get("timestamp")
    if not isinstance(timestamp, datetime):
        raise TypeError(f"{type(domain_event).__qualname__} has no timestamp")
    return {
        "schema_version": WIRE_SCHEMA_VERSION,
        "event_type": event_type_of(domain_event),
        "topic": get_topic(type(domain_event)),
        "aggregate_id": str(aggregate_id or domain_event.originator_id),
        "aggregate_version": int(domain_event.originator_version),
        "position": int(position),
        "occurred_at": timestamp.isoformat(),
        "at": (at or timestamp).isoformat(),
        "data": {k: to_wire_value(v) for k, v in data.items()},
    }


def dump_message(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode_message(
    domain_event: DomainEventProtocol[Any],
    position: int,
    data: Mapping[str, Any],
    *,
    aggregate_id: UUID | None = None,
    at: datetime | None = None,
) -> bytes:
    """bytes of `envelope(...)`."""
    return dump_message(envelope(domain_event, position, data, aggregate_id=aggregate_id,
                                 at=at))


def encode_event(domain_event: DomainEventProtocol[Any], position: int,
                 at: datetime | None = None) -> bytes:
    """The whole stored event: internal use (audits with `outreach events --internal`).
    The public events topic carries bus.public_events.encode_public_event instead. `at`:
    the domain time (bus.public_events.domain_time), else the recorded time."""
    return encode_message(domain_event, position, event_data(domain_event), at=at)


# -- CloudEvents 1.0, Kafka protocol binding, binary mode -------------------------------------
CLOUDEVENTS_TYPE_PREFIX = "outreach."


def cloudevents_headers(message: Mapping[str, Any], source: str) -> list[tuple[str, bytes]]:
    """The `ce_*` headers of a message on the events topic (the value stays our envelope):
    ce_id is unique and stable per event (a republished event keeps it: deduplicate on it),
    ce_type `outreach.<event_type>`, ce_time the domain time `at` (RFC 3339)."""
    attributes = {
        "ce_specversion": "1.0",
        "ce_id": f"{message['aggregate_id']}:{message['aggregate_version']}",
        "ce_type": CLOUDEVENTS_TYPE_PREFIX + str(message["event_type"]),
        "ce_source": source,
        "ce_time": str(message["at"]),
        "content-type": "application/json",
    }
    return [(name, value.encode("utf-8")) for name, value in attributes.items()]


def cloudevents_source(topic_prefix: str) -> str:
    return f"/outreach/{topic_prefix}"


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
