"""An email gateway without a network that behaves like Amazon SES's mailbox simulator.

The default for demos and local runs. Addresses at simulator.amazonses.com answer as SES
documents: success@ is delivered; bounce@ bounces definitively (hard); ooto@ is delivered and
its out-of-office reply is not a bounce; complaint@ is delivered and the recipient marks it as
spam; suppressionlist@ bounces as an address on the suppression list. Any other address is
delivered. Like SES, the outcome comes later, as events (`drain_events`), which the embedded
runner applies as `outreach serve` applies SES's notifications. Failures drawn from a hash of
(seed, reference) make a re-run fail the same attempts (as the SMS simulator does).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.email import EmailEvent, EmailEventKind
from domain.retry import FailureKind
from gateways.email import EmailGateway, OutboundEmail, SendResult
from gateways.recent import DEFAULT_KEEP, Recent

SIMULATOR_DOMAIN = "simulator.amazonses.com"
#: what SES's mailbox simulator does with each address: events after the Send
MAILBOX: dict[str, tuple[tuple[EmailEventKind, str], ...]] = {
    "success": ((EmailEventKind.DELIVERY, ""),),
    "bounce": ((EmailEventKind.HARD_BOUNCE, "Permanent/General"),),
    "ooto": ((EmailEventKind.DELIVERY, ""),),  # the auto-reply goes to the sender's inbox
    "complaint": ((EmailEventKind.DELIVERY, ""), (EmailEventKind.COMPLAINT, "abuse")),
    "suppressionlist": ((EmailEventKind.HARD_BOUNCE, "Permanent/OnAccountSuppressionList"),),
}


@dataclass(frozen=True)
class SimulatedEmail:
    message: OutboundEmail
    message_id: str
    at: datetime


def _unit(*parts: object) -> float:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class SimulatorEmailGateway(EmailGateway):
    def __init__(self, *, now: Callable[[], datetime], failure_rate: float = 0.0,
                 seed: int = 7, keep_messages: bool = True, keep: int = DEFAULT_KEEP) -> None:
        """Only the last `keep` messages are remembered (gateways/recent.py); none at all
        with keep_messages=False."""
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate must be between 0 and 1")
        self._now = now
        self._failure_rate = failure_rate
        self._seed = seed
        self._keep = keep_messages
        self._lock = threading.Lock()
        self._sent: Recent[str, SimulatedEmail] = Recent(lambda e: e.message.reference, keep)
        self._events: list[EmailEvent] = []
        self._count = 0

    @property
    def sent(self) -> list[SimulatedEmail]:
        """The last `keep` messages, oldest first."""
        return self._sent.snapshot()

    def send(self, message: OutboundEmail) -> SendResult:
        local, _, domain = message.to.lower().rpartition("@")
        if not local or not domain:
            return SendResult.failed("InvalidParameterValue", "invalid recipient address",
                                     FailureKind.PERMANENT)
        if self._failure_rate and _unit(self._seed, message.reference) < self._failure_rate:
            # What a busy SES answers: throttled, try again later.
            return SendResult.failed("TooManyRequestsException", "sending rate exceeded",
                                     FailureKind.TRANSIENT)
        now = self._now()
        with self._lock:
            self._count += 1
            message_id = "0100" + hashlib.sha256(
                f"ses:{self._seed}:{message.reference}:{self._count}".encode()).hexdigest()[:56]
            record = SimulatedEmail(message, message_id, now)
            if self._keep:
                self._sent.add(record)
            outcomes = MAILBOX.get(local.split("+")[0], MAILBOX["success"]) \
                if domain == SIMULATOR_DOMAIN else MAILBOX["success"]
            self._events.append(self._event(message, message_id, EmailEventKind.SEND, "",
                                            now, 0))
            for n, (kind, detail) in enumerate(outcomes, start=1):
                self._events.append(self._event(message, message_id, kind, detail, now, n))
        return SendResult.ok(message_id, "sent")

    def _event(self, message: OutboundEmail, message_id: str, kind: EmailEventKind,
               detail: str, at: datetime, n: int) -> EmailEvent:
        return EmailEvent(event_id=f"{message_id}:{n}", kind=kind, provider_ref=message_id,
                          reference=message.reference,
                          occurred_at=at + timedelta(seconds=2 * n), detail=detail)

    def drain_events(self) -> list[EmailEvent]:
        """The events SES would have published since the last call, oldest first."""
        with self._lock:
            events, self._events = self._events, []
        return events

    def find_sent(self, reference: str, since: datetime) -> SendResult | None:
        same = self._sent.with_key(reference)
        record = same[-1] if same else None
        if record is not None and record.at >= since:
            return SendResult.ok(record.message_id, "sent")
        return None
