"""Twilio webhooks become domain objects only when signed and well formed."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from domain.keywords import Keyword
from domain.retry import FailureKind
from gateways.twilio_webhooks import (
    WebhookError,
    keyword_of,
    parse_inbound,
    parse_status,
    signed_url,
    verify_signature,
)

TOKEN = "12345"
URL = "https://outreach.example.org/webhooks/twilio/sms"
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def twilio_signature(token: str, url: str, pairs: list[tuple[str, str]]) -> str:
    """Twilio's documented scheme, written out independently of the SDK: the URL, then each
    field name followed by its value(s), names sorted (values sorted too), HMAC-SHA1, base64."""
    names = sorted({name for name, _ in pairs})
    data = url + "".join(
        name + value for name in names for value in sorted({v for n, v in pairs if n == name}))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def inbound(body: str = "STOP", sender: str = "+13125550100") -> list[tuple[str, str]]:
    return [("MessageSid", "SM" + "a" * 32), ("AccountSid", "AC" + "b" * 32),
            ("From", sender), ("To", "+15005550006"), ("Body", body), ("NumMedia", "0")]


# -- signatures ----------------------------------------------------------------------------
def test_a_correctly_signed_form_is_verified() -> None:
    form = inbound()
    assert verify_signature(TOKEN, URL, form, twilio_signature(TOKEN, URL, form))


def test_a_signature_for_other_values_or_another_url_or_token_is_refused() -> None:
    form = inbound()
    good = twilio_signature(TOKEN, URL, form)
    assert not verify_signature(TOKEN, URL, inbound(body="START"), good)
    assert not verify_signature(TOKEN, URL + "?x=1", form, good)
    assert not verify_signature("another-token", URL, form, good)
    assert not verify_signature(TOKEN, URL, form, None)
    assert not verify_signature(TOKEN, URL, form, "")


def test_every_value_of_a_repeated_field_is_signed() -> None:
    """Given a form where a field repeats (MMS MediaUrl-like), when verified, then both
    values count: dropping or changing either one breaks the signature."""
    form = [*inbound(), ("Tag", "first"), ("Tag", "second")]
    signature = twilio_signature(TOKEN, URL, form)
    assert verify_signature(TOKEN, URL, form, signature)
    assert not verify_signature(TOKEN, URL, [*inbound(), ("Tag", "first")], signature)
    assert not verify_signature(
        TOKEN, URL, [*inbound(), ("Tag", "first"), ("Tag", "other")], signature)


def test_the_signed_url_is_the_public_url_plus_path_and_raw_query() -> None:
    assert signed_url("https://o.example/", "/webhooks/twilio/status", "ref=c1%3A1") == (
        "https://o.example/webhooks/twilio/status?ref=c1%3A1")
    assert signed_url("https://o.example", "/webhooks/twilio/sms") == (
        "https://o.example/webhooks/twilio/sms")


# -- inbound texts -------------------------------------------------------------------------
def test_an_inbound_text_is_parsed_with_the_injected_time() -> None:
    message = parse_inbound(inbound(body="Running late, sorry"), NOW)
    assert message.message_ref == "SM" + "a" * 32
    assert (message.from_number, message.to_number) == ("+13125550100", "+15005550006")
    assert (message.body, message.received_at) == ("Running late, sorry", NOW)


def test_a_national_sender_number_is_normalised_to_e164_in_the_us() -> None:
    assert parse_inbound(inbound(sender="(312) 555-0100"), NOW).from_number == "+13125550100"


def test_a_mapping_form_is_accepted_too() -> None:
    assert parse_inbound(dict(inbound()), NOW).body == "STOP"


@pytest.mark.parametrize(
    ("body", "keyword"),
    [("STOP", Keyword.STOP), (" stop. ", Keyword.STOP), ("Unsubscribe", Keyword.STOP),
     ("START", Keyword.START), ("unstop", Keyword.START), ("HELP", Keyword.HELP),
     ("info!", Keyword.HELP), ("Please stop texting me", None), ("", None)],
)
def test_keywords_follow_the_domain_rules(body: str, keyword: Keyword | None) -> None:
    """The body is kept as sent; what counts as STOP/START/HELP is domain.keywords' call."""
    message = parse_inbound(inbound(body=body), NOW)
    assert message.body == body
    assert keyword_of(message) is keyword


@pytest.mark.parametrize("missing", ["MessageSid", "From", "To", "Body"])
def test_a_missing_field_is_a_webhook_error_naming_the_field(missing: str) -> None:
    form = [(n, v) for n, v in inbound() if n != missing]
    with pytest.raises(WebhookError, match=f"missing field {missing}"):
        parse_inbound(form, NOW)


def test_an_unreadable_sender_is_refused_without_quoting_it() -> None:
    with pytest.raises(WebhookError) as refused:
        parse_inbound(inbound(sender="not-a-number-12"), NOW)
    assert "not-a-number-12" not in refused.value.reason
    assert isinstance(refused.value, ValueError)


def test_a_body_repeated_with_different_values_is_refused() -> None:
    with pytest.raises(WebhookError, match="Body repeated"):
        parse_inbound([*inbound(body="STOP"), ("Body", "START")], NOW)


# -- status callbacks ----------------------------------------------------------------------
def status_form(status: str = "delivered", error: str | None = None) -> list[tuple[str, str]]:
    form = [("MessageSid", "SM" + "c" * 32), ("MessageStatus", status),
            ("To", "+13125550100"), ("From", "+15005550006")]
    return form + ([("ErrorCode", error)] if error else [])


def test_a_status_callback_becomes_a_receipt_with_the_reference_from_the_url() -> None:
    receipt = parse_status(status_form(), "comm-1:2", NOW)
    assert (receipt.provider_ref, receipt.reference, receipt.status, receipt.error_code,
            receipt.received_at) == ("SM" + "c" * 32, "comm-1:2", "delivered", "", NOW)


def test_a_failed_status_carries_its_error_code() -> None:
    receipt = parse_status(status_form("undelivered", "30003"), "comm-1:1", NOW)
    assert (receipt.status, receipt.error_code) == ("undelivered", "30003")


def test_legacy_sms_field_names_are_understood() -> None:
    receipt = parse_status([("SmsSid", "SM1"), ("SmsStatus", "sent")], "c:1", NOW)
    assert (receipt.provider_ref, receipt.status) == ("SM1", "sent")


@pytest.mark.parametrize("ref", [None, "", "  "])
def test_a_status_callback_without_a_reference_is_refused(ref: str | None) -> None:
    with pytest.raises(WebhookError, match="ref"):
        parse_status(status_form(), ref, NOW)


def test_a_status_callback_without_a_status_is_refused() -> None:
    with pytest.raises(WebhookError, match="MessageStatus"):
        parse_status([("MessageSid", "SM1")], "c:1", NOW)


def test_a_failed_status_callback_says_whether_another_attempt_could_help() -> None:
    # Given Twilio's callbacks for an unreachable handset and for a landline
    now = datetime(2026, 11, 24, 18, tzinfo=UTC)
    unreachable = parse_status({"MessageSid": "SM1", "MessageStatus": "undelivered",
                                "ErrorCode": "30003"}, "c:1", now)
    landline = parse_status({"MessageSid": "SM2", "MessageStatus": "undelivered",
                             "ErrorCode": "30006"}, "c:1", now)
    # Then the gateway, which knows Twilio's codes, classifies them for the domain
    assert (unreachable.kind, unreachable.reason) == (FailureKind.TRANSIENT,
                                                     "handset unreachable")
    assert landline.kind == FailureKind.PERMANENT


# -- Advanced Opt-Out: Twilio's OptOutType ----------------------------------------------------
@pytest.mark.parametrize(
    ("body", "opt_out_type", "keyword"),
    [("ARRET", "STOP", Keyword.STOP), ("PARAR", "stop", Keyword.STOP),
     ("SI", "START", Keyword.START), ("AIDE", "HELP", Keyword.HELP),
     ("ARRET", "", None), ("STOP", "", Keyword.STOP),
     # a value Twilio might add one day: not guessed at, our own reading decides
     ("STOP", "UNSUBSCRIBE_ALL", Keyword.STOP), ("ARRET", "SOMETHING", None)],
)
def test_twilios_opt_out_type_decides_the_keyword_when_present(
    body: str, opt_out_type: str, keyword: Keyword | None
) -> None:
    message = parse_inbound([*inbound(body=body), ("OptOutType", opt_out_type)], NOW)
    assert message.body == body
    assert keyword_of(message) is keyword


def test_without_opt_out_type_our_own_words_decide() -> None:
    assert keyword_of(parse_inbound(inbound(body="ARRET"), NOW)) is None
    assert keyword_of(parse_inbound(inbound(body="quit"), NOW)) is Keyword.STOP


def test_an_opt_out_type_repeated_with_different_values_is_refused() -> None:
    form = [*inbound(body="ARRET"), ("OptOutType", "STOP"), ("OptOutType", "START")]
    with pytest.raises(WebhookError, match="OptOutType repeated"):
        parse_inbound(form, NOW)
