"""Campaigns over the staff API (issue 12): the list with progress, create (every channel),
edit, activate, inactivate, stop, test sends, the per-patient report (JSON pages and a
formula-safe CSV), the per-attempt trail, letter files, and the template library.

Every route calls `staff_of(request).campaigns` (application.staff_campaigns.
CampaignsFacade) with the acting user: the role check, the groups and the audit trail are
the facade's, so this module only shapes requests and answers. Routes are plain `def`: the
facade blocks on the database, and FastAPI runs them in its thread pool.
"""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.staff.deps import CurrentActor, PageNumber, PageSize, staff_of
from api.staff.idempotency import IdempotencyKey, idempotent
from application.campaigns import CampaignRow
from application.staff_campaigns import CampaignDetail
from domain.channels import Channel

router = APIRouter(tags=["campaigns"])

CampaignId = Annotated[str, PathParam(min_length=1, max_length=64,
                                      description="A campaign id, or an unambiguous prefix")]


# -- answers ------------------------------------------------------------------------------
class CampaignSummary(BaseModel):
    campaign_id: str
    name: str
    channel: str
    status: str
    start_date: str
    to_contact: int
    completed: int
    progress: str = Field(description='"N completed of M to be contacted"')
    groups: list[str]

    @classmethod
    def of(cls, row: CampaignRow) -> CampaignSummary:
        return cls(campaign_id=row.campaign_id, name=row.name, channel=row.channel,
                   status=row.status, start_date=row.start_date, to_contact=row.to_contact,
                   completed=row.completed, progress=row.progress, groups=list(row.groups))


class CampaignPage(BaseModel):
    items: list[CampaignSummary]
    total: int
    page: int
    page_size: int


class CampaignOut(BaseModel):
    campaign_id: str
    name: str
    description: str
    channel: str
    status: str
    start_date: str
    requested_start: str
    created_by: str
    groups: list[str]
    patients: int
    to_contact: int
    completed: int
    progress: str
    test_sends: int
    content: dict[str, Any]
    schedule_preview: list[str] = Field(description="The first planned send slots (ISO)")

    @classmethod
    def of(cls, d: CampaignDetail) -> CampaignOut:
        return cls(**{**d.__dict__, "groups": list(d.groups),
                      "schedule_preview": list(d.schedule_preview)})


class StopOut(BaseModel):
    campaign: CampaignOut
    cancelled: int = Field(description="Communications not yet sent, now cancelled")


class ReportRowOut(BaseModel):
    sequence: int
    patient_id: str
    name: str
    contact: str
    status: str
    attempts: int
    last_outcome: str
    reason: str
    due_at: str | None


class ReportPageOut(BaseModel):
    items: list[ReportRowOut]
    total: int
    page: int
    page_size: int


class AttemptOut(BaseModel):
    sequence: int
    patient_id: str
    communication_id: str
    attempt: int
    started_at: str | None
    outcome: str
    outcome_at: str | None
    error_code: str
    failure_kind: str
    reason: str
    provider_ref: str
    segments: int | None
    next_attempt_at: str | None


class LetterFileOut(BaseModel):
    name: str
    kind: str
    count: int
    pages: int
    bytes: int


class LettersMadeOut(BaseModel):
    letters: int
    skipped: int
    files: list[LetterFileOut]


class TemplateOut(BaseModel):
    name: str
    channel: str
    subject: str
    body: str
    editable: bool
    description: str
    logo: str


# -- requests -----------------------------------------------------------------------------
Text = Annotated[str | None, Field(max_length=100_000)]


class AudienceIn(BaseModel):
    patients: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        None, max_length=1_000_000, description="Patient ids, in order (or give a view)")
    view: str | None = Field(None, max_length=200,
                             description="A saved page view (id or name) to take the list of")
    keep_inactive: bool = Field(False, description="With a view: keep Inactive patients")
    keep_appointment_reminders_only: bool = False


class ChannelFields(BaseModel):
    # Email
    subject: Text = None
    template: Text = None
    logo: Text = Field(None, description="Email: the logo; letter: the letterhead")
    from_address: Text = None
    from_name: Text = None
    # Phone
    script: Text = None
    voicemail: Text = None
    callback_number: Text = None
    caller_id: Text = None
    provider: Text = None
    care_manager: Text = None
    # Letter
    page_size: Text = None
    greeting: bool | None = None
    return_address: Text = None
    mail_date: date | None = None

    def content(self) -> dict[str, Any]:
        fields = {k: getattr(self, k) for k in ChannelFields.model_fields}
        if fields["mail_date"] is not None:
            fields["mail_date"] = fields["mail_date"].isoformat()
        return {k: v for k, v in fields.items() if v is not None}


class CampaignCreate(AudienceIn, ChannelFields):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    channel: Channel = Channel.TEXT
    body: Text = None
    help_number: Text = None
    description: str = Field("", max_length=2000)
    start_date: date | None = Field(None, description="Default today")
    active: bool = Field(False, description="Save Active (it sends) or Inactive")
    protocol: str = Field("", max_length=200)


class CampaignEdit(AudienceIn, ChannelFields):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    body: Text = None
    help_number: Text = None
    start_date: date | None = None


class TestSendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(min_length=1, max_length=320,
                    description="A mobile number (E.164) or an email address")


def _audience(body: AudienceIn) -> dict[str, Any]:
    return {"patients": body.patients, "view": body.view, "keep_inactive": body.keep_inactive,
            "keep_appointment_reminders_only": body.keep_appointment_reminders_only}


# -- routes -------------------------------------------------------------------------------
@router.get("/campaigns", response_model=CampaignPage)
def list_campaigns(request: Request, actor: CurrentActor, page: PageNumber = 1,
                   page_size: PageSize = 50,
                   status: Annotated[str | None, Query(max_length=40)] = None,
                   channel: Channel | None = None) -> CampaignPage:
    rows = staff_of(request).campaigns.campaigns(
        actor, status=status, channel=None if channel is None else channel.value)
    shown = rows[(page - 1) * page_size:page * page_size]
    return CampaignPage(items=[CampaignSummary.of(r) for r in shown], total=len(rows),
                        page=page, page_size=page_size)


@router.post("/campaigns", response_model=CampaignOut, status_code=201)
async def create_campaign(request: Request, actor: CurrentActor, body: CampaignCreate,
                          key: IdempotencyKey = None) -> Response:
    """Create a campaign (Inactive unless `active`). With an Idempotency-Key, sending the
    same request again answers the first campaign instead of creating a second."""
    # `key` documents the header in the OpenAPI; `idempotent` reads it from the request.
    async def create() -> tuple[int, dict[str, Any]]:
        detail = await run_in_threadpool(
            partial(staff_of(request).campaigns.create, actor, name=body.name,
                    channel=body.channel, body=body.body, help_number=body.help_number,
                    description=body.description, start=body.start_date, active=body.active,
                    protocol=body.protocol, **_audience(body), **body.content()))
        return 201, CampaignOut.of(detail).model_dump(mode="json")
    return await idempotent(request, actor, create)


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut)
def get_campaign(request: Request, actor: CurrentActor, campaign_id: CampaignId) -> CampaignOut:
    return CampaignOut.of(staff_of(request).campaigns.get(actor, campaign_id))


@router.patch("/campaigns/{campaign_id}", response_model=CampaignOut)
def edit_campaign(request: Request, actor: CurrentActor, campaign_id: CampaignId,
                  body: CampaignEdit) -> CampaignOut:
    changes = {k: v for k, v in {"name": body.name, "description": body.description,
                                 "body": body.body, "help_number": body.help_number}.items()
               if v is not None}
    detail = staff_of(request).campaigns.edit(actor, campaign_id, start=body.start_date,
                                              **_audience(body), **changes, **body.content())
    return CampaignOut.of(detail)


@router.post("/campaigns/{campaign_id}/activate", response_model=CampaignOut)
def activate_campaign(request: Request, actor: CurrentActor,
                      campaign_id: CampaignId) -> CampaignOut:
    return CampaignOut.of(staff_of(request).campaigns.activate(actor, campaign_id))


@router.post("/campaigns/{campaign_id}/inactivate", response_model=CampaignOut)
def inactivate_campaign(request: Request, actor: CurrentActor,
                        campaign_id: CampaignId) -> CampaignOut:
    return CampaignOut.of(staff_of(request).campaigns.inactivate(actor, campaign_id))


@router.post("/campaigns/{campaign_id}/stop", response_model=StopOut)
def stop_campaign(request: Request, actor: CurrentActor, campaign_id: CampaignId) -> StopOut:
    detail, cancelled = staff_of(request).campaigns.stop(actor, campaign_id)
    return StopOut(campaign=CampaignOut.of(detail), cancelled=cancelled)


@router.post("/campaigns/{campaign_id}/test-send", response_model=CampaignOut)
def test_send(request: Request, actor: CurrentActor, campaign_id: CampaignId,
              body: TestSendIn) -> CampaignOut:
    return CampaignOut.of(staff_of(request).campaigns.test_send(actor, campaign_id, body.to))


class ForecastPatientOut(BaseModel):
    patient_id: str
    name: str
    kind: str
    detail: str


class ForecastKindOut(BaseModel):
    kind: str
    count: int


class ForecastGroupOut(BaseModel):
    reason: str = Field(description="opted_out, no_contact, over_size_cap or not_found")
    label: str
    count: int = Field(description="Every patient excluded for this reason")
    kinds: list[ForecastKindOut]
    patients: list[ForecastPatientOut] = Field(description="The first 50, in list order")


class ForecastOut(BaseModel):
    """If activated now (application/forecast.py); times in the organisation's zone."""

    campaign_id: str
    name: str
    channel: str
    status: str
    computed_at: str
    timezone: str
    start_date: str
    requested_start: str
    window: str
    rate_cap_per_hour: int
    size_cap: int
    patients: int
    to_contact: int
    excluded: int
    groups: list[ForecastGroupOut]
    first_at: str | None
    last_at: str | None
    sending_days: int
    can_activate: bool
    blocked: str
    notes: list[str]


@router.get("/campaigns/{campaign_id}/forecast", response_model=ForecastOut)
def campaign_forecast(request: Request, actor: CurrentActor,
                      campaign_id: CampaignId) -> ForecastOut:
    """Before activation: first and last patient reached, and who is excluded and why."""
    made = staff_of(request).campaigns.forecast(actor, campaign_id)
    return ForecastOut.model_validate(made.as_dict())


@router.get("/campaigns/{campaign_id}/report", response_model=ReportPageOut)
def campaign_report(request: Request, actor: CurrentActor, campaign_id: CampaignId,
                    page: PageNumber = 1, page_size: PageSize = 100) -> ReportPageOut:
    found = staff_of(request).campaigns.report(actor, campaign_id, page, page_size)
    return ReportPageOut(items=[ReportRowOut(**r.__dict__) for r in found.rows],
                         total=found.total, page=page, page_size=page_size)


@router.get("/campaigns/{campaign_id}/report.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "One row per patient, formula-safe"}})
def campaign_report_csv(request: Request, actor: CurrentActor,
                        campaign_id: CampaignId) -> Response:
    text = staff_of(request).campaigns.report_csv(actor, campaign_id)
    return Response(text, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="campaign-report.csv"',
        "Cache-Control": "no-store"})


@router.get("/campaigns/{campaign_id}/attempts", response_model=list[AttemptOut])
def campaign_attempts(request: Request, actor: CurrentActor,
                      campaign_id: CampaignId) -> list[AttemptOut]:
    rows = staff_of(request).campaigns.attempts(actor, campaign_id)
    return [AttemptOut(**r.__dict__) for r in rows]


@router.get("/campaigns/{campaign_id}/letters", response_model=list[LetterFileOut])
def letter_files(request: Request, actor: CurrentActor,
                 campaign_id: CampaignId) -> list[LetterFileOut]:
    files = staff_of(request).campaigns.letter_files(actor, campaign_id)
    return [LetterFileOut.model_validate(f) for f in files]


@router.get("/campaigns/{campaign_id}/letters/{name}", response_class=FileResponse,
            responses={200: {"content": {"application/pdf": {
                "schema": {"type": "string", "format": "binary"}}},
                "description": "A letters or labels PDF"}})
def letter_download(request: Request, actor: CurrentActor, campaign_id: CampaignId,
                    name: Annotated[str, PathParam(min_length=1, max_length=255)]) -> FileResponse:
    # Only a name the campaign itself recorded is served (the facade refuses any other).
    path = staff_of(request).campaigns.letter_download(actor, campaign_id, name)
    return FileResponse(path, media_type="application/pdf", filename=path.name,
                        headers={"Cache-Control": "no-store"})


@router.post("/campaigns/{campaign_id}/letters", response_model=LettersMadeOut)
def letters_make(request: Request, actor: CurrentActor,
                 campaign_id: CampaignId) -> LettersMadeOut:
    made = staff_of(request).campaigns.letters_make(actor, campaign_id)
    return LettersMadeOut(letters=made.letters, skipped=made.skipped,
                          files=[LetterFileOut.model_validate(f) for f in made.files])


@router.get("/templates", response_model=list[TemplateOut])
def list_templates(request: Request, actor: CurrentActor,
                   channel: Channel | None = None) -> list[TemplateOut]:
    found = staff_of(request).campaigns.templates(
        actor, None if channel is None else channel.value)
    return [TemplateOut(**t.__dict__) for t in found]


@router.get("/templates/{name}", response_model=TemplateOut)
def get_template(request: Request, actor: CurrentActor,
                 name: Annotated[str, PathParam(min_length=1, max_length=200)]) -> TemplateOut:
    return TemplateOut(**staff_of(request).campaigns.template(actor, name).__dict__)
