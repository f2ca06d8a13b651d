"""The per-attempt trail of a campaign (`outreach campaign attempts`): every attempt of every
communication, read from the stored events themselves — the audit truth, not a read model
that could lag or be rebuilt differently.

Every patient ever on the campaign's list is covered (the audience when created and after
each edit): a patient removed after a failed attempt still had that attempt. Their
communication ids are uuid5(campaign, patient), so no index is needed to find them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from application.store import EventStore
from domain.communication import communication_id
from projections.timefmt import iso

# What became of an attempt, as the trail names it.
SENDING = "sending"  # started; no outcome recorded (yet, or the dispatcher died)
UNKNOWN = "unknown"  # the provider call was made and its answer lost
ACCEPTED = "accepted"
DELIVERED = "delivered"
FAILED = "failed"


@dataclass
class AttemptRow:
    sequence: int  # the patient's place in the campaign (1-based, as in the report)
    patient_id: str
    communication_id: str
    attempt: int
    started_at: str | None
    outcome: str = SENDING
    outcome_at: str | None = None
    error_code: str = ""
    failure_kind: str = ""  # transient / permanent, for failures
    reason: str = ""
    provider_ref: str = ""
    segments: int | None = None
    next_attempt_at: str | None = None


@dataclass
class _Trail:
    """The fold of one communication's events into its attempts."""

    patient_id: str
    communication_id: str
    sequence: int = 0
    rows: list[AttemptRow] = field(default_factory=list)

    def apply(self, event: Any) -> None:
        name = type(event).__qualname__.partition(".")[2]
        stored = vars(event)
        if name in ("Planned", "Rescheduled"):
            self.sequence = int(stored["sequence"]) + 1
            return
        if name == "AttemptStarted":
            self.rows.append(AttemptRow(self.sequence, self.patient_id, self.communication_id,
                                        int(stored["attempt"]), iso(stored["at"])))
            return
        row = self._current(stored.get("attempt"))
        if row is None:
            return  # skipped, cancelled, or an event of no attempt
        at = iso(stored.get("at"))
        if name == "OutcomeUnknown":
            row.outcome, row.outcome_at = UNKNOWN, at
            row.error_code, row.reason = str(stored["code"]), str(stored["reason"])
        elif name == "Accepted":
            row.outcome, row.outcome_at = ACCEPTED, at
            row.provider_ref = str(stored["provider_ref"])
            segments = stored.get("segments")  # recorded since the provider reports it
            row.segments = int(segments) if segments is not None else None
            row.error_code = row.reason = ""  # an unknown outcome resolved as accepted
        elif name == "Delivered":
            row.outcome, row.outcome_at = DELIVERED, at
        elif name == "AttemptFailed":
            row.outcome, row.outcome_at = FAILED, at
            row.error_code, row.reason = str(stored["code"]), str(stored["reason"])
            row.failure_kind = str(stored["kind"])
            row.next_attempt_at = iso(stored.get("next_attempt_at"))

    def _current(self, attempt: object) -> AttemptRow | None:
        if not self.rows:
            return None
        if attempt is None:  # Delivered names no attempt: it is the latest one's
            return self.rows[-1]
        return next((r for r in reversed(self.rows) if r.attempt == attempt), None)


def audience_ever(store: EventStore, campaign_id: UUID) -> list[str]:
    """Every patient id the campaign's list ever held, in order of first appearance."""
    seen: dict[str, None] = {}
    for event in store.events.get(campaign_id):
        stored = vars(event)
        audience = stored.get("audience")
        if audience is None:
            audience = (stored.get("changes") or {}).get("audience")
        for patient_id in audience or ():
            seen.setdefault(str(patient_id), None)
    return list(seen)


def campaign_attempts(store: EventStore, campaign_id: UUID) -> list[AttemptRow]:
    """Every attempt of every communication of the campaign, by the patient's place in the
    campaign, then attempt number."""
    rows: list[AttemptRow] = []
    for patient_id in audience_ever(store, campaign_id):
        comm_id = communication_id(campaign_id, patient_id)
        trail = _Trail(patient_id, str(comm_id))
        for event in store.events.get(comm_id):
            trail.apply(event)
        rows.extend(trail.rows)
    rows.sort(key=lambda r: (r.sequence, r.attempt))
    return rows


def communication_attempts(store: EventStore, patient_id: str,
                           communication_ids: Sequence[str]) -> dict[str, list[AttemptRow]]:
    """Each of these communications' attempts (type, time, outcome), from its own events:
    a patient's history expanded, as `campaign_attempts` does a campaign's."""
    found: dict[str, list[AttemptRow]] = {}
    for comm in communication_ids:
        try:
            stream = UUID(comm)
        except ValueError:  # not a communication of ours: nothing to fold
            continue
        trail = _Trail(patient_id, comm)
        for event in store.events.get(stream):
            trail.apply(event)
        found[comm] = trail.rows
    return found


def local_time(text: str | None, zone: Any) -> str:
    """An ISO instant of the trail as the clinic reads it: local date and time."""
    if not text:
        return ""
    return datetime.fromisoformat(text).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")
