"""The console's patient pages (the guide's "Patient search and summary"): a search by phone
(dashes optional, partial) or name, a patient's summary, and the opt-outs of the summary for
users who manage them.

Every read and change goes through the patients facade (application.staff_patients) with the
signed-in user: the role, the groups and the audit are its business. Hiding the opt-out form
from users without the role is a courtesy; the facade refuses their forged POSTs (403).

htmx: the search form swaps the results in place (a plain GET form without JavaScript); the
opt-out forms re-render the opt-out section in place. A rule the domain refuses (a Global
opt-out with a date, a phone opt-out without one) comes back as that section with the
domain's own words, with status 200 for htmx (htmx swaps no 4xx) and 400 for a plain form.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from api.web.session import Page, checked_page, page_of
from application.attempts import local_time
from application.staff_patients import PatientsFacade, UnusableSearch
from domain.access import AccessDenied, NotSignedIn, Permission
from domain.errors import DomainError
from domain.preferences import OptOutType

router = APIRouter(prefix="/console")

RESULTS_TARGET = "results"  # the id of the search results' element (patients_search.html)
OPT_OUTS_TARGET = "opt-outs"  # the id of the summary's opt-out section
OPT_OUT_TYPES = tuple(t.value for t in OptOutType)
MAX_SEARCH = 200
FORM_FIELDS = ("type", "reason", "until", "days", "comment", "protocol")


def _facade(page: Page) -> PatientsFacade:
    found: PatientsFacade = page.staff.patients
    return found


def _htmx(page: Page) -> bool:
    # A history restore (back button after hx-push-url) wants the whole page.
    headers = page.request.headers
    return bool(headers.get("HX-Request")) and not headers.get("HX-History-Restore-Request")


def show_phone(e164: str | None) -> str:
    """A stored number as staff type and say it: +15125550101 → 512-555-0101 (the search
    takes it so); numbers outside the US and Canada as stored."""
    if not e164:
        return ""
    if len(e164) == 12 and e164.startswith("+1") and e164[1:].isdigit():
        return f"{e164[2:5]}-{e164[5:8]}-{e164[8:]}"
    return e164


def _private(response: Response) -> Response:
    # Patient data stays out of every cache, the browser's back-forward one included (a
    # signed-out browser's Back must not show it). The same URL answers a fragment to
    # htmx and a page to a browser: Vary says so.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "HX-Request"
    return response


# -- search ----------------------------------------------------------------------------------

@router.get("/patients", response_class=HTMLResponse)
async def search(page: Annotated[Page, Depends(page_of)],
                 q: Annotated[str, Query()] = "") -> Response:
    found = None
    message = ""
    if len(q) > MAX_SEARCH:  # said on the page, not as a JSON 422
        message = f"type at most {MAX_SEARCH} characters"
    elif q.strip():
        try:
            found = await run_in_threadpool(_facade(page).search, page.actor, q)
        except UnusableSearch as exc:
            message = str(exc)
    if found is not None and found.summary is not None:
        # A single hit: its summary (the guide), at its own address.
        target = f"/console/patients/{quote(found.summary.patient_id, safe='')}"
        if _htmx(page):
            return _private(Response(status_code=204, headers={"HX-Redirect": target}))
        return _private(RedirectResponse(target, status_code=303))
    context: dict[str, Any] = {"q": q, "found": found, "message": message,
                               "section": "patients", "phone": show_phone}
    if _htmx(page) and page.request.headers.get("HX-Target") == RESULTS_TARGET:
        return _private(page.render("patients_results.html", **context))
    return _private(page.render("patients_search.html", **context))


# -- summary ---------------------------------------------------------------------------------

@router.get("/patients/{patient_id}", response_class=HTMLResponse)
async def summary(page: Annotated[Page, Depends(page_of)], patient_id: str) -> Response:
    facade = _facade(page)
    card = await run_in_threadpool(facade.summary, page.actor, patient_id)
    opt_outs = await run_in_threadpool(facade.opt_outs_of, page.actor, patient_id)
    attempts = await run_in_threadpool(facade.history_attempts, page.actor, card)
    return _private(page.render("patients_summary.html", s=card, attempts=attempts,
                                when=_local(facade), phone=show_phone, section="patients",
                                **_opt_outs_context(page, patient_id, opt_outs)))


def _local(facade: PatientsFacade) -> Any:
    zone = facade.patients.zone

    def when(text: str | None) -> str:
        try:
            return local_time(text, zone)
        except ValueError:  # not an instant (a date): as stored
            return text or ""

    return when


# -- opt-outs --------------------------------------------------------------------------------

def _opt_outs_context(page: Page, patient_id: str, opt_outs: Sequence[Any], *,
                      message: str = "", kind: str = "info",
                      form: dict[str, str] | None = None) -> dict[str, Any]:
    return {"patient_id": patient_id, "opt_outs": list(opt_outs),
            "can_manage": page.can(Permission.OPT_OUTS_MANAGE), "types": OPT_OUT_TYPES,
            "protocol_type": OptOutType.PROTOCOL.value, "message": message, "kind": kind,
            "form": form or {}}


class _BadField(DomainError):
    """A form field the browser let through that is not a date or a number."""


def _date(text: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise _BadField(f"the end date {text.strip()[:20]!r} is not a date "
                        "(year-month-day)") from None


def _days(text: str) -> int | None:
    if not text.strip():
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise _BadField("the number of days must be a whole number") from None


async def _opt_out_change(page: Page, patient_id: str, change: Any, done: str,
                          form: dict[str, str]) -> Response:
    """Run a change; answer the opt-out section (htmx) or go back to the summary."""
    try:
        records = await run_in_threadpool(change)
    except (AccessDenied, NotSignedIn):
        raise  # the refusal page (403 / 401): not a rule to explain in the form
    except DomainError as exc:
        # The domain's rule, in its words, beside the form still filled in.
        current = await run_in_threadpool(_facade(page).opt_outs_of, page.actor, patient_id)
        context = _opt_outs_context(page, patient_id, current, message=str(exc),
                                    kind="error", form=form)
        if _htmx(page):
            return _private(page.render("patients_opt_outs.html", **context))
        return _private(page.render("patients_opt_out_refused.html", status_code=400,
                                    section="patients", **context))
    if _htmx(page):
        return _private(page.render("patients_opt_outs.html", **_opt_outs_context(
            page, patient_id, records, message=done, kind="ok")))
    return RedirectResponse(f"/console/patients/{quote(patient_id, safe='')}#opt-outs",
                            status_code=303)


@router.post("/patients/{patient_id}/opt-outs", response_class=HTMLResponse)
async def add_opt_out(
    page: Annotated[Page, Depends(checked_page)], patient_id: str,
    type_: Annotated[str, Form(alias="type", max_length=100)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
    until: Annotated[str, Form(max_length=20)] = "",
    days: Annotated[str, Form(max_length=10)] = "",
    comment: Annotated[str, Form(max_length=1000)] = "",
    protocol: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    form = dict(zip(FORM_FIELDS, (type_, reason, until, days, comment, protocol), strict=True))

    def change() -> list[Any]:
        facade = _facade(page)
        if not page.can(Permission.OPT_OUTS_MANAGE):
            # A forged POST: the facade refuses (403) and records it, whatever the form holds.
            return facade.opt_out_add(page.actor, patient_id, type_, reason)
        return facade.opt_out_add(
            page.actor, patient_id, type_, reason.strip(), until=_date(until), days=_days(days),
            comment=comment.strip(), protocol=protocol.strip())

    return await _opt_out_change(page, patient_id, change, f"Opted out: {type_}.", form)


@router.post("/patients/{patient_id}/opt-outs/remove", response_class=HTMLResponse)
async def remove_opt_out(
    page: Annotated[Page, Depends(checked_page)], patient_id: str,
    type_: Annotated[str, Form(alias="type", min_length=1, max_length=200)],
) -> Response:
    def change() -> list[Any]:
        return _facade(page).opt_out_remove(page.actor, patient_id, [type_])

    return await _opt_out_change(page, patient_id, change,
                                 f"Removed: {type_}. Communications of that kind resume.", {})
