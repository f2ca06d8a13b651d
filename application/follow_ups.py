"""One-to-one follow-up texts: a user answers a patient from the conversation.

A follow-up is planned as a Communication of the hidden follow-ups campaign, due now
(domain/follow_ups.py says why): the scheduler issues it and the dispatcher sends it under
the rules every text obeys: only within the text window (else deferred to its opening),
never to a STOP-ed number or a patient opted out of texts (then Skipped), under the rate
cap, retried by the text policy, settled by receipts. Its words are checked now (empty, or
more than two segments with the footer, is refused) so a user learns at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import structlog
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from application.campaign_content import text_content
from application.settings import Settings
from application.store import EventStore
from domain.campaign import Campaign
from domain.clock import Clock
from domain.errors import DomainError, NotFound
from domain.follow_ups import (
    FOLLOW_UPS_CAMPAIGN_ID,
    FollowUp,
    follow_up_communication,
    follow_ups_campaign,
)
from domain.sms import DEFAULT_FOOTER, check_body
from projections.db import Database

log = structlog.get_logger("follow_ups")


@dataclass(frozen=True)
class FollowUpSent:
    communication_id: str
    patient_id: str
    status: str  # "Planned": the dispatcher takes it from here
    due_at: datetime


class FollowUps:
    def __init__(self, store: EventStore, db: Database, clock: Clock, settings: Settings,
                 catch_up: Callable[[], int]) -> None:
        self.store = store
        self.db = db
        self.clock = clock
        self.settings = settings
        self._catch_up = catch_up

    def send(self, patient_id: str, body: str, *, by: str) -> FollowUpSent:
        self._catch_up()
        if self.db.fetchone("SELECT 1 FROM patients WHERE patient_id = ?",
                            (patient_id,)) is None:
            raise NotFound(f"no patient {patient_id}")
        words = body.strip()
        now = self.clock.now()
        existing = self._campaign()
        campaign = existing or follow_ups_campaign(
            now=now, today=now.astimezone(ZoneInfo(self.settings.timezone)).date().isoformat(),
            content=text_content(self.settings, "", self.settings.help_number))
        if not campaign.is_active:
            raise DomainError("follow-up texts were stopped for this organisation")
        check_body(words, str(campaign.content.get("footer", DEFAULT_FOOTER)))
        comm = follow_up_communication(patient_id, now)
        written = FollowUp(communication_id=comm.id, patient_id=patient_id, body=words, by=by,
                           at=now)
        try:
            self.store.save(*([] if existing else [campaign]), comm, written)
        except IntegrityError:
            if existing is not None:
                raise
            # Another process created the follow-ups campaign at the same moment: use it.
            self.store.save(comm, written)
        self._catch_up()
        log.info("follow_up_planned", communication=str(comm.id))
        return FollowUpSent(str(comm.id), patient_id, str(comm.status), now)

    def _campaign(self) -> Campaign | None:
        try:
            campaign: Campaign = self.store.repository.get(FOLLOW_UPS_CAMPAIGN_ID)
        except AggregateNotFoundError:
            return None
        return campaign
