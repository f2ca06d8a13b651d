"""SesEmailGateway through real boto3 over HTTP: moto's server, and tiny servers that
throttle, stay silent or are not there."""

from __future__ import annotations

import email
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default

import pytest

from domain.retry import FailureKind
from gateways.email import OutboundEmail, ProviderLookupPending
from gateways.ses_email import SesEmailGateway, reference_to_tag, tag_to_reference
from tests.fakes.ses_server import (
    CREDENTIALS,
    MotoSes,
    SesErrorServer,
    SilentServer,
    closed_port_url,
)

SENDER = "noreply@clinic.example"
PATIENT = "pat.smith@patients.example"
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoSes]:
    with MotoSes() as server:
        yield server


@pytest.fixture()
def ses(moto: MotoSes) -> MotoSes:
    moto.reset()
    moto.verify_sender(SENDER)
    return moto


def gateway(endpoint_url: str, clock: Clock | None = None, **kwargs: object) -> SesEmailGateway:
    options: dict[str, object] = {"timeout": 2.0, **kwargs}
    return SesEmailGateway(region="us-east-1", configuration_set="outreach-events",
                           now=clock or Clock(), endpoint_url=endpoint_url,
                           **CREDENTIALS, **options)  # type: ignore[arg-type]


def outbound(sender: str = SENDER, reference: str | None = None) -> OutboundEmail:
    return OutboundEmail(
        to=PATIENT, from_address=sender, from_name="Clínica Norte — Reminders",
        subject="Time for your check-up", html="<p>Hello <b>Pat</b>, it is time.</p>",
        text="Hello Pat, it is time.", reference=reference or f"{uuid.uuid4()}:1",
        unsubscribe_url="https://outreach.clinic.example/u/eyJ0IjoiYWJjIn0.c2ln")


def parsed(raw: str) -> EmailMessage:
    message = email.message_from_string(raw, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def test_send_is_taken_with_one_click_unsubscribe_headers_and_both_parts(ses: MotoSes) -> None:
    message = outbound()
    result = gateway(ses.endpoint_url).send(message)

    assert result.accepted and result.status == "sent" and not result.unknown
    [stored] = ses.raw_messages()
    assert stored["id"] == result.provider_ref
    mime = parsed(stored["raw_data"])
    assert mime["List-Unsubscribe"] == f"<{message.unsubscribe_url}>"
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mime["X-Outreach-Reference"] == message.reference
    assert mime["From"].addresses[0].display_name == "Clínica Norte — Reminders"
    assert mime["From"].addresses[0].addr_spec == SENDER
    assert mime["To"].addresses[0].addr_spec == PATIENT
    assert mime["Subject"] == "Time for your check-up"
    assert mime.get_content_type() == "multipart/alternative"
    text, html = list(mime.iter_parts())
    assert text.get_content_type() == "text/plain"
    assert text.get_content().strip() == message.text
    assert html.get_content_type() == "text/html"
    assert html.get_content().strip() == message.html


def test_long_unsubscribe_link_stays_one_plain_header_line(ses: MotoSes) -> None:
    # Mail clients read List-Unsubscribe literally: no folding, no RFC 2047 encoded-words.
    link = "https://outreach.clinic.example/u/" + "Ab9_-" * 40 + "?t=" + "x" * 60
    message = outbound()
    message = OutboundEmail(**{**message.__dict__, "unsubscribe_url": link})
    assert gateway(ses.endpoint_url).send(message).accepted

    [stored] = ses.raw_messages()
    assert f"\r\nList-Unsubscribe: <{link}>\r\n" in stored["raw_data"]


def test_reference_tag_round_trips_within_ses_tag_characters() -> None:
    reference = f"{uuid.uuid4()}:3"
    tag = reference_to_tag(reference)
    assert tag.replace("-", "").replace("_", "").isalnum()
    assert tag_to_reference(tag) == reference
    assert tag_to_reference(reference_to_tag(f"{uuid.uuid4()}:test")).endswith(":test")
    assert tag_to_reference("ses:configuration-set") == ""
    assert tag_to_reference("not-ours") == ""


def test_unverified_sender_is_a_permanent_failure_without_the_address(ses: MotoSes) -> None:
    result = gateway(ses.endpoint_url).send(outbound(sender="someone@unverified.example"))

    assert not result.accepted and not result.unknown
    assert result.kind is FailureKind.PERMANENT
    assert result.error_code == "MessageRejected"
    assert "unverified.example" not in result.error_message
    assert ses.raw_messages() == []


def test_endpoint_down_is_transient_and_does_not_raise() -> None:
    result = gateway(closed_port_url()).send(outbound())

    assert not result.accepted and not result.unknown
    assert result.kind is FailureKind.TRANSIENT
    assert result.error_code == "connection"


def test_server_that_takes_the_request_and_never_answers_leaves_outcome_unknown() -> None:
    with SilentServer() as silent:
        result = gateway(silent.endpoint_url, timeout=0.5).send(outbound())
        assert silent.received.is_set()
        assert silent.connections == 1  # no SDK retry after the timeout: no double send

    assert not result.accepted
    assert result.unknown and result.error_code == "timeout"


@pytest.mark.parametrize("status, code", [
    (429, "TooManyRequestsException"),
    (400, "Throttling"),
    (400, "LimitExceededException"),
    (503, "ServiceUnavailable"),
    (500, "SomethingNewAndUnknown"),
])
def test_throttling_and_provider_trouble_are_transient(status: int, code: str) -> None:
    with SesErrorServer(status=status, code=code) as server:
        result = gateway(server.endpoint_url).send(outbound())
        assert server.requests == 1  # we retry by policy, never inside the SDK

    assert not result.accepted and not result.unknown
    assert result.kind is FailureKind.TRANSIENT


def test_rejections_quoting_the_address_are_permanent_and_reworded() -> None:
    quoted = f"Email address is not verified: {PATIENT}"
    with SesErrorServer(status=400, code="MessageRejected", message=quoted) as server:
        result = gateway(server.endpoint_url).send(outbound())

    assert result.kind is FailureKind.PERMANENT
    assert PATIENT not in result.error_message and "patients.example" not in result.error_message


def test_no_address_subject_or_body_in_logs(ses: MotoSes, caplog: pytest.LogCaptureFixture
                                            ) -> None:
    caplog.set_level(logging.DEBUG)
    gateway(ses.endpoint_url).send(outbound())
    gateway(ses.endpoint_url).send(outbound(sender="x@unverified.example"))

    ours = [r.getMessage() for r in caplog.records if r.name.startswith("gateways")]
    assert ours
    assert not any(PATIENT in line or "check-up" in line or "unverified" in line
                   for line in ours)


def test_find_sent_waits_for_events_inside_the_grace_then_says_not_sent() -> None:
    clock = Clock()
    ses = gateway(closed_port_url(), clock, events_grace=timedelta(minutes=15))
    since = T0

    clock.at = T0 + timedelta(minutes=14, seconds=59)
    with pytest.raises(ProviderLookupPending):
        ses.find_sent("ref:1", since)
    with pytest.raises(ConnectionError):  # the dispatcher's contract: try again later
        ses.find_sent("ref:1", since.replace(tzinfo=None))

    clock.at = T0 + timedelta(minutes=15)
    assert ses.find_sent("ref:1", since) is None


def test_max_send_rate_is_read_from_the_account_once(ses: MotoSes) -> None:
    reader = gateway(ses.endpoint_url)
    assert reader.max_send_rate() == 1.0  # moto's sandbox quota

    ses.stop()  # a cached rate needs no provider
    try:
        assert reader.max_send_rate() == 1.0
    finally:
        ses.start()


def test_max_send_rate_setting_wins_and_unreadable_account_gives_none() -> None:
    assert gateway(closed_port_url(), max_send_rate=14.0).max_send_rate() == 14.0
    assert gateway(closed_port_url(), timeout=0.5).max_send_rate() is None
