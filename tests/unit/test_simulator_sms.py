"""The simulator follows Twilio's test-number conventions and fails reproducibly."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest

from application.clock import SimulatedClock
from domain.retry import FailureKind
from gateways.null_sms import NullSmsGateway
from gateways.simulator_sms import SimulatorSmsGateway
from gateways.sms import OutboundText

START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def gateway(failure_rate: float = 0.0, seed: int = 7) -> tuple[SimulatorSmsGateway, SimulatedClock]:
    clock = SimulatedClock(START)
    return SimulatorSmsGateway(now=clock.now, failure_rate=failure_rate, seed=seed), clock


def text(
    to: str = "+15005550006", body: str = "Your flu shot is due.", ref: str = "c1:1"
) -> OutboundText:
    return OutboundText(to=to, body=body, reference=ref)


def test_the_magic_success_number_is_accepted_with_a_twilio_shaped_sid() -> None:
    sms, _ = gateway()
    result = sms.send(text("+15005550006"))
    assert result.accepted and result.status == "queued"
    assert re.fullmatch(r"SM[0-9a-f]{32}", result.provider_ref)


@pytest.mark.parametrize(
    ("number", "code"),
    [("+15005550001", "21211"), ("+15005550009", "21614"), ("+15005550007", "21610"),
     ("+15005550008", "21612")],
)
def test_the_magic_failure_numbers_are_refused_for_good(number: str, code: str) -> None:
    """Given a test number that Twilio always refuses, when sent to, then the refusal is
    permanent, carries Twilio's code, and its reason does not quote the number."""
    sms, _ = gateway()
    result = sms.send(text(number))
    assert not result.accepted
    assert (result.error_code, result.kind) == (code, FailureKind.PERMANENT)
    assert number not in result.error_message and result.error_message
    assert sms.sent == []


def test_a_number_that_is_not_e164_is_an_invalid_number() -> None:
    sms, _ = gateway()
    result = sms.send(text("555-0100"))
    assert (result.error_code, result.kind) == ("21211", FailureKind.PERMANENT)


def test_any_other_e164_number_is_accepted_and_recorded_with_the_clock_time() -> None:
    sms, clock = gateway()
    clock.advance_to(START + timedelta(minutes=5))
    result = sms.send(text("+13125550100", "Hello", "c9:2"))
    [record] = sms.sent
    assert (record.to, record.body, record.reference, record.sid, record.at) == (
        "+13125550100", "Hello", "c9:2", result.provider_ref, START + timedelta(minutes=5))


def test_the_seeded_failure_rate_is_reproducible_and_roughly_the_rate() -> None:
    """Given a 20% failure rate, when the same 2,000 references are sent by two gateways
    with the same seed, then the same ones fail, about 20% of them, all transient."""
    refs = [f"comm-{i}:1" for i in range(2000)]

    def failures(seed: int) -> list[tuple[str, str]]:
        sms, _ = gateway(failure_rate=0.2, seed=seed)
        outcomes = [(r, sms.send(text("+13125550100", ref=r))) for r in refs]
        assert all(res.kind is FailureKind.TRANSIENT for _, res in outcomes if not res.accepted)
        return [(r, res.error_code) for r, res in outcomes if not res.accepted]

    first, again = failures(seed=7), failures(seed=7)
    assert first == again
    assert 0.17 < len(first) / len(refs) < 0.23
    assert {code for _, code in first} == {"30003", "20429"}
    assert failures(seed=8) != first


def test_a_retry_has_its_own_draw_so_it_can_succeed() -> None:
    """The reference carries the attempt number: attempt 2 is not doomed by attempt 1."""
    sms, _ = gateway(failure_rate=0.5)
    outcomes = {sms.send(text("+13125550100", ref=f"c1:{n}")).accepted for n in range(1, 30)}
    assert outcomes == {True, False}


def test_no_failure_rate_means_no_random_failures() -> None:
    sms, _ = gateway(failure_rate=0.0)
    assert all(sms.send(text("+13125550100", ref=f"c{i}:1")).accepted for i in range(500))


def test_find_sent_finds_an_accepted_message_since_a_time_and_ignores_other_bodies() -> None:
    sms, clock = gateway()
    clock.advance_to(START + timedelta(minutes=10))
    sent = sms.send(text("+13125550100", "Your appointment is tomorrow.", "c1:1"))

    found = sms.find_sent("+13125550100", "Your appointment is tomorrow.", START)
    assert found is not None and found.accepted and found.provider_ref == sent.provider_ref
    assert sms.find_sent("+13125550100", "A different body", START) is None
    assert sms.find_sent("+13125550199", "Your appointment is tomorrow.", START) is None
    later = START + timedelta(minutes=11)
    assert sms.find_sent("+13125550100", "Your appointment is tomorrow.", later) is None


def test_find_sent_never_finds_a_refused_message() -> None:
    sms, _ = gateway()
    sms.send(text("+15005550001", "Hi"))
    assert sms.find_sent("+15005550001", "Hi", START) is None


def test_concurrent_sends_are_all_recorded_with_distinct_sids() -> None:
    sms, _ = gateway()

    def send_many(worker: int) -> None:
        for i in range(200):
            sms.send(text("+13125550100", ref=f"w{worker}-{i}:1"))

    threads = [threading.Thread(target=send_many, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = sms.sent
    assert len(records) == 1600
    assert len({r.sid for r in records}) == 1600


def test_sending_the_same_reference_twice_gives_two_distinct_sids() -> None:
    sms, _ = gateway()
    first, second = sms.send(text(ref="c1:1")), sms.send(text(ref="c1:1"))
    assert first.provider_ref != second.provider_ref


def test_the_null_gateway_accepts_everything_and_counts() -> None:
    from gateways.null_sms import NullSmsGateway

    sms = NullSmsGateway()
    results = [sms.send(text(ref=f"c{i}:1")) for i in range(3)]
    assert all(r.accepted for r in results) and sms.sent_count == 3
    assert len({r.provider_ref for r in results}) == 3


@pytest.mark.parametrize(("body", "segments"), [
    ("Your flu shot is due.", 1), ("a" * 161, 2), ("a" * 152 + "€" + "a" * 154, 3)])
def test_without_a_provider_the_simulator_and_null_gateways_give_our_own_segment_count(
    body: str, segments: int
) -> None:
    sms, _ = gateway()
    assert sms.send(text(body=body)).segments == segments
    found = sms.find_sent("+15005550006", body, START)
    assert found is not None and found.segments == segments
    assert NullSmsGateway().send(text(body=body)).segments == segments
