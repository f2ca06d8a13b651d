"""The official Twilio SDK, through our adapter, against a local fake speaking Twilio's wire
format: what the dispatcher gets back for every kind of answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from application.clock import SimulatedClock
from domain.retry import FailureKind
from gateways.sms import OutboundText
from gateways.twilio_sms import TwilioSmsGateway
from tests.fakes.twilio_server import FakeTwilioServer, ForcedResponse

SENDER = "+15005550006"
PATIENT = "+13125550100"
PUBLIC_URL = "https://outreach.example.org"
START = datetime(2026, 3, 2, 15, 0, 0, 250_000, tzinfo=UTC)
BODY = "Your flu shot is due."


@pytest.fixture
def clock() -> SimulatedClock:
    """The fake stamps messages with the same simulated clock the test reasons with."""
    return SimulatedClock(START)


@pytest.fixture
def twilio(clock: SimulatedClock) -> Iterator[FakeTwilioServer]:
    with FakeTwilioServer(now=clock.now) as server:
        yield server


def gateway_for(twilio: FakeTwilioServer, timeout: float = 2.0, **sender: str) -> TwilioSmsGateway:
    return TwilioSmsGateway(
        twilio.account_sid, twilio.auth_token, status_callback_base=PUBLIC_URL,
        api_base_url=twilio.url, timeout=timeout, **(sender or {"from_number": SENDER}))


def text(
    to: str = PATIENT, body: str = BODY, ref: str = "comm-1:1"
) -> OutboundText:
    return OutboundText(to=to, body=body, reference=ref)


def test_an_accepted_send_gives_the_provider_sid(twilio: FakeTwilioServer) -> None:
    result = gateway_for(twilio).send(text())
    [stored] = twilio.accepted(PATIENT)
    assert result.accepted and result.status == "queued"
    assert result.provider_ref == stored.sid
    assert (stored.from_, stored.body) == (SENDER, "Your flu shot is due.")
    assert twilio.accepted_count_by_number() == {PATIENT: 1}


def test_a_messaging_service_sends_instead_of_a_from_number(twilio: FakeTwilioServer) -> None:
    service = "MG" + "1" * 32
    result = gateway_for(twilio, messaging_service_sid=service).send(text())
    [stored] = twilio.accepted(PATIENT)
    assert result.accepted and (stored.messaging_service_sid, stored.from_) == (service, None)


def test_the_status_callback_url_carries_the_url_encoded_reference(
        twilio: FakeTwilioServer) -> None:
    gateway_for(twilio).send(text(ref="5b0d7c8e-0000-4000-8000-000000000001:3"))
    [stored] = twilio.accepted(PATIENT)
    callback = urlsplit(stored.status_callback or "")
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == (
        f"{PUBLIC_URL}/webhooks/twilio/status")
    assert callback.query == "ref=5b0d7c8e-0000-4000-8000-000000000001%3A3"
    assert parse_qs(callback.query) == {"ref": ["5b0d7c8e-0000-4000-8000-000000000001:3"]}


def test_an_invalid_number_is_a_permanent_failure_without_phi(twilio: FakeTwilioServer) -> None:
    """Given Twilio's 21211 answer (whose message quotes the number), when sending, then the
    failure is permanent and its message is ours: neither number nor body leak into it."""
    result = gateway_for(twilio).send(text(to="+15005550001"))
    assert (result.accepted, result.error_code, result.kind) == (
        False, "21211", FailureKind.PERMANENT)
    assert "+15005550001" not in result.error_message
    assert "flu shot" not in result.error_message
    assert twilio.accepted_count_by_number() == {}


@pytest.mark.parametrize(("number", "code"), [("+15005550009", "21614"),
                                              ("+15005550007", "21610")])
def test_numbers_that_cannot_take_texts_fail_for_good(
        twilio: FakeTwilioServer, number: str, code: str) -> None:
    result = gateway_for(twilio).send(text(to=number))
    assert (result.error_code, result.kind) == (code, FailureKind.PERMANENT)


def test_too_many_requests_is_transient_and_the_next_try_succeeds(
        twilio: FakeTwilioServer) -> None:
    twilio.fail_next(1, status=429, code=20429)
    sms = gateway_for(twilio)
    first = sms.send(text())
    assert (first.accepted, first.error_code, first.kind) == (
        False, "20429", FailureKind.TRANSIENT)
    assert sms.send(text(ref="comm-1:2")).accepted
    assert twilio.accepted_count_by_number() == {PATIENT: 1}


def test_a_429_without_a_twilio_code_is_transient(twilio: FakeTwilioServer) -> None:
    twilio.force(ForcedResponse(429, code=None))
    result = gateway_for(twilio).send(text())
    assert result.kind is FailureKind.TRANSIENT


def test_a_server_error_is_transient(twilio: FakeTwilioServer) -> None:
    twilio.fail_next(1, status=500, code=None, message="Internal Server Error")
    result = gateway_for(twilio).send(text())
    assert (result.accepted, result.kind) == (False, FailureKind.TRANSIENT)
    assert result.error_code == "500"


def test_an_unknown_4xx_is_permanent(twilio: FakeTwilioServer) -> None:
    twilio.fail_next(1, status=400, code=21999, message="Something new")
    assert gateway_for(twilio).send(text()).kind is FailureKind.PERMANENT


def test_a_timeout_after_the_request_went_leaves_the_outcome_unknown(
        twilio: FakeTwilioServer) -> None:
    """Given a Twilio that takes the message but answers after our timeout, when sending,
    then the result is neither accepted nor failed but unknown (no exception), and
    reconciliation finds the message: that is how the next attempt avoids a second text."""
    twilio.answer_late_next(1.0)
    sms = gateway_for(twilio, timeout=0.2)
    started = time.monotonic()
    result = sms.send(text())
    assert time.monotonic() - started < 0.9
    assert (result.accepted, result.unknown, result.error_code, result.kind) == (
        False, True, "timeout", None)
    found = sms.find_sent(PATIENT, BODY, START)
    assert found is not None and found.provider_ref == twilio.accepted(PATIENT)[0].sid


def test_a_connection_closed_after_the_body_was_written_leaves_the_outcome_unknown(
        twilio: FakeTwilioServer) -> None:
    twilio.drop_after_accept_next()
    result = gateway_for(twilio).send(text())
    assert (result.accepted, result.unknown, result.error_code) == (
        False, True, "connection-lost")
    assert len(twilio.accepted(PATIENT)) == 1


def test_a_2xx_the_sdk_cannot_read_leaves_the_outcome_unknown(twilio: FakeTwilioServer) -> None:
    twilio.force(ForcedResponse(200, code=None, method="POST"))  # a 200 naming no message
    result = gateway_for(twilio).send(text())
    assert (result.accepted, result.unknown, result.error_code) == (False, True, "unreadable")


def test_an_unreachable_provider_is_transient() -> None:
    with FakeTwilioServer() as twilio:
        sms = gateway_for(twilio)
    # the server is stopped: nothing listens on its port any more
    result = sms.send(text())
    assert (result.accepted, result.unknown, result.error_code, result.kind) == (
        False, False, "connection", FailureKind.TRANSIENT)


def test_find_sent_finds_an_accepted_message_still_queued(twilio: FakeTwilioServer) -> None:
    """A message Twilio has queued has no sent date yet; reconciliation must still see it,
    even when `since` has sub-second precision and Twilio's dates have whole seconds."""
    sms = gateway_for(twilio)
    sent = sms.send(text())
    found = sms.find_sent(PATIENT, BODY, START)
    assert found is not None and (found.accepted, found.provider_ref, found.status) == (
        True, sent.provider_ref, "queued")


def test_find_sent_ignores_another_body_an_older_message_and_a_failed_one(
        twilio: FakeTwilioServer, clock: SimulatedClock) -> None:
    sms = gateway_for(twilio)
    sent = sms.send(text())
    assert sms.find_sent(PATIENT, "Another body", START) is None
    assert sms.find_sent(PATIENT, BODY, START + timedelta(minutes=1)) is None
    twilio.set_status(sent.provider_ref, "failed", 30007)
    assert sms.find_sent(PATIENT, BODY, START) is None


def test_find_sent_picks_the_newest_match(
        twilio: FakeTwilioServer, clock: SimulatedClock) -> None:
    sms = gateway_for(twilio)
    sms.send(text(ref="comm-1:1"))
    clock.advance_to(START + timedelta(minutes=20))
    second = sms.send(text(ref="comm-1:2"))
    found = sms.find_sent(PATIENT, BODY, START)
    assert found is not None and found.provider_ref == second.provider_ref


def test_find_sent_examines_the_fifty_newest_messages(twilio: FakeTwilioServer) -> None:
    """Reconciliation looks at the newest 50 messages to the number: the 50th counts."""
    sms = gateway_for(twilio)
    sms.send(text(body="the old one"))
    for i in range(49):
        sms.send(text(body=f"newer {i}", ref=f"comm-{i}:1"))
    assert sms.find_sent(PATIENT, "the old one", START) is not None


def test_find_sent_raises_when_the_provider_cannot_be_asked(twilio: FakeTwilioServer) -> None:
    """Answering "not sent" without knowing would invite a duplicate text."""
    twilio.fail_next(1, status=503, code=None, method="GET")
    with pytest.raises(ConnectionError):
        gateway_for(twilio).find_sent(PATIENT, "x", START)


def test_the_fake_refuses_wrong_credentials_like_twilio(twilio: FakeTwilioServer) -> None:
    sms = TwilioSmsGateway(twilio.account_sid, "wrong-token", from_number=SENDER,
                           api_base_url=twilio.url)
    result = sms.send(text())
    assert (result.error_code, result.kind) == ("20003", FailureKind.TRANSIENT)
    assert twilio.accepted_count_by_number() == {}


def test_no_phone_number_or_body_reaches_the_logs(
        twilio: FakeTwilioServer, caplog: pytest.LogCaptureFixture) -> None:
    """Ours and the SDK's loggers, even at DEBUG (the SDK's own request log prints query
    strings, To= included). urllib3's DEBUG lines are quieted by application logging."""
    caplog.set_level("DEBUG")
    sms = gateway_for(twilio)
    sms.send(text())
    sms.send(text(to="+15005550001"))
    sms.find_sent(PATIENT, BODY, START)
    logged = "\n".join(r.getMessage() for r in caplog.records
                       if r.name.startswith(("gateways", "twilio")))
    assert "comm-1:1" in logged  # the adapter does log, by reference and sid
    for secret in (PATIENT, PATIENT.lstrip("+"), "%2B13125550100", "+15005550001", "flu shot"):
        assert secret not in logged


def test_find_sents_error_and_its_traceback_carry_no_phone_number() -> None:
    # Given Twilio unreachable while a lost attempt is being reconciled
    import socket
    import traceback

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = TwilioSmsGateway("AC" + "1" * 32, "token", status_callback_base=PUBLIC_URL,
                              api_base_url=f"http://127.0.0.1:{port}", timeout=1.0,
                              from_number=SENDER)
    # Then the error says it could not ask, and neither it nor its traceback (which a log
    # line may print) names the patient's number (the request URL's To=)
    with pytest.raises(ConnectionError) as raised:
        closed.find_sent(PATIENT, BODY, START)
    printed = "".join(traceback.format_exception(raised.value))
    assert PATIENT.lstrip("+") not in printed.replace("%2B", "+").replace("+", "")
