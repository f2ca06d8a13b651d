"""Rendering one patient's email for the dispatcher: the campaign's, or the introductory
email in its place, with the one-click unsubscribe link (a signed token, no PHI) that every
email carries. The pure pieces (sanitising, merge fields, layout) are email_content's."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from application.email_content import (
    MergeValues,
    RenderedEmail,
    introduction_email,
    render_email,
    valid_recipient,
)
from application.ports import PatientContact
from application.settings import Settings
from application.unsubscribe import UnsubscribeTokens
from domain.email import INTRODUCTION
from gateways.email import OutboundEmail

#: where unsubscribe links point when no public URL is configured (the simulator only:
#: `outreach serve` answers there on a developer's machine)
LOCAL_URL = "http://127.0.0.1:8000"


class EmailComposition:
    def __init__(self, settings: Settings, tokens: UnsubscribeTokens) -> None:
        self.settings = settings
        self.tokens = tokens

    @property
    def public_url(self) -> str:
        return self.settings.public_url or LOCAL_URL

    def values(self, contact: PatientContact | None, content: dict[str, Any]) -> MergeValues:
        organisation = self.settings.organisation
        return MergeValues(
            first_name=contact.first_name if contact else "Pat",
            last_name=contact.last_name if contact else "Example",
            provider=(contact.provider if contact else "") or organisation,
            help_number=str(content.get("help_number") or self.settings.help_number),
            organisation=organisation,
        )

    def logo_url(self, content: dict[str, Any]) -> str | None:
        name = str(content.get("logo", ""))
        return self.settings.logos.get(name) if name else None

    def render(self, content: dict[str, Any], contact: PatientContact | None, purpose: str,
               unsubscribe_url: str) -> RenderedEmail:
        values = self.values(contact, content)
        logo = self.logo_url(content)
        if purpose == INTRODUCTION:
            return introduction_email(values, unsubscribe_url=unsubscribe_url, logo_url=logo)
        return render_email(content, values, unsubscribe_url=unsubscribe_url, logo_url=logo)

    def compose(self, communication_id: UUID, attempt: int, content: dict[str, Any],
                contact: PatientContact, purpose: str) -> OutboundEmail:
        link = self.tokens.url(self.public_url, communication_id)
        rendered = self.render(content, contact, purpose, link)
        return OutboundEmail(
            to=valid_recipient(str(contact.email)) or str(contact.email),
            from_address=str(content.get("from_address") or self.settings.email_from_address),
            from_name=str(content.get("from_name") or self.settings.email_from_name
                          or self.settings.organisation),
            subject=rendered.subject, html=rendered.html, text=rendered.text,
            reference=f"{communication_id}:{attempt}", unsubscribe_url=link)

    def recipient(self, address: str) -> str | None:
        return valid_recipient(address)
