"""The audit area of the staff boundary (issue 12): reading and exporting the audit trail,
for administrators (Permission.AUDIT_READ) only. Reading the trail is itself recorded:
"audit.read" for a page, "audit.export" for an export, with the filters as the target, so
an auditor's own looking is on the record too. A read filtered by patient names that
patient (the read was about them); the patient ids listed in the rows are not repeated
into the new record (it would copy the trail into itself).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TextIO

from application.audit import AuditFilter, AuditPage, AuditTrail
from application.staff_base import AuditSink, Guarded
from domain.access import Actor, Permission
from domain.audit import InvalidAuditQuery

READ = Permission.AUDIT_READ
ExportFormat = Literal["csv", "jsonl"]
FORMATS: tuple[str, ...] = ("csv", "jsonl")


def _asked(filters: dict[str, Any]) -> str:
    """The filters as given (before validation), for the record of a refused read."""
    shown = [f"{k}={v.isoformat() if isinstance(v, datetime) else v}"
             for k, v in filters.items() if v not in (None, "")]
    return " ".join(shown) or "all"


class AuditFacade(Guarded):
    def __init__(self, trail: AuditTrail, audit: AuditSink | None = None) -> None:
        super().__init__(audit or trail)
        self.trail = trail

    def query(self, actor: Actor, *, user: str | None = None, patient: str | None = None,
              action: str | None = None, outcome: str | None = None,
              since: datetime | str | None = None, until: datetime | str | None = None,
              page: int = 1, page_size: int = 50) -> AuditPage:
        asked: dict[str, Any] = dict(user=user, patient=patient, action=action, outcome=outcome,
                     since=since, until=until)
        with self.audited(actor, READ, "audit.read", target=_asked(asked)) as note:
            found = AuditFilter.of(**asked)  # a bad filter is recorded as "failed"
            note.target = found.describe()
            note.patient_ids = (found.patient,) if found.patient else ()
            result = self.trail.query(**asked, page=page, page_size=page_size)
            note.detail = (f"page {result.page} ({len(result.rows)} rows) of "
                           f"{result.total} entries")
        return result

    def export(self, actor: Actor, out: TextIO, *, format: str = "csv",
               user: str | None = None, patient: str | None = None,
               action: str | None = None, outcome: str | None = None,
               since: datetime | str | None = None,
               until: datetime | str | None = None) -> int:
        """Every matching entry into `out`, oldest first; returns the number written."""
        asked: dict[str, Any] = dict(user=user, patient=patient, action=action, outcome=outcome,
                     since=since, until=until)
        with self.audited(actor, READ, "audit.export", target=_asked(asked)) as note:
            if format not in FORMATS:
                raise InvalidAuditQuery(f"format must be one of {', '.join(FORMATS)}")
            found = AuditFilter.of(**asked)
            note.target = found.describe()
            note.patient_ids = (found.patient,) if found.patient else ()
            write = self.trail.export_csv if format == "csv" else self.trail.export_jsonl
            count = write(out, **asked)
            note.detail = f"{format} export of {count} entries"
        return count
