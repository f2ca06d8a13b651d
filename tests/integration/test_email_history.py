"""What staff see of a patient's emails (the guide, "Communication history"): emails that
went are in the history; an email that bounced or could not be sent is not, and a bounced
address shows under the patient's name as "No Communication: Email Bounced" until a later
import gives them another address."""

from __future__ import annotations

from datetime import timedelta

from application.clock import SimulatedClock
from domain.channels import Channel
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from workers.runner import EmbeddedRunner

BOUNCES = "bounce@simulator.amazonses.com"
DELIVERS = "success@simulator.amazonses.com"


def email_campaign(o, name: str, audience: list[str]):  # type: ignore[no-untyped-def]
    return o.campaigns.create(name=name, channel=Channel.EMAIL,
                              subject="A reminder from {{ organisation }}",
                              body="<p>Dear {{ first_name }}, time to book.</p>",
                              audience=audience, active=True)


def test_a_bounced_address_shows_under_the_name_not_in_the_history_until_it_changes(
        make_outreach, tmp_path):
    o = make_outreach(clock=SimulatedClock(TUESDAY_9AM))
    import_patients(o, tmp_path, [patient_row("E1", None, email=BOUNCES),
                                  patient_row("E2", None, email=DELIVERS)])
    # Given introductory emails: E1's bounces for good, E2's goes
    email_campaign(o, "Mammograms", ["E1", "E2"])
    EmbeddedRunner(o).run_simulated(TUESDAY_9AM + timedelta(days=1))
    # Then E1's summary says so under the name, and the bounced email is not in its history
    bounced = o.patients.summary("E1")
    assert bounced.email_status == "No Communication: Email Bounced"
    assert bounced.communications == ()
    # And E2's introductory email is in its history, with no email status
    delivered = o.patients.summary("E2")
    assert delivered.email_status is None
    assert [c.status for c in delivered.communications] == ["Introductory email needed"]
    # When a later import gives E1 another address
    import_patients(o, tmp_path, [patient_row("E1", None, email="ann.new@example.org"),
                                  patient_row("E2", None, email=DELIVERS)])
    # Then the bounce no longer shows, and the next campaign introduces them at the new one
    assert o.patients.summary("E1").email_status is None
    email_campaign(o, "Care gaps", ["E1"])
    EmbeddedRunner(o).run_simulated(o.clock.now() + timedelta(days=1))
    sent_to = [m.message.to for m in o.email_gateway.sent]
    assert sent_to.count("ann.new@example.org") == 1
    assert [c.status for c in o.patients.summary("E1").communications] == [
        "Introductory email needed"]


def test_two_campaigns_at_once_send_one_introduction_and_the_second_waits_two_days(
        make_outreach, tmp_path):
    o = make_outreach(clock=SimulatedClock(TUESDAY_9AM))
    import_patients(o, tmp_path, [patient_row("E1", None, email=DELIVERS)])
    # Given two email campaigns activated together for a patient never introduced
    first = email_campaign(o, "Mammograms", ["E1"])
    second = email_campaign(o, "Flu", ["E1"])
    # When they run for a week
    EmbeddedRunner(o).run_simulated(TUESDAY_9AM + timedelta(days=7))
    # Then one introductory email went, and one campaign email two days or more after it
    sent = sorted(o.email_gateway.sent, key=lambda m: m.at)
    assert len(sent) == 2
    intro, campaign_email = sent
    assert "Health reminders by email" in intro.message.subject
    assert campaign_email.at - intro.at >= timedelta(days=2)
    statuses = {o.campaigns.report(cid)[0].status for cid in (first, second)}
    assert statuses == {"Introductory email needed", "Delivered"}
