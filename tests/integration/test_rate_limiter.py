"""The rate cap holds across dispatcher processes: several limiters, each with its own
database connection (as separate processes have), racing for one campaign's hour."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from projections.db import open_database
from workers.ratelimit import RateLimiter

NOON = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)


def test_three_racing_dispatchers_never_exceed_the_cap_in_any_hour(stack: str) -> None:
    # Given three limiters on separate connections and a cap of 50 per hour
    limiters = [RateLimiter(open_database(stack), per_hour=50) for _ in range(3)]
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
    # Then no hour of the ledger holds more than 50, and the cap was actually reached
    # (demand was 720)
    times = sorted(t for t in (
        datetime.fromisoformat(r[0]) for r in limiters[0].db.fetchall(
            "SELECT sent_at FROM send_ledger WHERE campaign_id = ?", (str(campaign),))))
    assert len(times) == len(admitted)
    assert max(sum(1 for u in times if t <= u < t + timedelta(hours=1)) for t in times) == 50
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
    assert len(other) == 1 and retry_at == NOON + timedelta(hours=1)
    limiter.db.close()
