"""Adding and removing a patient's opt-outs (the staff's "Opt-out management"), for the
command line and the staff API alike; the facade (application.staff_patients) checks the
role and the patient's groups before calling here.

The opt-outs live on the patient's `PatientPreferences` aggregate; staff read the current
ones from the `patient_opt_outs` read model (projections.preferences), caught up first so a
change shows at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from eventsourcing.application import AggregateNotFoundError

from application.settings import Settings
from domain.clock import Clock
from domain.errors import OptOutRuleViolation
from domain.preferences import Duration, OptOutType, PatientPreferences, patient_preferences_id
from projections.db import Database


@dataclass(frozen=True)
class OptOutRecord:
    type: str  # "Protocol:Diabetes" for a protocol opt-out
    last_day: str | None  # inclusive, ISO date; None: permanent
    reason: str
    comment: str
    created_by: str
    created_at: str


def parse_opt_out_type(text: str) -> OptOutType:
    try:
        return OptOutType(text)
    except ValueError:
        valid = ", ".join(t.value for t in OptOutType)
        raise OptOutRuleViolation(f"unknown opt-out type {text!r}; valid: {valid}") from None


class OptOutService:
    def __init__(self, store: Any, db: Database, clock: Clock, settings: Settings,
                 catch_up: Callable[[], Any]) -> None:
        self.store = store
        self.db = db
        self.clock = clock
        self.settings = settings
        self.catch_up = catch_up

    def _preferences(self, patient_id: str) -> PatientPreferences | None:
        try:
            prefs: PatientPreferences = self.store.repository.get(
                patient_preferences_id(patient_id))
        except AggregateNotFoundError:
            return None
        return prefs

    def add(self, patient_id: str, kind: str | OptOutType, reason: str, *, by: str,
            until: date | None = None, days: int | None = None, comment: str = "",
            protocol: str = "") -> None:
        """Opt a patient out (permanent unless `until` or `days`); the rules of the type
        (Global always permanent, Health Reminders - Phone never) are the aggregate's."""
        chosen = kind if isinstance(kind, OptOutType) else parse_opt_out_type(kind)
        now = self.clock.now()
        prefs = self._preferences(patient_id) or PatientPreferences(patient_id=patient_id)
        prefs.opt_out(chosen, Duration(until=until, days=days),
                      self.settings.calendar.today(now), now, reason, comment, by, protocol)
        self.store.save(prefs)

    def remove(self, patient_id: str, types: Sequence[str], *, by: str) -> None:
        """Restore communications: remove these current opt-outs (all must exist)."""
        if not types:
            raise OptOutRuleViolation("name the opt-out types to remove")
        prefs = self._preferences(patient_id)
        if prefs is None:
            raise OptOutRuleViolation(f"patient {patient_id} has no opt-outs")
        prefs.restore(list(types), self.clock.now(), by)
        self.store.save(prefs)

    def current(self, patient_id: str) -> list[OptOutRecord]:
        """The patient's opt-outs on record (expired dated ones included: their last day
        says so), by type."""
        self.catch_up()
        rows = self.db.fetchall(
            "SELECT type, last_day, reason, comment, created_by, created_at"
            " FROM patient_opt_outs WHERE patient_id = ? ORDER BY type", (patient_id,))
        return [OptOutRecord(str(r[0]), None if r[1] is None else str(r[1]), str(r[2]),
                             str(r[3]), str(r[4]), str(r[5])) for r in rows]
