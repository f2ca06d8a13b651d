"""The audit trail over the staff API (issue 12), for administrators: GET /audit (a page of
entries, newest first, filtered) and GET /audit.csv (every matching entry, oldest first,
formula-safe: the retention export).

Every route calls `staff_of(request).audit` (application.staff_audit.AuditFacade) with the
acting user: the role check and the recording of the read are the facade's. Dates are ISO
8601 text parsed by the facade, so a bad one is a 400 problem with one line (domain.audit.
InvalidAuditQuery), not a validation error. Routes are plain `def`: the facade blocks on the
database, and FastAPI runs them in its thread pool.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.staff.deps import CurrentActor, PageNumber, PageSize, staff_of
from application.audit import AuditRow

router = APIRouter(tags=["audit"])

# The CSV is written to a spooled file (memory up to 1 MiB, then disk) and streamed from
# there: the export never holds the whole trail in memory, and its own record is made
# before the first byte is sent.
SPOOL_BYTES = 1 << 20
CHUNK = 64 * 1024

UserQ = Annotated[str | None, Query(max_length=300, description="A user id or username")]
PatientQ = Annotated[str | None, Query(max_length=100, description=(
    "A patient id (among the first 1,000 an entry names; patient_count has the true "
    "number)"))]
ActionQ = Annotated[str | None, Query(max_length=100, description=(
    'Exact ("campaign.activate"), or a prefix ("campaign." or "campaign*"); a bare '
    '"campaign" matches "campaign" and "campaign.*"'))]
OutcomeQ = Annotated[Literal["allowed", "denied", "failed"] | None, Query()]
SinceQ = Annotated[str | None, Query(max_length=64, description=(
    "ISO 8601 date or date-time, inclusive; no zone means UTC"))]
UntilQ = Annotated[str | None, Query(max_length=64, description=(
    "ISO 8601 date or date-time, exclusive; no zone means UTC"))]


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    entry_id: str
    at: datetime
    user_id: str
    username: str
    roles: str = Field(description="Comma-separated role names at the time")
    via: str = Field(description="cli, token, session or setup")
    source: str = Field(description="The client's address, or cli")
    action: str
    outcome: str = Field(description="allowed, denied or failed")
    target: str
    detail: str
    patient_count: int = Field(description="How many patients the call showed or touched")
    patient_ids: list[str] = Field(description="The first 1,000 of them")

    @classmethod
    def of(cls, row: AuditRow) -> AuditEntryOut:
        return cls(entry_id=row.entry_id, at=row.at, user_id=row.user_id,
                   username=row.username, roles=row.roles, via=row.via, source=row.source,
                   action=row.action, outcome=row.outcome, target=row.target,
                   detail=row.detail, patient_count=row.patient_count,
                   patient_ids=list(row.patient_ids))


class AuditPageOut(BaseModel):
    items: list[AuditEntryOut]
    total: int
    page: int
    page_size: int


@router.get("/audit", response_model=AuditPageOut)
def audit_list(request: Request, actor: CurrentActor, user: UserQ = None,
               patient: PatientQ = None, action: ActionQ = None, outcome: OutcomeQ = None,
               since: SinceQ = None, until: UntilQ = None, page: PageNumber = 1,
               page_size: PageSize = 50) -> AuditPageOut:
    """Who did and saw what, newest first (Administrator role). The read is recorded."""
    found = staff_of(request).audit.query(
        actor, user=user, patient=patient, action=action, outcome=outcome, since=since,
        until=until, page=page, page_size=page_size)
    return AuditPageOut(items=[AuditEntryOut.of(r) for r in found.rows], total=found.total,
                        page=found.page, page_size=found.page_size)


def _chunks(spool: IO[str]) -> Iterator[bytes]:
    try:
        spool.seek(0)
        while block := spool.read(CHUNK):
            yield block.encode("utf-8")
    finally:
        spool.close()


@router.get("/audit.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "One row per entry, oldest first, formula-safe; "
                                            "patient ids joined by ';'"}})
def audit_csv(request: Request, actor: CurrentActor, user: UserQ = None,
              patient: PatientQ = None, action: ActionQ = None, outcome: OutcomeQ = None,
              since: SinceQ = None, until: UntilQ = None) -> StreamingResponse:
    """Every matching entry as CSV (Administrator role): the retention export. Recorded."""
    # Not a `with`: the streamed body (_chunks) closes it once sent.
    spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115
        max_size=SPOOL_BYTES, mode="w+", newline="", encoding="utf-8")
    try:
        staff_of(request).audit.export(actor, spool, format="csv", user=user,
                                       patient=patient, action=action, outcome=outcome,
                                       since=since, until=until)
    except BaseException:
        spool.close()
        raise
    return StreamingResponse(_chunks(spool), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="audit-trail.csv"',
        "Cache-Control": "no-store"})
