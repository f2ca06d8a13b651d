"""An SMS gateway that accepts everything at once: measures our throughput, not a provider's."""

from __future__ import annotations

import threading
from datetime import datetime

from domain.sms import segment
from gateways.sms import OutboundText, SendResult, SmsGateway


class NullSmsGateway(SmsGateway):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    @property
    def sent_count(self) -> int:
        with self._lock:
            return self._count

    def send(self, message: OutboundText) -> SendResult:
        with self._lock:
            self._count += 1
            number = self._count
        return SendResult.ok(f"SM{number:032x}", "queued", segment(message.body).segments)

    def find_sent(self, to: str, body: str, since: datetime) -> SendResult | None:
        # Remembers nothing, by design: a benchmark must not grow memory per message.
        return None
