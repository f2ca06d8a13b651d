"""A PaceWindow answers the pacing rule's two questions exactly as the plain functions do
over the same sends — whatever the sends, the instant, the sends counted as extra, and the
old sends it has forgotten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.pacing import HOUR, Pace, next_free, room
from domain.pacing_window import BLOCK, PaceWindow

NOON = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)

paces = st.builds(Pace, per_hour=st.integers(1, 400), burst=st.integers(1, 12))
# Gaps between sends, in µs: many equal times, many near the emission interval, some hours.
gaps = st.one_of(st.just(0), st.integers(1, 50_000_000), st.integers(0, 2 * 3_600_000_000))


@settings(max_examples=300, deadline=None)
@given(pace=paces, steps=st.lists(gaps, max_size=3 * BLOCK + 5),
       asks=st.lists(st.tuples(st.integers(0, 2 * 3_600_000_000), st.integers(0, 14)),
                     min_size=1, max_size=6),
       forget=st.booleans())
def test_a_window_gives_the_plain_rules_answers_at_every_instant_after_its_last_send(
        pace: Pace, steps: list[int], asks: list[tuple[int, int]], forget: bool) -> None:
    window = PaceWindow(pace)
    sent: list[datetime] = []
    t = NOON
    for gap in steps:
        t += timedelta(microseconds=gap)
        sent.append(t)
        window.append(t)
        if forget:
            # What a limiter does: nothing an hour before the last send is needed again.
            window.forget_before(t - HOUR)
    for later, extra in asks:
        at = (sent[-1] if sent else NOON) + timedelta(microseconds=later)
        assert window.room(at) == room(sent, at, pace)
        assert window.next_free(at, extra) == next_free([*sent, *[at] * extra], at, pace)
    # Counting extra sends leaves the window as it was.
    at = (sent[-1] if sent else NOON)
    assert window.room(at) == room(sent, at, pace)


def test_a_full_campaign_hour_is_answered_from_a_few_blocks_after_forgetting_the_rest() -> None:
    pace = Pace(per_hour=3_600, burst=10)
    window = PaceWindow(pace)
    sent = [NOON + timedelta(seconds=k) for k in range(3 * 3_600)]
    for at in sent:
        window.append(at)
        window.forget_before(at - HOUR)
    # Three hours sent; kept: the last hour, and at most as much again before it is cut.
    assert len(window) <= 2 * 3_601 + BLOCK
    at = sent[-1] + timedelta(milliseconds=500)
    assert window.room(at) == room(sent, at, pace) == 0
    assert window.next_free(at) == next_free(sent, at, pace)


def test_sends_out_of_time_order_are_refused() -> None:
    window = PaceWindow(Pace(per_hour=10))
    window.append(NOON)
    with pytest.raises(ValueError):
        window.append(NOON - timedelta(microseconds=1))
    with pytest.raises(ValueError):
        window.next_free(NOON - timedelta(seconds=1), extra=1)
