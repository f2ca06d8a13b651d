"""Phone campaigns through the whole path (campaign → communications → intents → dispatcher
→ voice gateway → callbacks → outcomes), on the voice simulator: the guide's outcomes, the
three-hour retry inside the phone window, press 9, test calls."""

from __future__ import annotations

from datetime import timedelta

import pytest

from application.clock import SimulatedClock
from domain.channels import Channel
from domain.errors import DomainError
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from workers.runner import EmbeddedRunner

# The simulator answers by the last digit: 0 a person, 1 a machine, 2 busy then a person,
# 9 a person who presses 9 (gateways/simulator_voice.py).
NUMBERS = {"C0": "+13125550100", "C1": "+13125550101", "C2": "+13125550102",
           "C9": "+13125550109"}


def phone_campaign(o, audience: list[str], name: str = "Flu calls"):  # type: ignore[no-untyped-def]
    return o.campaigns.create(name=name, channel=Channel.PHONE, template="Flu vaccine call",
                              callback_number="(555) 010-0100", audience=audience, active=True)


def test_a_phone_campaign_reports_each_outcome_in_the_guides_words(make_outreach, tmp_path):
    clock = SimulatedClock(TUESDAY_9AM)
    o = make_outreach(clock=clock)
    import_patients(o, tmp_path, [patient_row(pid, n) for pid, n in NUMBERS.items()])
    cid = phone_campaign(o, list(NUMBERS))
    EmbeddedRunner(o).run_simulated(TUESDAY_9AM + timedelta(days=2))
    report = {r.patient_id: r for r in o.campaigns.report(cid)}
    assert (report["C0"].status, report["C0"].last_outcome) == ("Delivered", "Live Answer")
    assert (report["C1"].status, report["C1"].last_outcome) == (
        "Delivered", "Answering Machine - Message Left")
    # Busy first, answered on the second attempt, three hours or more later, in the window
    assert (report["C2"].status, report["C2"].attempts) == ("Delivered", 2)
    calls = sorted((c for c in o.voice_gateway.calls if c.to == NUMBERS["C2"]),
                   key=lambda c: c.at)
    assert calls[1].at - calls[0].at >= timedelta(hours=3)
    local = calls[1].at.astimezone(o.settings.calendar.timezone)
    assert 11 <= local.hour < 20
    # Pressing 9 opted the patient out of Health Reminders - Phone, not for ever
    opt_outs = {x.type: x.last_day for x in o.patients.summary("C9").opt_outs}
    assert opt_outs.get("Health Reminders - Phone") is not None
    # And a later campaign does not call them
    later = phone_campaign(o, ["C9"], "Second")
    EmbeddedRunner(o).run_simulated(o.clock.now() + timedelta(days=1))
    assert o.campaigns.report(later)[0].reason == "opted out"


def test_a_test_call_never_changes_the_status(make_outreach):
    o = make_outreach(clock=SimulatedClock(TUESDAY_9AM))
    cid = o.campaigns.create(name="Draft", channel=Channel.PHONE,
                             script="Hello {{ first_name }}, this is {{ organisation }}.",
                             callback_number="(555) 010-0100", audience=[])
    o.campaigns.test_send(cid, "+13125550100")
    assert o.campaigns.get(cid).status == "Inactive"
    assert [c.reference for c in o.voice_gateway.calls] == [f"{cid}:test"]
    with pytest.raises(DomainError, match="not a valid phone number"):
        o.campaigns.test_send(cid, "12")


def test_a_voicemail_with_health_information_is_refused_at_create_time(make_outreach):
    o = make_outreach()
    with pytest.raises(DomainError, match="must not mention health information"):
        o.campaigns.create(name="X", channel=Channel.PHONE, script="Hello.",
                           voicemail="Your diabetes results are in. Call {{ help_number }}.",
                           callback_number="(555) 010-0100", audience=[])
