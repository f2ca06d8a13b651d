"""The console's forecast of a campaign before activation (issue 13): when the first and the
last patient would be reached if it were activated now, over how many sending days, and who
would not be reached and why (opted out, no contact for the channel, over the size cap).

The campaign's page (campaigns_detail.html) loads it into its "Forecast" section with htmx;
without htmx the same address is a page of its own. Every read goes through
`page.staff.campaigns.forecast` (application.staff_campaigns.CampaignsFacade), which checks
the role and the groups and audits the patients it names.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from api.web.session import Page, is_htmx, page_of, refusal
from domain.errors import DomainError

router = APIRouter(prefix="/console")

CampaignId = Annotated[str, PathParam(min_length=1, max_length=64)]
FORECAST_TARGET = "#forecast-body"


def _shown(zone: str) -> Callable[[datetime | None], str]:
    """An instant as staff read it: the organisation's zone, weekday, date and minute."""
    where = ZoneInfo(zone)

    def shown(at: datetime | None) -> str:
        if at is None:
            return "—"
        local = at.astimezone(where)
        return f"{local:%a} {local.day} {local:%b %Y, %H:%M} {local.tzname()}"

    return shown


@router.get("/campaigns/{campaign_id}/forecast", response_class=HTMLResponse,
            response_model=None)
async def forecast_page(page: Annotated[Page, Depends(page_of)],
                        campaign_id: CampaignId) -> Response:
    try:
        made = await run_in_threadpool(page.staff.campaigns.forecast, page.actor, campaign_id)
    except DomainError as exc:
        return refusal(page, exc, FORECAST_TARGET)  # not htmx: the refused page
    fragment = is_htmx(page.request)
    return page.render("campaigns_forecast.html", section="campaigns", f=made,
                       fragment=fragment, when=_shown(made.timezone))
