"""The SMS port: what a dispatcher needs from any text-message provider."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from domain.retry import FailureKind


@dataclass(frozen=True)
class OutboundText:
    to: str  # E.164
    body: str
    reference: str  # "<communication id>:<attempt>": idempotency and receipt correlation


@dataclass(frozen=True)
class SendResult:
    """The provider's answer. A refused send says whether trying again could help."""

    accepted: bool
    provider_ref: str = ""
    status: str = ""
    error_code: str = ""
    error_message: str = ""  # provider words, never the number or the body
    kind: FailureKind | None = None
    #: True when nobody can tell whether the provider took the message (a timeout after the
    #: request was sent, a connection lost after the body was written, a 2xx we cannot
    #: read). Not a failure: before any further attempt the provider must be asked.
    unknown: bool = False
    #: segments the provider will bill for an accepted message (Twilio's num_segments);
    #: None when it did not say
    segments: int | None = None

    @classmethod
    def ok(cls, provider_ref: str, status: str = "queued",
           segments: int | None = None) -> SendResult:
        return cls(True, provider_ref=provider_ref, status=status, segments=segments)

    @classmethod
    def failed(cls, code: str, message: str, kind: FailureKind) -> SendResult:
        return cls(False, status="failed", error_code=code, error_message=message, kind=kind)

    @classmethod
    def outcome_unknown(cls, code: str, message: str) -> SendResult:
        return cls(False, status="unknown", error_code=code, error_message=message,
                   unknown=True)


class SmsGateway(ABC):
    @abstractmethod
    def send(self, message: OutboundText) -> SendResult:
        """Never raises for provider or network trouble: those become a failed SendResult,
        or an `outcome_unknown` one when the request may have reached the provider (then
        the caller must ask `find_sent` before sending that message again)."""

    @abstractmethod
    def find_sent(self, to: str, body: str, since: datetime) -> SendResult | None:
        """Reconciliation after a crash between 'attempt started' and 'outcome recorded':
        did the provider take a message to `to` with this body since `since`?"""
