"""Opt-out and opt-in as Twilio decides them, through the signed webhook to a real store.

Twilio blocks a number on STOP and unblocks it only on START, YES or UNSTOP; with Advanced
Opt-Out it also says, in OptOutType, how it read the message (in any language). What we
record must follow what Twilio did: a number we believe reachable while Twilio still blocks
it gets 21610 on every send, and a STOP in French that Twilio honoured must stop us too.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from eventsourcing.application import AggregateNotFoundError
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from api.http import create_app
from domain.preferences import PhoneOptOut
from tests.fixtures_app import import_patients, patient_row
from workers.runner import EmbeddedRunner

TOKEN = "test-auth-token"
PUBLIC_URL = "https://outreach.example.org"
PATH = "/webhooks/twilio/sms"
PATIENT = "+13125550100"
BODY = "Flu shots are here. Call (555) 010-0100 to book."
_sids = itertools.count(1)


class Patient:
    """One patient's phone, texting our number through Twilio's signed webhook."""

    def __init__(self, o: Any) -> None:
        self.o = o
        self.client = TestClient(create_app(o.inbound, TOKEN, PUBLIC_URL, now=o.clock.now))

    def texts(self, body: str, opt_out_type: str | None = None, *,
              signed_without_opt_out_type: bool = False, expect: int = 200) -> str:
        form = [("MessageSid", f"SM{next(_sids):032d}"), ("AccountSid", "AC" + "b" * 32),
                ("From", PATIENT), ("To", "+15005550006"), ("Body", body), ("NumMedia", "0")]
        signed = list(form)
        if opt_out_type is not None:
            form.append(("OptOutType", opt_out_type))
            if not signed_without_opt_out_type:
                signed = form
        signature = RequestValidator(TOKEN).compute_signature(PUBLIC_URL + PATH, dict(signed))
        answer = self.client.post(PATH, content=urlencode(form), headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature})
        assert answer.status_code == expect, answer.text
        return answer.text

    @property
    def opted_out(self) -> bool:
        try:
            record: PhoneOptOut = self.o.store.repository.get(
                self.o.contact_keys.phone_opt_out_id(PATIENT))
        except AggregateNotFoundError:  # never texted a keyword: no record
            return False
        return bool(record.stopped)

    def is_texted_by_a_campaign(self) -> bool:
        before = len(self.o.gateway.sent)
        self.o.campaigns.create(name=f"Flu {before}", body=BODY, help_number="555-0100",
                                active=True)
        EmbeddedRunner(self.o).run_simulated(self.o.clock.now() + timedelta(days=1))
        return len(self.o.gateway.sent) > before


@pytest.fixture
def patient(make_outreach: Any, tmp_path: Path) -> Patient:
    o = make_outreach()
    import_patients(o, tmp_path, [patient_row("P1", PATIENT)])
    return Patient(o)


@pytest.mark.parametrize("word", ["OPTIN", "opt-in", "Subscribe"])
def test_a_word_twilio_ignores_does_not_restart_texts_after_stop(patient, word) -> None:
    # Given a patient who texted STOP (Twilio now blocks the number)
    patient.texts("STOP")
    assert patient.opted_out
    # When they text a word Twilio does not treat as opt-in
    patient.texts(word)
    # Then we still hold the number opted out, and no campaign texts it
    assert patient.opted_out
    assert not patient.is_texted_by_a_campaign()


@pytest.mark.parametrize("word", ["START", "yes", "Unstop"])
def test_twilios_opt_in_words_restart_texts(patient, word) -> None:
    patient.texts("STOP")
    patient.texts(word)
    assert not patient.opted_out
    assert patient.is_texted_by_a_campaign()


@pytest.mark.parametrize("word", ["REVOKE", "optout", "StopAll", "quit"])
def test_twilios_newer_opt_out_words_stop_texts(patient, word) -> None:
    patient.texts(word)
    assert patient.opted_out


def test_a_stop_in_french_that_twilio_classified_opts_the_number_out(patient) -> None:
    # Given Advanced Opt-Out: Twilio read "ARRET" as STOP and says so in OptOutType
    patient.texts("ARRET", opt_out_type="STOP")
    # Then the number is opted out, though "ARRET" is not on our own list
    assert patient.opted_out
    assert not patient.is_texted_by_a_campaign()


def test_an_opt_in_in_spanish_that_twilio_classified_restarts_texts(patient) -> None:
    patient.texts("PARAR", opt_out_type="STOP")
    assert patient.opted_out
    patient.texts("SI", opt_out_type="START")
    assert not patient.opted_out
    assert patient.is_texted_by_a_campaign()


def test_twilios_verdict_decides_over_our_own_reading_of_the_words(patient) -> None:
    # Given a Messaging Service with custom keywords: words our list does not know
    patient.texts("Finished", opt_out_type="STOP")
    assert patient.opted_out
    patient.texts("Back on", opt_out_type="START")
    assert not patient.opted_out


def test_help_classified_by_twilio_is_answered(patient) -> None:
    answer = patient.texts("AIDE", opt_out_type="HELP")
    assert "<Message>" in answer and "STOP" in answer.upper()


def test_without_opt_out_type_an_unknown_foreign_word_is_a_reply(patient) -> None:
    patient.texts("ARRET")
    assert not patient.opted_out
    assert patient.is_texted_by_a_campaign()


def test_an_opt_out_type_added_to_a_signed_message_is_refused(patient) -> None:
    # Given a message Twilio signed without OptOutType, with one slipped in on the way
    patient.texts("Hello", opt_out_type="STOP", signed_without_opt_out_type=True, expect=403)
    # Then it is refused, and the number stays reachable
    assert not patient.opted_out
