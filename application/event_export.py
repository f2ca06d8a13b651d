"""The event history for audits (`outreach events`): every stored event, whole (--internal)
or as the public topic carries it, as JSON lines or CSV, filtered, in constant memory.

The store's notification log is read in pages and each record is written as it is read:
nothing holds the whole history (an export may run to millions of events). The export is
a snapshot: it stops at the last position stored when it began, so a live writer cannot
keep it running forever, and the count it writes is the count stored at that moment.

Filters (all optional, combined with AND):
- types: event types (`Communication.Accepted`) or shell patterns (`Campaign.*`); they are
  turned into stored topics and handed to the recorder, so other events are not even read;
- since/until: the event's domain time (`domain_time`), since inclusive, until exclusive;
- campaign: the campaign's own events and the events of its communications;
- patient: events naming the patient (`patient_id`) and the events of their communications;
- aggregate: the record's aggregate id (the PUBLIC id in the public view).
A communication's stored events after `Planned` do not name their campaign and patient:
bus.public_events.CommunicationContexts finds them from its Planned event (usually seen
earlier in the same stream; read from the store otherwise), with a bounded cache. The
domain time is bus.public_events.domain_time, the envelope's `at`.
"""

from __future__ import annotations

import fnmatch
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any
from uuid import UUID

from application.csv_safe import SafeCsvWriter
from application.store import EventStore
from bus.public_events import (
    RULES,
    CommunicationContexts,
    Public,
    domain_time,
    public_message,
    rule_for,
)
from bus.wire import dump_message, envelope, event_data
from domain.preferences import ContactKeys

FORMATS = ("jsonl", "csv")
# Small pages: an internal page can hold patient-import chunks of 1,000 rows each.
PAGE_SIZE = 200
# CSV: the envelope's columns, then `data` as one JSON cell.
CSV_COLUMNS = ("position", "event_type", "aggregate_id", "aggregate_version", "at",
               "occurred_at", "schema_version", "topic", "data")
_COMMUNICATION = "Communication."


def event_type_of_topic(topic: str) -> str:
    """`domain.campaign:Campaign.Activated` → `Campaign.Activated` (the wire's event_type)."""
    return topic.partition(":")[2]


#: Stored fields that verify a credential (a password's Argon2 hash, a reset token's hash):
#: an audit needs to know that a password was set, never the hash, which could be attacked
#: offline. Withheld even from the internal export.
CREDENTIAL_FIELDS = frozenset({"hash", "token_hash"})
WITHHELD = "[withheld: credential]"


def without_credentials(data: dict[str, Any]) -> dict[str, Any]:
    return {k: WITHHELD if k in CREDENTIAL_FIELDS else v for k, v in data.items()}


def topics_for(patterns: Sequence[str], internal: bool) -> tuple[str, ...]:
    """The stored topics an export reads. Every pattern must name a known event type; in the
    public view an internal type is refused (it would silently print nothing)."""
    published = {t for t, rule in RULES.items() if isinstance(rule, Public)}
    readable = set(RULES) if internal else published
    if not patterns:
        # The public view never reads internal events (big import chunks) only to drop them.
        return () if internal else tuple(sorted(published))
    chosen: set[str] = set()
    for pattern in patterns:
        matches = {t for t in RULES if fnmatch.fnmatchcase(event_type_of_topic(t), pattern)}
        if not matches:
            raise ValueError(f"unknown event type {pattern!r} (e.g. Communication.Accepted, "
                             "Campaign.*)")
        if not matches & readable:
            raise ValueError(f"{pattern!r} is internal, not in the public view: add --internal")
        chosen |= matches & readable
    return tuple(sorted(chosen))


@dataclass(frozen=True)
class EventFilter:
    types: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    campaign_id: UUID | None = None
    patient_id: str | None = None
    aggregate_id: str | None = None

    @property
    def needs_context(self) -> bool:
        return self.campaign_id is not None or self.patient_id is not None


@dataclass
class ExportSummary:
    written: int = 0
    last_position: int = 0  # the last position read; the last written when stopped by limit
    stopped_by_limit: bool = False


class EventExport:
    """Reads the history after `after` and writes what the filter keeps to a binary stream."""

    def __init__(self, store: EventStore, keys: ContactKeys, *, internal: bool,
                 flt: EventFilter, page_size: int = PAGE_SIZE) -> None:
        self._store = store
        self._keys = keys
        self._internal = internal
        self._filter = flt
        self._topics = topics_for(flt.types, internal)
        # A communication's campaign and patient: the public view needs them for its
        # records, the campaign and patient filters for both views.
        self._contexts = CommunicationContexts(store)
        self._page_size = page_size

    def records(self, after: int, summary: ExportSummary) -> Iterator[tuple[bytes, dict[str,
                                                                                      Any]]]:
        """(encoded record, decoded record) for each kept event, in log order."""
        recorder = self._store.recorder
        stop = recorder.max_notification_id()  # the snapshot's end (see the module docstring)
        position = after
        while stop is not None and position < stop:
            page = recorder.select_notifications(start=position, limit=self._page_size,
                                                 stop=stop, topics=self._topics,
                                                 inclusive_of_start=False)
            for notification in page:
                position = summary.last_position = notification.id
                domain_event = self._store.mapper.to_domain_event(notification)
                kept = self._keep(domain_event, notification.id)
                if kept is not None:
                    yield kept
            if len(page) < self._page_size:
                break

    def write(self, out: IO[bytes], fmt: str, after: int = 0,
              limit: int | None = None) -> ExportSummary:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}: jsonl or csv")
        summary = ExportSummary(last_position=after)
        last_written = after
        text: io.TextIOWrapper | None = None
        writer: SafeCsvWriter | None = None
        if fmt == "csv":
            text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
            writer = SafeCsvWriter(text)
            writer.writerow(CSV_COLUMNS)
        try:
            for raw, record in self.records(after, summary):
                if limit is not None and summary.written >= limit:
                    # Another record was there: the next page starts after the last written.
                    summary.stopped_by_limit = True
                    summary.last_position = last_written
                    break
                last_written = int(record["position"])
                if writer is None:
                    out.write(raw + b"\n")
                else:
                    writer.writerow(csv_row(record))
                summary.written += 1
        finally:
            if text is not None:
                text.flush()
                text.detach()  # the caller's stream stays open
        return summary

    # -- filtering -------------------------------------------------------------------------
    def _keep(self, domain_event: Any, position: int) -> tuple[bytes, dict[str, Any]] | None:
        flt = self._filter
        rule = rule_for(domain_event)
        at = domain_time(domain_event, rule)
        if (flt.since is not None and at < flt.since) or (
                flt.until is not None and at >= flt.until):
            self._contexts.note(domain_event)  # a Planned event left out still tells whose
            return None
        if self._internal:
            self._contexts.note(domain_event)
            record: dict[str, Any] | None = envelope(
                domain_event, position, without_credentials(event_data(domain_event)), at=at)
        else:
            record = public_message(domain_event, position, self._keys,
                                    context=self._contexts)
        if record is None:  # not in the public view
            return None
        if flt.aggregate_id is not None and record["aggregate_id"] != flt.aggregate_id:
            return None
        if flt.needs_context and not self._concerns(domain_event, record):
            return None
        return dump_message(record), record

    def _concerns(self, domain_event: Any, record: dict[str, Any]) -> bool:
        """Is the event about the filter's campaign and/or patient?"""
        flt = self._filter
        data = record["data"]
        campaign, patient = data.get("campaign_id"), data.get("patient_id")
        if record["event_type"].startswith(_COMMUNICATION):
            try:
                found = self._contexts(domain_event.originator_id)
            except LookupError:  # no Planned event stored: belongs to no campaign
                return False
            campaign, patient = str(found["campaign_id"]), str(found["patient_id"])
        if flt.campaign_id is not None:
            own = record["aggregate_id"] == str(flt.campaign_id)
            if not own and campaign != str(flt.campaign_id):
                return False
        return flt.patient_id is None or patient == flt.patient_id


def csv_row(record: dict[str, Any]) -> list[object]:
    """CSV_COLUMNS of the record, `data` as one compact JSON cell (the writer neutralises
    formula triggers in every cell)."""
    return [json.dumps(record[key], separators=(",", ":"), ensure_ascii=False)
            if key == "data" else record.get(key) for key in CSV_COLUMNS]
