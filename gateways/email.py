"""The email port: what a dispatcher (and a test send) needs from any email provider."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from gateways.sms import SendResult

__all__ = ["EmailGateway", "OutboundEmail", "ProviderLookupPending", "SendResult"]


@dataclass(frozen=True)
class OutboundEmail:
    """One email, fully rendered. `reference` is "<communication id>:<attempt>" (or
    "<campaign id>:test" for a test send): idempotency, and how the provider's events find
    their communication again. `unsubscribe_url` is the one-click link (RFC 8058) every
    email carries in `List-Unsubscribe`; it holds a signed token, never PHI."""

    to: str
    from_address: str
    from_name: str
    subject: str
    html: str
    text: str
    reference: str
    unsubscribe_url: str


class ProviderLookupPending(ConnectionError):
    """The provider cannot be asked whether a message went (SES has no such API): its
    events will tell. Until they had time to arrive, an attempt with an unknown outcome
    stays open; a ConnectionError, so the dispatcher leaves it for a later pass."""


class EmailGateway(ABC):
    @abstractmethod
    def send(self, message: OutboundEmail) -> SendResult:
        """Never raises for provider or network trouble: a failed SendResult (throttling
        is transient), or `outcome_unknown` when the request may have reached the provider."""

    @abstractmethod
    def find_sent(self, reference: str, since: datetime) -> SendResult | None:
        """Reconciliation: did the provider take the message with this reference since
        `since`? None: it did not. Raises ProviderLookupPending (or another ConnectionError)
        when that cannot be known yet."""

    def max_send_rate(self) -> float | None:
        """The provider's sending quota in emails per second (SES: the account's
        MaxSendRate), or None when it sets none."""
        return None
