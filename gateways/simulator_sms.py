"""An SMS gateway without a network, following Twilio's test-number conventions.

The default for demos and local runs. Failures are drawn from a hash of (seed, reference),
not from a random generator, so a re-run of the same campaign fails the same attempts,
whatever the order or the threads that sent them.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from domain.sms import segment
from gateways import twilio_errors
from gateways.recent import DEFAULT_KEEP, Recent
from gateways.sms import OutboundText, SendResult, SmsGateway

# Twilio's magic 'To' numbers for test credentials: each answers with one fixed error.
TEST_NUMBER_ERRORS: dict[str, int] = {
    "+15005550001": 21211,  # invalid number
    "+15005550007": 21610,  # recipient replied STOP
    "+15005550008": 21612,  # unreachable from this sender
    "+15005550009": 21614,  # cannot receive SMS
}
TRANSIENT_ERRORS = (30003, 20429)  # handset unreachable, too many requests
E164 = re.compile(r"^\+[1-9]\d{7,14}$")


@dataclass(frozen=True)
class SimulatedMessage:
    to: str
    body: str
    reference: str
    sid: str
    at: datetime


def _unit(*parts: object) -> float:
    """A number in [0, 1) fixed by its inputs."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class SimulatorSmsGateway(SmsGateway):
    def __init__(
        self, *, now: Callable[[], datetime], failure_rate: float = 0.0, seed: int = 7,
        keep: int = DEFAULT_KEEP,
    ) -> None:
        """`now` is the application's clock: 'at' and find_sent's `since` share one time.
        Only the last `keep` messages are remembered (gateways/recent.py)."""
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate must be between 0 and 1")
        self._now = now
        self._failure_rate = failure_rate
        self._seed = seed
        self._lock = threading.Lock()
        self._sent: Recent[str, SimulatedMessage] = Recent(lambda m: m.reference, keep)
        # Sends ever made: numbers the sids, so they stay distinct even for a reference sent
        # again after its first message was forgotten.
        self._count = 0

    @property
    def sent(self) -> list[SimulatedMessage]:
        """A snapshot of the last `keep` accepted messages, oldest first."""
        return self._sent.snapshot()

    @property
    def total_sent(self) -> int:
        """Every message accepted, forgotten ones included."""
        return self._sent.total

    def send(self, message: OutboundText) -> SendResult:
        code = self._refusal(message)
        if code is not None:
            verdict = twilio_errors.classify(code)
            return SendResult.failed(str(code), verdict.reason, verdict.kind)
        with self._lock:
            # The count keeps sids distinct if one reference is (wrongly) sent twice.
            self._count += 1
            sid = "SM" + hashlib.sha256(
                f"sid:{self._seed}:{message.reference}:{self._count}".encode()).hexdigest()[:32]
            self._sent.add(
                SimulatedMessage(message.to, message.body, message.reference, sid, self._now()))
        # No provider to count them: our own count, the one campaign creation checked.
        return SendResult.ok(sid, "queued", segment(message.body).segments)

    def find_sent(self, to: str, body: str, since: datetime) -> SendResult | None:
        for record in self._sent.newest_first():
            if record.to == to and record.body == body and record.at >= since:
                return SendResult.ok(record.sid, "queued", segment(body).segments)
        return None

    def _refusal(self, message: OutboundText) -> int | None:
        if message.to in TEST_NUMBER_ERRORS:
            return TEST_NUMBER_ERRORS[message.to]
        if not E164.match(message.to):
            return 21211
        if self._failure_rate and _unit(self._seed, message.reference) < self._failure_rate:
            pick = _unit("code", self._seed, message.reference)
            return TRANSIENT_ERRORS[int(pick * len(TRANSIENT_ERRORS))]
        return None

