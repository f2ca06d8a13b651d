"""The console's organisation settings page (issue 13): sending windows and days, holidays and
closed dates, caps, the texts' footer and help number, the email sender, return addresses and
logos. Administrators only (SETTINGS_MANAGE: the facade refuses everyone else, the refusal
page, 403).

Each section is its own plain form posting to the same address with its `section`; only
that section's keys are changed. A refused value answers the page again (400) with the
facade's one line and what was typed kept; a change applies to every running process within
seconds (application/organisation.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from api.web.session import Page, checked_page, page_of
from application.organisation import MAX_LOGO_BYTES, SettingValue
from application.staff_organisation import OrganisationFacade
from domain.access import AccessDenied, NotSignedIn
from domain.errors import DomainError

router = APIRouter(prefix="/console")

SETTINGS = "/console/admin/settings"
ADDRESSES = "addresses"
EXTRA_ADDRESS_ROWS = 1  # empty rows offered for a new return address


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    hint: str
    kind: str = "text"


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    fields: tuple[Field, ...]


SECTIONS: tuple[Section, ...] = (
    Section("windows", "Sending windows and days", (
        Field("text_window", "Texts", "Local time, HH:MM-HH:MM (the guide: 11:00-20:00)."),
        Field("phone_window", "Phone calls", "Local time, HH:MM-HH:MM."),
        Field("email_window", "Emails", "Local time, HH:MM-HH:MM (the guide: 09:00-22:45)."),
        Field("sending_days", "Sending days", "mon-sat, mon,wed,fri or all."),
        Field("timezone", "Time zone", "The organisation's zone, e.g. America/Chicago."),
    )),
    Section("holidays", "Holidays and closed dates", (
        Field("holidays", "Holidays of the country", "A country code such as US, or none."),
        Field("closed_dates", "Closed dates", "Extra days without sending, YYYY-MM-DD, "
              "comma-separated. A campaign starting on one starts the next sending day."),
    )),
    Section("caps", "Caps", (
        Field("rate_cap_per_hour", "Texts per hour, per campaign", "At least 1.", "number"),
        Field("campaign_size_cap", "Patients per campaign", "At least 1.", "number"),
    )),
    Section("texts", "Texts", (
        Field("organisation", "Organisation name", "Named in replies to HELP and in emails."),
        Field("text_footer", "Text footer", "Added to every campaign text."),
        Field("help_number", "Help number", "The answer to HELP when a campaign names none."),
    )),
    Section("email", "Email sender", (
        Field("email_from_address", "From address", "Usually a do-not-reply address "
              "verified at the email provider.", "email"),
        Field("email_from_name", "From name", "Empty: the organisation's name."),
    )),
    Section("logos", "Logos", (
        Field("email_logos", "Email logos", "name=https://…/logo.png, comma-separated."),
        Field("letter_logos", "Letter logos", "name=file path, comma-separated; an "
              "uploaded logo is added here."),
    )),
)
BY_NAME = {s.name: s for s in SECTIONS}


def _facade(page: Page) -> OrganisationFacade:
    found: OrganisationFacade = page.staff.organisation
    return found


def _refused(exc: DomainError) -> None:
    # Not a value to correct beside the form: the refusal page (403 / 401).
    if isinstance(exc, (AccessDenied, NotSignedIn)):
        raise exc


def addresses_of(text: str) -> list[tuple[str, str]]:
    """The return addresses' text ("Name=line|line;…") as (name, lines one per line)."""
    rows = []
    for entry in text.split(";"):
        name, _, lines = entry.partition("=")
        if name.strip():
            rows.append((name.strip(), "\n".join(p.strip() for p in lines.split("|")
                                                 if p.strip())))
    return rows


def addresses_text(rows: list[tuple[str, str]]) -> str:
    """(name, lines) rows → the setting's text; a row without a name is left out (how an
    address is removed)."""
    return ";".join(f"{name.strip()}=" + "|".join(
        line.strip() for line in lines.splitlines() if line.strip())
        for name, lines in rows if name.strip())


async def _render(page: Page, *, typed: dict[str, str] | None = None, message: str = "",
                  kind: str = "ok", section: str = "", status_code: int = 200) -> Response:
    rows = await run_in_threadpool(_facade(page).settings, page.actor)
    current: dict[str, SettingValue] = {r.key: r for r in rows}
    values = {k: v.value for k, v in current.items()} | (typed or {})
    addresses = addresses_of(values.get("return_addresses", ""))
    addresses += [("", "")] * EXTRA_ADDRESS_ROWS
    return page.render("admin_settings.html", status_code=status_code, section="admin",
                       sections=SECTIONS, current=current, values=values,
                       addresses=addresses, message=message, kind=kind,
                       failed=section, max_logo_kb=MAX_LOGO_BYTES // 1024)


@router.get("/admin/settings", response_class=HTMLResponse)
async def settings_page(page: Annotated[Page, Depends(page_of)], saved: str = "") -> Response:
    done = {"1": "The settings are saved: every part of outreach uses them within seconds.",
            "0": "Nothing changed.", "logo": "The logo is saved: letters can use it by name."}
    return await _render(page, message=done.get(saved, ""))


@router.post("/admin/settings", response_class=HTMLResponse)
async def change_settings(page: Annotated[Page, Depends(checked_page)],
                          section: Annotated[str, Form(max_length=20)] = "") -> Response:
    form = await page.request.form()
    if section == ADDRESSES:
        rows = [(str(form.get(f"name_{i}", "")), str(form.get(f"lines_{i}", "")))
                for i in range(50) if f"name_{i}" in form]
        values = {"return_addresses": addresses_text(rows)}
    elif section in BY_NAME:
        values = {f.key: str(form.get(f.key, "")) for f in BY_NAME[section].fields
                  if f.key in form}
    else:
        values = {}
    try:
        changed = await run_in_threadpool(_facade(page).change, page.actor, values)
    except DomainError as exc:
        _refused(exc)
        return await _render(page, typed=values, message=" ".join(str(exc).split()),
                             kind="error", section=section, status_code=400)
    return RedirectResponse(f"{SETTINGS}?saved={1 if changed else 0}#{section}",
                            status_code=303)


@router.post("/admin/settings/logo", response_class=HTMLResponse)
async def upload_logo(page: Annotated[Page, Depends(checked_page)],
                      name: Annotated[str, Form(max_length=60)] = "",
                      image: Annotated[UploadFile | None, File()] = None) -> Response:
    # Read at most one byte past the limit: a bigger file is refused without holding it.
    data = await image.read(MAX_LOGO_BYTES + 1) if image is not None else b""
    try:
        await run_in_threadpool(_facade(page).upload_logo, page.actor, name, data)
    except DomainError as exc:
        _refused(exc)
        return await _render(page, message=" ".join(str(exc).split()), kind="error",
                             section="logos", status_code=400)
    return RedirectResponse(f"{SETTINGS}?saved=logo#logos", status_code=303)
