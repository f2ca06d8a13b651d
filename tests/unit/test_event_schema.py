"""The published JSON Schema of the events topic: generated from the event classes and the
public rules, shipped in the package and docs/, and enforced on every public message."""

from __future__ import annotations

import dataclasses
import json
import typing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import resolve_topic
from jsonschema import Draft202012Validator

from bus import event_schema
from bus.event_schema import SchemaMismatch, build_schema, check_message, load_schema, render
from bus.public_events import RULES, Public, Rule, public_message
from bus.wire import cloudevents_headers
from domain.calendar import SendingCalendar
from domain.campaign import Campaign
from domain.preferences import ContactKeys

AT = datetime(2026, 11, 24, 15, tzinfo=UTC)
KEYS = ContactKeys(b"a-contact-key-secret-for-unit-tests")
ROOT = Path(__file__).resolve().parents[2]


def campaign() -> Campaign:
    return Campaign(name="Flu", description="", channel="text", content={"body": "Hi"},
                    requested_start="2026-11-24", start_date="2026-11-24", audience=["P1"],
                    created_at=AT, created_by="staff")


def test_the_shipped_schema_and_its_docs_copy_are_what_the_code_generates_today() -> None:
    # The file installed with the package and the one in docs/ are regenerated with
    # `python -m bus.event_schema --write`; this fails as soon as either is stale.
    generated = render(build_schema())
    assert render(load_schema()) == generated, "run: python -m bus.event_schema --write"
    docs_copy = (ROOT / "docs" / "events.schema.json").read_text(encoding="utf-8")
    assert docs_copy == generated, "run: python -m bus.event_schema --write"
    Draft202012Validator.check_schema(load_schema())


def test_the_schema_has_one_data_definition_per_public_event_type_and_none_for_internal():
    schema = load_schema()
    public = {t.partition(":")[2] for t, r in RULES.items() if isinstance(r, Public)}
    internal = {t.partition(":")[2] for t, r in RULES.items() if not isinstance(r, Public)}
    assert set(schema["$defs"]) == public
    assert set(schema["properties"]["event_type"]["enum"]) == public
    assert not internal & set(schema["$defs"])
    assert "PatientImport.RowsImported" in internal


class Parcel(Aggregate):
    """A test aggregate: its events are published under the rules built in the test."""

    @event("Shipped")
    def __init__(self, weight: int, at: datetime, note: str | None = None) -> None:
        self.weight = weight


def test_a_field_added_to_an_event_or_its_rule_shows_up_in_the_schema() -> None:
    topic = f"{__name__}:Parcel.Shipped"
    # Given a rule publishing one field of the event
    narrow: dict[str, Rule] = {topic: Public(("weight",), withheld=("at", "note"))}
    assert build_schema(narrow)["$defs"]["Parcel.Shipped"]["properties"] == {
        "weight": {"type": "integer"}}
    # When the rule publishes the others too, they appear with their types (a field with a
    # default, added later, is optional: old stored events do not have it)
    wide: dict[str, Rule] = {topic: Public(("weight", "at", "note"))}
    data = build_schema(wide)["$defs"]["Parcel.Shipped"]
    assert data["properties"]["at"]["format"] == "date-time"
    assert data["properties"]["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert data["required"] == ["at", "weight"]


def test_every_public_field_has_a_type_and_every_domain_time_is_a_datetime_field() -> None:
    for topic, rule in RULES.items():
        if not isinstance(rule, Public):
            continue
        data = load_schema()["$defs"][topic.partition(":")[2]]
        assert set(data["properties"]) == set(rule.published), topic
        assert all(schema for schema in data["properties"].values()), topic
        if rule.time is not None:
            cls = resolve_topic(topic)
            assert rule.time in {f.name for f in dataclasses.fields(cls)}, topic
            assert typing.get_type_hints(cls)[rule.time] is datetime, topic


def test_a_message_that_strays_from_the_schema_is_refused_naming_the_field_not_its_value():
    c = campaign()
    c.activate(now=AT, calendar=SendingCalendar())
    activated = c.collect_events()[-1]
    message = public_message(activated, 2, KEYS)
    assert message is not None
    check_message(message)  # as published: valid
    # A field nobody declared (say, a phone number that slipped in) is refused…
    leaked = {**message, "data": {**message["data"], "mobile": "+13125550100"}}
    with pytest.raises(SchemaMismatch, match="mobile") as refused:
        check_message(leaked)
    assert "3125550100" not in str(refused.value)
    # …and so is a wrong type or a missing domain time
    with pytest.raises(SchemaMismatch):
        check_message({**message, "data": {"at": "yesterday"}})
    with pytest.raises(SchemaMismatch, match="'at' is a required property"):
        check_message({k: v for k, v in message.items() if k != "at"})


def test_the_envelope_has_one_domain_time_and_cloudevents_headers_derived_from_it() -> None:
    c = campaign()
    [created] = c.collect_events()
    message = public_message(created, 7, KEYS)
    assert message is not None
    # `at` is the domain time (created_at here), whatever the recorded time
    assert message["at"] == AT.isoformat() == message["data"]["created_at"]
    headers = dict(cloudevents_headers(message, "/outreach/test"))
    assert headers == {
        "ce_specversion": b"1.0", "ce_id": f"{c.id}:1".encode(),
        "ce_type": b"outreach.Campaign.Created", "ce_source": b"/outreach/test",
        "ce_time": AT.isoformat().encode(), "content-type": b"application/json"}


def test_the_schema_is_printed_by_the_module_command(capsys: pytest.CaptureFixture[str]):
    assert event_schema.main([]) == 0
    assert json.loads(capsys.readouterr().out) == load_schema()
    assert event_schema.main(["--bogus"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
