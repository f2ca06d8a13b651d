"""The public view of stored events: what the Kafka events topic carries (docs/events.md).

An explicit allowlist, per event type, of what is published and which fields. Everything
else is internal and never leaves the database:
- patient import facts (rows: names, dates of birth, phones, addresses…) and saved page
  views (a view's filters can hold a name, a number or a date of birth);
- free text typed by staff or patients (an opt-out's reason and comment, a text's body);
- phone numbers: a number becomes a keyed pseudonym (HMAC-SHA256 under the contact-key
  secret, see domain.preferences.ContactKeys), so consumers can match events about one
  number without anyone being able to reverse it.
An event type missing from the allowlist is NOT published (fail closed); a stored field not
named by its rule is not published either. tests/unit/test_public_events.py fails when an
event class of domain/ is neither allowed nor declared internal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.utils import get_topic

from bus.wire import encode_message, event_data
from domain.campaign import EDITABLE_FIELDS
from domain.preferences import ContactKeys

# The public id of a phone opt-out: uuid5 of its public key, never of the stored key (an
# opt-out recorded before keyed hashes has an id derived from a bare SHA-256 of the number).
PUBLIC_OPT_OUT_NAMESPACE = uuid5(NAMESPACE_URL, "outreach:public-phone-opt-out")

Fields = Mapping[str, Any]


@dataclass(frozen=True)
class Derived:
    """Published fields `names` computed from the stored fields `source` (a pseudonym, a
    trimmed value); the stored `source` values themselves are not published."""

    source: tuple[str, ...]
    names: tuple[str, ...]
    compute: Callable[[Fields, ContactKeys], dict[str, Any]]


@dataclass(frozen=True)
class Public:
    """Published: `keep` as stored, plus `derived`; `withheld` are stored fields the topic
    never carries. Every stored field is in exactly one of keep, withheld, derived.source
    (tests/unit/test_public_events.py checks it against the event classes)."""

    keep: tuple[str, ...]
    withheld: tuple[str, ...] = ()
    derived: Derived | None = None
    public_id: Callable[[Fields, ContactKeys], UUID] | None = None

    @property
    def published(self) -> tuple[str, ...]:
        return (*self.keep, *(self.derived.names if self.derived else ()))


@dataclass(frozen=True)
class Internal:
    """Never published; `why` is the reason (shown in docs/events.md)."""

    why: str


Rule = Public | Internal


# -- derivations -----------------------------------------------------------------------------
def _opt_out_key(data: Fields, keys: ContactKeys) -> dict[str, Any]:
    return {"key": keys.public_phone_key(str(data["key"]))}


OPT_OUT_KEY = Derived(("key",), ("key",), _opt_out_key)


def _opt_out_id(data: Fields, keys: ContactKeys) -> UUID:
    return uuid5(PUBLIC_OPT_OUT_NAMESPACE, keys.public_phone_key(str(data["key"])))


def _sender_key(data: Fields, keys: ContactKeys) -> dict[str, Any]:
    return {"from_key": keys.public_number_key(str(data["from_number"]))}


SENDER_KEY = Derived(("from_number",), ("from_key",), _sender_key)


def _last_digits(data: Fields, _: ContactKeys) -> dict[str, Any]:
    # Recorded as the last 4 digits; trimmed again so a longer hint can never be published.
    return {"to_hint": str(data.get("to_hint", ""))[-4:]}


LAST_DIGITS = Derived(("to_hint",), ("to_hint",), _last_digits)


# An edit's `changes` may only name what a campaign lets staff edit (plus the start date the
# calendar moved it to): a field added to the edit later is not published by accident.
_CAMPAIGN_CHANGES = frozenset({*EDITABLE_FIELDS, "requested_start"})


def _campaign_changes(data: Fields, _: ContactKeys) -> dict[str, Any]:
    changes = data.get("changes") or {}
    return {"changes": {k: v for k, v in changes.items() if k in _CAMPAIGN_CHANGES}}


CAMPAIGN_CHANGES = Derived(("changes",), ("changes",), _campaign_changes)


# -- the allowlist -----------------------------------------------------------------------------
_PATIENT_FACTS = ("patient import facts (names, dates of birth, phones, addresses, "
                  "appointments…) stay internal")
_VIEW = "a saved view's name and filters can hold a name, a number or a date of birth"

RULES: Mapping[str, Rule] = {
    # Campaigns: what staff decided; the audience is patient ids.
    "domain.campaign:Campaign.Created": Public(
        ("name", "description", "channel", "content", "requested_start", "start_date",
         "audience", "created_at", "created_by")),
    "domain.campaign:Campaign.Edited": Public(("at",), derived=CAMPAIGN_CHANGES),
    "domain.campaign:Campaign.Activated": Public(("at",)),
    "domain.campaign:Campaign.Inactivated": Public(("at",)),
    "domain.campaign:Campaign.Stopped": Public(("at", "by")),
    "domain.campaign:Campaign.Completed": Public(("at", "delivered", "unsuccessful")),
    "domain.campaign:Campaign.TestSent": Public(("at", "outcome"), derived=LAST_DIGITS),
    # Communications: ids, times, counts and our own short reasons (gateways/twilio_errors.py
    # keeps the provider's words, which can quote the number, out of them).
    "domain.communication:Communication.Planned": Public(
        ("campaign_id", "patient_id", "channel", "sequence", "due_at")),
    "domain.communication:Communication.Rescheduled": Public(("due_at", "sequence")),
    "domain.communication:Communication.Deferred": Public(("until", "reason")),
    "domain.communication:Communication.AttemptStarted": Public(("attempt", "at")),
    "domain.communication:Communication.OutcomeUnknown": Public(
        ("attempt", "at", "reason", "code")),
    "domain.communication:Communication.Accepted": Public(("attempt", "at", "provider_ref")),
    "domain.communication:Communication.Delivered": Public(("at",)),
    "domain.communication:Communication.AttemptFailed": Public(
        ("attempt", "at", "reason", "code", "kind", "next_attempt_at")),
    "domain.communication:Communication.RetriesExceeded": Public(("at", "attempts")),
    "domain.communication:Communication.FailedPermanently": Public(("at", "reason", "code")),
    "domain.communication:Communication.Skipped": Public(("at", "reason")),
    "domain.communication:Communication.Cancelled": Public(("at", "reason")),
    # Phone opt-outs: the number only as its public key, under a public aggregate id.
    "domain.preferences:PhoneOptOut.Registered": Public(
        (), derived=OPT_OUT_KEY, public_id=_opt_out_id),
    "domain.preferences:PhoneOptOut.TextsStopped": Public(
        ("at",), derived=OPT_OUT_KEY, public_id=_opt_out_id),
    "domain.preferences:PhoneOptOut.TextsRestarted": Public(
        ("at",), derived=OPT_OUT_KEY, public_id=_opt_out_id),
    # Staff opt-outs: the type and dates, not the free text.
    "domain.preferences:PatientPreferences.Registered": Public(("patient_id",)),
    "domain.preferences:PatientPreferences.OptedOut": Public(
        ("patient_id", "type", "protocol", "last_day", "by", "at"),
        withheld=("reason", "comment")),
    "domain.preferences:PatientPreferences.OptOutsRemoved": Public(
        ("patient_id", "types", "at", "by")),
    # A patient's text: that it came, and its keyword; not who sent it, not what it said.
    "domain.replies:InboundMessage.Received": Public(
        ("message_ref", "to_number", "keyword", "received_at"),
        withheld=("body",), derived=SENDER_KEY),
    # Patient data: that an import ran and its counts, never its rows. The file name is
    # whatever the export was called (it could name a patient).
    "domain.patients:PatientImport.Started": Public(
        ("kind", "started_at"), withheld=("source_name",)),
    "domain.patients:PatientImport.RowsImported": Internal(_PATIENT_FACTS),
    "domain.patients:PatientImport.Finished": Public(
        ("kind", "rows", "new", "updated", "unchanged", "rejected", "finished_at")),
    # Saved views.
    "domain.lists_views:PageView.Saved": Internal(_VIEW),
    "domain.lists_views:PageView.Updated": Internal(_VIEW),
    "domain.lists_views:PageView.Shared": Internal("part of a view (internal)"),
    "domain.lists_views:PageView.Unshared": Internal("part of a view (internal)"),
    "domain.lists_views:PageView.Deleted": Internal("part of a view (internal)"),
}


def rule_for(domain_event: object, rules: Mapping[str, Rule] = RULES) -> Rule | None:
    return rules.get(get_topic(type(domain_event)))


def public_view(
    domain_event: DomainEventProtocol[Any], keys: ContactKeys,
    rules: Mapping[str, Rule] = RULES,
) -> tuple[UUID, dict[str, Any]] | None:
    """(aggregate id, data) as the topic shows them, or None: not published."""
    rule = rule_for(domain_event, rules)
    if not isinstance(rule, Public):  # internal, or unknown: fail closed
        return None
    stored = event_data(domain_event)
    data = {name: stored[name] for name in rule.keep if name in stored}
    if rule.derived is not None:
        data.update(rule.derived.compute(stored, keys))
    aggregate_id = (rule.public_id(stored, keys) if rule.public_id is not None
                    else domain_event.originator_id)
    return aggregate_id, data


def encode_public_event(
    domain_event: DomainEventProtocol[Any], position: int, keys: ContactKeys,
    rules: Mapping[str, Rule] = RULES,
) -> bytes | None:
    """The bytes the events topic carries for this event, or None (internal: not published).
    The envelope is bus.wire's, schema_version 1."""
    record = public_record(domain_event, position, keys, rules)
    return record[1] if record is not None else None


def public_record(
    domain_event: DomainEventProtocol[Any], position: int, keys: ContactKeys,
    rules: Mapping[str, Rule] = RULES,
) -> tuple[bytes, bytes] | None:
    """(Kafka key, value) for the events topic, or None. The key is the PUBLIC aggregate id:
    a phone opt-out's stored id must not reach the topic, not even as a message key."""
    view = public_view(domain_event, keys, rules)
    if view is None:
        return None
    aggregate_id, data = view
    value = encode_message(domain_event, position, data, aggregate_id=aggregate_id)
    return str(aggregate_id).encode("utf-8"), value
