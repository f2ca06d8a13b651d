"""Organisation settings (issue 13): windows, sending days, holidays and closed dates, caps,
the text footer and help number, email sender, return addresses and logos. Administrators
(SETTINGS_MANAGE) read and change them; a change applies to every running process within
seconds, without a restart. A refused value is a 400 problem naming the key.

Routes are plain `def`: the facade blocks on the database, FastAPI runs them in its pool.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.staff.deps import CurrentActor, staff_of
from application.organisation import MAX_VALUE, SettingValue

router = APIRouter(tags=["organisation"])


class SettingOut(BaseModel):
    key: str
    value: str
    source: str = Field(description='"environment" (the default) or "changed"')
    changed_by: str | None = None
    changed_at: datetime | None = None

    @classmethod
    def of(cls, v: SettingValue) -> SettingOut:
        return cls(key=v.key, value=v.value, source=v.source, changed_by=v.by or None,
                   changed_at=v.at)


class SettingsOut(BaseModel):
    items: list[SettingOut]
    changed: list[str] = Field(default_factory=list,
                               description="The keys this request changed (PATCH)")


class SettingsPatch(BaseModel):
    values: dict[Annotated[str, Field(max_length=60)],
                 Annotated[str, Field(max_length=MAX_VALUE)]] = Field(
        max_length=40, examples=[{"text_window": "10:00-19:00", "campaign_size_cap": "5000"}],
        description="Setting name → its new value as text (the environment's format)")


@router.get("/organisation/settings", response_model=SettingsOut)
def get_settings(request: Request, actor: CurrentActor) -> SettingsOut:
    rows = staff_of(request).organisation.settings(actor)
    return SettingsOut(items=[SettingOut.of(v) for v in rows])


@router.patch("/organisation/settings", response_model=SettingsOut)
def change_settings(request: Request, actor: CurrentActor, body: SettingsPatch) -> SettingsOut:
    facade = staff_of(request).organisation
    changed = facade.change(actor, body.values)
    return SettingsOut(items=[SettingOut.of(v) for v in facade.service.current()],
                       changed=changed)
