"""The JSON Schema of the public events topic, generated from the code that publishes it.

Each public event type's `data` is derived from its event class (the dataclass fields and
their annotations) and its rule in bus.public_events (kept fields as stored, derived fields
with the derivation's schema, context fields typed as on `Communication.Planned`): a field
added to an event or a rule shows up here. One envelope (bus.wire) with `data` chosen by
`event_type` (if/then). The schema is strict (`additionalProperties: false`): it says
exactly what this release publishes; consumers should still ignore fields they do not know,
since later releases add some.

Shipped inside the package (bus/schemas/events.schema.json, read with `load_schema()`) and
copied to docs/events.schema.json; regenerate both with

    python -m bus.event_schema --write

`python -m bus.event_schema` prints it; tests/unit/test_event_schema.py fails when a shipped
copy is stale.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import types
import typing
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.domain import decorated_funcs
from eventsourcing.utils import resolve_topic

from bus.public_events import PLANNED, RULES, Public, Rule
from bus.wire import REQUIRED_KEYS, WIRE_SCHEMA_VERSION

SCHEMA_RESOURCE = "schemas/events.schema.json"
DOCS_COPY = Path(__file__).resolve().parent.parent / "docs" / "events.schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:outreach:events:schema-version-1"

# Python's isoformat() of an aware datetime: RFC 3339 (a `Z` accepted too).
DATE_TIME = {"type": "string", "format": "date-time",
             "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"}
DATE = {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
UUID_STRING = {"type": "string", "format": "uuid",
               "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}
# Envelope fields not stored on the event (the rest come from bus.wire).
_ENVELOPE: dict[str, dict[str, Any]] = {
    "schema_version": {"const": WIRE_SCHEMA_VERSION},
    "event_type": {"type": "string", "description": "<Aggregate>.<Event>"},
    "topic": {"type": "string", "description": "the stored eventsourcing topic"},
    "aggregate_id": {**UUID_STRING, "description": "public aggregate id (Kafka key)"},
    "aggregate_version": {"type": "integer", "minimum": 1,
                          "description": "deduplicate on (aggregate_id, aggregate_version)"},
    "position": {"type": "integer", "minimum": 1,
                 "description": "notification id in the event store (increasing, gaps)"},
    "occurred_at": {**DATE_TIME, "description": "when the event was recorded (wall clock)"},
    "at": {**DATE_TIME, "description": "when it happened in the domain (the one domain "
                                       "time of every event; occurred_at if it has none)"},
    "data": {"type": "object"},
}


class SchemaMismatch(ValueError):
    """A public message that does not match the published schema (a bug: fix the rule, the
    event or the schema, then regenerate)."""


def json_schema_of(annotation: Any) -> dict[str, Any]:
    """A field's annotation → its JSON Schema as bus.wire.to_wire_value writes it. An
    unknown type fails: the contract must not depend on a guess."""
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        choices = [json_schema_of(a) for a in typing.get_args(annotation)]
        return choices[0] if len(choices) == 1 else {"anyOf": choices}
    if annotation is type(None):
        return {"type": "null"}
    if annotation is Any:
        return {}
    if origin in (list, tuple, set, frozenset):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return {"type": "array", **({"items": json_schema_of(args[0])} if args else {})}
    if origin is dict or annotation is dict:
        key_value = typing.get_args(annotation)
        values = json_schema_of(key_value[1]) if len(key_value) == 2 else {}
        return {"type": "object", **({"additionalProperties": values} if values else {})}
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return {"enum": [member.value for member in annotation]}
        if issubclass(annotation, bool):
            return {"type": "boolean"}
        if issubclass(annotation, int):
            return {"type": "integer"}
        if issubclass(annotation, float):
            return {"type": "number"}
        if issubclass(annotation, str):
            return {"type": "string"}
        if issubclass(annotation, datetime):  # before date: a datetime is a date
            return dict(DATE_TIME)
        if issubclass(annotation, date):
            return dict(DATE)
        if issubclass(annotation, UUID):
            return dict(UUID_STRING)
    raise TypeError(f"no JSON Schema for the annotation {annotation!r}")


def _with_defaults(cls: type) -> set[str]:
    """The fields of an event class that have a default: added later, so stored events
    recorded before may lack them. An event declared by `@event` on a method takes its
    defaults from that method (eventsourcing's `decorated_funcs`); a creation event from the
    aggregate's `__init__`."""
    func = next((decorated_funcs[k] for k in cls.__mro__ if k in decorated_funcs), None)
    if func is None:
        aggregate = cls.__qualname__.rpartition(".")[0]
        func = resolve_topic(f"{cls.__module__}:{aggregate}").__init__ if aggregate else None
    names = {f.name for f in dataclasses.fields(cls)
             if f.default is not dataclasses.MISSING
             or f.default_factory is not dataclasses.MISSING}
    if func is not None:
        names |= {name for name, p in inspect.signature(func).parameters.items()
                  if p.default is not inspect.Parameter.empty}
    return names


def _fields(cls: type) -> tuple[dict[str, Any], set[str]]:
    """(annotation by field name, names without a default) of an event class."""
    hints = typing.get_type_hints(cls)
    annotations = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    return annotations, set(annotations) - _with_defaults(cls)


def data_schema(topic: str, rule: Public) -> dict[str, Any]:
    """The schema of `data` for one public event type."""
    annotations, stored_required = _fields(resolve_topic(topic))
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name in rule.keep:
        properties[name] = json_schema_of(annotations[name])
        if name in stored_required:  # a field added later with a default: old events lack it
            required.append(name)
    if rule.derived is not None:
        for name in rule.derived.names:
            properties[name] = dict(rule.derived.schema.get(name, {}))
            required.append(name)
    if rule.context:
        planned, _ = _fields(PLANNED)
        for name in rule.context:
            properties[name] = json_schema_of(planned[name])
            required.append(name)
    return {"type": "object", "additionalProperties": False,
            "required": sorted(required), "properties": dict(sorted(properties.items()))}


def build_schema(rules: Mapping[str, Rule] = RULES) -> dict[str, Any]:
    public = sorted((topic.partition(":")[2], topic, rule) for topic, rule in rules.items()
                    if isinstance(rule, Public))
    return {
        "$schema": DIALECT,
        "$id": SCHEMA_ID,
        "title": "outreach events topic: one message (schema_version 1)",
        "description": "Generated by `python -m bus.event_schema` from bus/public_events.py "
                       "and the event classes; see docs/events.md. Kafka headers carry the "
                       "CloudEvents 1.0 attributes (binary mode).",
        "type": "object",
        "required": [*REQUIRED_KEYS, "at"],
        "additionalProperties": False,
        "properties": {**_ENVELOPE,
                       "event_type": {**_ENVELOPE["event_type"],
                                      "enum": [event_type for event_type, _, _ in public]}},
        "allOf": [
            {"if": {"properties": {"event_type": {"const": event_type}},
                    "required": ["event_type"]},
             "then": {"properties": {"topic": {"const": topic},
                                     "data": {"$ref": f"#/$defs/{event_type}"}}}}
            for event_type, topic, _ in public
        ],
        "$defs": {event_type: data_schema(topic, rule) for event_type, topic, rule in public},
    }


def render(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def load_schema() -> dict[str, Any]:
    """The schema shipped in the package (installed with the wheel)."""
    text = resources.files("bus").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


# -- validation (tests; needs the `jsonschema` package) -------------------------------------
@cache
def _shipped_validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema())


_generated: dict[int, tuple[Mapping[str, Rule], Any]] = {}


def _validator(rules: Mapping[str, Rule]) -> Any:
    if rules is RULES:
        return _shipped_validator()
    cached = _generated.get(id(rules))
    if cached is None or cached[0] is not rules:  # other rules (tests): their own schema
        from jsonschema import Draft202012Validator

        cached = (rules, Draft202012Validator(build_schema(rules)))
        _generated[id(rules)] = cached
    return cached[1]


def check_message(message: Mapping[str, Any], rules: Mapping[str, Rule] = RULES) -> None:
    """Raise SchemaMismatch unless `message` matches the schema of `rules` (the shipped file
    for the product's rules). Names fields and types, never values (they may be PHI)."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator(rules).iter_errors(message))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(message)"
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            what = f"unexpected {sorted(k for k in error.instance if k not in known)}"
        elif error.validator == "required":
            what = error.message  # names the property only
        else:
            what = f"{error.validator} {error.validator_value!r}"
        raise SchemaMismatch(f"{message.get('event_type')} does not match the event schema "
                             f"at {where}: {what}"[:500])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render(build_schema())
    if args == ["--write"]:
        shipped = Path(str(resources.files("bus").joinpath(SCHEMA_RESOURCE)))
        for path in (shipped, DOCS_COPY):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}", file=sys.stderr)
        return 0
    if args:
        print("error: usage: python -m bus.event_schema [--write]", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
