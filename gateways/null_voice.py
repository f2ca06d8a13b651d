"""A voice gateway that places every call at once and hears nothing back: measures our
throughput, not Twilio's (and stands in where calls do not matter)."""

from __future__ import annotations

import threading
from datetime import datetime

from gateways.sms import SendResult
from gateways.voice import OutboundCall, VoiceGateway


class NullVoiceGateway(VoiceGateway):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def place_call(self, call: OutboundCall) -> SendResult:
        with self._lock:
            self._count += 1
            number = self._count
        return SendResult.ok(f"CA{number:032x}", "queued")

    def find_call(self, to: str, since: datetime,
                  from_number: str | None = None) -> SendResult | None:
        return None  # remembers nothing, by design

    def play(self, call_sid: str, twiml: str) -> bool:
        return False
