"""The console's replies pages (CareMessage "Review responses"): the inbox of texts patients
sent back, unexpected ones flagged and filterable, sorted by time or by the words, as a CSV
download; "Mark handled" per reply; and a patient's conversation (what we sent, what they
answered, in time order) with a one-to-one follow-up text.

Every call goes through `page.staff.replies` (application.staff_replies.RepliesFacade) with
the signed-in user: role, groups and audit are the facade's; a refusal is shown in its own
words. The follow-up form's character count is the server's (domain.sms): the footer is
added and GSM-7 / UCS-2 segments are counted exactly as the sender will, which a script in
the browser could only guess.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from api.web.session import Page, checked_page, is_htmx, page_of, refusal
from domain.errors import DomainError
from domain.sms import DEFAULT_FOOTER, MAX_SEGMENTS, compose, segment

router = APIRouter(prefix="/console")

PAGE_SIZE = 50
MAX_BODY = 1600  # the staff API's limit for a follow-up (api/staff/replies.py)
MESSAGE_TARGET = "#replies-message"

Show = Literal["all", "unexpected", "expected"]
State = Literal["all", "new", "handled"]
SortBy = Literal["received", "response"]
Order = Literal["desc", "asc"]
MessageId = Annotated[str, PathParam(min_length=1, max_length=64)]
PatientId = Annotated[str, PathParam(min_length=1, max_length=64)]


def _zone(page: Page) -> ZoneInfo:
    settings = getattr(page.staff.auth, "settings", None)
    return ZoneInfo(getattr(settings, "timezone", None) or "UTC")


def _local(zone: ZoneInfo) -> Any:
    def shown(at: datetime | None) -> str:
        return at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if at else ""
    return shown


def _filters(show: Show, state: State) -> dict[str, bool | None]:
    return {"unexpected": {"all": None, "unexpected": True, "expected": False}[show],
            "handled": {"all": None, "new": False, "handled": True}[state]}


# -- the inbox --------------------------------------------------------------------------------
@router.get("/replies", response_class=HTMLResponse)
async def inbox(page: Annotated[Page, Depends(page_of)], show: Show = "all",
                state: State = "all", sort: SortBy = "received", order: Order = "desc",
                number: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
                ) -> HTMLResponse:
    found = await run_in_threadpool(
        lambda: page.staff.replies.list(page.actor, **_filters(show, state), sort=sort,
                                        descending=order == "desc", page=number,
                                        page_size=PAGE_SIZE))
    query = {"show": show, "state": state, "sort": sort, "order": order}
    return page.render("replies_inbox.html", section="replies", rows=found.rows,
                       total=found.total, query=query, number=number,
                       pages=max(1, -(-found.total // PAGE_SIZE)), local=_local(_zone(page)))


@router.get("/replies.csv", response_class=Response)
async def inbox_csv(page: Annotated[Page, Depends(page_of)], show: Show = "all",
                    state: State = "all", sort: SortBy = "received",
                    order: Order = "desc") -> Response:
    out = io.StringIO()
    await run_in_threadpool(
        lambda: page.staff.replies.export_csv(page.actor, out, **_filters(show, state),
                                              sort=sort, descending=order == "desc"))
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="replies.csv"',
        "Cache-Control": "no-store"})


@router.post("/replies/{message_id}/handled", response_model=None)
async def mark_handled(page: Annotated[Page, Depends(checked_page)],
                       message_id: MessageId) -> Response:
    try:
        row = await run_in_threadpool(page.staff.replies.mark_handled, page.actor, message_id)
    except DomainError as exc:
        return refusal(page, exc, MESSAGE_TARGET)
    if not is_htmx(page.request):
        # Back to the inbox page the form was on (its filters), never off the console.
        back = urlsplit(page.request.headers.get("referer", ""))
        here = back.path + (f"?{back.query}" if back.query else "")
        return RedirectResponse(here if back.path.startswith("/console/replies") and
                                not back.path.startswith("//") else "/console/replies", 303)
    return page.render("replies_row.html", row=row, local=_local(_zone(page)))


# -- a patient's conversation -----------------------------------------------------------------
def _thread_context(page: Page, patient_id: str) -> dict[str, Any]:
    items = page.staff.replies.thread(page.actor, patient_id)
    return {"patient_id": patient_id, "items": items, "local": _local(_zone(page))}


@router.get("/replies/thread/{patient_id}", response_class=HTMLResponse)
async def thread(page: Annotated[Page, Depends(page_of)],
                 patient_id: PatientId) -> HTMLResponse:
    context = await run_in_threadpool(_thread_context, page, patient_id)
    return page.render("replies_thread.html", section="replies", max_body=MAX_BODY,
                       count=_count(page, ""), **context)


@router.post("/replies/thread/{patient_id}/follow-up", response_model=None)
async def follow_up(page: Annotated[Page, Depends(checked_page)], patient_id: PatientId,
                    body: Annotated[str, Form(max_length=MAX_BODY)] = "") -> Response:
    try:
        await run_in_threadpool(page.staff.replies.follow_up, page.actor, patient_id, body)
    except DomainError as exc:
        if not is_htmx(page.request):
            raise
        return refusal(page, exc, "#follow-up-message")
    context = await run_in_threadpool(_thread_context, page, patient_id)
    sent = ("Your text is planned: it is sent when the text window is open, unless the "
            "number has opted out.")
    fresh = {"max_body": MAX_BODY, "count": _count(page, ""), "sent": sent, **context}
    if not is_htmx(page.request):
        return page.render("replies_thread.html", section="replies", **fresh)
    # The conversation (the target) and a fresh, empty form with the note (out of band).
    return page.render("replies_follow_up_sent.html", oob=True, **fresh)


@router.post("/replies/count", response_class=HTMLResponse)
async def count(page: Annotated[Page, Depends(checked_page)],
                body: Annotated[str, Form(max_length=MAX_BODY * 4)] = "") -> HTMLResponse:
    """The follow-up's live character count (htmx, as the user types)."""
    return page.render("replies_count.html", count=_count(page, body))


def _footer(page: Page) -> str:
    # The follow-up campaign's footer is the organisation's text footer (application.
    # follow_ups); the count adds it as the sender will.
    settings = getattr(getattr(page.staff.replies, "follow_ups", None), "settings", None)
    return str(getattr(settings, "text_footer", None) or DEFAULT_FOOTER)


def _count(page: Page, body: str) -> dict[str, Any]:
    footer = _footer(page)
    seg = segment(compose(body.strip(), footer)) if body.strip() else segment(footer)
    return {"characters": len(body), "units": seg.units, "segments": seg.segments,
            "remaining": seg.remaining, "encoding": seg.encoding, "max_segments": MAX_SEGMENTS,
            "too_long": seg.segments > MAX_SEGMENTS, "footer": footer}
