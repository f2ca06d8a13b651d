"""The replies inbox: every text patients sent, with the patient and the campaign it answers,
flagged when a person has to read it; marked handled by a user; downloadable; and each
patient's conversation (what we texted them, what they texted back).

The patient and campaign of a reply are resolved when the inbox is read (see
projections/replies.py for why): the campaign is the latest TEXT campaign whose
communication reached that number (an attempt started) before the reply came; the
patient is that communication's, else the first patient (by id) with that mobile; either
may be None (a number we never texted, a patient not imported).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TextIO
from uuid import UUID
from zoneinfo import ZoneInfo

import structlog
from eventsourcing.application import AggregateNotFoundError

from application.csv_safe import SafeCsvWriter
from application.settings import Settings
from application.store import EventStore
from domain.campaign import Campaign
from domain.clock import Clock
from domain.errors import DomainError, NotFound
from domain.follow_ups import FOLLOW_UPS_CAMPAIGN_ID, FollowUp, follow_up_id, is_follow_up
from domain.lists import ListQuery
from domain.patients import display_name
from domain.replies import InboundMessage
from domain.sms import DEFAULT_FOOTER, compose
from projections.base import Projection
from projections.db import Database, Row
from projections.patient_queries import Compiler, Sql, join
from projections.replies import RepliesProjection
from projections.runner import catch_up as catch_up_projections
from projections.runner import prepare
from projections.timefmt import parse_iso

log = structlog.get_logger("replies")

Sort = Literal["received", "response", "patient", "campaign"]
SORTS: dict[str, str] = {
    "received": "x.received_at",
    "response": "x.response_sort",
    "patient": "p.sort_name",
    "campaign": "c.name",
}
EXPORT_PAGE = 500

# Each reply with the communication that reached its number last before it came (`comm_id`);
# `{prefilter}` narrows the replies read before that lookup (a patient's number, a scope).
_REACHED = """
WITH reached AS (
  SELECT r.message_id, r.from_number, r.received_at, r.keyword, r.body, r.response_sort,
         r.unexpected, r.handled_by, r.handled_at,
         (SELECT m.communication_id FROM communications m
            JOIN campaigns c ON c.campaign_id = m.campaign_id
            JOIN patients p ON p.patient_id = m.patient_id
           WHERE p.mobile = r.from_number AND c.channel = 'text' AND m.attempts > 0
             AND m.first_attempt_at < r.received_at
           ORDER BY m.first_attempt_at DESC, m.communication_id DESC LIMIT 1) AS comm_id
    FROM reply_inbox r WHERE {prefilter}),
resolved AS (
  SELECT x.*, m.campaign_id AS campaign_id,
         COALESCE(m.patient_id, (SELECT MIN(q.patient_id) FROM patients q
                                  WHERE q.mobile = x.from_number)) AS patient_id
    FROM reached x LEFT JOIN communications m ON m.communication_id = x.comm_id)
"""
_FROM = (" FROM resolved x LEFT JOIN patients p ON p.patient_id = x.patient_id"
         " LEFT JOIN campaigns c ON c.campaign_id = x.campaign_id")
_COLUMNS = ("x.message_id, x.received_at, x.patient_id, p.first_name, p.middle_name,"
            " p.last_name, x.campaign_id, c.name, x.body, x.keyword, x.unexpected,"
            " x.handled_by, x.handled_at")


@dataclass(frozen=True)
class ReplyRow:
    message_id: str
    received_at: datetime
    patient_id: str | None
    patient_name: str | None
    campaign_id: str | None
    campaign_name: str | None
    body: str
    keyword: str
    unexpected: bool
    handled_by: str | None
    handled_at: datetime | None


@dataclass(frozen=True)
class ReplyPage:
    rows: list[ReplyRow]
    total: int


@dataclass(frozen=True)
class ThreadItem:
    at: datetime
    direction: Literal["in", "out"]
    body: str
    status: str  # out: the communication's status; in: "Handled" or "New"
    campaign_id: str | None
    message_id: str | None = None  # in: the reply's id (to mark it handled)


@dataclass(frozen=True)
class ReplyFilters:
    unexpected: bool | None = None
    handled: bool | None = None
    campaign_id: str | None = None
    patient_id: str | None = None
    #: None: every reply; a list: only replies of patients related to these providers
    provider_ids: Sequence[str] | None = None


class ReplyInbox:
    def __init__(self, store: EventStore, db: Database, clock: Clock, settings: Settings,
                 catch_up: Callable[[], int]) -> None:
        self.store = store
        self.db = db
        self.clock = clock
        self.settings = settings
        self._catch_up = catch_up
        self.projections: builtins.list[Projection] = [RepliesProjection()]
        prepare(db, self.projections)

    @property
    def zone(self) -> ZoneInfo:
        # Read each time: an organisation setting that may change while this process runs.
        return ZoneInfo(self.settings.timezone)

    def refresh(self) -> None:
        """Read models up to date: the application's (patients, campaigns and, once wired,
        replies), then the replies projection itself (cheap when already caught up)."""
        self._catch_up()
        catch_up_projections(self.store, self.db, self.projections)

    # -- the inbox -------------------------------------------------------------------------
    def list(self, *, unexpected: bool | None = None, handled: bool | None = None,
             campaign_id: str | None = None, patient_id: str | None = None,
             provider_ids: Sequence[str] | None = None, sort: Sort = "received",
             descending: bool = True, page: int = 1, page_size: int = 50,
             refresh: bool = True) -> ReplyPage:
        if page < 1 or page_size < 1:
            raise DomainError("pages are numbered from 1 and hold at least one row")
        if sort not in SORTS:
            raise DomainError(f"sort by one of {', '.join(SORTS)}")
        if refresh:
            self.refresh()
        filters = ReplyFilters(unexpected, handled, campaign_id, patient_id, provider_ids)
        prefilter, where = self._where(filters)
        head = Sql(_REACHED.format(prefilter=prefilter.text), prefilter.params)
        counted = self.db.fetchone((head + Sql("SELECT COUNT(*)" + _FROM + " WHERE ")
                                    + where).text, prefilter.params + where.params)
        total = int(counted[0]) if counted else 0
        direction = "DESC" if descending else "ASC"
        order = (f" ORDER BY {SORTS[sort]} {direction} NULLS LAST,"
                 f" x.received_at {direction}, x.message_id ASC LIMIT ? OFFSET ?")
        sql = head + Sql(f"SELECT {_COLUMNS}{_FROM} WHERE ") + where + \
            Sql(order, [page_size, (page - 1) * page_size])
        rows = [_row(r) for r in self.db.fetchall(sql.text, sql.params)] \
            if (page - 1) * page_size < total else []
        return ReplyPage(rows, total)

    def get(self, message_id: str, refresh: bool = True) -> ReplyRow:
        if refresh:
            self.refresh()
        sql = Sql(_REACHED.format(prefilter="r.message_id = ?"), [message_id]) + \
            Sql(f"SELECT {_COLUMNS}{_FROM}")
        row = self.db.fetchone(sql.text, sql.params)
        if row is None:
            raise NotFound(f"no reply {message_id}")
        return _row(row)

    def _where(self, f: ReplyFilters) -> tuple[Sql, Sql]:
        """(prefilter on the replies' own columns, filter on the resolved rows)."""
        pre: list[Sql] = [Sql("1 = 1")]
        parts: list[Sql] = [Sql("1 = 1")]
        if f.unexpected is not None:
            pre.append(Sql("r.unexpected = ?", [1 if f.unexpected else 0]))
        if f.handled is not None:
            pre.append(Sql(f"r.handled_at IS {'NOT ' if f.handled else ''}NULL"))
        if f.patient_id is not None:
            # Only replies from that patient's number can be theirs.
            pre.append(Sql("r.from_number IN (SELECT mobile FROM patients WHERE patient_id = ?)",
                           [f.patient_id]))
            parts.append(Sql("x.patient_id = ?", [f.patient_id]))
        if f.campaign_id is not None:
            parts.append(Sql("x.campaign_id = ?", [f.campaign_id]))
        if f.provider_ids is not None:
            parts.append(self._scope(f.provider_ids))
        return join(pre, " AND "), join(parts, " AND ")

    def _scope(self, provider_ids: Sequence[str]) -> Sql:
        """The patients (alias p) related to these providers: the lists' own scope SQL."""
        today = self.clock.now().astimezone(self.zone).date()
        return Compiler(self.db.dialect, today).scope(ListQuery(), list(provider_ids))

    def in_scope(self, patient_id: str, provider_ids: Sequence[str] | None) -> bool:
        """Is this patient (known, imported) related to these providers (None: anyone)?"""
        sql = Sql("SELECT 1 FROM patients p WHERE p.patient_id = ?", [patient_id])
        if provider_ids is not None:
            sql = sql + Sql(" AND ") + self._scope(provider_ids)
        return self.db.fetchone(sql.text, sql.params) is not None

    # -- handling --------------------------------------------------------------------------
    def mark_handled(self, message_id: str, by: str) -> ReplyRow:
        """Idempotent: a reply already handled keeps its first mark (who and when)."""
        try:
            message: InboundMessage = self.store.repository.get(UUID(message_id))
        except (AggregateNotFoundError, ValueError):
            raise NotFound(f"no reply {message_id}") from None
        if not isinstance(message, InboundMessage):
            raise NotFound(f"no reply {message_id}")
        if message.mark_handled(by, self.clock.now()):
            self.store.save(message)
            log.info("reply_handled")
        return self.get(message_id)

    # -- download --------------------------------------------------------------------------
    HEADER = ("Received", "Patient ID", "Patient", "Campaign", "Response", "Keyword",
              "Unexpected", "Handled by", "Handled at")  # times: the organisation's zone

    def export_csv(self, out: TextIO, *, sort: Sort = "received", descending: bool = True,
                   patient_ids: set[str] | None = None, **filters: Any) -> int:
        """Write the filtered replies as CSV (formula-safe), a page at a time. Returns the
        rows written; `patient_ids`, when given, collects the patients written (audit)."""
        self.refresh()
        writer = SafeCsvWriter(out)
        zone = f" ({self.settings.timezone})"
        writer.writerow([f"{h}{zone}" if h in ("Received", "Handled at") else h
                         for h in self.HEADER])
        written, page = 0, 1
        while True:
            batch = self.list(sort=sort, descending=descending, page=page,
                              page_size=EXPORT_PAGE, refresh=False, **filters)
            for r in batch.rows:
                writer.writerow((self._local(r.received_at), r.patient_id, r.patient_name,
                                 r.campaign_name, r.body, r.keyword,
                                 "Yes" if r.unexpected else "No", r.handled_by,
                                 self._local(r.handled_at)))
                if patient_ids is not None and r.patient_id:
                    patient_ids.add(r.patient_id)
            written += len(batch.rows)
            if len(batch.rows) < EXPORT_PAGE:
                return written
            page += 1

    def _local(self, at: datetime | None) -> str:
        return at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M") if at else ""

    # -- conversation ----------------------------------------------------------------------
    def thread(self, patient_id: str) -> builtins.list[ThreadItem]:
        """What we texted this patient (campaign texts as sent, follow-ups) and what came
        back from their mobile, in time order."""
        self.refresh()
        patient = self.db.fetchone("SELECT mobile FROM patients WHERE patient_id = ?",
                                   (patient_id,))
        if patient is None:
            raise NotFound(f"no patient {patient_id}")
        items = self._texts_sent(patient_id)
        if patient[0]:
            for message_id, at, body, handled_at in self.db.fetchall(
                    "SELECT message_id, received_at, body, handled_at FROM reply_inbox"
                    " WHERE from_number = ? ORDER BY received_at", (patient[0],)):
                items.append(ThreadItem(_when(at), "in", str(body),
                                        "Handled" if handled_at else "New", None,
                                        str(message_id)))
        return sorted(items, key=lambda i: (i.at, i.direction == "in"))

    def _texts_sent(self, patient_id: str) -> builtins.list[ThreadItem]:
        """Campaign texts that went (an attempt started), and every follow-up, even one
        still waiting for the text window."""
        rows: list[Row] = self.db.fetchall(
            "SELECT m.communication_id, m.campaign_id, m.first_attempt_at, m.status"
            " FROM communications m JOIN campaigns c ON c.campaign_id = m.campaign_id"
            " WHERE m.patient_id = ? AND c.channel = 'text'"
            " AND (m.attempts > 0 OR m.campaign_id = ?)",
            (patient_id, str(FOLLOW_UPS_CAMPAIGN_ID)))
        campaigns: dict[str, dict[str, Any]] = {}
        items = []
        for comm_id, campaign_id, at, status in rows:
            cid = str(campaign_id)
            if cid not in campaigns:
                campaigns[cid] = self._campaign_content(cid)
            content = campaigns[cid]
            words, when = str(content.get("body", "")), parse_iso(at)
            if is_follow_up(cid):
                written = self._follow_up(str(comm_id))
                if written is not None:
                    words, when = written.body, when or written.at
            text = compose(words, str(content.get("footer", DEFAULT_FOOTER)))
            items.append(ThreadItem(when or _when(None), "out", text, str(status), cid))
        return items

    def _campaign_content(self, campaign_id: str) -> dict[str, Any]:
        try:
            campaign: Campaign = self.store.repository.get(UUID(campaign_id))
        except AggregateNotFoundError:
            return {}
        return dict(campaign.content)

    def _follow_up(self, communication_id: str) -> FollowUp | None:
        try:
            written: FollowUp = self.store.repository.get(follow_up_id(UUID(communication_id)))
        except AggregateNotFoundError:
            return None
        return written


def _when(text: Any) -> datetime:
    return parse_iso(str(text)) or datetime.min.replace(tzinfo=UTC)


def _row(r: Row) -> ReplyRow:
    (message_id, received_at, patient_id, first, middle, last, campaign_id, campaign_name,
     body, keyword, unexpected, handled_by, handled_at) = r
    return ReplyRow(
        message_id=str(message_id), received_at=_when(received_at),
        patient_id=str(patient_id) if patient_id is not None else None,
        patient_name=display_name(first, middle, last) if last is not None else None,
        campaign_id=str(campaign_id) if campaign_id is not None else None,
        campaign_name=str(campaign_name) if campaign_name is not None else None,
        body=str(body), keyword=str(keyword), unexpected=bool(unexpected),
        handled_by=str(handled_by) if handled_by else None,
        handled_at=parse_iso(str(handled_at)) if handled_at else None)
