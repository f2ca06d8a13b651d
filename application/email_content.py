"""An email campaign's content: checked when staff save it, rendered for each patient.

The content dict stored on the Campaign aggregate:
`{"template", "logo", "subject", "body" (sanitised HTML), "from_address", "from_name",
"help_number"}`. `check_email_content` is the one gate at create/edit time; `render_email`
and `introduction_email` build what a patient receives: the HTML document (logo, body, a
footer with the organisation, the help number and the unsubscribe link) and its plain-text
alternative. The HTML helpers live in email_html, the merge fields in email_merge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

from email_validator import EmailNotValidError, validate_email

from application.email_html import html_to_text, sanitise_html
from application.email_merge import MERGE_FIELDS, check_merge_fields, render
from application.templates import Template, template
from domain.errors import DomainError, InvalidContent

__all__ = [
    "MERGE_FIELDS", "MergeValues", "RenderedEmail", "check_email_content",
    "check_merge_fields", "html_to_text", "introduction_email", "render", "render_email",
    "sanitise_html", "valid_recipient",
]

SUBJECT_MAX = 200
FROM_NAME_MAX = 100
HELP_NUMBER_MAX = 40
LOGO_NAME_MAX = 100
UNSUBSCRIBE_WORDS = "Unsubscribe from health reminder emails"
EMAIL_CHANNEL = "email"


@dataclass(frozen=True)
class MergeValues:
    """One patient's merge-field values (MERGE_FIELDS names)."""

    first_name: str
    last_name: str
    provider: str
    help_number: str
    organisation: str

    def as_dict(self) -> dict[str, str]:
        return {
            "first_name": self.first_name,
            "last_name": self.last_name,
            # A patient without an attributed provider still reads a sensible sentence.
            "provider": self.provider.strip() or self.organisation,
            "help_number": self.help_number,
            "organisation": self.organisation,
        }


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


# -- checking what staff saved ---------------------------------------------------------------

def _one_line(value: Any, what: str, limit: int, *, required: bool = True) -> str:
    text = "" if value is None else str(value)
    if "\r" in text or "\n" in text:
        raise InvalidContent(f"the {what} must be one line")
    text = text.strip()
    if required and not text:
        raise InvalidContent(f"the {what} is required")
    if len(text) > limit:
        raise InvalidContent(f"the {what} is {len(text)} characters; at most {limit} fit")
    return text


def _from_address(value: Any) -> str:
    address = _one_line(value, "from address", 254)
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        reason = " ".join(str(exc).split())
        raise InvalidContent(f"the from address is not a valid email address: {reason}"
                             ) from None


def _chosen_template(name: Any) -> Template:
    try:
        chosen = template(str(name or ""))
    except DomainError as exc:  # NotFound: the content is what staff must fix
        raise InvalidContent(str(exc)) from None
    if chosen.channel != EMAIL_CHANNEL:
        raise InvalidContent(f"the template {chosen.name!r} is for {chosen.channel} "
                             "campaigns, not email")
    return chosen


def _logo(value: Any, chosen: Template) -> str:
    logo = _one_line(value, "logo name", LOGO_NAME_MAX, required=False)
    if chosen.logo == "required" and not logo:
        raise InvalidContent(f"the template {chosen.name!r} shows a logo: choose one")
    if chosen.logo == "none" and logo:
        raise InvalidContent(f"the template {chosen.name!r} has no logo; choose "
                             "'Email with logo' to show one")
    return logo


def check_email_content(content: Mapping[str, Any]) -> dict[str, Any]:
    """The normalised content, or InvalidContent (one line) saying what to fix.

    With a prepopulated (not editable) template, a missing subject or body is the
    template's own; a different one is refused."""
    chosen = _chosen_template(content.get("template"))
    subject_given = content.get("subject") or ""
    body_given = content.get("body") or ""
    if not chosen.editable:
        subject_given = subject_given or chosen.subject
        body_given = body_given or chosen.body
    subject = _one_line(subject_given, "subject", SUBJECT_MAX)
    body = sanitise_html(str(body_given))
    if not html_to_text(body):
        raise InvalidContent("the body is required (nothing readable is left once unsafe "
                             "HTML is removed)")
    if not chosen.editable:
        if subject != chosen.subject.strip():
            raise InvalidContent(f"the template {chosen.name!r} cannot be edited: keep its "
                                 "subject, or choose 'Ad hoc email' to write your own")
        if body != sanitise_html(chosen.body):
            raise InvalidContent(f"the template {chosen.name!r} cannot be edited: keep its "
                                 "body, or choose 'Ad hoc email' to write your own")
    check_merge_fields(subject, "subject")
    check_merge_fields(body, "body")
    return {
        "template": chosen.name,
        "logo": _logo(content.get("logo"), chosen),
        "subject": subject,
        "body": body,
        "from_address": _from_address(content.get("from_address")),
        "from_name": _one_line(content.get("from_name"), "from name", FROM_NAME_MAX),
        "help_number": _one_line(content.get("help_number"), "help number",
                                 HELP_NUMBER_MAX),
    }


def valid_recipient(address: str) -> str | None:
    """The normalised address when its format is valid (no DNS lookup), else None."""
    try:
        return validate_email(address, check_deliverability=False).normalized
    except (EmailNotValidError, TypeError, ValueError):
        return None


# -- what a patient receives ----------------------------------------------------------------

def _document(subject: str, body_html: str, values: Mapping[str, str], *,
              unsubscribe_url: str, logo_url: str | None) -> str:
    """A plain, accessible single-column layout; every value here is escaped."""
    organisation = escape(values["organisation"])
    logo = ""
    if logo_url:
        logo = (f'<div style="margin:0 0 24px 0"><img src="{escape(logo_url)}" '
                f'alt="{organisation}" style="max-width:100%;height:auto;border:0"></div>\n')
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(subject)}</title>\n</head>\n"
        '<body style="margin:0;padding:0;background:#ffffff">\n'
        '<div role="article" aria-label="' + escape(subject) + '" lang="en" '
        'style="max-width:600px;margin:0 auto;padding:24px;font-family:Arial,sans-serif;'
        'font-size:16px;line-height:1.5;color:#222222">\n'
        f"{logo}<div>\n{body_html}\n</div>\n"
        '<hr style="border:0;border-top:1px solid #cccccc;margin:32px 0 16px 0">\n'
        '<div style="font-size:14px;color:#444444">\n'
        f"<p>{organisation}<br>Questions? Call {escape(values['help_number'])}.</p>\n"
        f'<p><a href="{escape(unsubscribe_url)}" style="color:#1a4f9c">'
        f"{UNSUBSCRIBE_WORDS}</a></p>\n</div>\n</div>\n</body>\n</html>\n"
    )


def _subject_line(text: str) -> str:
    # A value imported with a line break must never become a second header line.
    return " ".join(text.split())


def render_email(content: Mapping[str, Any], values: MergeValues, *, unsubscribe_url: str,
                 logo_url: str | None) -> RenderedEmail:
    """One patient's email from checked content: subject, HTML document, text alternative."""
    merged = values.as_dict()
    subject = _subject_line(render(str(content["subject"]), merged, html=False))
    body = render(str(content["body"]), merged, html=True)
    html = _document(subject, body, merged, unsubscribe_url=unsubscribe_url,
                     logo_url=logo_url)
    return RenderedEmail(subject=subject, html=html, text=html_to_text(html))


def introduction_email(values: MergeValues, *, unsubscribe_url: str,
                       logo_url: str | None) -> RenderedEmail:
    """The introductory email: sent before any other so the patient can opt out first."""
    merged = values.as_dict()
    organisation = escape(merged["organisation"])
    # The address itself as the link's words: the text alternative then shows it once.
    link = f'<a href="{escape(unsubscribe_url)}">{escape(unsubscribe_url)}</a>'
    greeting = (f"Hello {escape(merged['first_name'])},"
                if merged["first_name"].strip() else "Hello,")
    body = "\n".join([
        f"<p>{greeting}</p>",
        f"<p>{organisation} will send you health reminders by email, such as reminders "
        "to schedule a visit or a screening that is due.</p>",
        f"<p><strong>If you do not want them, unsubscribe: {link}.</strong> "
        "You will not receive further health reminder emails from us.</p>",
        f"<p>If you have questions, please call {escape(merged['help_number'])}. Please "
        "do not reply to this email: the mailbox is not monitored.</p>",
        f"<p>Sincerely,<br>Your care team at {organisation}</p>",
    ])
    subject = _subject_line(f"Health reminders by email from {merged['organisation']}")
    html = _document(subject, body, merged, unsubscribe_url=unsubscribe_url,
                     logo_url=logo_url)
    return RenderedEmail(subject=subject, html=html, text=html_to_text(html))
