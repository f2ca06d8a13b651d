"""The public events topic: an allowlist that covers every event type of the domain, and
keyed hashes for phone numbers that nobody without the secret can reverse."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import pkgutil
from datetime import UTC, datetime

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic
from hypothesis import given
from hypothesis import strategies as st

import domain
from bus.public_events import RULES, Internal, Public, encode_public_event
from bus.wire import decode_event
from domain.campaign import Campaign
from domain.keywords import Keyword
from domain.preferences import (
    ContactKeys,
    PhoneOptOut,
    legacy_phone_key,
    legacy_phone_opt_out_id,
    phone_key,
)

AT = datetime(2026, 11, 24, 15, tzinfo=UTC)
KEYS = ContactKeys(b"a-contact-key-secret-for-unit-tests")
OTHER_KEYS = ContactKeys(b"another-contact-key-secret-entirely")
# Envelope fields of every eventsourcing event; originator_topic names the aggregate class.
ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic"}

us_numbers = st.integers(min_value=2_002_000_000, max_value=9_899_999_999).map(
    lambda n: f"+1{n}")


def domain_event_classes() -> dict[str, type]:
    """Every event class an aggregate of domain/ can record, by stored topic."""
    found: dict[str, type] = {}
    for info in pkgutil.iter_modules(domain.__path__):
        module = importlib.import_module(f"domain.{info.name}")
        for aggregate in vars(module).values():
            if not (isinstance(aggregate, type) and issubclass(aggregate, Aggregate)
                    and aggregate.__module__ == module.__name__):
                continue
            nested = {name: cls for name, cls in vars(aggregate).items()
                      if isinstance(cls, type) and issubclass(cls, Aggregate.Event)}
            creations = [c for n, c in nested.items()
                         if n != "Created" and issubclass(c, Aggregate.Created)]
            for name, cls in nested.items():
                if name == "Event" or (name == "Created" and creations):
                    continue  # the base class, or eventsourcing's unused default creation
                found[get_topic(cls)] = cls
    return found


def stored_fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} - ENVELOPE


# -- the allowlist ------------------------------------------------------------------------------

def test_every_event_type_of_the_domain_is_either_published_or_declared_internal() -> None:
    # Given every event class the domain defines
    classes = domain_event_classes()
    assert "domain.campaign:Campaign.Created" in classes  # the walk finds them
    # Then each one has a rule: a new event type cannot reach (or silently miss) the topic
    missing = sorted(set(classes) - set(RULES))
    assert not missing, f"decide Public or Internal in bus/public_events.py for {missing}"
    # And no rule names an event type that does not exist (a renamed class would leave one)
    assert not sorted(set(RULES) - set(classes))


def test_every_field_of_a_published_event_is_kept_withheld_or_derived_exactly_once() -> None:
    for topic, cls in domain_event_classes().items():
        rule = RULES[topic]
        if isinstance(rule, Internal):
            assert rule.why
            continue
        assert isinstance(rule, Public)
        source = rule.derived.source if rule.derived else ()
        named = [*rule.keep, *rule.withheld, *source]
        assert len(named) == len(set(named)), f"{topic}: a field is named twice"
        assert set(named) == stored_fields(cls), f"{topic}: fields and rule disagree"


def test_patient_rows_and_saved_views_are_internal() -> None:
    for topic in ("domain.patients:PatientImport.RowsImported",
                  "domain.lists_views:PageView.Saved", "domain.lists_views:PageView.Updated"):
        assert isinstance(RULES[topic], Internal)


class Unlisted(Aggregate):
    """An aggregate the allowlist has never heard of."""

    @event("Noted")
    def __init__(self, phone: str) -> None:
        self.phone = phone


def test_an_event_type_missing_from_the_allowlist_is_not_published() -> None:
    note = Unlisted(phone="+13125550100")
    [noted] = note.collect_events()
    assert encode_public_event(noted, 1, KEYS) is None


def test_a_test_send_shows_at_most_the_last_four_digits() -> None:
    campaign = Campaign(name="Flu", description="", channel="text", content={"body": "Hi"},
                        requested_start="2026-11-24", start_date="2026-11-24", audience=[],
                        created_at=AT, created_by="staff")
    campaign._test_sent(at=AT, to_hint="+13125550100", outcome="accepted")  # as if longer
    test_sent = campaign.collect_events()[-1]
    raw = encode_public_event(test_sent, 2, KEYS)
    assert raw is not None
    assert decode_event(raw)["data"] == {"at": AT.isoformat(), "outcome": "accepted",
                                         "to_hint": "0100"}


def test_a_campaign_edit_publishes_only_the_editable_fields() -> None:
    campaign = Campaign(name="Flu", description="", channel="text", content={"body": "Hi"},
                        requested_start="2026-11-24", start_date="2026-11-24", audience=[],
                        created_at=AT, created_by="staff")
    campaign._edited(changes={"name": "Flu 2", "test_number": "+13125550100"}, at=AT)
    raw = encode_public_event(campaign.collect_events()[-1], 2, KEYS)
    assert raw is not None
    assert json.loads(raw)["data"]["changes"] == {"name": "Flu 2"}


# -- keyed contact keys -------------------------------------------------------------------------

@given(number=us_numbers)
def test_a_numbers_contact_key_is_keyed_not_its_bare_sha256(number: str) -> None:
    bare = hashlib.sha256(f"phone:{number}".encode()).hexdigest()
    # The stored key is HMAC-SHA256 of "phone:+E164" under the secret, not the bare hash…
    assert KEYS.phone_key(number) == phone_key(number, KEYS.secret) != bare
    # …and another secret gives another key (so only the secret's holder can test numbers)
    assert KEYS.phone_key(number) != OTHER_KEYS.phone_key(number)
    assert KEYS.phone_opt_out_id(number) != OTHER_KEYS.phone_opt_out_id(number)
    # The legacy key is the bare hash: looked up for opt-outs recorded before, never written
    assert legacy_phone_key(number) == bare
    assert KEYS.opt_out_ids(number) == (KEYS.phone_opt_out_id(number),
                                         legacy_phone_opt_out_id(number))


def test_a_stop_recorded_under_a_legacy_key_is_published_under_a_keyed_one() -> None:
    # Given an opt-out recorded before keyed hashes (bare SHA-256 key and id)
    number = "+13125550100"
    legacy = PhoneOptOut(key=legacy_phone_key(number))
    legacy.keyword(Keyword.STOP, AT)
    bare = legacy_phone_key(number)
    for position, stored in enumerate(legacy.collect_events(), start=1):
        raw = encode_public_event(stored, position, KEYS)
        assert raw is not None
        message = decode_event(raw)
        # Then neither its stored key nor its stored id (both reversible) reach the topic
        assert bare.encode() not in raw and str(legacy.id).encode() not in raw
        assert message["aggregate_id"] != str(legacy.id)
        assert message["data"]["key"] == KEYS.public_phone_key(bare)


def test_the_contact_keys_never_show_their_secret() -> None:
    assert "secret-for-unit-tests" not in repr(KEYS)
