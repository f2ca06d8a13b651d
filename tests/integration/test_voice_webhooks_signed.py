"""The voice webhooks as `outreach serve` serves them: signed by Twilio like the SMS ones,
refused (403) unsigned or forged, answered with TwiML or 204 when signed."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from api.http import serving_app
from application.clock import SimulatedClock
from tests.fixtures_app import TUESDAY_9AM

TOKEN = "test-voice-auth-token"
PUBLIC_URL = "https://outreach.example.org"


def post(client: TestClient, path: str, form: dict[str, str], signature: str | None = None):
    sig = signature if signature is not None else RequestValidator(TOKEN).compute_signature(
        PUBLIC_URL + path, form)
    return client.post(path, content=urlencode(form), headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig})


def test_voice_callbacks_are_checked_like_text_ones(make_outreach) -> None:
    o = make_outreach(clock=SimulatedClock(TUESDAY_9AM), twilio_account_sid="AC" + "1" * 32,
                      twilio_auth_token=TOKEN, twilio_from_number="+15005550006",
                      public_url=PUBLIC_URL)
    status = {"CallSid": "CA" + "a" * 32, "CallStatus": "ringing",
              "AccountSid": "AC" + "1" * 32}
    path = "/webhooks/twilio/voice/status?ref=00000000-0000-0000-0000-000000000000%3A1"
    with TestClient(serving_app(o)) as http:
        # Unsigned or forged: refused, nothing read
        unsigned = http.post(path, content=urlencode(status),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert unsigned.status_code == 403
        assert post(http, path, status, signature="forged").status_code == 403
        # Signed: accepted (a callback for no communication of ours changes nothing)
        assert post(http, path, status).status_code == 204
        # The TwiML a call fetches is TwiML, even for a reference we do not know
        twiml_path = "/webhooks/twilio/voice/twiml?ref=unknown"
        answer = post(http, twiml_path, {"CallSid": "CA" + "b" * 32})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/xml")
        assert "<Response>" in answer.text
