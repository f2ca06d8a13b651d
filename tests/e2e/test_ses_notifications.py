"""`outreach serve` takes SES's events as SNS posts them, and trusts only signed ones.

A real `serve` process (OUTREACH_SES_SNS_TOPIC_ARNS, and OUTREACH_SNS_CERTIFICATE_FILE holding
the test certificate tests/fakes/sns_signer.py signs with) on the database where an email
campaign has just been sent (by the null email gateway, so no event arrives but ours).
Notifications are signed exactly as SNS signs them. Confirming a subscription for real
needs SNS's own host, so the accepted confirmation runs in-process (create_app with an
injected fetch_url); the refused one runs against the real process, with a local server
proving the foreign URL was never requested.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from fastapi.testclient import TestClient

from api.http import create_app
from api.webhooks_email import EmailWebhooks
from application.bootstrap import Outreach, build
from application.clock import SimulatedClock
from application.settings import Settings
from domain.channels import Channel
from domain.communication import CommStatus, Communication, communication_id
from domain.preferences import PatientPreferences, patient_preferences_id
from gateways.null_email import NullEmailGateway
from gateways.ses_email import REFERENCE_HEADER, REFERENCE_TAG, reference_to_tag
from gateways.sns import MAX_BODY_BYTES
from tests.e2e.test_serve_signatures import serving
from tests.fakes import sns_signer
from tests.fakes.sns_signer import SnsSigner
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from workers.runner import EmbeddedRunner

TOPIC = "arn:aws:sns:us-east-1:123456789012:outreach-ses-events"
OTHER_TOPIC = "arn:aws:sns:us-east-1:123456789012:someone-elses-topic"
PUBLIC_URL = "https://outreach.clinic.example"
TOKEN = "serve-test-auth-token"
ADDRESSES = {p: f"{p.lower()}.tester@patients.example"
             for p in ("DELIVER", "BOUNCE", "COMPLAIN", "KEEP")}
SES = "/webhooks/ses"
TEXT_PLAIN = {"Content-Type": "text/plain; charset=UTF-8"}  # what SNS sends


# -- the sent campaign ------------------------------------------------------------------------


def settings(db: str) -> Settings:
    return Settings(database_url=db, email_window="00:00-23:59:59", sending_days="all",
                    holidays="none", email_from_address="do-not-reply@clinic.example",
                    public_url=PUBLIC_URL, receipt_grace_seconds=0, log_level="WARNING")


def sent_campaign(o: Outreach, tmp_path: Path) -> UUID:
    """Introductory emails first; three days later a campaign email to each patient: Sent,
    with a provider message id, and no event come yet."""
    import_patients(o, tmp_path, [patient_row(p, None, email=a) for p, a in ADDRESSES.items()])
    runner = EmbeddedRunner(o)
    o.campaigns.create(name="Welcome", channel=Channel.EMAIL, subject="Hello",
                       body="<p>Dear {{ first_name }}, welcome.</p>",
                       audience=list(ADDRESSES), active=True)
    runner.run_simulated(o.clock.now() + timedelta(hours=1))
    assert isinstance(o.clock, SimulatedClock)
    o.clock.advance_to(o.clock.now() + timedelta(days=3))
    campaign_id = o.campaigns.create(
        name="Mammograms", channel=Channel.EMAIL, subject="Time to book",
        body="<p>Dear {{ first_name }}, it is time.</p>", audience=list(ADDRESSES), active=True)
    runner.run_simulated(o.clock.now() + timedelta(hours=1))
    for patient in ADDRESSES:
        assert comm(o, campaign_id, patient).status == CommStatus.SENT
    return campaign_id


def comm(o: Outreach, campaign_id: UUID, patient: str) -> Communication:
    found: Communication = o.store.repository.get(communication_id(campaign_id, patient))
    return found


def ses_event(kind: str, sent: Communication, address: str,
              facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """SES event publishing's JSON for the message `sent` went out as."""
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    reference = f"{sent.id}:{sent.attempts}"
    section = {"Delivery": "delivery", "Bounce": "bounce", "Complaint": "complaint"}[kind]
    return {
        "eventType": kind,
        "mail": {"timestamp": at, "messageId": sent.provider_ref, "destination": [address],
                 "source": "do-not-reply@clinic.example", "headersTruncated": False,
                 "headers": [{"name": REFERENCE_HEADER, "value": reference}],
                 "tags": {REFERENCE_TAG: [reference_to_tag(reference)]}},
        section: {"timestamp": at, **(facts or {})},
    }


# -- a server that must never be called ---------------------------------------------------


class Tripwire:
    """Records every request; serve must never be made to call it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                owner.requests.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def __enter__(self) -> Tripwire:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    import os

    certificate = tmp_path / "sns-signing.pem"
    certificate.write_bytes(sns_signer.test_certificate()[1])
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "OUTREACH_"))}
    return {**base, "OUTREACH_DATABASE_URL": f"sqlite:///{tmp_path}/outreach.db",
            "OUTREACH_CONTACT_KEY_SECRET": os.environ["OUTREACH_CONTACT_KEY_SECRET"],
            "OUTREACH_LOG_LEVEL": "INFO", "OUTREACH_LOG_FORMAT": "console",
            "TWILIO_AUTH_TOKEN": TOKEN, "OUTREACH_PUBLIC_URL": PUBLIC_URL,
            "OUTREACH_EMAIL_WINDOW": "00:00-23:59:59", "OUTREACH_SENDING_DAYS": "all",
            "OUTREACH_HOLIDAYS": "none", "OUTREACH_SES_SNS_TOPIC_ARNS": TOPIC,
            "OUTREACH_SNS_CERTIFICATE_FILE": str(certificate)}


@pytest.fixture
def outreach(env: dict[str, str], tmp_path: Path) -> Iterator[Outreach]:
    o = build(settings(env["OUTREACH_DATABASE_URL"]), clock=SimulatedClock(TUESDAY_9AM),
              email_gateway=NullEmailGateway())
    try:
        yield o
    finally:
        o.close()


def post(url: str, body: dict[str, Any] | bytes) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url + SES, content=content, headers=TEXT_PLAIN, timeout=10)


# -- the stories -----------------------------------------------------------------------------


def test_serve_applies_signed_ses_events_and_refuses_everything_it_cannot_trust(
        env: dict[str, str], outreach: Outreach, tmp_path: Path) -> None:
    o = outreach
    campaign_id = sent_campaign(o, tmp_path)
    signer = SnsSigner(TOPIC)
    stranger = SnsSigner(OTHER_TOPIC)
    keep_before = comm(o, campaign_id, "KEEP").version
    with serving(env) as (url, stderr), Tripwire() as tripwire:
        # A signed Delivery moves the communication to Delivered (SignatureVersion 1)
        delivered = signer.notification(ses_event(
            "Delivery", comm(o, campaign_id, "DELIVER"), ADDRESSES["DELIVER"],
            {"recipients": [ADDRESSES["DELIVER"]], "smtpResponse": "250 2.6.0 ok"}))
        assert post(url, delivered).status_code == 200
        assert comm(o, campaign_id, "DELIVER").status == CommStatus.DELIVERED

        # A duplicate of it is answered 200 and stores nothing
        last = o.store.recorder.max_notification_id()
        assert post(url, delivered).status_code == 200
        assert o.store.recorder.max_notification_id() == last

        # A hard bounce (SignatureVersion 2): Unsuccessful, "Email Bounced"
        bounce = signer.notification(ses_event(
            "Bounce", comm(o, campaign_id, "BOUNCE"), ADDRESSES["BOUNCE"],
            {"bounceType": "Permanent", "bounceSubType": "General", "bouncedRecipients": [{
                "emailAddress": ADDRESSES["BOUNCE"], "status": "5.1.1",
                "diagnosticCode": f"smtp; 550 5.1.1 <{ADDRESSES['BOUNCE']}> unknown"}]}),
            version="2")
        assert post(url, bounce).status_code == 200
        bounced = comm(o, campaign_id, "BOUNCE")
        assert bounced.status == CommStatus.UNSUCCESSFUL
        assert "Email Bounced" in str(bounced.reason)

        # A complaint opts the patient out of Health Reminders - Email
        complaint = signer.notification(ses_event(
            "Complaint", comm(o, campaign_id, "COMPLAIN"), ADDRESSES["COMPLAIN"],
            {"complaintFeedbackType": "abuse",
             "complainedRecipients": [{"emailAddress": ADDRESSES["COMPLAIN"]}]}))
        assert post(url, complaint).status_code == 200
        prefs: PatientPreferences = o.store.repository.get(patient_preferences_id("COMPLAIN"))
        assert prefs.blocks_campaign(Channel.EMAIL, datetime.now(UTC).date())

        # Everything below is refused and changes nothing for KEEP
        keep = comm(o, campaign_id, "KEEP")
        good = signer.notification(ses_event("Delivery", keep, ADDRESSES["KEEP"]))
        tampered = {**good, "Message": good["Message"].replace("Delivery", "Bounce")}
        unsigned = {k: v for k, v in good.items()
                    if k not in ("Signature", "SignatureVersion", "SigningCertURL")}
        wrong_topic = stranger.notification(ses_event("Delivery", keep, ADDRESSES["KEEP"]))
        forged_cert = signer.sign({**good, "SigningCertURL":
                                   f"{tripwire.url}/SimpleNotificationService-abc.pem"})
        foreign_subscribe = signer.subscription_confirmation(f"{tripwire.url}/confirm")
        answers = {
            "tampered": post(url, tampered).status_code,
            "wrong topic": post(url, wrong_topic).status_code,
            "unsigned": post(url, unsigned).status_code,
            "certificate off SNS": post(url, forged_cert).status_code,
            "foreign SubscribeURL": post(url, foreign_subscribe).status_code,
            "too large": post(url, b"{" + b" " * MAX_BODY_BYTES + b"}").status_code,
            "not JSON": post(url, b"Delivery!").status_code,
        }
        assert answers == {"tampered": 403, "wrong topic": 403, "unsigned": 403,
                           "certificate off SNS": 403, "foreign SubscribeURL": 403,
                           "too large": 413, "not JSON": 400}
        assert tripwire.requests == [], "serve fetched a URL a message named"
        assert comm(o, campaign_id, "KEEP").version == keep_before

        # …and the genuine one still goes through afterwards
        assert post(url, good).status_code == 200
        assert comm(o, campaign_id, "KEEP").status == CommStatus.DELIVERED
    log = stderr.read_text(encoding="utf-8")
    assert "email_event_applied" in log  # the log was captured at all
    assert " 500" not in log and "Traceback" not in log
    for address in ADDRESSES.values():
        assert address not in log, "an email address in serve's log"


def test_a_signed_subscription_confirmation_visits_its_sns_subscribe_url_once(
        outreach: Outreach) -> None:
    """In-process: confirming for real needs SNS's own host (no internet in tests)."""
    signer = SnsSigner(TOPIC)
    visited: list[str] = []

    def fetch_url(url: str) -> bytes:
        visited.append(url)
        return b"<ConfirmSubscriptionResponse/>"

    hooks = EmailWebhooks(service=outreach.email, topic_arns=[TOPIC], organisation="Clinic",
                          fetch_certificate=signer.fetch_certificate, fetch_url=fetch_url)
    app = create_app(outreach.inbound, TOKEN, PUBLIC_URL, now=outreach.clock.now, email=hooks)
    confirmation = signer.subscription_confirmation()
    foreign = signer.subscription_confirmation("https://sns.us-east-1.amazonaws.com.evil."
                                               "example/?Action=ConfirmSubscription")
    unsigned = {**signer.subscription_confirmation(), "Signature": "AAAA"}
    with TestClient(app) as client:
        ok = client.post(SES, content=json.dumps(confirmation), headers=TEXT_PLAIN)
        refused = client.post(SES, content=json.dumps(foreign), headers=TEXT_PLAIN)
        forged = client.post(SES, content=json.dumps(unsigned), headers=TEXT_PLAIN)
    assert (ok.status_code, refused.status_code, forged.status_code) == (200, 403, 403)
    assert visited == [confirmation["SubscribeURL"]]
