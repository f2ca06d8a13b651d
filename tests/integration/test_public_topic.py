"""What the public events topic carries, from a whole working day's history (on SQLite and
PostgreSQL): no patient's name, number, date of birth, address or text; phone opt-outs
keyed with the deployment's secret, and STOPs recorded before that still honoured."""

from __future__ import annotations

import csv
import re
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from application.bootstrap import Outreach, build
from application.clock import SimulatedClock
from application.contact_keys import secret_file
from application.settings import Settings
from bus.public_events import CommunicationContexts, encode_public_event
from bus.wire import decode_event, encode_event
from domain.inbound import InboundText
from domain.keywords import Keyword
from domain.lists import ListQuery, parse_condition
from domain.preferences import (
    Duration,
    OptOutType,
    PatientPreferences,
    PhoneOptOut,
    legacy_phone_key,
)
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from workers.runner import EmbeddedRunner

BODY = "Flu shots are here. Call (555) 010-0100 to book."
MOBILE, HOME = "+13125550147", "+13125550148"
# What the import and the day's texts say about the patient: none of it may be published.
PHI = ("Quentin", "Xavierine", "Zebedee", "1950-03-04", "742 Evergreen Terrace", "Apt 9Q",
       "Shelbyvillex", "62704", "qzebedee@example.org", "3125550147", "3125550148",
       "colostomy follow-up for Zebedee", "please stop texting me, Quentin here")


def the_patient() -> dict[str, str]:
    return {**patient_row("P1", MOBILE, first="Quentin", last="Zebedee"),
            "Middle Name": "Xavierine", "Home Phone": HOME, "Email": "qzebedee@example.org",
            "Address Line 1": "742 Evergreen Terrace", "Address Line 2": "Apt 9Q",
            "City": "Shelbyvillex", "State": "IL", "Postal Code": "62704"}


def import_appointment(o: Outreach, folder: Path) -> None:
    path = folder / "appointments.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["Appointment ID", "Patient ID", "Date/Time", "Provider", "Facility",
                         "Type", "Status", "Notes"])
        writer.writerow(["A1", "P1", "2026-12-01 10:00", "D0001", "Main", "Follow-up",
                         "Scheduled", "colostomy follow-up for Zebedee"])
    summary = o.patients.import_file("appointments", path, folder / "rejects")
    assert summary.rejected == 0, summary.rejections


def stored_events(o: Outreach) -> Iterator[tuple[int, Any]]:
    for n in o.store.recorder.select_notifications(start=0, limit=100_000,
                                                   inclusive_of_start=False):
        yield n.id, o.store.mapper.to_domain_event(n)


def public_bytes(o: Outreach) -> list[bytes]:
    contexts = CommunicationContexts(o.store)
    published = (encode_public_event(e, p, o.contact_keys, context=contexts)
                 for p, e in stored_events(o))
    return [raw for raw in published if raw is not None]


def published(o: Outreach, event_type: str) -> list[dict[str, Any]]:
    messages = [decode_event(raw) for raw in public_bytes(o)]
    return [m for m in messages if m["event_type"] == event_type]


def test_a_days_history_on_the_public_topic_names_no_patient_number_or_address(
        make_outreach, tmp_path):
    # Given a patient imported with name, birth date, phones, email and address, and an
    # appointment whose note names them
    o = make_outreach()
    import_patients(o, tmp_path, [the_patient()])
    import_appointment(o, tmp_path)
    # And a working day: a view filtering on the name, a campaign sent, a STOP in words,
    # a staff opt-out whose comment names the patient
    o.patients.save_view("staff", "Zebedee family", ListQuery(
        filters=(parse_condition("Last Name", "is equal to", "Zebedee"),)))
    o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    EmbeddedRunner(o).run_simulated(TUESDAY_9AM + timedelta(days=1))
    o.inbound.on_text(InboundText("SM-reply", MOBILE, "+15005550006",
                                  "please stop texting me, Quentin here", TUESDAY_9AM))
    o.inbound.on_text(InboundText("SM-stop", MOBILE, "+15005550006", "STOP", TUESDAY_9AM))
    prefs = PatientPreferences(patient_id="P1")
    prefs.opt_out(OptOutType.GLOBAL, Duration(), TUESDAY_9AM.date(), TUESDAY_9AM,
                  reason="Zebedee asked", comment="Quentin Zebedee moved to 742 Evergreen")
    o.store.save(prefs)
    # When every stored event is encoded for the public topic
    public = b"\n".join(public_bytes(o)).decode("utf-8")
    internal = b"\n".join(encode_event(e, p) for p, e in stored_events(o)).decode("utf-8")
    # Then the history is there (campaign, communications, opt-outs, the texts)…
    for event_type in ("Campaign.Created", "Communication.Accepted", "PhoneOptOut.TextsStopped",
                       "PatientPreferences.OptedOut", "InboundMessage.Received",
                       "PatientImport.Finished"):
        assert f'"event_type":"{event_type}"' in public
    # …and nothing about who: no name, number (in any form), birth date, address, note or
    # text, although the stored history holds every one of them
    for fact in PHI:
        assert fact in internal or fact.replace("3125550", "(312) 555-0") in internal, fact
        assert fact.lower() not in public.lower(), fact
    assert not re.search(r"312\D{0,2}555\D?014[78]", public)
    assert "RowsImported" not in public and "PageView" not in public


def test_an_inbound_stop_is_published_with_a_keyed_sender_and_no_number_or_text(
        make_outreach, tmp_path):
    # Given a STOP texted from a patient's number
    o = make_outreach()
    o.inbound.on_text(InboundText("SM1", MOBILE, "+15005550006", "Stop", TUESDAY_9AM))
    # Then the public Received event has neither the number nor the text…
    [received] = published(o, "InboundMessage.Received")
    assert set(received["data"]) == {"message_ref", "to_number", "keyword", "received_at",
                                     "from_key"}
    assert received["data"]["keyword"] == "STOP"
    assert "5550147" not in str(received) and "Stop" not in str(received["data"])
    # …but a keyed sender that matches the opt-out it made, published under a public id
    [stopped] = published(o, "PhoneOptOut.TextsStopped")
    assert stopped["data"]["key"] == received["data"]["from_key"]
    phone: PhoneOptOut = o.store.repository.get(o.contact_keys.phone_opt_out_id(MOBILE))
    assert stopped["aggregate_id"] != str(phone.id)
    assert phone.key not in str(stopped)


def test_a_stop_recorded_before_keyed_hashes_still_stops_texts_to_that_number(
        make_outreach, tmp_path):
    # Given a STOP recorded by an older version: under the bare SHA-256 key of the number
    o = make_outreach()
    legacy = PhoneOptOut(key=legacy_phone_key(MOBILE))
    legacy.keyword(Keyword.STOP, TUESDAY_9AM - timedelta(days=30))
    o.store.save(legacy)
    import_patients(o, tmp_path, [patient_row("P1", MOBILE), patient_row("P2", HOME)])
    # When a campaign runs
    cid = o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    EmbeddedRunner(o).run_simulated(TUESDAY_9AM + timedelta(days=1))
    # Then the dispatcher still skips that number, and texts the other
    report = {r.patient_id: (r.status, r.reason) for r in o.campaigns.report(cid)}
    assert report["P1"] == ("Skipped", "opted out")
    assert [m.to for m in o.gateway.sent] == [HOME]


def test_start_after_a_legacy_stop_restores_texts_and_a_new_stop_keeps_them_stopped(
        make_outreach, tmp_path):
    o = make_outreach()
    legacy = PhoneOptOut(key=legacy_phone_key(MOBILE))
    legacy.keyword(Keyword.STOP, TUESDAY_9AM - timedelta(days=30))
    o.store.save(legacy)
    import_patients(o, tmp_path, [patient_row("P1", MOBILE)])
    # A STOP again changes nothing (the keyed record takes the legacy one's place)…
    o.inbound.on_text(InboundText("SM1", MOBILE, "", "STOP", TUESDAY_9AM))
    keyed: PhoneOptOut = o.store.repository.get(o.contact_keys.phone_opt_out_id(MOBILE))
    assert keyed.stopped and keyed.changed_at == TUESDAY_9AM - timedelta(days=30)
    # …and START lifts it, legacy record and all
    o.inbound.on_text(InboundText("SM2", MOBILE, "", "START", TUESDAY_9AM))
    o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    EmbeddedRunner(o).run_simulated(TUESDAY_9AM + timedelta(days=1))
    assert [m.to for m in o.gateway.sent] == [MOBILE]


# -- where the secret comes from ----------------------------------------------------------------

def test_the_embedded_default_generates_its_secret_once_into_a_private_file(tmp_path):
    # Given SQLite and no configured secret
    settings = Settings(database_url=f"sqlite:///{tmp_path}/o.db", contact_key_secret=None)
    # When the application starts twice
    first = build(settings, clock=SimulatedClock(TUESDAY_9AM))
    first.close()
    again = build(settings, clock=SimulatedClock(TUESDAY_9AM))
    again.close()
    # Then one secret was generated, beside the database, readable by its owner only
    path = secret_file(settings)
    assert path == tmp_path / "o.db.contact-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.contact_keys == again.contact_keys
    # And another database has another secret
    other = build(Settings(database_url=f"sqlite:///{tmp_path}/b/o.db", contact_key_secret=None),
                  clock=SimulatedClock(TUESDAY_9AM))
    other.close()
    assert other.contact_keys != first.contact_keys


@pytest.mark.parametrize("secret, problem", [
    (None, "OUTREACH_CONTACT_KEY_SECRET is not set"),
    ("too-short", "OUTREACH_CONTACT_KEY_SECRET needs at least 32 characters"),
])
def test_postgres_refuses_to_start_without_a_usable_secret(secret, problem):
    with pytest.raises(ValidationError, match=problem) as refused:
        Settings(database_url="postgresql://outreach@127.0.0.1:1/outreach",
                 contact_key_secret=secret)
    assert "too-short" not in str(refused.value)  # a refused secret is never echoed
