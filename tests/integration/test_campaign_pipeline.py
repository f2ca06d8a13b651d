"""The core engine end to end on the embedded runner — the same stories on SQLite and on
PostgreSQL (`stack`): create → activate → windows, caps, retries, opt-outs → report."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from application.clock import SimulatedClock
from domain.errors import CampaignRuleViolation, DomainError
from domain.inbound import DeliveryReceipt, InboundText
from domain.pacing import HOUR
from domain.retry import FailureKind
from gateways.simulator_sms import SimulatorSmsGateway
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from workers.ratelimit import RateLimiter
from workers.runner import EmbeddedRunner

BODY = "Flu shots are here. Call (555) 010-0100 to book."
CHICAGO_OFFSET = timedelta(hours=-6)  # November: CST


def local(at: datetime) -> datetime:
    return (at + CHICAGO_OFFSET).replace(tzinfo=None)


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"+1312555{i:04d}" for i in range(start, start + n)]


def given_patients(o: Any, tmp_path: Path, mobiles: list[str | None]) -> list[str]:
    rows = [patient_row(f"P{i:04d}", m) for i, m in enumerate(mobiles)]
    import_patients(o, tmp_path, rows)
    return [r["Patient ID"] for r in rows]


def run_until(o: Any, until: datetime) -> EmbeddedRunner:
    runner = EmbeddedRunner(o)
    runner.run_simulated(until)
    return runner


def most_in_any_closed_span(times: list[datetime], length: timedelta) -> int:
    """Most sends in any span [t, t + length], both ends counted. `times` must be sorted."""
    return max((bisect_right(times, t + length) - i for i, t in enumerate(times)), default=0)


def statuses(o: Any, campaign_id: Any) -> Counter[str]:
    return Counter(r.status for r in o.campaigns.report(campaign_id))


def test_a_text_campaign_goes_from_creation_to_a_per_patient_report(make_outreach, tmp_path):
    # Given 20 active patients with mobiles and an active campaign created Tuesday 09:00
    o = make_outreach()
    ids = given_patients(o, tmp_path, numbers(20))
    cid = o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    # When the workers run through the day
    run_until(o, TUESDAY_9AM + timedelta(days=1))
    # Then every patient got exactly one text, the report says so, the campaign completed
    sent = o.gateway.sent
    assert sorted(m.to for m in sent) == sorted(numbers(20))
    report = o.campaigns.report(cid)
    assert [r.patient_id for r in report] == ids
    assert {(r.status, r.attempts, r.last_outcome) for r in report} == {("Sent", 1, "accepted")}
    assert report[0].contact == "+13125550000" and report[0].name == "LeeP0000, Ann"
    [row] = o.campaigns.campaigns()
    assert row.status == "Completed" and row.progress == "20 completed of 20 to be contacted"
    # And nothing went out before the window opened at 11:00 Central
    assert min(local(m.at) for m in sent).hour == 11


def test_an_inactive_campaign_never_sends(make_outreach, tmp_path):
    o = make_outreach()
    given_patients(o, tmp_path, numbers(5))
    cid = o.campaigns.create(name="Draft", body=BODY, help_number="555-0100", active=False)
    run_until(o, TUESDAY_9AM + timedelta(days=3))
    assert o.gateway.sent == []
    assert o.campaigns.get(cid).status == "Inactive"


def test_a_campaign_not_finished_in_a_window_resumes_next_window_in_order_under_the_cap(
        make_outreach, tmp_path):
    # Given a cap of 10 per hour and a one-hour window, 25 patients
    o = make_outreach(rate_cap_per_hour=10, text_window="11:00-12:00")
    given_patients(o, tmp_path, numbers(25))
    o.campaigns.create(name="Slow", body=BODY, help_number="555-0100", active=True)
    # When it runs for four days
    run_until(o, TUESDAY_9AM + timedelta(days=4))
    sent = o.gateway.sent
    # Then 10 go Tuesday, 10 Wednesday, 5 Thursday, each day resuming with the next patient
    by_day = Counter(local(m.at).date().isoformat() for m in sent)
    order = [m.to for m in sorted(sent, key=lambda m: m.at)]
    assert order == numbers(25)
    # (Thanksgiving, Thursday 26 November, is a holiday: the rest go Friday.)
    assert by_day == {"2026-11-24": 10, "2026-11-25": 10, "2026-11-27": 5}
    # And no hour ever held more than 10 sends, every send inside the window
    times = sorted(m.at for m in sent)
    for t in times:
        assert sum(1 for u in times if t <= u < t + HOUR) <= 10
    assert all(11 <= local(t).hour < 12 for t in times)


def test_stop_from_a_shared_number_stops_texts_to_every_patient_with_it(
        make_outreach, tmp_path):
    # Given two patients sharing a mobile, and a third
    o = make_outreach()
    given_patients(o, tmp_path, ["+13125550100", "+13125550100", "+13125550101"])
    # When the shared number texts STOP (twice: a duplicated webhook)
    stop = InboundText("SM1", "+13125550100", "+15005550006", "stop", TUESDAY_9AM)
    assert o.inbound.on_text(stop) is None
    before = o.store.recorder.max_notification_id()
    o.inbound.on_text(stop)
    assert o.store.recorder.max_notification_id() == before  # the duplicate changed nothing
    cid = o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    run_until(o, TUESDAY_9AM + timedelta(days=1))
    # Then both sharing patients are skipped as opted out, the third is texted
    report = {r.patient_id: r for r in o.campaigns.report(cid)}
    assert (report["P0000"].status, report["P0000"].reason) == ("Skipped", "opted out")
    assert (report["P0001"].status, report["P0001"].reason) == ("Skipped", "opted out")
    assert report["P0002"].status == "Sent"
    assert [m.to for m in o.gateway.sent] == ["+13125550101"]


def test_start_restores_texts_after_stop(make_outreach, tmp_path):
    o = make_outreach()
    given_patients(o, tmp_path, ["+13125550100"])
    o.inbound.on_text(InboundText("SM1", "+13125550100", "", "STOP", TUESDAY_9AM))
    o.inbound.on_text(InboundText("SM2", "+13125550100", "", "Start", TUESDAY_9AM))
    o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    run_until(o, TUESDAY_9AM + timedelta(days=1))
    assert [m.to for m in o.gateway.sent] == ["+13125550100"]


def test_help_is_answered_with_the_campaign_help_number(make_outreach, tmp_path):
    o = make_outreach()
    given_patients(o, tmp_path, ["+13125550100"])
    o.campaigns.create(name="Flu", body=BODY, help_number="(555) 010-0199", active=True)
    run_until(o, TUESDAY_9AM + timedelta(days=1))
    o.catch_up()
    reply = o.inbound.on_text(InboundText("SM9", "+13125550100", "", "HELP", TUESDAY_9AM))
    assert reply is not None and "(555) 010-0199" in reply


def test_invalid_and_missing_numbers_end_without_retries(make_outreach, tmp_path):
    # Given a patient on Twilio's invalid test number, one who cannot receive SMS, one
    # without a mobile
    o = make_outreach()
    given_patients(o, tmp_path, ["+15005550001", "+15005550009", None, "+13125550100"])
    cid = o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True,
                             audience=["P0000", "P0001", "P0002", "P0003"])
    run_until(o, TUESDAY_9AM + timedelta(days=2))
    report = {r.patient_id: r for r in o.campaigns.report(cid)}
    assert report["P0000"].status == "Unsuccessful" and report["P0000"].attempts == 1
    assert report["P0001"].status == "Unsuccessful" and report["P0001"].attempts == 1
    assert (report["P0002"].status, report["P0002"].reason) == ("Skipped", "no mobile phone")
    assert report["P0003"].status == "Sent"


def test_transient_failures_stop_after_the_fifth_attempt(make_outreach, tmp_path):
    # Given a provider that fails every send transiently
    o = make_outreach(simulator_failure_rate=1.0)
    given_patients(o, tmp_path, numbers(3))
    cid = o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    # When the workers run for a week
    run_until(o, TUESDAY_9AM + timedelta(days=7))
    # Then each communication made exactly five attempts, all inside windows, and ended
    report = o.campaigns.report(cid)
    assert {(r.status, r.attempts, r.reason) for r in report} == {
        ("Unsuccessful", 5, "Unsuccessful - Communication Retries Exceeded")}
    assert o.gateway.sent == []
    assert o.campaigns.get(cid).status == "Completed"


def test_stop_cancels_what_was_not_sent_and_is_final(make_outreach, tmp_path):
    # Given 30 patients at 10 per hour
    o = make_outreach(rate_cap_per_hour=10)
    given_patients(o, tmp_path, numbers(30))
    cid = o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    # When it has run for the first hour and is then stopped
    run_until(o, TUESDAY_9AM + timedelta(hours=3))  # 11:00-12:00 Central
    sent_before = len(o.gateway.sent)
    assert 0 < sent_before < 30
    cancelled = o.campaigns.stop(cid)
    run_until(o, TUESDAY_9AM + timedelta(days=3))
    # Then nothing more goes out, the rest are Cancelled, and the stop is final
    assert len(o.gateway.sent) == sent_before
    assert statuses(o, cid) == {"Sent": sent_before, "Cancelled": 30 - sent_before}
    assert cancelled == 30 - sent_before
    with pytest.raises(CampaignRuleViolation, match="stopped"):
        o.campaigns.activate(cid)


def test_redelivered_intents_send_nothing_twice(make_outreach, tmp_path):
    # Given due intents dispatched once
    o = make_outreach()
    given_patients(o, tmp_path, numbers(5))
    o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    o.clock.advance_to(TUESDAY_9AM + timedelta(hours=2, minutes=1))  # 11:01 Central
    runner = EmbeddedRunner(o)
    o.catch_up()
    runner.scheduler.tick()
    intents = runner.bus.poll()
    runner.dispatcher.handle(intents)
    first = len(o.gateway.sent)
    # When the consumer dies before committing and the bus delivers the same intents again
    runner.bus.rewind()
    redelivered = runner.bus.poll()
    assert redelivered == intents
    stats = runner.dispatcher.handle(redelivered)
    # Then nothing is sent twice
    assert len(o.gateway.sent) == first > 0
    assert stats.sent == 0 and stats.duplicates == len(intents)


class CrashAfterSend(SimulatorSmsGateway):
    """The provider takes the message, then our process dies before recording it."""

    crash = True

    def send(self, message):  # type: ignore[no-untyped-def]
        result = super().send(message)
        if self.crash:
            raise KeyboardInterrupt("killed")
        return result


def test_an_attempt_interrupted_after_the_provider_took_it_is_not_sent_again(
        make_outreach, tmp_path):
    # Given a dispatcher that dies right after the provider accepted the message
    clock = SimulatedClock(TUESDAY_9AM + timedelta(hours=2))  # 11:00 Central
    gateway = CrashAfterSend(now=clock.now)
    o = make_outreach(clock=clock, gateway=gateway)
    given_patients(o, tmp_path, numbers(1))
    cid = o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    with pytest.raises(KeyboardInterrupt):
        EmbeddedRunner(o).step()
    assert statuses(o, cid) == {"Sending": 1}
    # When a new process starts later and the scheduler re-issues the stale attempt
    gateway.crash = False
    run_until(o, clock.now() + timedelta(hours=1))
    # Then the provider is asked, the message is found, and it is not sent a second time
    assert len(gateway.sent) == 1
    assert statuses(o, cid) == {"Sent": 1}


def test_receipts_move_communications_on_and_duplicates_change_nothing(
        make_outreach, tmp_path):
    o = make_outreach()
    given_patients(o, tmp_path, numbers(2))
    cid = o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    run_until(o, TUESDAY_9AM + timedelta(hours=2, minutes=2))  # sent at 11:00 Central
    first, second = sorted(o.gateway.sent, key=lambda m: m.to)
    at = o.clock.now()
    delivered = DeliveryReceipt(first.sid, first.reference, "delivered", "", at)
    o.inbound.on_receipt(delivered)
    before = o.store.recorder.max_notification_id()
    o.inbound.on_receipt(delivered)
    assert o.store.recorder.max_notification_id() == before
    # An undelivered receipt for a reachable-later handset (30003) schedules another attempt
    o.inbound.on_receipt(DeliveryReceipt(second.sid, second.reference, "undelivered", "30003",
                                         at, FailureKind.TRANSIENT, "handset unreachable"))
    report = {r.contact: r for r in o.campaigns.report(cid)}
    assert report[first.to].status == "Delivered"
    assert report[second.to].status == "Retry Pending"
    run_until(o, TUESDAY_9AM + timedelta(days=1))
    assert len([m for m in o.gateway.sent if m.to == second.to]) == 2


def test_opted_out_patients_are_skipped_and_appointment_opt_outs_do_not_count(
        make_outreach, tmp_path):
    from domain.preferences import Duration, OptOutType, PatientPreferences

    o = make_outreach()
    given_patients(o, tmp_path, numbers(3))
    now = o.clock.now()
    today = o.settings.calendar.today(now)
    health = PatientPreferences(patient_id="P0000")
    health.opt_out(OptOutType.HEALTH_TEXT, Duration(days=7), today, now, "asked")
    appt = PatientPreferences(patient_id="P0001")
    appt.opt_out(OptOutType.APPT_TEXT, Duration(), today, now, "asked")
    o.store.save(health, appt)
    cid = o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    run_until(o, TUESDAY_9AM + timedelta(days=1))
    report = {r.patient_id: r.status for r in o.campaigns.report(cid)}
    assert report == {"P0000": "Skipped", "P0001": "Sent", "P0002": "Sent"}


def test_activating_after_the_window_starts_the_next_sending_day(make_outreach, tmp_path):
    clock = SimulatedClock(datetime(2026, 11, 25, 3, 0, tzinfo=UTC))  # Tue 21:00 Central
    o = make_outreach(clock=clock)
    given_patients(o, tmp_path, numbers(2))
    o.campaigns.create(name="Late", body=BODY, help_number="555-0100", active=True)
    run_until(o, clock.now() + timedelta(days=1))
    assert {local(m.at).strftime("%a %H:%M") for m in o.gateway.sent} <= {"Wed 11:00"}
    assert len(o.gateway.sent) == 2


def test_the_size_cap_refuses_a_larger_audience_with_a_clear_message(make_outreach, tmp_path):
    o = make_outreach(campaign_size_cap=3)
    given_patients(o, tmp_path, numbers(4))
    with pytest.raises(DomainError, match="at most 3"):
        o.campaigns.create(name="Big", body=BODY, help_number="555-0100")


def test_read_models_rebuilt_from_history_are_identical(make_outreach, tmp_path):
    o = make_outreach(simulator_failure_rate=0.3)
    given_patients(o, tmp_path, numbers(10))
    cid = o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    run_until(o, TUESDAY_9AM + timedelta(days=1))
    before = o.campaigns.report(cid), o.campaigns.campaigns()
    o.rebuild()
    assert (o.campaigns.report(cid), o.campaigns.campaigns()) == before


def test_a_campaign_of_the_full_size_cap_activates_and_plans_every_patient(
        make_outreach, tmp_path):
    # Given 4,000 patients (the default size cap)
    o = make_outreach()
    given_patients(o, tmp_path, numbers(4000))
    # When a campaign for all of them is activated (one batched save of 4,001 events)
    cid = o.campaigns.create(name="Everyone", body=BODY, help_number="555-0100", active=True)
    # Then every patient has a planned communication, in order, at most 1,000 in any hour
    plan = o.campaigns.schedule_preview(cid, limit=5000)
    assert len(plan) == 4000 and plan == sorted(plan)
    assert all(plan[i + 1000] - plan[i] >= HOUR for i in range(len(plan) - 1000))


def test_a_backlog_larger_than_one_scheduler_batch_keeps_moving(make_outreach, tmp_path):
    # Given 30 patients all due now and a scheduler that issues 10 at a time
    o = make_outreach(rate_cap_per_hour=100_000)
    given_patients(o, tmp_path, numbers(30))
    o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    o.clock.advance_to(TUESDAY_9AM + timedelta(hours=3))
    runner = EmbeddedRunner(o, dispatch=False)
    runner.scheduler.batch = 10
    # (with room for all 30 at once: the default burst of 10 would pace them)
    runner.scheduler.limiter = RateLimiter(o.db, per_hour=100_000, burst=100)
    o.catch_up()
    # When it ticks three times without any dispatcher having taken an intent yet
    issued = [runner.scheduler.tick() for _ in range(4)]
    # Then the whole backlog was issued, ten at a time, and nothing twice
    assert issued == [10, 10, 10, 0]
    assert len({i.communication_id for i in runner.bus.poll(100)}) == 30


@pytest.mark.slow  # 2,000 sends paced one by one: ~35 s on SQLite, ~65 s on PostgreSQL
def test_workers_started_late_pace_the_backlog_instead_of_sending_it_in_one_burst(
        make_outreach, tmp_path):
    # Given 2,000 patients and a campaign at the default 1,000 an hour (burst 10), planned
    # from 11:00 Central
    o = make_outreach()
    given_patients(o, tmp_path, numbers(2000))
    cid = o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    # When the workers start only at 11:50 (834 slots overdue) and run through the day
    opened = TUESDAY_9AM + timedelta(hours=2)
    o.clock.advance_to(opened + timedelta(minutes=50))
    run_until(o, TUESDAY_9AM + timedelta(days=1))
    # Then the ledger shows no closed 60-minute span over 1,000 and no closed minute over
    # ceil(1000/60) + 10 (before: 834 in the same second, 834 more exactly an hour later)
    rows = o.db.fetchall("SELECT sent_at FROM send_ledger WHERE campaign_id = ?", (str(cid),))
    times = sorted(datetime.fromisoformat(r[0]) for r in rows)
    assert most_in_any_closed_span(times, HOUR) <= 1000
    assert most_in_any_closed_span(times, timedelta(minutes=1)) <= 27
    # And the backlog started with ten at 11:50, then went one every 3.6 s
    started = opened + timedelta(minutes=50)
    assert times[:12] == [started] * 10 + [started + o.limiter.pace.interval * k
                                           for k in (1, 2)]
    # And the campaign still finished, in order, inside the window, each patient once
    sent = sorted(o.gateway.sent, key=lambda m: m.at)
    assert [m.to for m in sent] == numbers(2000)
    assert [m.at for m in sent] == times
    assert all(11 <= local(m.at).hour < 20 for m in sent)
    assert o.campaigns.get(cid).status == "Completed"
