"""At most five attempts; transient failures wait (backoff + jitter), permanent ones end at once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from domain.channels import Channel

MAX_ATTEMPTS = 5
RETRIES_EXCEEDED = "Unsuccessful - Communication Retries Exceeded"


class FailureKind(StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class RetryPolicy:
    """Delay before attempt n+1 = min(base * factor**(n-1), ceiling) ± jitter.

    Jitter is derived from a hash of the communication and attempt, not from a random
    generator, so replaying history or re-running a simulation gives the same schedule,
    while a crowd of failures still spreads out instead of retrying in lockstep.
    """

    base: timedelta
    factor: float = 2.0
    ceiling: timedelta = timedelta(hours=6)
    jitter: float = 0.2  # ± fraction of the delay
    max_attempts: int = MAX_ATTEMPTS
    #: never sooner than this, jitter or not (phone: the guide's three hours)
    floor: timedelta = timedelta(0)

    def delay(self, failed_attempt: int, key: str) -> timedelta:
        if failed_attempt < 1:
            raise ValueError("attempts are numbered from 1")
        raw = min(self.base * (self.factor ** (failed_attempt - 1)), self.ceiling)
        digest = hashlib.sha256(f"{key}:{failed_attempt}".encode()).digest()
        unit = int.from_bytes(digest[:8], "big") / 2**64  # [0, 1)
        return max(self.floor, raw * (1 + self.jitter * (2 * unit - 1)))

    def next_attempt_at(
        self, failed_attempt: int, failed_at: datetime, kind: FailureKind, key: str
    ) -> datetime | None:
        """When to try again, or None when the communication must end now."""
        if kind is FailureKind.PERMANENT or failed_attempt >= self.max_attempts:
            return None
        return failed_at + self.delay(failed_attempt, key)


POLICIES: dict[Channel, RetryPolicy] = {
    Channel.TEXT: RetryPolicy(base=timedelta(minutes=15)),
    # Phytel: the next phone attempt comes three hours after the last, never sooner (the
    # jitter only ever adds to it).
    Channel.PHONE: RetryPolicy(base=timedelta(hours=3), factor=1.0, jitter=0.05,
                               floor=timedelta(hours=3)),
    Channel.EMAIL: RetryPolicy(base=timedelta(minutes=30)),
    Channel.LETTER: RetryPolicy(base=timedelta(hours=1)),
}
