"""SES event records (real shapes, tests/fixtures/ses_events) → EmailEvent."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from domain.email import EmailEventKind
from gateways.ses_email import reference_to_tag
from gateways.ses_events import SesEventError, parse_ses_event

FIXTURES = Path(__file__).parents[1] / "fixtures" / "ses_events"
SNS_ID = "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"
REFERENCE = f"{uuid.UUID('0f8fad5b-d9cb-469f-a165-70867728950e')}:2"


def fixture(name: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return record


def tagged(name: str, reference: str = REFERENCE) -> dict[str, Any]:
    record = copy.deepcopy(fixture(name))
    record["mail"].setdefault("tags", {})["outreach-ref"] = [reference_to_tag(reference)]
    return record


@pytest.mark.parametrize("name, kind, detail, occurred", [
    ("send", EmailEventKind.SEND, "", "2016-10-14T05:02:16.645+00:00"),
    ("delivery", EmailEventKind.DELIVERY, "", "2016-10-19T23:21:04.133+00:00"),
    ("bounce", EmailEventKind.HARD_BOUNCE, "Permanent/General",
     "2017-08-05T00:41:02.669+00:00"),
    ("complaint", EmailEventKind.COMPLAINT, "abuse", "2017-08-05T00:41:02.669+00:00"),
    ("delivery_delay", EmailEventKind.DELAY, "TransientCommunicationFailure",
     "2020-06-16T00:25:40.095+00:00"),
    ("reject", EmailEventKind.REJECT, "Bad content", "2016-10-14T17:38:15.211+00:00"),
])
def test_each_event_type_becomes_one_event(name: str, kind: EmailEventKind, detail: str,
                                           occurred: str) -> None:
    [event] = parse_ses_event(SNS_ID, json.dumps(tagged(name)))

    assert event.kind is kind
    assert event.detail == detail
    assert event.event_id == SNS_ID
    assert event.provider_ref == "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"
    assert event.reference == REFERENCE
    assert event.occurred_at == datetime.fromisoformat(occurred)
    assert event.occurred_at.tzinfo is not None


def test_permanent_bounce_is_hard() -> None:
    [event] = parse_ses_event(SNS_ID, fixture("bounce"))
    assert event.kind is EmailEventKind.HARD_BOUNCE


def test_transient_bounce_is_soft() -> None:
    [event] = parse_ses_event(SNS_ID, fixture("bounce_transient"))
    assert event.kind is EmailEventKind.SOFT_BOUNCE
    assert event.detail == "Transient/MailboxFull"


def test_undetermined_bounce_is_not_definitive() -> None:
    [event] = parse_ses_event(SNS_ID, fixture("bounce_undetermined"))
    assert event.kind is EmailEventKind.SOFT_BOUNCE
    assert event.detail == "Undetermined/Undetermined"


def test_auto_reply_reported_as_a_transient_general_bounce_is_soft() -> None:
    record = copy.deepcopy(fixture("bounce"))
    record["bounce"].update(bounceType="Transient", bounceSubType="General")
    [event] = parse_ses_event(SNS_ID, record)
    assert event.kind is EmailEventKind.SOFT_BOUNCE


def test_delivery_is_never_a_bounce() -> None:
    for name in ("delivery", "notification_delivery"):
        [event] = parse_ses_event(SNS_ID, fixture(name))
        assert event.kind is EmailEventKind.DELIVERY


def test_several_bounced_recipients_are_still_one_event() -> None:
    events = parse_ses_event(SNS_ID, fixture("notification_bounce"))
    assert [e.kind for e in events] == [EmailEventKind.HARD_BOUNCE]


@pytest.mark.parametrize("name, kind", [
    ("notification_bounce", EmailEventKind.HARD_BOUNCE),
    ("notification_complaint", EmailEventKind.COMPLAINT),
    ("notification_delivery", EmailEventKind.DELIVERY),
])
def test_older_notification_shape_is_read(name: str, kind: EmailEventKind) -> None:
    [event] = parse_ses_event(SNS_ID, json.dumps(fixture(name)))
    assert event.kind is kind
    assert event.provider_ref == fixture(name)["mail"]["messageId"]
    assert event.reference == ""  # identity notifications carry no tags


def test_reference_from_tags() -> None:
    [event] = parse_ses_event(SNS_ID, tagged("delivery"))
    assert event.reference == REFERENCE


def test_reference_from_our_header_when_there_is_no_tag() -> None:
    record = copy.deepcopy(fixture("notification_bounce"))
    record["mail"]["headers"].append({"name": "X-Outreach-Reference", "value": REFERENCE})
    [event] = parse_ses_event(SNS_ID, record)
    assert event.reference == REFERENCE


def test_tag_wins_over_header_and_foreign_tags_are_ignored() -> None:
    record = tagged("bounce")
    record["mail"]["headers"].append({"name": "x-outreach-reference", "value": "other:1"})
    [event] = parse_ses_event(SNS_ID, record)
    assert event.reference == REFERENCE

    untagged = copy.deepcopy(fixture("bounce"))
    untagged["mail"]["tags"]["outreach-ref"] = ["not-one-of-ours"]
    [event] = parse_ses_event(SNS_ID, untagged)
    assert event.reference == ""


@pytest.mark.parametrize("name", ["open", "click", "rendering_failure", "subscription"])
def test_event_types_we_do_not_act_on_give_nothing(name: str) -> None:
    assert parse_ses_event(SNS_ID, fixture(name)) == []


def test_unknown_and_test_notifications_give_nothing() -> None:
    assert parse_ses_event(SNS_ID, {"eventType": "SomethingNew", "mail": {}}) == []
    assert parse_ses_event(SNS_ID, {"notificationType": "AmazonSnsSubscriptionSucceeded",
                                    "message": "You have successfully subscribed"}) == []


def test_details_never_carry_an_address() -> None:
    record = copy.deepcopy(fixture("bounce"))
    record["bounce"]["bounceSubType"] = "General <pat@patients.example>"
    record["bounce"]["bouncedRecipients"][0]["diagnosticCode"] = "550 pat@patients.example"
    [event] = parse_ses_event(SNS_ID, record)
    assert "@" not in event.detail and "<" not in event.detail
    for name in ("delivery", "delivery_delay", "complaint", "reject"):
        [event] = parse_ses_event(SNS_ID, fixture(name))
        assert "example.com" not in event.detail


def test_event_without_its_own_timestamp_uses_the_mail_timestamp() -> None:
    record = copy.deepcopy(fixture("complaint"))
    del record["complaint"]["timestamp"]
    [event] = parse_ses_event(SNS_ID, record)
    assert event.occurred_at == datetime(2017, 8, 5, 0, 40, 1, 123000, tzinfo=UTC)


@pytest.mark.parametrize("message", ["not json", "[1]", '"Bounce"', "{"])
def test_malformed_json_is_an_error(message: str) -> None:
    with pytest.raises(SesEventError):
        parse_ses_event(SNS_ID, message)


def test_known_event_without_message_id_is_an_error() -> None:
    record = copy.deepcopy(fixture("bounce"))
    del record["mail"]["messageId"]
    with pytest.raises(SesEventError, match="messageId"):
        parse_ses_event(SNS_ID, record)
    with pytest.raises(SesEventError, match="mail"):
        parse_ses_event(SNS_ID, {"eventType": "Bounce", "bounce": {}})
