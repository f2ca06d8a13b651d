"""The real Twilio adapter (official SDK) inside the whole pipeline, against the local fake
Twilio, with our webhook app served over real HTTP: sends, 429s, receipts, STOP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from api.http import create_app
from application.bootstrap import Outreach, build
from application.clock import SimulatedClock
from application.settings import Settings
from tests.fakes.served import serve
from tests.fakes.twilio_server import FakeTwilioServer
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from workers.runner import EmbeddedRunner

PUBLIC_URL = "https://outreach.example.org"
BODY = "Flu shots are here. Call (555) 010-0100 to book."


@pytest.fixture
def twilio() -> Iterator[FakeTwilioServer]:
    with FakeTwilioServer() as fake:
        yield fake


@pytest.fixture
def outreach(stack: str, twilio: FakeTwilioServer) -> Iterator[Outreach]:
    settings = Settings(
        database_url=stack, twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token, twilio_from_number="+15005550006",
        twilio_api_base_url=twilio.url, public_url=PUBLIC_URL)
    o = build(settings, clock=SimulatedClock(TUESDAY_9AM))
    yield o
    o.close()


@pytest.fixture
def served(outreach: Outreach) -> Iterator[str]:
    app = create_app(outreach.inbound, outreach.settings.twilio_auth_token, PUBLIC_URL,
                     now=outreach.clock.now)
    with serve(app) as url:
        yield url


def test_texts_go_through_twilio_and_receipts_mark_them_delivered(
        outreach: Outreach, twilio: FakeTwilioServer, served: str, tmp_path: Path) -> None:
    # Given three patients and an active campaign, and Twilio answering 429 twice first
    mobiles = ["+13125550100", "+13125550101", "+13125550102"]
    import_patients(outreach, tmp_path, [patient_row(f"P{i}", m) for i, m in enumerate(mobiles)])
    cid = outreach.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    twilio.fail_next(2, status=429, code=20429)
    # When the workers run through the day
    EmbeddedRunner(outreach).run_simulated(TUESDAY_9AM + timedelta(hours=3))
    # Then each number was accepted exactly once (the 429s were retried later)
    assert twilio.accepted_count_by_number() == {m: 1 for m in mobiles}
    report = {r.contact: r for r in outreach.campaigns.report(cid)}
    assert {r.status for r in report.values()} == {"Sent"}
    assert sorted(r.attempts for r in report.values()) == [1, 2, 2]
    # When Twilio fires its signed status callbacks at our webhook
    assert set(twilio.fire_callbacks(served, status="delivered")) == {204}
    # Then every communication is Delivered, and replaying the callbacks changes nothing
    before = outreach.store.recorder.max_notification_id()
    twilio.fire_callbacks(served, status="delivered")
    assert outreach.store.recorder.max_notification_id() == before
    assert {r.status for r in outreach.campaigns.report(cid)} == {"Delivered"}


def test_a_signed_stop_webhook_opts_the_number_out(
        outreach: Outreach, twilio: FakeTwilioServer, served: str, tmp_path: Path) -> None:
    import httpx

    import_patients(outreach, tmp_path, [patient_row("P1", "+13125550100"),
                                         patient_row("P2", "+13125550101")])
    form = {"MessageSid": "SM" + "a" * 32, "From": "+13125550100", "To": "+15005550006",
            "Body": "Stop", "AccountSid": twilio.account_sid}
    path = "/webhooks/twilio/sms"
    signature = RequestValidator(twilio.auth_token).compute_signature(PUBLIC_URL + path, form)
    # A forged request is refused and changes nothing
    forged = httpx.post(served + path, data=form, headers={"X-Twilio-Signature": "bad"})
    assert forged.status_code == 403
    answer = httpx.post(served + path, data=form, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200
    cid = outreach.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    EmbeddedRunner(outreach).run_simulated(TUESDAY_9AM + timedelta(hours=3))
    assert twilio.accepted_count_by_number() == {"+13125550101": 1}
    statuses = {r.patient_id: r.status for r in outreach.campaigns.report(cid)}
    assert statuses == {"P1": "Skipped", "P2": "Sent"}
