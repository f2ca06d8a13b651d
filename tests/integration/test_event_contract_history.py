"""The event contract over a real history: a working week that produces every public event
type, each one's public view validated against the shipped JSON Schema (read from disk, with
jsonschema); and the meanings fixed by it (Completed counts, a late 30003 receipt)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from jsonschema import Draft202012Validator

from application.bootstrap import Outreach
from application.clock import SimulatedClock
from bus.public_events import RULES, CommunicationContexts, Public, public_message
from domain.channels import Channel
from domain.communication import Communication
from domain.inbound import DeliveryReceipt, InboundText
from domain.preferences import Duration, OptOutType, PatientPreferences
from domain.retry import FailureKind
from gateways.simulator_sms import SimulatorSmsGateway
from gateways.sms import OutboundText, SendResult
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from workers.runner import EmbeddedRunner

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "bus" / "schemas" / "events.schema.json"
BODY = "Flu shots are here. Call (555) 010-0100 to book."
DELIVERED, ALWAYS_OFF, LOST_ANSWER, LATE_30003 = (
    "+13125550200", "+13125550201", "+13125550202", "+13125550205")
INVALID = "+15005550001"  # Twilio's test number for an invalid number (21211)

# The embedded stack (SQLite) is enough here: the schema is about what is published.
pytestmark = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)


class ScriptedGateway(SimulatorSmsGateway):
    """The simulator, with a handset that is always off (30003) and one send whose answer
    is lost after the provider took it."""

    lost_once = True

    def send(self, message: OutboundText) -> SendResult:
        if message.to == ALWAYS_OFF:
            return SendResult.failed("30003", "handset unreachable", FailureKind.TRANSIENT)
        result = super().send(message)
        if message.to == LOST_ANSWER and self.lost_once:
            self.lost_once = False
            return SendResult.outcome_unknown("timeout", "no answer from the provider")
        return result


def outreach_with_script(make_outreach: Any, **overrides: Any) -> Outreach:
    clock = SimulatedClock(TUESDAY_9AM)
    o: Outreach = make_outreach(clock=clock, gateway=ScriptedGateway(now=clock.now),
                                **overrides)
    return o


def sid_of(o: Outreach, to: str) -> tuple[str, str]:
    [message] = [m for m in o.gateway.sent if m.to == to]
    return message.sid, message.reference


def public_history(o: Outreach) -> list[dict[str, Any]]:
    contexts = CommunicationContexts(o.store)
    messages = []
    for n in o.store.recorder.select_notifications(start=0, limit=1_000_000,
                                                   inclusive_of_start=False):
        message = public_message(o.store.mapper.to_domain_event(n), n.id, o.contact_keys,
                                 context=contexts)
        if message is not None:
            messages.append(message)
    return messages


def test_a_week_of_history_publishes_every_public_event_type_each_valid_by_the_schema(
        make_outreach, tmp_path):
    o = outreach_with_script(make_outreach, letters_dir=tmp_path / "letters",
                             return_addresses="Main=Total Healthcare|1 Main St|Austin, TX 78701")
    # Patients imported (PatientImport.Started / Finished)
    import_patients(o, tmp_path, [
        patient_row("P0", DELIVERED), patient_row("P1", ALWAYS_OFF),
        patient_row("P2", LOST_ANSWER), patient_row("P3", INVALID), patient_row("P4", None),
        patient_row("P5", LATE_30003)])
    # A campaign starting today, active at once
    cid = o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True,
                             audience=["P0", "P1", "P2", "P3", "P4", "P5"])
    # A second one starting Thursday (Thanksgiving: Friday): saved, edited, activated,
    # inactivated, activated again, test-sent, moved to Monday (re-planned), later stopped
    later = o.campaigns.create(name="Later", body=BODY, help_number="555-0100",
                               start=(TUESDAY_9AM + timedelta(days=2)).date(),
                               audience=["P0", "P5"])
    o.campaigns.edit(later, name="Later 2026")
    o.campaigns.activate(later)
    o.campaigns.inactivate(later)
    o.campaigns.activate(later)
    o.campaigns.test_send(later, "+13125550299")
    o.campaigns.edit(later, start_date=(TUESDAY_9AM + timedelta(days=6)).date())
    o.catch_up()
    # One of its communications is deferred (as the dispatcher does outside the window)
    [(comm_id,)] = o.db.fetchall("SELECT communication_id FROM communications"
                                 " WHERE campaign_id = ? AND patient_id = 'P0'", (str(later),))
    deferred: Communication = o.store.repository.get(UUID(comm_id))
    deferred.defer(TUESDAY_9AM + timedelta(days=3, hours=2), "outside the communication window")
    o.store.save(deferred)
    o.campaigns.stop(later)
    # The first campaign runs for the day: sent, lost answer reconciled, invalid, no mobile,
    # a handset switched off
    EmbeddedRunner(o).run_simulated(TUESDAY_9AM + timedelta(hours=4))
    sid, reference = sid_of(o, DELIVERED)
    o.inbound.on_receipt(DeliveryReceipt(sid, reference, "delivered", "", o.clock.now()))
    # A patient texts STOP then START; staff record an opt-out and remove it
    o.inbound.on_text(InboundText("SM-stop", DELIVERED, "+15005550006", "STOP", o.clock.now()))
    o.inbound.on_text(InboundText("SM-start", DELIVERED, "+15005550006", "START",
                                  o.clock.now()))
    prefs = PatientPreferences(patient_id="P0")
    prefs.opt_out(OptOutType.GLOBAL, Duration(), o.clock.now().date(), o.clock.now(),
                  reason="asked", comment="")
    prefs.restore([str(OptOutType.GLOBAL)], o.clock.now(), "staff")
    o.store.save(prefs)
    # The rest of the week: five attempts for the switched-off handset, then Completed
    EmbeddedRunner(o).run_simulated(TUESDAY_9AM + timedelta(days=6))
    assert o.campaigns.get(cid).status == "Completed"
    # And a receipt arrives after completion: 30003 for a text accepted days ago
    sid, reference = sid_of(o, LATE_30003)
    o.inbound.on_receipt(DeliveryReceipt(sid, reference, "undelivered", "30003", o.clock.now(),
                                         FailureKind.TRANSIENT, "handset unreachable"))

    # An email campaign: the introductory email goes first; one address bounces for good
    import_patients(o, tmp_path, [
        patient_row("E1", None, email="success@simulator.amazonses.com"),
        patient_row("E2", None, email="bounce@simulator.amazonses.com")])
    o.campaigns.create(name="Mammograms", channel=Channel.EMAIL,
                       subject="A reminder from {{ organisation }}",
                       body="<p>Dear {{ first_name }}, it is time to book.</p>",
                       audience=["E1", "E2"], active=True)
    EmbeddedRunner(o).run_simulated(o.clock.now() + timedelta(days=1))
    # A letter campaign, printed (Campaign.LettersReady)
    letter = patient_row("L1", None)
    letter.update({"Address Line 1": "2 Oak St", "City": "Austin", "State": "TX",
                   "Postal Code": "78701"})
    import_patients(o, tmp_path, [letter])
    letters = o.campaigns.create(name="Hours", channel=Channel.LETTER, body="<p>Open at 8.</p>",
                                 audience=["L1"], active=True)
    o.letters.make(letters)

    # When every stored event is put in its public view (the relay's and the export's)
    history = public_history(o)
    # Then each is valid by the schema file shipped in the package, read from disk
    validator = Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    for message in history:
        errors = list(validator.iter_errors(message))
        assert not errors, (message["event_type"], [e.message for e in errors])
    # And every public event type occurred
    public_types = {t.partition(":")[2] for t, r in RULES.items() if isinstance(r, Public)}
    assert public_types - {m["event_type"] for m in history} == set()
    # And every message has one domain time, and communication events say whose they are
    for message in history:
        if message["event_type"].startswith("Communication."):
            assert {"campaign_id", "patient_id", "channel"} <= set(message["data"])
    # And the completion counts sent and delivered apart: P0 delivered; P2 sent (no
    # receipt); P5 sent then (after completion) failed; P1, P3, P4 unsuccessful
    completed, emails, *_ = [m for m in history if m["event_type"] == "Campaign.Completed"]
    assert {k: completed["data"][k] for k in ("accepted", "sent", "delivered",
                                              "unsuccessful")} == {
        "accepted": 3, "sent": 2, "delivered": 1, "unsuccessful": 3}
    # And the email campaign's: E1 introduced (the campaign email waits for a later
    # campaign), E2's introduction bounced for good
    assert {k: emails["data"][k] for k in ("accepted", "unsuccessful", "introduced")} == {
        "accepted": 0, "unsuccessful": 1, "introduced": 1}


def test_a_30003_receipt_after_the_campaign_completed_is_not_a_permanent_failure(
        make_outreach, tmp_path):
    # Given a text accepted by the provider, and its campaign completed since
    o = outreach_with_script(make_outreach)
    import_patients(o, tmp_path, [patient_row("P5", LATE_30003)])
    cid = o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    EmbeddedRunner(o).run_simulated(TUESDAY_9AM + timedelta(days=1))
    assert o.campaigns.get(cid).status == "Completed"
    # When its receipt says the handset was unreachable (transient: worth a later attempt,
    # but none can happen any more)
    sid, reference = sid_of(o, LATE_30003)
    o.inbound.on_receipt(DeliveryReceipt(sid, reference, "undelivered", "30003", o.clock.now(),
                                         FailureKind.TRANSIENT, "handset unreachable"))
    o.catch_up()
    # Then the report says what happened, and no event calls it permanent
    [row] = o.campaigns.report(cid)
    assert (row.status, row.reason) == ("Unsuccessful",
                                        "Unsuccessful - retry not possible: campaign completed")
    types = [m["event_type"] for m in public_history(o)]
    assert "Communication.FailedPermanently" not in types
    assert types[-2:] == ["Communication.AttemptFailed", "Communication.RetryNotPossible"]
