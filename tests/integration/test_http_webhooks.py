"""The webhook HTTP app: signed Twilio requests in, handler calls and TwiML out."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from api.http import create_app
from application.inbound import InboundHandler
from application.inbound_service import ReceiptConflictError
from domain.inbound import DeliveryReceipt, InboundText
from domain.keywords import Keyword, classify
from gateways.sms import OutboundText
from gateways.twilio_sms import TwilioSmsGateway
from tests.fakes.served import serve
from tests.fakes.twilio_server import FakeTwilioServer

TOKEN = "test-auth-token"
PUBLIC_URL = "https://outreach.example.org"
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
PATIENT = "+13125550100"


class RecordingHandler(InboundHandler):
    """A real, in-memory InboundHandler: remembers what arrived, answers HELP itself when
    given a reply (else returns None, leaving the app's help_reply to answer)."""

    def __init__(self, help_answer: str | None = None) -> None:
        self.texts: list[InboundText] = []
        self.receipts: list[DeliveryReceipt] = []
        self._help_answer = help_answer

    def on_text(self, message: InboundText) -> str | None:
        self.texts.append(message)
        return self._help_answer if classify(message.body) is Keyword.HELP else None

    def on_receipt(self, receipt: DeliveryReceipt) -> None:
        self.receipts.append(receipt)


def app_for(handler: InboundHandler, auth_token: str | None = TOKEN,
            help_reply: Callable[[], str] | None = None) -> TestClient:
    """Signed by default; `auth_token=None` is the explicit development mode (no checks)."""
    if auth_token is None:
        return TestClient(create_app(handler, None, None, help_reply, now=lambda: NOW,
                                     insecure_dev_no_signatures=True))
    return TestClient(create_app(handler, auth_token, PUBLIC_URL, help_reply, now=lambda: NOW))


def inbound_form(body: str, sid: str = "SM" + "a" * 32) -> list[tuple[str, str]]:
    return [("MessageSid", sid), ("AccountSid", "AC" + "b" * 32), ("From", PATIENT),
            ("To", "+15005550006"), ("Body", body), ("NumMedia", "0")]


def post_signed(client: TestClient, path: str, form: list[tuple[str, str]],
                token: str = TOKEN, signature: str | None = None) -> httpx.Response:
    """POST as Twilio does: form-encoded, signed over our public URL + path (+ query)."""
    params: dict[str, str] = dict(form)
    sig = signature if signature is not None else RequestValidator(token).compute_signature(
        PUBLIC_URL + path, params)
    return client.post(path, content=urlencode(form), headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig})


# -- inbound texts -------------------------------------------------------------------------
def test_a_signed_stop_reaches_the_handler_once_and_gets_an_empty_twiml_answer() -> None:
    handler = RecordingHandler()
    answer = post_signed(app_for(handler), "/webhooks/twilio/sms", inbound_form("STOP"))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/xml")
    assert answer.text == (
        '<?xml version="1.0" encoding="UTF-8"?><Response></Response>')
    [message] = handler.texts
    assert (message.from_number, message.body, message.received_at) == (PATIENT, "STOP", NOW)


def test_help_is_answered_with_the_handlers_reply_escaped_in_twiml() -> None:
    handler = RecordingHandler(help_answer="Clinic <Main> & Co: call 312-555-0199.")
    answer = post_signed(app_for(handler), "/webhooks/twilio/sms", inbound_form("help"))
    assert answer.text == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
        'Clinic &lt;Main&gt; &amp; Co: call 312-555-0199.</Message></Response>')


def test_help_falls_back_to_the_configured_help_reply() -> None:
    handler = RecordingHandler(help_answer=None)
    client = app_for(handler, help_reply=lambda: "Total Healthcare: call 312-555-0199.")
    answer = post_signed(client, "/webhooks/twilio/sms", inbound_form("INFO"))
    assert "<Message>Total Healthcare: call 312-555-0199.</Message>" in answer.text
    assert len(handler.texts) == 1


def test_a_bad_signature_is_forbidden_and_never_reaches_the_handler() -> None:
    handler = RecordingHandler()
    client = app_for(handler)
    forged = post_signed(client, "/webhooks/twilio/sms", inbound_form("STOP"), token="wrong")
    missing = client.post("/webhooks/twilio/sms", content=urlencode(inbound_form("STOP")),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (forged.status_code, missing.status_code) == (403, 403)
    assert "signature" in forged.json()["error"].lower()
    assert "signature" in missing.json()["error"].lower()
    assert handler.texts == []


def test_a_signature_for_a_tampered_body_is_forbidden() -> None:
    handler = RecordingHandler()
    signed_for_start = RequestValidator(TOKEN).compute_signature(
        PUBLIC_URL + "/webhooks/twilio/sms", dict(inbound_form("START")))
    answer = post_signed(app_for(handler), "/webhooks/twilio/sms", inbound_form("STOP"),
                         signature=signed_for_start)
    assert answer.status_code == 403 and handler.texts == []


@pytest.mark.parametrize("missing", ["From", "MessageSid", "Body"])
def test_a_signed_payload_missing_a_field_is_a_bad_request(missing: str) -> None:
    handler = RecordingHandler()
    form = [(n, v) for n, v in inbound_form("STOP") if n != missing]
    answer = post_signed(app_for(handler), "/webhooks/twilio/sms", form)
    assert answer.status_code == 400
    assert missing in answer.json()["error"]
    assert handler.texts == []


def test_a_bad_request_answer_never_quotes_the_sender() -> None:
    handler = RecordingHandler()
    form = [(n, "not-a-phone-4242" if n == "From" else v) for n, v in inbound_form("STOP")]
    answer = post_signed(app_for(handler), "/webhooks/twilio/sms", form)
    assert answer.status_code == 400 and "4242" not in answer.text


def test_the_dev_mode_asked_for_by_name_takes_unsigned_webhooks() -> None:
    """Development against the simulator: nothing signs, the app takes the form as is."""
    handler = RecordingHandler()
    client = app_for(handler, auth_token=None)
    answer = client.post("/webhooks/twilio/sms", data=dict(inbound_form("STOP")))
    assert answer.status_code == 200 and len(handler.texts) == 1


@pytest.mark.parametrize("public_url", [None, PUBLIC_URL])
def test_leaving_the_token_out_never_switches_signature_checks_off(
        public_url: str | None) -> None:
    with pytest.raises(ValueError, match="auth token"):
        create_app(RecordingHandler(), None, public_url, now=lambda: NOW)


def test_a_token_without_a_public_url_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="public URL"):
        create_app(RecordingHandler(), TOKEN, None, now=lambda: NOW)


def test_a_token_and_the_dev_mode_together_are_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="exclude"):
        create_app(RecordingHandler(), TOKEN, PUBLIC_URL, now=lambda: NOW,
                   insecure_dev_no_signatures=True)


def test_liveness_answers_from_the_event_loop_with_the_version_and_uptime() -> None:
    body = app_for(RecordingHandler()).get("/healthz").json()
    assert body["status"] == "alive" and body["version"] and body["uptime_seconds"] == 0


# -- status callbacks ----------------------------------------------------------------------
def test_a_signed_status_callback_gives_the_handler_the_receipt_with_its_reference() -> None:
    handler = RecordingHandler()
    path = "/webhooks/twilio/status?ref=comm-7%3A2"
    form = [("MessageSid", "SM" + "d" * 32), ("MessageStatus", "undelivered"),
            ("ErrorCode", "30003"), ("To", PATIENT)]
    answer = post_signed(app_for(handler), path, form)
    assert answer.status_code == 204
    [receipt] = handler.receipts
    assert (receipt.reference, receipt.provider_ref, receipt.status, receipt.error_code) == (
        "comm-7:2", "SM" + "d" * 32, "undelivered", "30003")


def test_a_status_callback_signed_without_its_query_is_forbidden() -> None:
    """The reference is part of what Twilio signs: it cannot be swapped."""
    handler = RecordingHandler()
    form = [("MessageSid", "SM1"), ("MessageStatus", "delivered")]
    signature = RequestValidator(TOKEN).compute_signature(
        PUBLIC_URL + "/webhooks/twilio/status?ref=comm-1%3A1", dict(form))
    answer = post_signed(app_for(handler), "/webhooks/twilio/status?ref=comm-2%3A1", form,
                         signature=signature)
    assert answer.status_code == 403 and handler.receipts == []


class BusyHandler(RecordingHandler):
    """A handler whose communication keeps changing under every receipt."""

    def on_receipt(self, receipt: DeliveryReceipt) -> None:
        raise ReceiptConflictError("kept changing")


def test_a_receipt_that_could_not_be_applied_asks_for_a_retry_instead_of_erroring() -> None:
    answer = post_signed(app_for(BusyHandler()), "/webhooks/twilio/status?ref=c%3A1",
                         [("MessageSid", "SM1"), ("MessageStatus", "delivered")])
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert "retry" in answer.json()["error"]


def test_a_status_callback_without_a_reference_is_a_bad_request() -> None:
    handler = RecordingHandler()
    answer = post_signed(app_for(handler), "/webhooks/twilio/status",
                         [("MessageSid", "SM1"), ("MessageStatus", "delivered")])
    assert answer.status_code == 400 and handler.receipts == []


# -- the whole loop over real HTTP ---------------------------------------------------------
@pytest.fixture
def served() -> Iterator[tuple[str, RecordingHandler]]:
    """The app on a real uvicorn, port 0, in a thread."""
    handler = RecordingHandler()
    app: FastAPI = create_app(handler, TOKEN, PUBLIC_URL, now=lambda: NOW)
    with serve(app) as url:
        yield url, handler


def test_twilios_signed_callbacks_for_our_sends_reach_the_handler(
        served: tuple[str, RecordingHandler]) -> None:
    """Given messages sent through the SDK with our public callback URL, when the fake
    Twilio fires signed 'delivered' callbacks (signed for the public URL, delivered to the
    local server), then each is accepted and the handler sees each reference."""
    local_url, handler = served
    with FakeTwilioServer(auth_token=TOKEN) as twilio:
        sms = TwilioSmsGateway(twilio.account_sid, twilio.auth_token,
                               from_number="+15005550006", status_callback_base=PUBLIC_URL,
                               api_base_url=twilio.url)
        sent = [sms.send(OutboundText(PATIENT, "Hello", f"comm-{i}:1")) for i in range(3)]
        answers = twilio.fire_callbacks(local_url, status="delivered")
    assert answers == [204, 204, 204]
    assert sorted((r.reference, r.provider_ref, r.status) for r in handler.receipts) == sorted(
        (f"comm-{i}:1", s.provider_ref, "delivered") for i, s in enumerate(sent))


# -- body size ---------------------------------------------------------------------------
def raw_post(base_url: str, head: list[str], body: bytes) -> int:
    """Send a request's head and `body` over a plain socket, leave the request unfinished
    (the rest never comes) and return the status the server answered with regardless. A
    server that buffers the whole body before deciding never answers: a timeout."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall("\r\n".join([*head, "", ""]).encode() + body)
        answer = b""
        while b"\r\n" not in answer:
            received = sock.recv(4096)
            if not received:
                break
            answer += received
    return int(answer.split(b" ", 2)[1])


SMS_HEAD = ["POST /webhooks/twilio/sms HTTP/1.1", "Host: 127.0.0.1",
            "Content-Type: application/x-www-form-urlencoded", "X-Twilio-Signature: x"]


def test_a_body_declared_too_large_is_refused_before_it_is_read(
        served: tuple[str, RecordingHandler]) -> None:
    """Given a request declaring 10 GB, of which nothing is sent, the answer is 413 at once."""
    url, handler = served
    status = raw_post(url, [*SMS_HEAD, f"Content-Length: {10 * 1024**3}"], b"")
    assert status == 413 and handler.texts == []


def test_a_streamed_body_is_refused_once_it_passes_the_limit(
        served: tuple[str, RecordingHandler]) -> None:
    """Given a chunked upload with no declared length that goes past 64 KiB and never ends,
    the server stops reading at the limit and answers 413."""
    url, handler = served
    chunk = b"Body=" + b"x" * (16 * 1024 - 5)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5))
    status = raw_post(url, [*SMS_HEAD, "Transfer-Encoding: chunked"], chunks)
    assert status == 413 and handler.texts == []


def test_a_signed_body_too_large_is_refused_and_one_within_the_limit_is_taken(
        served: tuple[str, RecordingHandler]) -> None:
    url, handler = served
    path = "/webhooks/twilio/sms"
    with httpx.Client(base_url=url) as http:
        for body, expected in (("y" * (60 * 1024), 200), ("y" * (65 * 1024), 413)):
            form = inbound_form(body)
            signature = RequestValidator(TOKEN).compute_signature(PUBLIC_URL + path,
                                                                  dict(form))
            answer = http.post(path, content=urlencode(form), headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature})
            assert answer.status_code == expected
    assert len(handler.texts) == 1
