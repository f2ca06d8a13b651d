"""The console's campaign library and editor (guide: "Create Campaign"): the templates of
each channel, a new campaign's form (from the library, or posted by the patient lists page
with the patients chosen there), an existing campaign's form, and the live helpers the form
asks for as the user types: the text's character and segment count (domain.sms, the footer
added, exactly as the sender counts), the start day a Sunday or holiday moves to, and the
message merged for one patient.

Save as Inactive, Save as Active and Save & Send Test (the status never changes; an unsaved
campaign is saved inactive) go through `page.staff.campaigns` with the signed-in user, then
open the campaign's page. A refusal (bad content, a start in the past, an active campaign
past midnight before its start day, a patient outside the user's groups) comes back on the
form in the domain's words, every value kept: 4xx for a plain post, a fragment for htmx.

Registered before api.web.campaigns, so /campaigns/new and /campaigns/library are matched
before /campaigns/{campaign_id}.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from api.staff.problems import status_of
from api.web.session import Page, checked_page, is_htmx, page_of, refusal
from domain.access import AccessDenied, Permission
from domain.errors import DomainError
from domain.sms import MAX_SEGMENTS

router = APIRouter(prefix="/console")

MESSAGE_TARGET = "#editor-message"
CampaignId = Annotated[str, PathParam(min_length=1, max_length=64)]
ChannelParam = Annotated[str, Query(max_length=16)]


# -- the library ------------------------------------------------------------------------------
@router.get("/campaigns/library", response_class=HTMLResponse)
async def library(page: Annotated[Page, Depends(page_of)]) -> HTMLResponse:
    page.actor.require(Permission.CAMPAIGNS_SEND)
    found = await run_in_threadpool(page.staff.campaigns.templates, page.actor)
    return page.render("editor_library.html", section="campaigns", channels=CHANNELS,
                       labels=CHANNEL_LABELS,
                       by_channel={c: [t for t in found if t.channel == c] for c in CHANNELS})


# -- a new campaign ---------------------------------------------------------------------------
@router.get("/campaigns/new", response_class=HTMLResponse)
async def new_form(page: Annotated[Page, Depends(page_of)], channel: ChannelParam = "text",
                   template: Annotated[str, Query(max_length=200)] = "") -> Response:
    page.actor.require(Permission.CAMPAIGNS_SEND)
    values = {"channel": channel if channel in CHANNELS else "text", "template": template}
    return await _form(page, values, fresh_template=True)


@router.post("/campaigns/new", response_model=None)
async def new_post(page: Annotated[Page, Depends(checked_page)]) -> Response:
    """The editor's own buttons (action = inactive, active, test, template) and the patient
    lists page's Send Campaign (csrf_token, channel, patients, audience_note: no action),
    which opens the form with its patients fixed."""
    values = form_values(await page.request.form())
    action = values.get("action", "")
    if action not in ("inactive", "active", "test"):
        page.actor.require(Permission.CAMPAIGNS_SEND)
        return await _form(page, values, fresh_template=action == "template" or not action)
    facade = page.staff.campaigns

    def save() -> Any:
        fields = draft_fields(values, _choices(page, values["channel"]))
        start = parse_start(values.get("start", ""))
        patients, view = patients_of(values), values.get("view") or None
        common: dict[str, Any] = {"name": values.get("name", ""), "start": start,
                                  "description": values.get("description", ""),
                                  "channel": values["channel"], "patients": patients,
                                  "view": view, **fields}
        if action == "test":
            return facade.test_send_new(page.actor, values.get("test_to", ""), **common)
        return facade.create(page.actor, active=action == "active", **common)

    return await _saved(page, values, save)


# -- an existing campaign ---------------------------------------------------------------------
@router.get("/campaigns/{campaign_id}/edit", response_class=HTMLResponse)
async def edit_form(page: Annotated[Page, Depends(page_of)],
                    campaign_id: CampaignId) -> Response:
    page.actor.require(Permission.CAMPAIGNS_SEND)
    detail = await run_in_threadpool(page.staff.campaigns.get, page.actor, campaign_id)
    choices = await run_in_threadpool(_choices, page, detail.channel)
    return await _form(page, values_of(detail, choices.return_addresses), detail=detail)


@router.post("/campaigns/{campaign_id}/edit", response_model=None)
async def edit_post(page: Annotated[Page, Depends(checked_page)],
                    campaign_id: CampaignId) -> Response:
    values = form_values(await page.request.form())
    facade = page.staff.campaigns
    detail = await run_in_threadpool(facade.get, page.actor, campaign_id)
    values["channel"] = detail.channel
    action = values.get("action", "")
    if action not in ("inactive", "active", "test"):
        return await _form(page, values, detail=detail, fresh_template=action == "template")

    def save() -> Any:
        fields = draft_fields(values, _choices(page, detail.channel))
        start = parse_start(values.get("start", ""))
        changed: dict[str, Any] = {"name": values.get("name", ""),
                                   "description": values.get("description", ""), **fields}
        # The start is sent only when changed: an inactive campaign whose day has passed
        # keeps it while its words are edited (a past start is refused, not re-checked).
        if start is not None and start.isoformat() != detail.requested_start:
            changed["start"] = start
        if values.get("view"):
            changed["view"] = values["view"]
        saved = facade.edit(page.actor, campaign_id, **changed)
        if action == "active" and saved.status != "Pending":
            saved = facade.activate(page.actor, campaign_id)
        elif action == "inactive" and saved.status == "Pending":
            saved = facade.inactivate(page.actor, campaign_id)
        elif action == "test":
            saved = facade.test_send_checked(page.actor, campaign_id, values.get("test_to", ""))
        return saved

    return await _saved(page, values, save, detail=detail)


# -- live helpers (htmx) ----------------------------------------------------------------------
@router.post("/campaigns/editor/count", response_class=HTMLResponse)
async def count(page: Annotated[Page, Depends(checked_page)]) -> Response:
    """The text's live counter, as the user types: the server's own segment count."""
    values = form_values(await page.request.form())
    try:
        counted = await run_in_threadpool(page.staff.campaigns.text_count, page.actor,
                                          values.get("body", ""))
    except DomainError as exc:
        return refusal(page, exc, "#text-count")
    return page.render("editor_count.html", count=counted, max_segments=MAX_SEGMENTS)


@router.post("/campaigns/editor/start", response_class=HTMLResponse)
async def start_note(page: Annotated[Page, Depends(checked_page)]) -> Response:
    """What the chosen start date means: a Sunday or holiday starts on the next sending day."""
    values = form_values(await page.request.form())
    try:
        note = await _start_note(page, values)
    except DomainError as exc:
        return refusal(page, exc, "#start-note")
    return page.render("editor_start.html", note=note)


@router.post("/campaigns/editor/preview", response_class=HTMLResponse)
async def preview(page: Annotated[Page, Depends(checked_page)]) -> Response:
    """The form's message, merged for one patient the user may see."""
    values = form_values(await page.request.form())
    channel = values["channel"]
    try:
        fields = draft_fields(values, _choices(page, channel))
        shown = await run_in_threadpool(
            lambda: page.staff.campaigns.preview(page.actor, values.get("preview_patient", ""),
                                                 channel=channel, **fields))
    except DomainError as exc:
        return refusal(page, exc, "#preview")
    return page.render("editor_preview.html", preview=shown, channel=channel)


# -- shared -----------------------------------------------------------------------------------
def _choices(page: Page, channel: str) -> Any:
    return page.staff.campaigns.editor_choices(page.actor, channel)


async def _start_note(page: Page, values: dict[str, str]) -> Any:
    start = parse_start(values.get("start", ""))
    if start is None:
        return None
    channel = values.get("channel", "text")
    return await run_in_threadpool(page.staff.campaigns.start_day, page.actor, start,
                                   channel if channel in CHANNELS else "text")


async def _form(page: Page, values: dict[str, str], *, detail: Any = None,
                fresh_template: bool = False, message: str = "",
                status_code: int = 200) -> HTMLResponse:
    """The editor, filled with `values` (a template chosen: its words, unless the user's)."""
    channel = values.get("channel", "text")
    if channel not in CHANNELS:
        channel = values["channel"] = "text"
    facade = page.staff.campaigns

    def gather() -> tuple[Any, list[Any]]:
        choices = facade.editor_choices(page.actor, channel)
        try:
            views = page.staff.patients.views(page.actor) if page.can(
                Permission.LISTS_READ) else []
        except AccessDenied:
            views = []
        return choices, views

    choices, views = await run_in_threadpool(gather)
    content = content_of(values, choices, detail, fresh_template)
    try:
        note = await _start_note(page, values)
        counted = await run_in_threadpool(facade.text_count, page.actor,
                                          values.get("body", "")) if channel == "text" else None
    except DomainError:
        note, counted = None, None  # a bad date is said again when the form is saved
    return page.render(
        "editor_form.html", status_code=status_code, section="campaigns", values=values,
        channel=channel, labels=CHANNEL_LABELS, channels=CHANNELS, choices=choices,
        views=views, detail=detail, patients=patients_of(values) or [], content=content,
        note=note, count=counted, message=message, max_segments=MAX_SEGMENTS,
        action=f"/console/campaigns/{detail.campaign_id}/edit" if detail
        else "/console/campaigns/new")


async def _saved(page: Page, values: dict[str, str], save: Any, *,
                 detail: Any = None) -> Response:
    """Run the save; on success open the campaign's page, else the form again with the
    refusal's words (the facade has checked, refused and audited)."""
    try:
        saved = await run_in_threadpool(save)
    except DomainError as exc:
        if is_htmx(page.request):
            return refusal(page, exc, MESSAGE_TARGET)
        return await _form(page, values, detail=detail, message=" ".join(str(exc).split()),
                           status_code=status_of(exc))
    target = f"/console/campaigns/{saved.campaign_id}"
    if is_htmx(page.request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)



# -- the form's values ------------------------------------------------------------------------
CHANNELS = ("text", "email", "phone", "letter")
CHANNEL_LABELS = {"text": "Text message", "email": "Email", "phone": "Phone call",
                  "letter": "Letter"}
FORM_FIELDS = ("editor", "channel", "name", "description", "start", "patients",
               "audience_note", "view", "test_to", "action", "preview_patient", "body",
               "help_number", "template", "logo", "subject", "from_address", "from_name",
               "script", "voicemail", "callback_number", "caller_id", "provider",
               "care_manager", "page_size", "greeting", "return_address", "mail_date")


def form_values(form: Any) -> dict[str, str]:
    """The editor's fields as posted. A browser sends a textarea's line breaks as CR LF on
    a plain submit and LF from htmx: one form, so the count and the save agree."""
    values: dict[str, str] = {}
    for key in FORM_FIELDS:
        raw = form.get(key)
        if isinstance(raw, str):
            values[key] = raw.replace("\r\n", "\n")
    if values.get("channel") not in CHANNELS:  # the channel links, or a hand-made post
        values["channel"] = "text"
    return values


def patients_of(values: dict[str, str]) -> list[str] | None:
    """The patients fixed by the lists page (ids joined by ","), or None."""
    chosen = [p.strip() for p in values.get("patients", "").split(",") if p.strip()]
    return chosen or None


def parse_start(text: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise DomainError(f"the start date {text.strip()!r} is not a date (YYYY-MM-DD)") \
            from None


def _template(choices: Any, name: str) -> Any:
    key = " ".join(name.split()).casefold()
    return next((t for t in choices.templates if t.name.casefold() == key), None)


def _locked(choices: Any, values: dict[str, str]) -> bool:
    """A prepopulated template: its words are not the user's to change (the service keeps
    them when none are sent)."""
    found = _template(choices, values.get("template", ""))
    return found is not None and not found.editable


def draft_fields(values: dict[str, str], choices: Any) -> dict[str, Any]:
    """The channel's own fields as CampaignsFacade.create / edit take them."""
    channel = values.get("channel", "text")
    get = values.get
    if channel == "text":
        return {"body": get("body", ""), "help_number": get("help_number", "")}
    locked = _locked(choices, values)
    if channel == "email":
        fields: dict[str, Any] = {
            "template": get("template") or None, "logo": get("logo", ""),
            "from_address": get("from_address", ""), "from_name": get("from_name", ""),
            "help_number": get("help_number", "")}
        if not locked:
            fields.update(subject=get("subject", ""), body=get("body", ""))
        return fields
    if channel == "phone":
        fields = {"template": get("template") or None, "voicemail": get("voicemail", ""),
                  "callback_number": get("callback_number", ""),
                  "caller_id": get("caller_id", ""), "provider": get("provider", ""),
                  "care_manager": get("care_manager", "")}
        if not locked:
            fields["script"] = get("script", "")
        return fields
    return {"body": get("body", ""), "greeting": bool(get("greeting")),
            "page_size": get("page_size") or "Letter",
            "return_address": get("return_address") or None, "logo": get("logo", ""),
            "mail_date": get("mail_date") or None}


def values_of(detail: Any, addresses: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """An existing campaign's form values, from its stored content."""
    content = detail.content
    values = {"editor": "1", "channel": detail.channel, "name": detail.name,
              "description": detail.description, "start": detail.requested_start}
    keys = {"text": ("body", "help_number"),
            "email": ("template", "logo", "subject", "body", "from_address", "from_name",
                      "help_number"),
            "phone": ("template", "script", "voicemail", "callback_number", "caller_id",
                      "provider", "care_manager"),
            "letter": ("page_size", "body", "logo", "mail_date")}.get(detail.channel, ())
    values.update({k: str(content.get(k) or "") for k in keys})
    if detail.channel == "letter":
        if content.get("greeting"):
            values["greeting"] = "yes"
        lines = tuple(str(x) for x in content.get("return_address") or ())
        values["return_address"] = next((k for k, v in addresses.items() if v == lines), "")
    return values


def content_of(values: dict[str, str], choices: Any, detail: Any,
               fresh_template: bool) -> dict[str, Any]:
    """What the form shows: the values, the organisation's defaults where the user gave
    nothing yet, and a chosen template's words (always, when it is prepopulated)."""
    shown: dict[str, Any] = dict(values)
    defaults = {"help_number": choices.help_number, "callback_number": choices.help_number,
                "from_address": choices.from_address, "from_name": choices.from_name,
                "voicemail": choices.voicemail, "page_size": "Letter"}
    for key, value in defaults.items():
        shown.setdefault(key, value)
    if "editor" not in values and detail is None:
        shown["greeting"] = "yes"  # a new letter greets the patient unless unticked
    found = _template(choices, values.get("template", ""))
    if found is not None and (not found.editable or (fresh_template and found.body)):
        words = "script" if values.get("channel") == "phone" else "body"
        shown[words] = found.body
        shown["subject"] = found.subject
    shown["locked"] = found is not None and not found.editable
    shown["template_note"] = found.description if found is not None else ""
    return shown
