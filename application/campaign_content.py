"""A campaign's content as staff give it, checked per channel before anything is saved:
texts (body, help number, footer) and emails (template, logo, subject, body pasted from
Word, from address and name, merge fields checked now, never at send time)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from application.email_content import check_email_content
from application.settings import Settings
from application.templates import Template
from application.templates import template as find_template
from domain.channels import Channel
from domain.errors import InvalidContent

DEFAULT_EMAIL_TEMPLATE = "Ad hoc email"
EMAIL_FIELDS = ("template", "logo", "subject", "body", "from_address", "from_name",
                "help_number")


def text_content(settings: Settings, body: str, help_number: str,
                 protocol: str = "") -> dict[str, Any]:
    content: dict[str, Any] = {"body": body, "help_number": help_number,
                               "footer": settings.text_footer}
    if protocol:
        content["protocol"] = protocol
    return content


def email_content(settings: Settings, given: Mapping[str, Any],
                  base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`given`: the fields staff set (None = not given); `base`: the content being edited
    (a new campaign starts from its template's subject and body)."""
    fields = {k: v for k, v in given.items() if v is not None}
    name = str(fields.get("template") or (base or {}).get("template")
               or DEFAULT_EMAIL_TEMPLATE)
    tpl = find_template(name)
    if tpl.channel != Channel.EMAIL:
        raise InvalidContent(f"template {tpl.name!r} is for {tpl.channel} campaigns, not email")
    content: dict[str, Any] = dict(base) if base else {
        "subject": tpl.subject, "body": tpl.body,
        "from_address": settings.email_from_address,
        "from_name": settings.email_from_name or settings.organisation,
        "help_number": settings.help_number, "logo": ""}
    content.update(fields)
    content["template"] = tpl.name
    content["logo"] = _logo(settings, tpl, str(content.get("logo") or ""))
    protocol = str(content.pop("protocol", "") or "")
    checked = check_email_content(content)
    if protocol:
        checked["protocol"] = protocol
    return checked


def _logo(settings: Settings, tpl: Template, chosen: str) -> str:
    """The guide: a template with a logo shows one of the organisation's logos; with only
    one, it is chosen for you. A template without a logo refuses one (email_content)."""
    logos = settings.logos
    if chosen:
        if tpl.logo != "none" and chosen not in logos:
            known = ", ".join(sorted(logos)) or "none configured (OUTREACH_EMAIL_LOGOS)"
            raise InvalidContent(f"unknown logo {chosen!r}; the organisation's logos: {known}")
        return chosen
    if tpl.logo == "none":
        return ""
    if len(logos) == 1:
        return next(iter(logos))
    if tpl.logo == "optional":
        return ""
    if not logos:
        raise InvalidContent(f"the template {tpl.name!r} shows a logo, but the organisation "
                             "has none: set OUTREACH_EMAIL_LOGOS or choose 'Ad hoc email'")
    raise InvalidContent(f"choose a logo (--logo): {', '.join(sorted(logos))}")
