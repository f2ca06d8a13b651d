"""The audit trail (HIPAA §164.312(b)): who did and saw what, through which face, with what
outcome, and which patients it showed or touched.

Each record is one `AuditEntry` aggregate with one event, `Recorded`, saved once. There is
deliberately no other event: nothing can change or delete an entry once it is stored
(tests/unit/test_audit_domain.py fails if another event appears). The retention export
(application/audit.py) reads them back; they are never rewritten.

What goes in is cleaned here, so a record can always be made whatever a caller passes:
each text is one line (control characters, newlines included, become spaces), clipped to
its limit, and valid UTF-8; patient ids are de-duplicated, and at most MAX_PATIENT_IDS are
kept while `patient_count` holds the true number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

from domain.errors import DomainError

OUTCOMES = ("allowed", "denied", "failed")
MAX_PATIENT_IDS = 1000
MAX_DETAIL = 300
MAX_TEXT = 300  # target, username
MAX_SHORT = 100  # user id, roles, via, source, action, outcome, one patient id

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators: anything that could
# start a new line in a log, a terminal or a CSV cell, or that PostgreSQL's TEXT refuses (NUL).
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


class InvalidAuditQuery(DomainError):
    """A filter of the audit trail that cannot be used (a bad date, an unknown outcome)."""


def one_line(value: object, limit: int) -> str:
    """`value` as one line of valid UTF-8, at most `limit` characters (never raises)."""
    try:
        text = value if isinstance(value, str) else "" if value is None else str(value)
    except Exception:  # a caller's object whose __str__ fails must not lose the record
        text = f"<{type(value).__name__}>"
    # Lone surrogates (from a badly decoded byte string) cannot be stored as UTF-8.
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = " ".join(_CONTROLS.sub(" ", text).split())
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def clean_patient_ids(patient_ids: Iterable[Any] | str | None) -> tuple[list[str], int]:
    """(the first MAX_PATIENT_IDS distinct ids in the order given, how many distinct ids)."""
    if patient_ids is None:
        return [], 0
    if isinstance(patient_ids, str):  # one id passed bare: not a sequence of characters
        patient_ids = (patient_ids,)
    seen: set[str] = set()
    kept: list[str] = []
    for raw in patient_ids:
        pid = one_line(raw, MAX_SHORT)
        if pid and pid not in seen:
            seen.add(pid)
            if len(kept) < MAX_PATIENT_IDS:
                kept.append(pid)
    return kept, len(seen)


class AuditEntry(Aggregate):
    """One audited call. Immutable: `Recorded` is its only event."""

    @event("Recorded")
    def __init__(self, at: datetime, user_id: str, username: str, roles: str, via: str,
                 source: str, action: str, outcome: str, target: str, detail: str,
                 patient_ids: list[str], patient_count: int) -> None:
        self.at = at
        self.user_id = user_id
        self.username = username
        self.roles = roles
        self.via = via
        self.source = source
        self.action = action
        self.outcome = outcome
        self.target = target
        self.detail = detail
        self.patient_ids = patient_ids
        self.patient_count = patient_count


@dataclass(frozen=True)
class Who:
    """The acting user's fields as recorded (domain.access.Actor, read leniently)."""

    user_id: str
    username: str
    roles: str
    via: str
    source: str


def record_entry(at: datetime, who: Who, action: str, outcome: str, *,
                 patient_ids: Iterable[Any] | str | None = (), target: object = "",
                 detail: object = "") -> AuditEntry:
    """A new entry from whatever the caller passed, cleaned (see the module docstring). An
    outcome outside OUTCOMES is kept, marked, rather than refused: the record matters more."""
    kept, count = clean_patient_ids(patient_ids)
    clean_outcome = one_line(outcome, MAX_SHORT) or "allowed"
    if clean_outcome not in OUTCOMES:
        clean_outcome = one_line(f"other: {clean_outcome}", MAX_SHORT)
    return AuditEntry(
        at=(at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC),
        user_id=one_line(who.user_id, MAX_SHORT),
        username=one_line(who.username, MAX_TEXT), roles=one_line(who.roles, MAX_SHORT),
        via=one_line(who.via, MAX_SHORT), source=one_line(who.source, MAX_SHORT),
        action=one_line(action, MAX_SHORT) or "unknown", outcome=clean_outcome,
        target=one_line(target, MAX_TEXT), detail=one_line(detail, MAX_DETAIL),
        patient_ids=kept, patient_count=count)


def parse_instant(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 date or date-time filter (`2026-11-24`, `2026-11-24T09:00-06:00`, `…Z`);
    a time without a zone is UTC. None or blank: no filter."""
    if text is None or not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip())
        # In UTC now: a zone that pushes it past year 1 or 9999 is refused here, not later.
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        shown = one_line(text, 40)
        raise InvalidAuditQuery(f"{name} {shown!r} is not an ISO 8601 date or date-time "
                                "(e.g. 2026-11-24 or 2026-11-24T09:00-06:00)") from None
