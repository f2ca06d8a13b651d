"""A voice gateway without a network that calls like Twilio: the default for demos and local
runs. Every placed call queues the callbacks Twilio would send (status steps, the async
answering-machine verdict, a key press), already parsed; the embedded runner drains them
(`drain_events`) and applies them as `outreach serve` applies Twilio's webhooks.

What happens depends on the number called (Twilio's own test numbers aside, any number):
- +15005550001: an invalid number — "failed" with error 21211 (Dial Error, never retried);
- last digit 1: an answering machine — AMD machine_end_beep, the voicemail is played
  (`play`), completed;
- last digit 2: busy on the communication's first attempt, a live answer on later ones;
- last digit 3: never answered — "no-answer" on every attempt;
- last digit 9: a person answers and presses 9 (the opt-out);
- anything else: a person answers, hears the message and hangs up.
A call with inline TwiML (a test call) queues nothing, as Twilio posts no webhooks for it.
With `failure_rate`, calls drawn from a hash of (seed, reference) are refused as Twilio
refuses an account over its limits (20429, retried): a re-run fails the same attempts.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domain.retry import FailureKind
from gateways.recent import DEFAULT_KEEP, Recent
from gateways.sms import SendResult
from gateways.twilio_voice_webhooks import AmdResult, CallStatus, GatherResult
from gateways.voice import OutboundCall, VoiceGateway

INVALID_NUMBER = "+15005550001"  # Twilio's magic test number for an invalid "To"
INVALID_NUMBER_CODE = "21211"
NOT_PLACED = frozenset({"failed", "canceled"})

VoiceEvent = CallStatus | AmdResult | GatherResult


@dataclass
class SimulatedCall:
    to: str
    reference: str
    at: datetime
    sid: str
    final_status: str
    #: the TwiML given to `play` (the voicemail once the machine's beep is heard), in order
    played: list[str] = field(default_factory=list)


def _unit(*parts: object) -> float:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _attempt_of(reference: str) -> int | None:
    tail = reference.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None


class SimulatorVoiceGateway(VoiceGateway):
    def __init__(self, *, now: Callable[[], datetime], seed: int = 7,
                 failure_rate: float = 0.0, keep: int = DEFAULT_KEEP) -> None:
        """Only the last `keep` calls are remembered (gateways/recent.py)."""
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate must be between 0 and 1")
        self._now = now
        self._seed = seed
        self._failure_rate = failure_rate
        self._lock = threading.Lock()
        self._calls: Recent[str, SimulatedCall] = Recent(lambda c: c.sid, keep)
        self._events: list[VoiceEvent] = []
        self._count = 0

    @property
    def calls(self) -> list[SimulatedCall]:
        """The last `keep` calls, oldest first."""
        return self._calls.snapshot()

    def place_call(self, call: OutboundCall) -> SendResult:
        if self._failure_rate and _unit(self._seed, call.reference) < self._failure_rate:
            return SendResult.failed("20429", "too many requests", FailureKind.TRANSIENT)
        now = self._now()
        with self._lock:
            self._count += 1
            sid = "CA" + hashlib.sha256(
                f"call:{self._seed}:{call.reference}:{self._count}".encode()).hexdigest()[:32]
            steps = [] if call.twiml is not None else self._script(call, sid, now)
            final = next((s.status for s in reversed(steps) if isinstance(s, CallStatus)),
                         "completed")
            record = SimulatedCall(call.to, call.reference, now, sid, final)
            self._calls.add(record)
            self._events.extend(steps)
        return SendResult.ok(sid, "queued")

    def _script(self, call: OutboundCall, sid: str, now: datetime) -> list[VoiceEvent]:
        """The callbacks Twilio sends for this number, in the order it sends them."""
        ref, number = call.reference, call.to
        seq = iter(range(100))

        def status(name: str, second: int, answered_by: str | None = None,
                   error: str | None = None, duration: int | None = None) -> CallStatus:
            return CallStatus(sid, ref, name, answered_by, error, duration, next(seq),
                              now + timedelta(seconds=second))

        if number == INVALID_NUMBER:
            return [status("initiated", 0), status("failed", 1, error=INVALID_NUMBER_CODE)]
        last = number[-1:]
        if last == "2" and _attempt_of(ref) == 1:
            return [status("initiated", 0), status("ringing", 1), status("busy", 3)]
        if last == "3":
            return [status("initiated", 0), status("ringing", 1), status("no-answer", 31)]
        if last == "1":
            return [status("initiated", 0), status("ringing", 1), status("in-progress", 6),
                    AmdResult(sid, ref, "machine_end_beep", 12000,
                              now + timedelta(seconds=18)),
                    status("completed", 40, "machine_end_beep", duration=34)]
        steps: list[VoiceEvent] = [
            status("initiated", 0), status("ringing", 1), status("in-progress", 5),
            AmdResult(sid, ref, "human", 1800, now + timedelta(seconds=7))]
        if last == "9":
            steps.append(GatherResult(sid, ref, "9", now + timedelta(seconds=30)))
        steps.append(status("completed", 35, "human", duration=30))
        return steps

    def drain_events(self) -> list[VoiceEvent]:
        """The callbacks Twilio would have sent since the last call, oldest first."""
        with self._lock:
            events, self._events = self._events, []
        return events

    def find_call(self, to: str, since: datetime,
                  from_number: str | None = None) -> SendResult | None:
        with self._lock:
            found = [c for c in self._calls.snapshot()
                     if c.to == to and c.at >= since and c.final_status not in NOT_PLACED]
        if not found:
            return None
        newest = max(found, key=lambda c: c.at)
        return SendResult.ok(newest.sid, newest.final_status)

    def play(self, call_sid: str, twiml: str) -> bool:
        """Recorded on the call; False for a call this simulator never placed or that never
        connected (Twilio: "Call is not in-progress")."""
        with self._lock:
            same = self._calls.with_key(call_sid)
            record = same[-1] if same else None
            if record is None or record.final_status != "completed":
                return False
            record.played.append(twiml)
        return True
