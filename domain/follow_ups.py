"""One-to-one follow-up texts: staff answering a patient's reply.

A follow-up is sent the way every text is sent (architecture notes: one send path): it is a
Communication (channel TEXT) that the scheduler issues and the dispatcher re-checks (window
open, number not STOP-ed, staff opt-outs, rate cap), retries and records, and receipts
settle. What makes it a follow-up:
- it belongs to the organisation's one hidden "Follow-ups" campaign (a fixed id, active from
  its creation): never listed among the campaigns, never completed, never in a run's
  progress or a campaign's counts (application/campaigns.py, workers/scheduler.py,
  workers/runner.py leave FOLLOW_UPS_CAMPAIGN_ID out);
- its id is new for every message (uuid4), not uuid5(campaign, patient): a patient may get
  many follow-ups;
- its words are its own, kept in a FollowUp aggregate beside it (id derived from the
  communication's), which the text sender reads in place of a campaign body.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate, event

from domain.campaign import Campaign
from domain.channels import Channel
from domain.communication import Communication

FOLLOW_UPS_CAMPAIGN_ID = uuid5(NAMESPACE_URL, "outreach:follow-ups-campaign")
FOLLOW_UPS_NAME = "Follow-ups"
FOLLOW_UP_NAMESPACE = uuid5(NAMESPACE_URL, "outreach:follow-up")


def follow_up_id(communication_id: UUID) -> UUID:
    return uuid5(FOLLOW_UP_NAMESPACE, str(communication_id))


def is_follow_up(campaign_id: UUID | str) -> bool:
    return str(campaign_id) == str(FOLLOW_UPS_CAMPAIGN_ID)


class FollowUp(Aggregate):
    """The words of one follow-up text and who wrote them."""

    @staticmethod
    def create_id(communication_id: UUID) -> UUID:  # type: ignore[override]
        return follow_up_id(communication_id)

    @event("Written")
    def __init__(self, communication_id: UUID, patient_id: str, body: str, by: str,
                 at: datetime) -> None:
        self.communication_id = communication_id
        self.patient_id = patient_id
        self.body = body
        self.by = by
        self.at = at


def follow_ups_campaign(*, now: datetime, today: str, content: dict[str, Any]) -> Campaign:
    """The hidden campaign, created active. Made through the aggregate's own creation event
    with the fixed id (its constructor always draws a new one) and activated directly:
    `activate` refuses a campaign without an audience, and this one never has one."""
    campaign: Campaign = Campaign._create(  # noqa: SLF001 - the fixed id, see above
        Campaign.Created,  # type: ignore[attr-defined]
        id=FOLLOW_UPS_CAMPAIGN_ID, name=FOLLOW_UPS_NAME,
        description="One-to-one texts from staff (not a campaign: never counted)",
        channel=str(Channel.TEXT), content=content, requested_start=today, start_date=today,
        audience=[], created_at=now, created_by="system", groups=[])
    campaign._activated(at=now, by="system")  # noqa: SLF001
    return campaign


def follow_up_communication(patient_id: str, due_at: datetime) -> Communication:
    """A text of the follow-ups campaign, with an id of its own (uuid4)."""
    comm: Communication = Communication._create(  # noqa: SLF001 - an id per message
        Communication.Planned,  # type: ignore[attr-defined]
        id=uuid4(), campaign_id=FOLLOW_UPS_CAMPAIGN_ID, patient_id=patient_id,
        channel=str(Channel.TEXT), sequence=0, due_at=due_at)
    return comm
