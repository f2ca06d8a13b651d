"""The rate cap and the pacing hold across dispatcher processes: several limiters, each with
its own database connection (as separate processes have), racing for one campaign's hour."""

from __future__ import annotations

import threading
from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from domain.pacing import HOUR, MICROSECOND
from projections.db import open_database
from workers.ratelimit import RateLimiter

NOON = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)


def most_in_any_closed_span(times: list[datetime], length: timedelta) -> int:
    return max((bisect_right(times, t + length) - i for i, t in enumerate(times)), default=0)


def test_three_racing_dispatchers_never_exceed_the_cap_in_any_hour_nor_the_pace(
        stack: str) -> None:
    # Given three limiters on separate connections, a cap of 50 per hour and a burst of 10
    limiters = [RateLimiter(open_database(stack), per_hour=50, burst=10) for _ in range(3)]
    campaign = uuid4()
    admitted: list[datetime] = []
    lock = threading.Lock()

    def dispatcher(limiter: RateLimiter, offset: int) -> None:
        # each asks for 10 sends every simulated 5 minutes for two hours
        for step in range(24):
            at = NOON + timedelta(minutes=5 * step, seconds=offset)
            sends = [(uuid4(), 1) for _ in range(10)]
            ok, _ = limiter.reserve(campaign, sends, at)
            with lock:
                admitted.extend([at] * len(ok))

    # When they race
    threads = [threading.Thread(target=dispatcher, args=(lim, n)) for n, lim in
               enumerate(limiters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then no closed hour of the ledger holds more than 50, and the cap was actually reached
    # (demand was 720); no closed minute holds more than ceil(50/60) + 10
    times = sorted(t for t in (
        datetime.fromisoformat(r[0]) for r in limiters[0].db.fetchall(
            "SELECT sent_at FROM send_ledger WHERE campaign_id = ?", (str(campaign),))))
    assert len(times) == len(admitted)
    assert most_in_any_closed_span(times, HOUR) == 50
    assert most_in_any_closed_span(times, timedelta(minutes=1)) <= 11
    assert limiters[0].sends_between(campaign, NOON, NOON + timedelta(hours=3)) == len(times)
    for limiter in limiters:
        limiter.db.close()


def test_a_redelivered_send_is_admitted_again_without_counting_twice(stack: str) -> None:
    limiter = RateLimiter(open_database(stack), per_hour=2)
    campaign, comm = uuid4(), uuid4()
    ok, _ = limiter.reserve(campaign, [(comm, 1)], NOON)
    again, _ = limiter.reserve(campaign, [(comm, 1)], NOON + timedelta(minutes=1))
    assert ok == again == [(comm, 1)]
    other, retry_at = limiter.reserve(campaign, [(uuid4(), 1), (uuid4(), 1)], NOON)
    # (the hour is closed: room again only once the sends of noon are more than 1h old)
    assert len(other) == 1 and retry_at == NOON + HOUR + MICROSECOND
    limiter.db.close()


def test_a_backlog_reserved_at_once_gets_the_burst_then_one_every_interval(
        stack: str) -> None:
    # Given 1,000 an hour with a burst of 10, and 834 overdue sends asking at 11:50
    limiter = RateLimiter(open_database(stack), per_hour=1000, burst=10)
    campaign, at = uuid4(), NOON - timedelta(minutes=10)
    backlog = [(uuid4(), 1) for _ in range(834)]
    # Then the scheduler's unlocked read says 10 may go, and when the next may
    free, free_at = limiter.room(campaign, at)
    # When they are reserved, ten are admitted and the rest told to come back 3.6 s later
    admitted, retry_at = limiter.reserve(campaign, backlog, at)
    assert admitted == backlog[:10] and free == 10
    assert retry_at == free_at == at + limiter.pace.interval
    # And in-flight intents count against the room the scheduler sees
    assert limiter.room(campaign, retry_at, pending=1) == (0, retry_at + limiter.pace.interval)
    # And coming back then, one more is admitted: the backlog is paced, not sent in a burst
    again, retry_at = limiter.reserve(campaign, backlog[10:], retry_at)
    assert again == backlog[10:11] and retry_at == at + limiter.pace.interval * 2
    limiter.db.close()


def test_a_limiter_that_remembers_its_hour_still_counts_what_another_recorded_at_that_instant(
        stack: str) -> None:
    # Given two dispatchers' limiters (each keeps the campaign's last hour in memory) and a
    # cap of 10 an hour with a burst of 10
    mine, theirs = (RateLimiter(open_database(stack), per_hour=10, burst=10) for _ in range(2))
    campaign = uuid4()
    # When mine admits 4 at noon, then theirs 4 more at the very same instant
    ok, _ = mine.reserve(campaign, [(uuid4(), 1) for _ in range(4)], NOON)
    assert len(ok) == 4 and mine.room(campaign, NOON)[0] == 6
    theirs_ok, _ = theirs.reserve(campaign, [(uuid4(), 1) for _ in range(4)], NOON)
    assert len(theirs_ok) == 4
    # Then mine sees all 8 — read from the ledger, not from its memory alone — so only 2 more
    assert mine.room(campaign, NOON)[0] == 2
    more, retry_at = mine.reserve(campaign, [(uuid4(), 1) for _ in range(5)], NOON)
    assert len(more) == 2 and retry_at == NOON + HOUR + MICROSECOND
    # And a send theirs recorded is admitted again by mine without counting twice
    assert mine.reserve(campaign, [theirs_ok[0]], NOON + timedelta(minutes=1)) == (
        [theirs_ok[0]], None)
    # And an hour later all the room is back (the old sends are forgotten, not counted)
    later = NOON + HOUR + MICROSECOND
    assert mine.room(campaign, later)[0] == 10
    for limiter in (mine, theirs):
        limiter.db.close()
