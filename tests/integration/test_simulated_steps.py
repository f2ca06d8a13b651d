"""The simulated clock's bounded steps send exactly what stepping slot by slot sends: the
same communications end the same way after the same attempts, every message leaves at the
same instant, and every campaign completes at the same time (workers/runner.py STEP).

Each example runs one random clinic twice on the embedded default (SQLite, in-process bus,
simulator gateway): once with a zero step (every slot a full step: the plain run) and once
in bounded steps. Campaigns start at random offsets (some before the runner starts: a
backlog), near a window's end or on a closed day, under random rate caps and bursts, with
the simulator failing a random share of attempts (by its seed): retries, windows, caps and
the completion grace all take part."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.bootstrap import Outreach, build
from application.clock import SimulatedClock
from application.settings import Settings
from gateways.simulator_sms import SimulatorSmsGateway
from tests.fixtures_app import import_patients, patient_row
from workers.runner import STEP, EmbeddedRunner

BODY = "Flu shots are here. Call (555) 010-0100 to book."
# Tuesday 24 November 2026 (US Central: UTC-6), the text window 11:00-20:00.
TUESDAY_NOON = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
FAILING = "+15005550001"  # Twilio's invalid number: fails permanently at once


@dataclass(frozen=True)
class Clinic:
    start: datetime  # where the simulated clock starts
    campaigns: list[tuple[int, int]]  # (minutes after the start it is created, patients)
    rate_cap: int
    burst: int
    failure_rate: float
    seed: int
    failing_patient: bool


@st.composite
def clinics(draw: Any) -> Clinic:
    # From mid-window to past its end (19:50-20:00 Central sits in the range), or Saturday
    # evening before a closed Sunday.
    start = draw(st.sampled_from([TUESDAY_NOON, TUESDAY_NOON + timedelta(hours=7, minutes=50),
                                  TUESDAY_NOON + timedelta(days=4, hours=7, minutes=55)]))
    start += timedelta(seconds=draw(st.integers(0, 600)))
    campaigns = draw(st.lists(st.tuples(st.integers(0, 90), st.integers(1, 6)),
                              min_size=1, max_size=3))
    return Clinic(start=start, campaigns=campaigns,
                  rate_cap=draw(st.sampled_from([2, 5, 12, 60, 1000])),
                  burst=draw(st.integers(1, 3)),
                  failure_rate=draw(st.sampled_from([0.0, 0.3, 0.7])),
                  seed=draw(st.integers(0, 1_000)),
                  failing_patient=draw(st.booleans()))


@dataclass(frozen=True)
class Outcome:
    communications: dict[tuple[str, str], tuple[str, int, str]]  # (campaign, patient) → …
    sent: list[tuple[str, str, datetime]]  # (number, body, at) of every message, in order
    campaigns: dict[str, tuple[str, str | None]]  # name → (status, finished at)
    sent_count: int


def open_clinic(clinic: Clinic, folder: Path, now: datetime
                ) -> tuple[Outreach, SimulatedClock, SimulatorSmsGateway]:
    settings_ = Settings(database_url=f"sqlite:///{folder}/outreach.db",
                         rate_cap_per_hour=clinic.rate_cap, rate_burst=clinic.burst,
                         simulator_failure_rate=clinic.failure_rate,
                         simulator_seed=clinic.seed, log_level="WARNING")
    clock = SimulatedClock(now)
    gateway = SimulatorSmsGateway(now=clock.now, failure_rate=clinic.failure_rate,
                                  seed=clinic.seed)
    return build(settings_, clock=clock, gateway=gateway), clock, gateway


def prepare(clinic: Clinic, folder: Path) -> datetime:
    """Patients imported and campaigns activated, once: both runs start from copies of the
    same databases (the same campaign ids, so the simulator fails the same attempts)."""
    o, clock, _ = open_clinic(clinic, folder, clinic.start)
    try:
        total = sum(n for _, n in clinic.campaigns)
        mobiles = [f"+1312555{i:04d}" for i in range(total)]
        if clinic.failing_patient:
            mobiles[-1] = FAILING
        import_patients(o, folder, [patient_row(f"P{i:04d}", m)
                                    for i, m in enumerate(mobiles)])
        first = 0
        for number, (after, size) in enumerate(sorted(clinic.campaigns)):
            clock.advance_to(clinic.start + timedelta(minutes=after))
            o.campaigns.create(name=f"C{number}", body=f"{BODY} ({number})",
                               help_number="555-0100", active=True,
                               audience=[f"P{i:04d}" for i in range(first, first + size)])
            first += size
        o.catch_up()
        return clock.now()
    finally:
        o.close()


def run(clinic: Clinic, folder: Path, now: datetime, step: timedelta) -> Outcome:
    o, _, gateway = open_clinic(clinic, folder, now)
    try:
        runner = EmbeddedRunner(o)
        runner.run_simulated(clinic.start + timedelta(days=8), step=step)
        o.catch_up()
        rows = o.db.fetchall(
            "SELECT c.name, m.patient_id, m.status, m.attempts, m.reason"
            " FROM communications m JOIN campaigns c ON c.campaign_id = m.campaign_id")
        campaigns = o.db.fetchall("SELECT name, status, finished_at FROM campaigns")
        return Outcome(
            communications={(r[0], r[1]): (r[2], int(r[3]), r[4]) for r in rows},
            sent=[(m.to, m.body, m.at) for m in gateway.sent],
            campaigns={r[0]: (r[1], r[2]) for r in campaigns},
            sent_count=gateway.total_sent)
    finally:
        o.close()


def twice(clinic: Clinic, step: timedelta) -> tuple[Outcome, Outcome]:
    """(slot by slot, in bounded steps) from the same prepared clinic."""
    with tempfile.TemporaryDirectory() as tmp:
        plain_dir, step_dir = Path(tmp) / "plain", Path(tmp) / "stepped"
        plain_dir.mkdir()
        now = prepare(clinic, plain_dir)
        shutil.copytree(plain_dir, step_dir)
        return run(clinic, plain_dir, now, timedelta(0)), run(clinic, step_dir, now, step)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(clinic=clinics(), step=st.sampled_from([STEP, timedelta(minutes=1),
                                               timedelta(hours=2)]))
def test_bounded_steps_send_every_message_at_the_instant_slot_by_slot_stepping_does(
        clinic: Clinic, step: timedelta) -> None:
    plain, stepped = twice(clinic, step)
    assert stepped.communications == plain.communications
    assert stepped.sent == plain.sent
    assert stepped.sent_count == plain.sent_count
    assert stepped.campaigns == plain.campaigns
    # The example means something: every campaign ran to its end, each one after its grace.
    assert {status for status, _ in plain.campaigns.values()} == {"Completed"}


def test_a_campaign_completes_from_its_counts_at_the_same_instant_as_by_reading_every_row(
        tmp_path: Path) -> None:
    """The counts the projection keeps say what reading every communication says."""
    clinic = Clinic(start=TUESDAY_NOON, campaigns=[(0, 4), (30, 3)], rate_cap=12, burst=1,
                    failure_rate=0.5, seed=3, failing_patient=True)
    now = prepare(clinic, tmp_path)
    outcome = run(clinic, tmp_path, now, STEP)
    o, _, _ = open_clinic(clinic, tmp_path, now)
    try:
        by_rows = {(r[0], r[1]): int(r[2]) for r in o.db.fetchall(
            "SELECT campaign_id, status, COUNT(*) FROM communications"
            " GROUP BY campaign_id, status")}
        counts = {(r[0], r[1]): int(r[2]) for r in o.db.fetchall(
            "SELECT campaign_id, status, n FROM campaign_counts WHERE n <> 0")}
        progress = {r[0]: (int(r[1]), int(r[2])) for r in o.db.fetchall(
            "SELECT campaign_id, total, open FROM campaign_progress")}
    finally:
        o.close()
    assert counts == by_rows
    assert progress == {
        cid: (sum(n for (c, _), n in by_rows.items() if c == cid),
              sum(n for (c, s), n in by_rows.items()
                  if c == cid and s in ("Planned", "Retry Pending", "Sending")))
        for cid in {c for c, _ in by_rows}}
    assert {status for status, _ in outcome.campaigns.values()} == {"Completed"}

