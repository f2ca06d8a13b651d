"""An email gateway that accepts everything at once: measures our throughput, not SES's."""

from __future__ import annotations

import threading
from datetime import datetime

from gateways.email import EmailGateway, OutboundEmail, SendResult


class NullEmailGateway(EmailGateway):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    @property
    def sent_count(self) -> int:
        with self._lock:
            return self._count

    def send(self, message: OutboundEmail) -> SendResult:
        with self._lock:
            self._count += 1
            number = self._count
        return SendResult.ok(f"0100{number:056x}", "sent")

    def find_sent(self, reference: str, since: datetime) -> SendResult | None:
        return None  # remembers nothing, by design: a benchmark must not grow per message
