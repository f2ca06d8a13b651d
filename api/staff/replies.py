"""The replies inbox over the staff API (issue 12): every text patients sent (filters,
sort, pages), its formula-safe CSV, marking a reply handled, a patient's conversation, and
one-to-one follow-up texts.

Every route calls `staff_of(request).replies` (application.staff_replies.RepliesFacade)
with the acting user: role, groups and audit are the facade's. Routes are plain `def` (the
facade blocks on the database; FastAPI runs them in its thread pool), except the follow-up
POST, which is async for its Idempotency-Key.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import IO, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.staff.deps import CurrentActor, PageNumber, PageSize, staff_of
from api.staff.idempotency import IdempotencyKey, idempotent
from application.replies import ReplyRow, ThreadItem

router = APIRouter(tags=["replies"])

MessageId = Annotated[str, PathParam(min_length=1, max_length=64, description="A reply's id")]
PatientId = Annotated[str, PathParam(min_length=1, max_length=64, description="A patient id")]
SortBy = Literal["received", "response", "patient", "campaign"]
# A download is spooled in memory up to this size, then on disk, and streamed out.
SPOOL_BYTES = 1 << 20


class ReplyOut(BaseModel):
    message_id: str
    received_at: datetime
    patient_id: str | None
    patient_name: str | None
    campaign_id: str | None
    campaign_name: str | None
    body: str
    keyword: str = Field(description="STOP, START or HELP when the text was one, else empty")
    unexpected: bool = Field(description="Neither a keyword nor a known short answer: "
                                         "somebody should read it")
    handled_by: str | None
    handled_at: datetime | None

    @classmethod
    def of(cls, row: ReplyRow) -> ReplyOut:
        return cls(**row.__dict__)


class ReplyPageOut(BaseModel):
    items: list[ReplyOut]
    total: int
    page: int
    page_size: int


class ThreadItemOut(BaseModel):
    at: datetime
    direction: Literal["in", "out"]
    body: str
    status: str = Field(description='Sent texts: the communication status; replies: '
                                    '"New" or "Handled"')
    campaign_id: str | None
    message_id: str | None = Field(None, description="Replies: the id to mark handled")

    @classmethod
    def of(cls, item: ThreadItem) -> ThreadItemOut:
        return cls(**item.__dict__)


class ThreadOut(BaseModel):
    patient_id: str
    items: list[ThreadItemOut]


class FollowUpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=1600,
                      description="The text; the organisation's footer is added")


class FollowUpOut(BaseModel):
    communication_id: str
    patient_id: str
    status: str = Field(description='"Planned": the dispatcher sends it when the text '
                                    'window is open, unless the number is opted out')
    due_at: datetime


def _filters(unexpected: bool | None, handled: bool | None, campaign_id: str | None,
             patient_id: str | None) -> dict[str, Any]:
    return {"unexpected": unexpected, "handled": handled, "campaign_id": campaign_id,
            "patient_id": patient_id}


Unexpected = Annotated[bool | None, Query(description="Only unexpected (true) or expected "
                                                      "(false) replies")]
Handled = Annotated[bool | None, Query(description="Only handled (true) or new (false)")]
CampaignFilter = Annotated[str | None, Query(max_length=64, description="A campaign id")]
PatientFilter = Annotated[str | None, Query(max_length=64, description="A patient id")]
Sort = Annotated[SortBy, Query(description="received (time), response (the words), patient "
                                           "(name) or campaign (name)")]
Descending = Annotated[bool, Query(description="Newest / Z first")]


@router.get("/replies", response_model=ReplyPageOut)
def list_replies(request: Request, actor: CurrentActor, unexpected: Unexpected = None,
                 handled: Handled = None, campaign_id: CampaignFilter = None,
                 patient_id: PatientFilter = None, sort: Sort = "received",
                 descending: Descending = True, page: PageNumber = 1,
                 page_size: PageSize = 50) -> ReplyPageOut:
    found = staff_of(request).replies.list(
        actor, **_filters(unexpected, handled, campaign_id, patient_id), sort=sort,
        descending=descending, page=page, page_size=page_size)
    return ReplyPageOut(items=[ReplyOut.of(r) for r in found.rows], total=found.total,
                        page=page, page_size=page_size)


@router.get("/replies.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "The filtered replies, formula-safe"}})
def replies_csv(request: Request, actor: CurrentActor, unexpected: Unexpected = None,
                handled: Handled = None, campaign_id: CampaignFilter = None,
                patient_id: PatientFilter = None, sort: Sort = "received",
                descending: Descending = True) -> Response:
    spool: IO[str] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by _stream
        max_size=SPOOL_BYTES, mode="w+", newline="", encoding="utf-8")
    try:
        staff_of(request).replies.export_csv(
            actor, spool, **_filters(unexpected, handled, campaign_id, patient_id),
            sort=sort, descending=descending)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return StreamingResponse(_stream(spool), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="replies.csv"'})


def _stream(spool: IO[str]) -> Iterator[str]:
    try:
        while chunk := spool.read(64 * 1024):
            yield chunk
    finally:
        spool.close()


@router.post("/replies/{message_id}/handled", response_model=ReplyOut)
def mark_handled(request: Request, actor: CurrentActor, message_id: MessageId) -> ReplyOut:
    """Mark a reply handled by you. Idempotent: a reply already handled keeps who and when."""
    return ReplyOut.of(staff_of(request).replies.mark_handled(actor, message_id))


@router.get("/patients/{patient_id}/thread", response_model=ThreadOut)
def patient_thread(request: Request, actor: CurrentActor, patient_id: PatientId) -> ThreadOut:
    """The texts we sent the patient and their replies, oldest first."""
    items = staff_of(request).replies.thread(actor, patient_id)
    return ThreadOut(patient_id=patient_id, items=[ThreadItemOut.of(i) for i in items])


@router.post("/patients/{patient_id}/follow-ups", status_code=202, response_model=FollowUpOut,
             responses={202: {"description": "Planned: sent through the dispatcher"}})
async def follow_up(request: Request, actor: CurrentActor, patient_id: PatientId,
                    body: FollowUpIn, key: IdempotencyKey = None) -> Response:
    """Send the patient a one-to-one text. It goes the way every text goes: within the text
    window, never to an opted-out number, retried like a campaign's; it counts in no
    campaign. With an Idempotency-Key, sending the same request again answers the first
    follow-up instead of texting twice."""
    async def send() -> tuple[int, dict[str, Any]]:
        sent = await run_in_threadpool(
            partial(staff_of(request).replies.follow_up, actor, patient_id, body.body))
        out = FollowUpOut(communication_id=str(sent.communication_id),
                          patient_id=sent.patient_id, status=sent.status, due_at=sent.due_at)
        return 202, out.model_dump(mode="json")
    return await idempotent(request, actor, send)
