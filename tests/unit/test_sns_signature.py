"""SNS message verification: signatures (v1 SHA1, v2 SHA256), topic and certificate URL
checks, subscription confirmation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateways import sns
from gateways.sns import SnsError, confirm_subscription, parse_body, verify
from tests.fakes.sns_signer import SnsSigner

TOPIC = "arn:aws:sns:us-east-1:123456789012:outreach-ses-events"
SES_EVENT = {"eventType": "Delivery", "mail": {"messageId": "m-1",
                                               "timestamp": "2026-03-02T15:00:00.000Z"}}
SIGNER = SnsSigner(TOPIC)


def check(body: dict[str, Any], signer: SnsSigner = SIGNER,
          topics: tuple[str, ...] = (TOPIC,)) -> None:
    verify(body, fetch_certificate=signer.fetch_certificate, topic_arns=topics)


@pytest.mark.parametrize("version", ["1", "2"])
def test_signed_notification_is_accepted(version: str) -> None:
    check(SIGNER.notification(SES_EVENT, version=version))


def test_notification_with_subject_is_accepted_and_subject_is_signed() -> None:
    body = SIGNER.notification(SES_EVENT, subject="Amazon SES Email Event Notification")
    check(body)
    with pytest.raises(SnsError):
        check({**body, "Subject": "Something else"})
    with pytest.raises(SnsError):
        check({k: v for k, v in body.items() if k != "Subject"})


def test_tampered_message_is_refused() -> None:
    body = SIGNER.notification(SES_EVENT)
    tampered = json.dumps({**SES_EVENT, "eventType": "Bounce"})
    with pytest.raises(SnsError, match="signature does not match"):
        check({**body, "Message": tampered})


def test_signature_made_with_the_other_hash_is_refused() -> None:
    body = SIGNER.notification(SES_EVENT, version="1")
    with pytest.raises(SnsError, match="signature does not match"):
        check({**body, "SignatureVersion": "2"})


def test_wrong_topic_is_refused_before_fetching() -> None:
    signer = SnsSigner("arn:aws:sns:us-east-1:999999999999:someone-elses-topic")
    with pytest.raises(SnsError, match="subscribed topic"):
        check(signer.notification(SES_EVENT), signer)
    assert signer.fetched == []


@pytest.mark.parametrize("url", [
    "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-abc123.pem",
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc123.pem",
    "https://sns.us-east-1.amazonaws.com/evil/SimpleNotificationService-abc123.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc123.pem.evil",
    "https://evil.com/SimpleNotificationService-abc123.pem",
    "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-abc123.pem",
    "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc123.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc123.pem?x=1",
])
def test_certificate_url_of_another_place_is_refused_before_fetching(url: str) -> None:
    signer = SnsSigner(TOPIC)
    signer.cert_url = url  # a forger signs correctly, with its own certificate
    body = signer.notification(SES_EVENT)
    with pytest.raises(SnsError, match="certificate URL"):
        check(body, signer)
    assert signer.fetched == []


@pytest.mark.parametrize("version", ["3", "", None, 1])
def test_unknown_signature_version_is_refused(version: object) -> None:
    body = {**SIGNER.notification(SES_EVENT), "SignatureVersion": version}
    with pytest.raises(SnsError, match="SignatureVersion"):
        check(body)


@pytest.mark.parametrize("kind", ["Notification ", "notification", "Other", None])
def test_unknown_type_is_refused(kind: object) -> None:
    with pytest.raises(SnsError, match="Type"):
        check({**SIGNER.notification(SES_EVENT), "Type": kind})


def test_missing_or_garbled_signature_is_refused() -> None:
    body = SIGNER.notification(SES_EVENT)
    with pytest.raises(SnsError):
        check({k: v for k, v in body.items() if k != "Signature"})
    with pytest.raises(SnsError):
        check({**body, "Signature": "not base64!"})


def test_certificate_that_cannot_be_fetched_is_refused_with_a_retryable_status() -> None:
    def unreachable(url: str) -> bytes:
        raise OSError("network down")

    with pytest.raises(SnsError) as refused:
        verify(SIGNER.notification(SES_EVENT), fetch_certificate=unreachable,
               topic_arns=[TOPIC])
    assert refused.value.status == 503


def test_certificate_is_fetched_once_per_url() -> None:
    signer = SnsSigner(TOPIC)
    for _ in range(3):
        check(signer.notification(SES_EVENT), signer)
    assert signer.fetched == [signer.cert_url]


@pytest.mark.parametrize("version", ["1", "2"])
def test_subscription_confirmation_is_verified_and_confirmed(version: str) -> None:
    body = SIGNER.subscription_confirmation(version=version)
    check(body)
    visited: list[str] = []

    def visit(url: str) -> bytes:
        visited.append(url)
        return b"<ok/>"

    confirm_subscription(body, visit)
    assert visited == [body["SubscribeURL"]]


def test_subscription_confirmation_token_and_url_are_signed() -> None:
    body = SIGNER.subscription_confirmation()
    with pytest.raises(SnsError):
        flipped = "1" if body["Token"].endswith("0") else "0"
        check({**body, "Token": body["Token"][:-1] + flipped})
    with pytest.raises(SnsError):
        check({**body, "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?other"})


@pytest.mark.parametrize("url", [
    "https://sns.us-east-1.amazonaws.com.evil.com/?Action=ConfirmSubscription",
    "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
    "https://evil.com/?Action=ConfirmSubscription",
    "https://sns.us-east-1.amazonaws.com@evil.com/?Action=ConfirmSubscription",
    "https://sns.us-east-1.amazonaws.com:444/?Action=ConfirmSubscription",
    "https://SNS.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
])
def test_subscribe_url_of_another_host_is_never_visited(url: str) -> None:
    body = SIGNER.subscription_confirmation(subscribe_url=url)
    visited: list[str] = []

    def visit(url: str) -> bytes:
        visited.append(url)
        return b""

    with pytest.raises(SnsError):
        confirm_subscription(body, visit)
    assert visited == []


def test_only_subscription_confirmations_are_confirmed() -> None:
    with pytest.raises(SnsError):
        confirm_subscription(SIGNER.notification(SES_EVENT), lambda u: b"")


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_body_that_is_not_a_json_object_is_a_400(raw: bytes) -> None:
    with pytest.raises(SnsError) as refused:
        parse_body(raw)
    assert refused.value.status == 400


def test_body_as_sns_posts_it_parses() -> None:
    body = SIGNER.notification(SES_EVENT)
    assert parse_body(json.dumps(body).encode()) == body


def test_reasons_never_quote_field_values() -> None:
    body = SIGNER.notification({"eventType": "Bounce", "to": "pat@patients.example"})
    for forged in ({**body, "TopicArn": "arn:pat@patients.example"},
                   {**body, "Message": body["Message"] + " "}):
        with pytest.raises(SnsError) as refused:
            check(forged)
        assert "patients.example" not in refused.value.reason


SIGNED_NOTIFICATION_FIELDS = ["Message", "MessageId", "Subject", "Timestamp"]
SIGNED_CONFIRMATION_FIELDS = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token"]


def _changed(value: str, position: int, replacement: str) -> str | None:
    index = position % (len(value) + 1)
    mutated = value[:index] + replacement + value[index + 1:]
    return None if mutated == value else mutated


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(SIGNED_NOTIFICATION_FIELDS), position=st.integers(0, 10_000),
       replacement=st.characters(), version=st.sampled_from(["1", "2"]))
def test_any_single_character_change_to_a_signed_notification_field_is_refused(
        field: str, position: int, replacement: str, version: str) -> None:
    body = SIGNER.notification(SES_EVENT, message_id="6b1f2a57-1c52-5f4b-9f2c-5b2a1e0c7d11",
                               version=version, subject="SES event")
    mutated = _changed(body[field], position, replacement)
    if mutated is None:
        return
    with pytest.raises(SnsError):
        check({**body, field: mutated})


@settings(max_examples=100, deadline=None)
@given(field=st.sampled_from(SIGNED_CONFIRMATION_FIELDS), position=st.integers(0, 10_000),
       replacement=st.characters())
def test_any_single_character_change_to_a_signed_confirmation_field_is_refused(
        field: str, position: int, replacement: str) -> None:
    body = SIGNER.subscription_confirmation()
    mutated = _changed(body[field], position, replacement)
    if mutated is None:
        return
    with pytest.raises(SnsError):
        check({**body, field: mutated})


def test_canonical_string_matches_the_documented_layout() -> None:
    body = {"Type": "Notification", "MessageId": "id", "TopicArn": "arn", "Message": "m",
            "Timestamp": "t"}
    assert sns.canonical_string(body) == (
        b"Message\nm\nMessageId\nid\nTimestamp\nt\nTopicArn\narn\nType\nNotification\n")
