"""The console's campaigns pages (guide: "View Campaign Results"): the list with each
campaign's live progress ("N completed of M to be contacted"), Activate / Inactivate / Stop
for users who may send, a campaign's details with its per-patient report (paged, and as a
CSV download) and, for letters, the PDF files once made.

Every call goes through `page.staff.campaigns` (application.staff_campaigns.CampaignsFacade)
with the signed-in user: the facade checks the role and the groups and audits; a refusal
is shown in its own words. The buttons a user's roles do not allow are not drawn, and the
facade still refuses them when posted by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from api.web.session import Page, checked_page, is_htmx, page_of, refusal
from application.attempts import local_time
from domain.access import Permission
from domain.errors import DomainError

router = APIRouter(prefix="/console")

#: How often an open campaigns page asks for fresh progress (seconds).
POLL_SECONDS = 5
REPORT_PAGE_SIZE = 50
#: Statuses that still change (progress, or a user's Activate/Stop): worth polling for.
LIVE = frozenset({"Inactive", "Pending"})
#: htmx stops polling when the answer's status is 286.
STOP_POLLING = 286
MESSAGE_TARGET = "#campaigns-message"

CampaignId = Annotated[str, PathParam(min_length=1, max_length=64)]


# -- the list ---------------------------------------------------------------------------------
@router.get("/campaigns", response_class=HTMLResponse)
async def campaigns_page(page: Annotated[Page, Depends(page_of)]) -> HTMLResponse:
    rows = await run_in_threadpool(page.staff.campaigns.campaigns, page.actor)
    return page.render("campaigns_list.html", section="campaigns", rows=rows,
                       poll=POLL_SECONDS, live=any(r.status in LIVE for r in rows))


@router.get("/campaigns/progress", response_class=HTMLResponse)
async def campaigns_progress(page: Annotated[Page, Depends(page_of)]) -> HTMLResponse:
    """Fresh status and progress of every campaign the user sees, as out-of-band swaps
    (polled with X-Background: 1, so an open page does not keep the session alive)."""
    rows = await run_in_threadpool(page.staff.campaigns.campaigns, page.actor)
    live = any(r.status in LIVE for r in rows)
    return page.render("campaigns_progress.html", rows=rows,
                       status_code=200 if live else STOP_POLLING)


def _row_answer(page: Page, detail: object, message: str) -> HTMLResponse:
    return page.render("campaigns_row.html", row=detail, message=message, oob_message=True)


async def _command(page: Page, campaign_id: str, action: str) -> Response:
    facade = page.staff.campaigns
    try:
        if action == "stop":
            detail, cancelled = await run_in_threadpool(facade.stop, page.actor, campaign_id)
            message = (f"“{detail.name}” is stopped: {cancelled} communications not yet sent "
                       "were cancelled.")
        else:
            detail = await run_in_threadpool(getattr(facade, action), page.actor, campaign_id)
            message = (f"“{detail.name}” is active: it is sent from its start day."
                       if action == "activate"
                       else f"“{detail.name}” is inactive: it is not sent until activated.")
    except DomainError as exc:
        return refusal(page, exc, MESSAGE_TARGET)
    if is_htmx(page.request):
        return _row_answer(page, detail, message)
    rows = await run_in_threadpool(facade.campaigns, page.actor)
    return page.render("campaigns_list.html", section="campaigns", rows=rows,
                       poll=POLL_SECONDS, live=any(r.status in LIVE for r in rows),
                       message=message)


@router.post("/campaigns/{campaign_id}/activate", response_model=None)
async def activate(page: Annotated[Page, Depends(checked_page)],
                   campaign_id: CampaignId) -> Response:
    return await _command(page, campaign_id, "activate")


@router.post("/campaigns/{campaign_id}/inactivate", response_model=None)
async def inactivate(page: Annotated[Page, Depends(checked_page)],
                     campaign_id: CampaignId) -> Response:
    return await _command(page, campaign_id, "inactivate")


@router.post("/campaigns/{campaign_id}/stop", response_model=None)
async def stop(page: Annotated[Page, Depends(checked_page)],
               campaign_id: CampaignId) -> Response:
    return await _command(page, campaign_id, "stop")


@router.get("/campaigns/{campaign_id}/stop", response_class=HTMLResponse)
async def confirm_stop(page: Annotated[Page, Depends(page_of)],
                       campaign_id: CampaignId) -> HTMLResponse:
    """The confirmation step before Stop (final: a stopped campaign cannot be resumed).
    htmx swaps it into the row's actions; without htmx it is a page of its own."""
    page.actor.require(Permission.CAMPAIGNS_SEND)
    detail = await run_in_threadpool(page.staff.campaigns.get, page.actor, campaign_id)
    if is_htmx(page.request):
        return page.render("campaigns_confirm_stop.html", row=detail)
    return page.render("campaigns_stop_page.html", section="campaigns", row=detail)


@router.get("/campaigns/{campaign_id}/actions", response_class=HTMLResponse)
async def actions(page: Annotated[Page, Depends(page_of)],
                  campaign_id: CampaignId) -> HTMLResponse:
    """The row's buttons again ("Keep it" on the confirmation)."""
    detail = await run_in_threadpool(page.staff.campaigns.get, page.actor, campaign_id)
    return page.render("campaigns_actions.html", row=detail, autofocus_stop=True)


# -- one campaign -----------------------------------------------------------------------------
@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
async def campaign_page(page: Annotated[Page, Depends(page_of)], campaign_id: CampaignId,
                        number: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
                        ) -> HTMLResponse:
    facade = page.staff.campaigns

    def gather() -> tuple[object, object, list[dict[str, object]]]:
        detail = facade.get(page.actor, campaign_id)
        report = facade.report(page.actor, campaign_id, number, REPORT_PAGE_SIZE)
        files = facade.letter_files(page.actor, campaign_id) \
            if detail.channel == "letter" else []
        return detail, report, files

    detail, report, files = await run_in_threadpool(gather)
    total = getattr(report, "total", 0)
    pages = max(1, -(-total // REPORT_PAGE_SIZE))
    return page.render("campaigns_detail.html", section="campaigns", row=detail,
                       report=report, files=files, number=number, pages=pages,
                       first=(number - 1) * REPORT_PAGE_SIZE + 1, poll=POLL_SECONDS,
                       live=getattr(detail, "status", "") in LIVE, when=_local_time(page))


def _local_time(page: Page) -> Callable[[str | None], str]:
    """A stored instant as staff read it: the organisation's time zone, to the minute."""
    zone = ZoneInfo(str(getattr(page.staff.auth.settings, "timezone", "UTC")))

    def shown(text: str | None) -> str:
        try:
            return local_time(text, zone) if text else ""
        except ValueError:  # not an instant: as stored
            return text or ""

    return shown


@router.get("/campaigns/{campaign_id}/report.csv", response_class=Response)
async def report_csv(page: Annotated[Page, Depends(page_of)],
                     campaign_id: CampaignId) -> Response:
    text = await run_in_threadpool(page.staff.campaigns.report_csv, page.actor, campaign_id)
    return Response(text, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="campaign-report.csv"',
        "Cache-Control": "no-store"})


@router.get("/campaigns/{campaign_id}/letters/{name}", response_class=FileResponse)
async def letter_file(page: Annotated[Page, Depends(page_of)], campaign_id: CampaignId,
                      name: Annotated[str, PathParam(min_length=1, max_length=255)],
                      ) -> FileResponse:
    # Only a name the campaign itself recorded is served (the facade refuses any other).
    path = await run_in_threadpool(page.staff.campaigns.letter_download, page.actor,
                                   campaign_id, name)
    return FileResponse(path, media_type="application/pdf", filename=path.name,
                        headers={"Cache-Control": "no-store"})
