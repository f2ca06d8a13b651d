"""The port the HTTP webhooks call once a provider payload is parsed and verified."""

from __future__ import annotations

from abc import ABC, abstractmethod

from domain.inbound import DeliveryReceipt, InboundText


class InboundHandler(ABC):
    @abstractmethod
    def on_text(self, message: InboundText) -> str | None:
        """Record a patient's text (STOP/START/HELP or a reply). Returns the reply to send
        back (HELP answer) or None. A duplicate message_ref changes nothing."""

    @abstractmethod
    def on_receipt(self, receipt: DeliveryReceipt) -> None:
        """Apply a delivery receipt. Duplicates change nothing."""
