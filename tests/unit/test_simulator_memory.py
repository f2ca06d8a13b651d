"""The simulators remember only their last N messages and calls (issue 14: a long run's
memory stays flat), while counting every one and still answering what reconciliation and
tests ask of recent ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from application.clock import SimulatedClock
from gateways.email import OutboundEmail
from gateways.recent import Recent
from gateways.simulator_email import SimulatorEmailGateway
from gateways.simulator_sms import SimulatorSmsGateway
from gateways.simulator_voice import SimulatorVoiceGateway
from gateways.sms import OutboundText
from gateways.voice import OutboundCall

START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@given(keys=st.lists(st.integers(0, 5), max_size=60), keep=st.integers(1, 12))
def test_recent_keeps_exactly_the_last_records_and_indexes_only_those(
        keys: list[int], keep: int) -> None:
    recent: Recent[int, tuple[int, int]] = Recent(lambda r: r[0], keep)
    records = [(k, n) for n, k in enumerate(keys)]
    for r in records:
        recent.add(r)
    kept = records[-keep:] if records else []
    assert recent.snapshot() == kept
    assert recent.total == len(records)
    for key in range(6):
        assert recent.with_key(key) == [r for r in kept if r[0] == key]
        assert recent.count(key) == len([r for r in kept if r[0] == key])


def test_the_text_simulator_forgets_old_messages_but_counts_them_and_finds_recent_ones() -> None:
    clock = SimulatedClock(START)
    sms = SimulatorSmsGateway(now=clock.now, keep=3)
    sids = []
    for i in range(5):
        clock.advance_to(START + timedelta(minutes=i))
        sids.append(sms.send(OutboundText(f"+1312555010{i}", "Flu shots", f"c{i}:1")).provider_ref)
    assert [m.reference for m in sms.sent] == ["c2:1", "c3:1", "c4:1"]
    assert sms.total_sent == 5
    found = sms.find_sent("+13125550104", "Flu shots", START + timedelta(minutes=4))
    assert found is not None and found.provider_ref == sids[4]
    assert sms.find_sent("+13125550100", "Flu shots", START) is None  # forgotten
    # A reference sent again after its first message was forgotten gets a new sid.
    again = sms.send(OutboundText("+13125550100", "Flu shots", "c0:1")).provider_ref
    assert again != sids[0] and len(set(sids) | {again}) == 6


def test_the_email_simulator_keeps_its_last_messages_and_finds_a_recent_one() -> None:
    clock = SimulatedClock(START)
    email = SimulatorEmailGateway(now=clock.now, keep=2)

    def message(n: int) -> OutboundEmail:
        return OutboundEmail(to=f"p{n}@example.org", from_address="no-reply@example.org",
                             from_name="Clinic", subject="Hello", html="<p>Hi</p>", text="Hi",
                             reference=f"e{n}:1", unsubscribe_url="https://x.example/u")

    results = [email.send(message(n)) for n in range(4)]
    assert [e.message.reference for e in email.sent] == ["e2:1", "e3:1"]
    found = email.find_sent("e3:1", START)
    assert found is not None and found.provider_ref == results[3].provider_ref
    assert email.find_sent("e0:1", START) is None


def test_the_voice_simulator_keeps_its_last_calls_and_plays_only_to_a_kept_one() -> None:
    clock = SimulatedClock(START)
    voice = SimulatorVoiceGateway(now=clock.now, keep=2)
    results = [voice.place_call(OutboundCall(to=f"+1312555{n}000", from_number=None,
                                              reference=f"v{n}:1"))
               for n in range(3)]
    assert [c.reference for c in voice.calls] == ["v1:1", "v2:1"]
    assert voice.play(results[2].provider_ref or "", "<Response/>")
    assert not voice.play(results[0].provider_ref or "", "<Response/>")  # forgotten
