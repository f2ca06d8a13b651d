"""A clinic that sends email and no texts runs `outreach serve` without Twilio credentials:
it answers SES's notifications (signatures always checked) and the unsubscribe links, and
serves no Twilio route at all (nothing unsigned gets in)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from api.http import serving_app
from application.clock import SimulatedClock
from tests.fakes.sns_signer import SnsSigner
from tests.fixtures_app import TUESDAY_9AM

TOPIC = "arn:aws:sns:us-east-1:123456789012:outreach-ses-events"
pytestmark = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)


def test_an_email_only_clinic_serves_ses_and_unsubscribe_but_no_twilio_route(
        make_outreach, tmp_path):
    signer = SnsSigner(TOPIC)
    certificate = tmp_path / "sns.pem"  # never fetched from the internet in tests
    certificate.write_bytes(signer.fetch_certificate(signer.cert_url))
    o = make_outreach(clock=SimulatedClock(TUESDAY_9AM), email_provider="ses",
                      public_url="https://outreach.clinic.example",
                      ses_sns_topic_arns=TOPIC, sns_certificate_file=certificate)
    with TestClient(serving_app(o)) as http:
        # No Twilio webhook is served: an unsigned STOP cannot opt a number out
        assert http.post("/webhooks/twilio/sms", data={"From": "+13125550100",
                                                       "Body": "STOP"}).status_code == 404
        # SES notifications are checked: an unsigned one is refused
        unsigned = signer.notification({"eventType": "Delivery"})
        unsigned["Signature"] = "AAAA"
        assert http.post("/webhooks/ses", json=unsigned).status_code == 403
        # and a signed one is taken (an event for no communication of ours changes nothing)
        assert http.post("/webhooks/ses", json=signer.notification(
            {"eventType": "Delivery", "mail": {"messageId": "m1", "timestamp":
                                               "2026-11-24T15:00:00.000Z"},
             "delivery": {"timestamp": "2026-11-24T15:00:01.000Z"}})).status_code == 200
        # The unsubscribe page answers (a forged link: not valid, nothing changes)
        assert http.get("/unsubscribe/" + "0" * 32 + ".AAAAAAAAAAAAAAAAAAAAAA").status_code \
            == 404
        assert http.get("/healthz").status_code == 200


def test_twilio_credentials_without_the_token_are_still_refused(make_outreach):
    o = make_outreach(email_provider="ses", public_url="https://outreach.clinic.example",
                      twilio_account_sid="AC" + "0" * 32)
    with pytest.raises(ValueError, match="TWILIO_AUTH_TOKEN"):
        serving_app(o)
