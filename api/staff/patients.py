"""Patients, lists, saved views, audiences, imports and opt-outs over HTTP: the `outreach
list`, `views`, `patients`, `import` and `optout` commands for a signed-in user, through
application.staff_patients.PatientsFacade (role, groups, audit)."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.staff.deps import CurrentActor, PageNumber, PageSize, staff_of
from api.staff.idempotency import IdempotencyKey, idempotent
from application.opt_outs import OptOutRecord
from application.patients import SavedView
from application.staff_patients import ImportOutcome, ListOptions, PatientsFacade
from domain.errors import DomainError
from domain.lists import DEFAULT_PAGE_SIZE
from domain.patients import ImportKind

router = APIRouter(tags=["patients"])
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
CSV_TYPE = "text/csv; charset=utf-8"


def facade(request: Request) -> PatientsFacade:
    found: PatientsFacade = staff_of(request).patients
    return found


class Page(BaseModel):
    items: list[dict[str, Any]]
    total: int
    page: int
    page_size: int


class SearchPage(Page):
    more: bool = Field(description="More patients matched than shown: search by phone")
    summary: dict[str, Any] | None = Field(description="The one hit's summary")


class ListPage(Page):
    focus: str
    scope: str
    columns: list[str]
    labels: list[str]


class ViewOut(BaseModel):
    id: str
    name: str
    owner: str
    built_in: bool
    shared_with: list[str]
    definition: dict[str, Any]


class ListIn(BaseModel):
    """A list as `outreach list` takes it."""

    view: str | None = Field(None, max_length=200, description="Start from a saved view")
    filters: list[Annotated[str, Field(max_length=500)]] = Field(
        [], max_length=50, description='"field|action|value" rows, ANDed')
    sort: list[Annotated[str, Field(max_length=100)]] = Field([], max_length=20)
    columns: list[Annotated[str, Field(max_length=100)]] = Field([], max_length=60)
    focus: Literal["patient", "appointment"] | None = None
    providers: list[Annotated[str, Field(max_length=100)]] = Field([], max_length=200)
    groups: list[Annotated[str, Field(max_length=100)]] = Field([], max_length=50)

    def options(self) -> ListOptions:
        return ListOptions(self.view, self.filters, self.sort, self.columns, self.focus,
                           self.providers, self.groups)


class ViewIn(ListIn):
    name: str = Field(min_length=1, max_length=200)


class ViewPatch(BaseModel):
    rename: str | None = Field(None, min_length=1, max_length=200)
    filters: list[Annotated[str, Field(max_length=500)]] | None = Field(None, max_length=50)
    sort: list[Annotated[str, Field(max_length=100)]] | None = Field(None, max_length=20)
    columns: list[Annotated[str, Field(max_length=100)]] | None = Field(None, max_length=60)
    providers: list[Annotated[str, Field(max_length=100)]] | None = Field(None, max_length=200)
    groups: list[Annotated[str, Field(max_length=100)]] | None = Field(None, max_length=50)


class ShareIn(BaseModel):
    users: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=100)


class AudienceIn(ListIn):
    channel: Literal["text", "phone", "email", "letter"]
    patient_ids: list[Annotated[str, Field(max_length=100)]] | None = Field(
        None, max_length=10_000, description="Chosen from the list (else: the whole list)")
    keep_inactive: bool = False
    keep_reminders_only: bool = False


class OptOutIn(BaseModel):
    type: str = Field(min_length=1, max_length=100, description="Global, All Text, …")
    reason: str = Field(min_length=1, max_length=500)
    until: date | None = Field(None, description="Last day (inclusive)")
    days: int | None = Field(None, ge=1, le=36_500)
    comment: str = Field("", max_length=1000)
    protocol: str = Field("", max_length=100, description="For type Protocol")


def paged(items: list[dict[str, Any]], page: int, page_size: int) -> dict[str, Any]:
    start = (page - 1) * page_size
    return {"items": items[start:start + page_size], "total": len(items), "page": page,
            "page_size": page_size}


def view_json(view: SavedView) -> dict[str, Any]:
    return {"id": view.view_id, "name": view.name, "owner": view.owner,
            "built_in": view.built_in, "shared_with": list(view.shared_with),
            "definition": view.query.definition()}


def opt_outs_json(records: list[OptOutRecord]) -> dict[str, Any]:
    return {"items": [asdict(r) for r in records], "total": len(records), "page": 1,
            "page_size": max(1, len(records))}


# -- patients --------------------------------------------------------------------------------

@router.get("/patients", response_model=SearchPage)
async def search_patients(
    request: Request, actor: CurrentActor,
    search: Annotated[str, Query(min_length=1, max_length=200,
                                 description="A 10-digit phone (partial allowed) or a name")],
    page: PageNumber = 1, page_size: PageSize = 100,
) -> dict[str, Any]:
    found = await run_in_threadpool(facade(request).search, actor, search)
    return {**paged([asdict(h) for h in found.hits], page, page_size), "more": found.more,
            "summary": asdict(found.summary) if found.summary else None}


@router.get("/patients/{patient_id}")
async def patient_summary(request: Request, actor: CurrentActor,
                          patient_id: str) -> dict[str, Any]:
    return asdict(await run_in_threadpool(facade(request).summary, actor, patient_id))


# -- lists -----------------------------------------------------------------------------------

def list_options(view: str | None, filter_: list[str] | None, sort: list[str] | None,
                 columns: list[str] | None, focus: str | None, provider: list[str] | None,
                 group: list[str] | None, page: int = 1,
                 page_size: int | None = None) -> ListOptions:
    return ListOptions(view, filter_ or [], sort or [], columns or [], focus, provider or [],
                       group or [], page, page_size)


ViewQ = Annotated[str | None, Query(max_length=200, description="Start from a saved view")]
FilterQ = Annotated[list[str] | None, Query(alias="filter", description='"field|action|value"')]
SortQ = Annotated[list[str] | None, Query(description='"field:asc" or "field:desc"')]
ColumnsQ = Annotated[list[str] | None, Query(description="Columns (comma-separated)")]
FocusQ = Annotated[Literal["patient", "appointment"] | None, Query()]
ProviderQ = Annotated[list[str] | None, Query(description="Scope: provider ids")]
GroupQ = Annotated[list[str] | None, Query(description="Scope: provider groups")]


@router.get("/lists", response_model=ListPage)
async def run_list(request: Request, actor: CurrentActor, view: ViewQ = None,
                   filter_: FilterQ = None, sort: SortQ = None, columns: ColumnsQ = None,
                   focus: FocusQ = None, provider: ProviderQ = None, group: GroupQ = None,
                   page: PageNumber = 1, page_size: PageSize = DEFAULT_PAGE_SIZE
                   ) -> dict[str, Any]:
    options = list_options(view, filter_, sort, columns, focus, provider, group, page,
                           page_size)
    result = await run_in_threadpool(facade(request).list, actor, options)
    return {"items": result.rows, "total": result.total, "page": result.page,
            "page_size": result.page_size, "focus": result.focus.value,
            "scope": result.scope, "columns": list(result.columns),
            "labels": list(result.labels)}


@router.get("/lists.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
async def download_list(request: Request, actor: CurrentActor, view: ViewQ = None,
                        filter_: FilterQ = None, sort: SortQ = None, columns: ColumnsQ = None,
                        focus: FocusQ = None, provider: ProviderQ = None,
                        group: GroupQ = None) -> Response:
    options = list_options(view, filter_, sort, columns, focus, provider, group)
    text = await run_in_threadpool(facade(request).list_csv, actor, options)
    return Response(text, media_type=CSV_TYPE,
                    headers={"Content-Disposition": 'attachment; filename="list.csv"'})


@router.post("/audience")
async def check_audience(request: Request, actor: CurrentActor,
                         body: AudienceIn) -> dict[str, Any]:
    check = await run_in_threadpool(
        lambda: facade(request).audience(
            actor, body.options(), body.channel, body.patient_ids,
            keep_inactive=body.keep_inactive, keep_reminders_only=body.keep_reminders_only))
    return {**asdict(check), "over_cap": check.over_cap}


# -- views -----------------------------------------------------------------------------------

@router.get("/views", response_model=Page)
async def list_views(request: Request, actor: CurrentActor, page: PageNumber = 1,
                     page_size: PageSize = 100) -> dict[str, Any]:
    views = await run_in_threadpool(facade(request).views, actor)
    return paged([view_json(v) for v in views], page, page_size)


@router.post("/views", status_code=201, response_model=ViewOut)
async def save_view(request: Request, actor: CurrentActor, body: ViewIn,
                    key: IdempotencyKey = None) -> Response:
    async def create() -> tuple[int, dict[str, Any]]:
        saved = await run_in_threadpool(facade(request).save_view, actor, body.name,
                                        body.options())
        return 201, view_json(saved)

    return await idempotent(request, actor, create)


@router.get("/views/{ref}", response_model=ViewOut)
async def show_view(request: Request, actor: CurrentActor, ref: str) -> dict[str, Any]:
    return view_json(await run_in_threadpool(facade(request).view, actor, ref))


@router.patch("/views/{ref}", response_model=ViewOut)
async def update_view(request: Request, actor: CurrentActor, ref: str,
                      body: ViewPatch) -> dict[str, Any]:
    changes = body.model_dump(exclude={"rename"}, exclude_none=True)
    options = ListOptions(**changes) if changes else None
    updated = await run_in_threadpool(facade(request).update_view, actor, ref, options,
                                      body.rename)
    return view_json(updated)


@router.delete("/views/{ref}", status_code=204, response_class=Response)
async def delete_view(request: Request, actor: CurrentActor, ref: str) -> Response:
    await run_in_threadpool(facade(request).delete_view, actor, ref)
    return Response(status_code=204)


@router.post("/views/{ref}/share", response_model=ViewOut)
async def share_view(request: Request, actor: CurrentActor, ref: str,
                     body: ShareIn) -> dict[str, Any]:
    return view_json(await run_in_threadpool(facade(request).share_view, actor, ref,
                                             body.users))


@router.post("/views/{ref}/unshare", response_model=ViewOut)
async def unshare_view(request: Request, actor: CurrentActor, ref: str,
                       body: ShareIn) -> dict[str, Any]:
    return view_json(await run_in_threadpool(facade(request).unshare_view, actor, ref,
                                             body.users))


# -- imports ---------------------------------------------------------------------------------

def import_json(outcome: ImportOutcome) -> dict[str, Any]:
    s = outcome.summary
    return {
        "kind": s.kind, "rows": s.rows, "accepted": s.accepted, "new": s.new,
        "updated": s.updated, "unchanged": s.unchanged, "rejected": s.rejected,
        "rejections": [{"line": r.line, "reason": r.reason} for r in s.rejections],
        "ignored_columns": list(s.ignored_columns), "read_as": s.read_as,
        "import_id": str(s.import_id) if s.import_id else None,
        "rejects_url": f"/imports/{outcome.rejects_id}/rejects.csv"
        if outcome.rejects_id else None,
        "seconds": round(s.seconds, 3),
    }


@router.post("/imports/{kind}", status_code=201)
async def import_file(
    request: Request, actor: CurrentActor, kind: ImportKind,
    file: Annotated[UploadFile, File(description="The CSV file")],
    encoding: Annotated[Literal["auto", "utf-8", "cp1252"], Form()] = "auto",
    delimiter: Annotated[Literal["auto", ",", ";", "tab"], Form()] = "auto",
    key: IdempotencyKey = None,
) -> Response:
    with tempfile.TemporaryDirectory(prefix="outreach-upload-") as folder:
        path = Path(folder) / "upload.csv"
        digest = hashlib.sha256(f"{kind.value}\n{encoding}\n{delimiter}\n".encode())
        with path.open("wb") as out:
            size = 0
            while chunk := await file.read(1024 * 1024):
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise DomainError("the file is larger than 512 MB: split it")
                digest.update(chunk)
                out.write(chunk)

        async def create() -> tuple[int, dict[str, Any]]:
            outcome = await run_in_threadpool(
                lambda: facade(request).import_file(actor, kind.value, path,
                                                    encoding=encoding, delimiter=delimiter))
            return 201, import_json(outcome)

        return await idempotent(request, actor, create, body=digest.digest())


@router.get("/imports/{import_id}/rejects.csv", response_class=FileResponse,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
async def import_rejects(request: Request, actor: CurrentActor, import_id: str) -> FileResponse:
    path = await run_in_threadpool(facade(request).rejects_file, actor, import_id)
    return FileResponse(path, media_type=CSV_TYPE, filename=f"{import_id}.rejects.csv")


# -- opt-outs --------------------------------------------------------------------------------

@router.get("/patients/{patient_id}/opt-outs", response_model=Page)
async def opt_outs(request: Request, actor: CurrentActor, patient_id: str) -> dict[str, Any]:
    return opt_outs_json(await run_in_threadpool(facade(request).opt_outs_of, actor,
                                                 patient_id))


@router.post("/patients/{patient_id}/opt-outs", status_code=201, response_model=Page)
async def add_opt_out(request: Request, actor: CurrentActor, patient_id: str, body: OptOutIn,
                      key: IdempotencyKey = None) -> Response:
    async def create() -> tuple[int, dict[str, Any]]:
        records = await run_in_threadpool(
            lambda: facade(request).opt_out_add(
                actor, patient_id, body.type, body.reason, until=body.until, days=body.days,
                comment=body.comment, protocol=body.protocol))
        return 201, opt_outs_json(records)

    return await idempotent(request, actor, create)


@router.delete("/patients/{patient_id}/opt-outs", response_model=Page)
async def remove_opt_outs(
    request: Request, actor: CurrentActor, patient_id: str,
    type_: Annotated[list[str], Query(alias="type", min_length=1,
                                      description="The opt-out types to remove")],
) -> dict[str, Any]:
    return opt_outs_json(await run_in_threadpool(facade(request).opt_out_remove, actor,
                                                 patient_id, type_))
