"""A campaign's content as staff give it, checked per channel before anything is saved:
texts (body, help number, footer) and emails (template, logo, subject, body pasted from
Word, from address and name, merge fields checked now, never at send time)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from application.email_content import check_email_content, html_to_text, sanitise_html
from application.email_merge import check_merge_fields
from application.settings import Settings
from application.templates import Template
from application.templates import template as find_template
from domain.channels import Channel
from domain.errors import InvalidContent
from domain.voice import check_script, check_voicemail_script

DEFAULT_EMAIL_TEMPLATE = "Ad hoc email"
DEFAULT_PHONE_TEMPLATE = "Ad hoc phone call"
_CARE_MANAGER = re.compile(r"\{\{\s*care_manager\s*\}\}")
PHONE_FIELDS = ("template", "script", "voicemail", "callback_number", "caller_id",
                "provider", "care_manager")
#: what an answering machine hears unless the campaign gives its own: a name, who called
#: and a number to call back, nothing about health (HIPAA)
DEFAULT_VOICEMAIL = ("Hello, this message is for {{ first_name }}. This is {{ organisation }} "
                     "calling. Please call us back at {{ help_number }}. Thank you.")
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


def phone_content(settings: Settings, given: Mapping[str, Any],
                  base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A phone campaign's content: the script (a template's, not editable where the template
    says so), the voicemail left on a machine (no health information), the call-back number
    spoken, the caller ID shown, the provider and care manager named."""
    fields = {k: v for k, v in given.items() if v is not None}
    name = str(fields.get("template") or (base or {}).get("template")
               or DEFAULT_PHONE_TEMPLATE)
    tpl = find_template(name)
    if tpl.channel != Channel.PHONE:
        raise InvalidContent(f"template {tpl.name!r} is for {tpl.channel} campaigns, not phone")
    content: dict[str, Any] = dict(base) if base else {
        "script": tpl.body, "voicemail": DEFAULT_VOICEMAIL,
        "callback_number": settings.help_number, "caller_id": None, "provider": "",
        "care_manager": ""}
    content.update(fields)
    content["template"] = tpl.name
    script = " ".join(str(content.get("script") or "").split())
    template_script = " ".join(tpl.body.split())
    if not tpl.editable and script != template_script:
        raise InvalidContent(f"the template {tpl.name!r} cannot be edited: keep its script, or "
                             "choose 'Ad hoc phone call' to write your own")
    for key in ("provider", "care_manager"):
        value = str(content.get(key) or "")
        if "\n" in value or len(value) > 100:
            raise InvalidContent(f"the {key.replace('_', ' ')} must be one short line")
        content[key] = value.strip()
    # The care manager is the campaign's, not each patient's: named once, spoken as given.
    if _CARE_MANAGER.search(script):
        if not content["care_manager"]:
            raise InvalidContent("the script names {{ care_manager }}: give --care-manager")
        script = _CARE_MANAGER.sub(content["care_manager"], script)
    check_script(script, "phone script")
    check_merge_fields(script, "script")
    voicemail = " ".join(str(content.get("voicemail") or "").split())
    check_merge_fields(voicemail, "voicemail script")
    check_voicemail_script(voicemail)
    callback = str(content.get("callback_number") or "").strip()
    if not callback:
        raise InvalidContent("a phone campaign needs a call-back number (--callback-number)")
    content.update(script=script, voicemail=voicemail, callback_number=callback,
                   help_number=callback)
    return content


LETTER_FIELDS = ("page_size", "greeting", "body", "return_address", "logo", "mail_date")


def letter_content(settings: Settings, given: Mapping[str, Any],
                   base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A letter campaign's content: page size (Letter or A4), the "Dear <first name>,"
    greeting on or off, the body (sanitised rich text), one of the organisation's return
    addresses (its lines copied in, so a later change of the list leaves the campaign as it
    was), the letterhead logo's name and the mail date printed (default: the start date)."""
    fields = {k: v for k, v in given.items() if v is not None}
    content: dict[str, Any] = dict(base) if base else {
        "page_size": "Letter", "greeting": True, "logo": "", "mail_date": None}
    content.update(fields)
    size = {"letter": "Letter", "a4": "A4"}.get(str(content.get("page_size")).lower())
    if size is None:
        raise InvalidContent("the page size is Letter or A4")
    body = sanitise_html(str(content.get("body") or ""))
    if not html_to_text(body):
        raise InvalidContent("a letter needs a body (nothing readable is left once unsafe "
                             "HTML is removed)")
    if "{{" in body or "{%" in body:
        raise InvalidContent("letters take no merge fields: the greeting names the patient")
    book = settings.return_address_book
    chosen = content.get("return_address")
    if isinstance(chosen, list | tuple):  # already resolved (an edit keeps it)
        lines = tuple(str(x) for x in chosen)
    else:
        name = str(chosen or (next(iter(book)) if len(book) == 1 else ""))
        if not book:
            raise InvalidContent("the organisation has no return address: set "
                                 "OUTREACH_RETURN_ADDRESSES")
        if name not in book:
            raise InvalidContent(f"choose a return address (--return-address): "
                                 f"{', '.join(sorted(book))}")
        lines = book[name]
    logo = str(content.get("logo") or "")
    if logo and logo not in settings.letter_logo_files:
        known = ", ".join(sorted(settings.letter_logo_files)) or \
            "none configured (OUTREACH_LETTER_LOGOS)"
        raise InvalidContent(f"unknown letterhead logo {logo!r}; the organisation's: {known}")
    mail_date = content.get("mail_date")
    if mail_date is not None:
        try:
            mail_date = date.fromisoformat(str(mail_date)).isoformat()
        except ValueError:
            raise InvalidContent(f"the mail date {mail_date!r} is not YYYY-MM-DD") from None
    content.update(page_size=size, greeting=bool(content.get("greeting")), body=body,
                   return_address=list(lines), logo=logo, mail_date=mail_date)
    return content
