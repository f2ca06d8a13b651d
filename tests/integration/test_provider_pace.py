"""SES's per-second quota (MaxSendRate) holds across dispatchers: every send takes the next
slot of one timeline kept in the database, whoever sends it."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from application.clock import SimulatedClock
from domain.channels import Channel
from domain.email import EmailState
from gateways.simulator_email import SimulatorEmailGateway
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from workers.provider_pace import ProviderPace
from workers.runner import EmbeddedRunner


def test_two_dispatchers_together_never_exceed_the_providers_rate(make_outreach) -> None:
    o = make_outreach()  # one database for every example: each gets its own timeline

    @settings(max_examples=25, deadline=None)
    @given(batches=st.lists(st.tuples(st.booleans(), st.integers(1, 20),
                                      st.integers(0, 3000)), min_size=1, max_size=12),
           rate=st.sampled_from([1.0, 2.0, 14.0, 50.0]))
    def check(batches: list[tuple[bool, int, int]], rate: float) -> None:
        name = f"ses-{uuid4().hex}"
        # Two dispatcher processes' views of one provider's quota
        first, second = ProviderPace(o.db, name, rate), ProviderPace(o.db, name, rate)
        now, slots = TUESDAY_9AM, []
        for use_second, count, later_ms in batches:
            now += timedelta(milliseconds=later_ms)
            taken = (second if use_second else first).reserve(count, now)
            assert len(taken) == count and all(t >= now for t in taken)
            slots.extend(taken)
        # Any two sends, from either process, are at least 1/rate seconds apart
        ordered = sorted(slots)
        gaps = [(b - a).total_seconds() for a, b in zip(ordered, ordered[1:], strict=False)]
        assert all(gap >= 1 / rate - 1e-6 for gap in gaps)

    check()


class QuotaGateway(SimulatorEmailGateway):
    def max_send_rate(self) -> float | None:
        return 2.0


def test_the_dispatcher_waits_for_each_slot_under_the_quota(make_outreach, tmp_path) -> None:
    clock = SimulatedClock(TUESDAY_9AM + timedelta(hours=2))  # inside the email window
    o = make_outreach(clock=clock, email_gateway=QuotaGateway(now=clock.now))
    ids = [f"E{n}" for n in range(8)]
    import_patients(o, tmp_path, [patient_row(pid, None, email=f"p{pid}@example.org")
                                  for pid in ids])
    for pid in ids:  # introduced long ago: campaign emails go at once
        state = EmailState(patient_id=pid)
        state.introduction_sent(TUESDAY_9AM - timedelta(days=5), uuid4())
        o.store.save(state)
    o.campaigns.create(name="Quota", channel=Channel.EMAIL, subject="Hello",
                       body="<p>Hi {{ first_name }}</p>", audience=ids, active=True)
    EmbeddedRunner(o).run_simulated(clock.now() + timedelta(hours=1))
    times = sorted(m.at for m in o.email_gateway.sent)
    assert len(times) == 8
    assert all((b - a).total_seconds() >= 0.5 for a, b in zip(times, times[1:], strict=False))
