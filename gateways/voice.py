"""The voice port: what a dispatcher needs from any automated-call provider."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from gateways.sms import SendResult

TWIML_PATH = "/webhooks/twilio/voice/twiml"
STATUS_PATH = "/webhooks/twilio/voice/status"
AMD_PATH = "/webhooks/twilio/voice/amd"
GATHER_PATH = "/webhooks/twilio/voice/gather"


@dataclass(frozen=True)
class OutboundCall:
    to: str  # E.164
    #: the campaign's caller-ID number; None: the gateway's configured number
    from_number: str | None
    reference: str  # "<communication id>:<attempt>": correlates every callback
    #: where the provider fetches the script when the call connects (our webhook)
    twiml_url_path: str = TWIML_PATH
    #: inline TwiML instead of a fetch (a test call without a public URL: no key presses,
    #: no callbacks)
    twiml: str | None = None


class VoiceGateway(ABC):
    @abstractmethod
    def place_call(self, call: OutboundCall) -> SendResult:
        """Never raises for provider or network trouble: a failed SendResult says whether a
        retry can help, an `outcome_unknown` one that the call may have been placed (ask
        `find_call` before calling that patient again)."""

    @abstractmethod
    def find_call(self, to: str, since: datetime,
                  from_number: str | None = None) -> SendResult | None:
        """Reconciliation after a crash: a call to `to` created at or after `since` that
        the provider did not fail or cancel. Raises ConnectionError when it cannot ask."""

    @abstractmethod
    def play(self, call_sid: str, twiml: str) -> bool:
        """Replace what a live call is playing (the voicemail script once the answering
        machine's beep is heard). False when the call has already ended."""
