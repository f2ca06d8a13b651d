"""What patients and providers send back, already parsed and verified by a gateway."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.keywords import Keyword, keyword_for
from domain.retry import FailureKind


@dataclass(frozen=True)
class InboundText:
    """A text a patient sent us. `message_ref` (Twilio MessageSid) makes duplicates harmless."""

    message_ref: str
    from_number: str  # E.164
    to_number: str
    body: str
    received_at: datetime
    #: the provider's own reading of the message (Twilio's OptOutType, with Advanced
    #: Opt-Out): when given, it decides over our word list (domain.keywords.keyword_for)
    provider_keyword: Keyword | None = None

    @property
    def keyword(self) -> Keyword | None:
        return keyword_for(self.body, self.provider_keyword)


@dataclass(frozen=True)
class DeliveryReceipt:
    """A provider's status callback for a message we sent.

    `reference` is our "<communication id>:<attempt>" carried in the callback URL, so a
    receipt finds its communication even when the send's outcome was never recorded.
    """

    provider_ref: str
    reference: str
    status: str  # provider words: queued, sent, delivered, undelivered, failed, …
    error_code: str
    received_at: datetime
    # For a failure: whether another attempt could help, and why (no PHI), decided by the
    # gateway that knows the provider's codes.
    kind: FailureKind = FailureKind.TRANSIENT
    reason: str = ""
