"""The audit trail: the real AuditSink (application/staff_base.py) and the auditor's reads.

`record` stores one domain.audit.AuditEntry per call, in one save. It never raises on odd
input (texts are cleaned and clipped in domain/audit.py); it does raise when the event store
cannot be written, so a facade never shows what it could not record.

`query` lists entries newest first, a page at a time; `export_csv` / `export_jsonl` write
every entry matching the filters, oldest first (the six-year retention export), reading
the read model page by page so the log never sits in memory whole, and as of the moment the
export started (entries recorded meanwhile are left for the next export).

Filters: `user` (a user id or a username, exact), `patient` (an id among the first 1,000 an
entry names: domain.audit.MAX_PATIENT_IDS), `action` (exact, or a prefix: "campaign." or
"campaign*"; a bare "campaign" matches "campaign" and "campaign.*"), `outcome` (allowed,
denied, failed), `since` (inclusive) and `until` (exclusive), as aware datetimes or ISO 8601
text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, TextIO

from application.csv_safe import SafeCsvWriter
from domain.access import Actor
from domain.audit import (
    MAX_SHORT,
    MAX_TEXT,
    OUTCOMES,
    InvalidAuditQuery,
    Who,
    one_line,
    parse_instant,
    record_entry,
)
from domain.clock import Clock
from projections import runner as follower
from projections.audit import AuditProjection
from projections.base import Projection
from projections.db import Database, Row
from projections.timefmt import iso, parse_iso

MAX_PAGE_SIZE = 1000
EXPORT_BATCH = 200  # entries per read while exporting (each may name 1,000 patients)

CSV_HEADER = ("Entry ID", "At (UTC)", "User ID", "Username", "Roles", "Via", "Source",
              "Action", "Outcome", "Target", "Detail", "Patient Count", "Patient IDs")

_COLUMNS = ("entry_id, position, at, user_id, username, roles, via, source, action, outcome,"
            " target, detail, patient_count")


@dataclass(frozen=True)
class AuditRow:
    entry_id: str
    position: int
    at: datetime
    user_id: str
    username: str
    roles: str
    via: str
    source: str
    action: str
    outcome: str
    target: str
    detail: str
    patient_count: int
    patient_ids: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = iso(self.at)
        data["patient_ids"] = list(self.patient_ids)
        return data


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    total: int
    page: int = 1
    page_size: int = 50


@dataclass(frozen=True)
class AuditFilter:
    """Validated filters and their SQL (`?` placeholders, portable)."""

    user: str | None = None
    patient: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def of(cls, *, user: str | None = None, patient: str | None = None,
           action: str | None = None, outcome: str | None = None,
           since: datetime | str | None = None,
           until: datetime | str | None = None) -> AuditFilter:
        def text(value: str | None, limit: int) -> str | None:
            return (one_line(value, limit) or None) if value is not None else None

        def when(value: datetime | str | None, name: str) -> datetime | None:
            if isinstance(value, datetime):
                value = value.isoformat()  # checked and put in UTC like text
            return parse_instant(value, name)

        wanted = text(outcome, MAX_SHORT)
        if wanted is not None and wanted.lower() not in OUTCOMES:
            raise InvalidAuditQuery(f"outcome must be one of {', '.join(OUTCOMES)}")
        found = cls(user=text(user, MAX_TEXT), patient=text(patient, MAX_SHORT),
                    action=text(action, MAX_SHORT), outcome=wanted and wanted.lower(),
                    since=when(since, "since"), until=when(until, "until"))
        if found.since and found.until and found.since >= found.until:
            raise InvalidAuditQuery("since must be before until")
        return found

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.user:
            clauses.append("(user_id = ? OR username = ?)")
            params += [self.user, self.user]
        if self.patient:
            clauses.append("entry_id IN (SELECT entry_id FROM audit_patients"
                           " WHERE patient_id = ?)")
            params.append(self.patient)
        if self.action:
            prefix = self.action.rstrip("*")
            if self.action.endswith(("*", ".")):
                clauses.append("action LIKE ? ESCAPE '!'")
                params.append(_like_prefix(prefix))
            else:
                clauses.append("(action = ? OR action LIKE ? ESCAPE '!')")
                params += [prefix, _like_prefix(prefix + ".")]
        if self.outcome:
            clauses.append("outcome = ?")
            params.append(self.outcome)
        if self.since:
            clauses.append("at >= ?")
            params.append(iso(self.since))
        if self.until:
            clauses.append("at < ?")
            params.append(iso(self.until))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def describe(self) -> str:
        """One line for the audit record of a read of the trail."""
        parts = [f"{k}={v if not isinstance(v, datetime) else iso(v)}"
                 for k, v in asdict(self).items() if v]
        return " ".join(parts) or "all"


def _like_prefix(prefix: str) -> str:
    return prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"


def _who(actor: Actor) -> Who:
    def field(name: str) -> object:
        try:
            return getattr(actor, name, "")
        except Exception:  # an odd actor must not lose the record
            return ""

    return Who(user_id=str(field("user_id")), username=str(field("username")),
               roles=str(field("role_names")), via=str(field("via")),
               source=str(field("source")))


def _row(row: Row, patient_ids: Sequence[str]) -> AuditRow:
    at = parse_iso(row[2])
    assert at is not None  # NOT NULL column
    return AuditRow(entry_id=row[0], position=int(row[1]), at=at, user_id=row[3],
                    username=row[4], roles=row[5], via=row[6], source=row[7], action=row[8],
                    outcome=row[9], target=row[10], detail=row[11],
                    patient_count=int(row[12]), patient_ids=tuple(patient_ids))


class AuditTrail:
    """AuditSink + queries. `catch_up` brings the read model up to the log (the bootstrap's
    Outreach.catch_up once the trail's projections are wired there); by default the trail
    catches up its own projection."""

    def __init__(self, store: Any, db: Database, clock: Clock,
                 catch_up: Callable[[], int] | None = None) -> None:
        self.store = store
        self.db = db
        self.clock = clock
        self.projections: list[Projection] = [AuditProjection()]
        follower.prepare(db, self.projections)
        self._catch_up = catch_up or (
            lambda: follower.catch_up(self.store, self.db, self.projections))

    # -- the sink -------------------------------------------------------------------------
    def record(self, actor: Actor, action: str, outcome: str = "allowed", *,
               patient_ids: Sequence[str] = (), target: str = "", detail: str = "") -> None:
        entry = record_entry(self.clock.now(), _who(actor), action, outcome,
                             patient_ids=patient_ids, target=target, detail=detail)
        self.store.save(entry)

    # -- reads ----------------------------------------------------------------------------
    def query(self, *, user: str | None = None, patient: str | None = None,
              action: str | None = None, outcome: str | None = None,
              since: datetime | str | None = None, until: datetime | str | None = None,
              page: int = 1, page_size: int = 50) -> AuditPage:
        """Newest first. Catches up first, so a record made a moment ago is listed."""
        found = AuditFilter.of(user=user, patient=patient, action=action, outcome=outcome,
                               since=since, until=until)
        page = max(1, int(page))
        page_size = min(max(1, int(page_size)), MAX_PAGE_SIZE)
        self._catch_up()
        where, params = found.where()
        total_row = self.db.fetchone(f"SELECT COUNT(*) FROM audit_log{where}", params)
        total = int(total_row[0]) if total_row else 0
        rows = self.db.fetchall(
            f"SELECT {_COLUMNS} FROM audit_log{where} ORDER BY at DESC, position DESC"
            " LIMIT ? OFFSET ?", [*params, page_size, (page - 1) * page_size])
        return AuditPage(self._with_patients(rows), total, page, page_size)

    def entries(self, filters: AuditFilter) -> Iterator[AuditRow]:
        """Every matching entry, oldest first, as of now, read EXPORT_BATCH at a time
        (keyset paging on (at, position): no entry is skipped or repeated)."""
        self._catch_up()
        head = self.db.fetchone("SELECT MAX(position) FROM audit_log")
        high = int(head[0]) if head and head[0] is not None else 0
        where, params = filters.where()
        joiner = " AND " if where else " WHERE "
        after: tuple[str, int] | None = None
        while True:
            sql = f"SELECT {_COLUMNS} FROM audit_log{where}{joiner}position <= ?"
            args = [*params, high]
            if after is not None:
                sql += " AND (at > ? OR (at = ? AND position > ?))"
                args += [after[0], after[0], after[1]]
            rows = self.db.fetchall(sql + " ORDER BY at, position LIMIT ?",
                                    [*args, EXPORT_BATCH])
            yield from self._with_patients(rows)
            if len(rows) < EXPORT_BATCH:
                return
            after = (rows[-1][2], int(rows[-1][1]))

    def export_csv(self, out: TextIO, **filters: Any) -> int:
        """Formula-safe CSV (a header, one row per entry, patient ids joined by ';')."""
        found = AuditFilter.of(**filters)
        writer = SafeCsvWriter(out)
        writer.writerow(CSV_HEADER)
        count = 0
        for r in self.entries(found):
            writer.writerow((r.entry_id, iso(r.at), r.user_id, r.username, r.roles, r.via,
                             r.source, r.action, r.outcome, r.target, r.detail,
                             r.patient_count, ";".join(r.patient_ids)))
            count += 1
        return count

    def export_jsonl(self, out: TextIO, **filters: Any) -> int:
        """One JSON object per line per entry (AuditRow.as_json)."""
        found = AuditFilter.of(**filters)
        count = 0
        for r in self.entries(found):
            out.write(json.dumps(r.as_json(), ensure_ascii=False) + "\n")
            count += 1
        return count

    def _with_patients(self, rows: list[Row]) -> list[AuditRow]:
        ids = [r[0] for r in rows if int(r[12])]
        named: dict[str, list[str]] = {}
        if ids:
            marks = ",".join("?" for _ in ids)
            for entry_id, pid in self.db.fetchall(
                    f"SELECT entry_id, patient_id FROM audit_patients WHERE entry_id IN"
                    f" ({marks}) ORDER BY entry_id, seq", ids):
                named.setdefault(entry_id, []).append(pid)
        return [_row(r, named.get(r[0], ())) for r in rows]
