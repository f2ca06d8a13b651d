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

Speed (issue 14): on PostgreSQL the rows come from ONE server-side (named) cursor fetched in
pages, not a LIMIT query per page. Each stored state is decoded straight to its JSON values
(a UUID as its text, a datetime as its ISO text: exactly what the wire gives them) instead
of to a domain object that bus.wire then turns back into JSON values; an event the direct
path cannot vouch for (an upcast class, a Planned event the contexts must note, a public
rule whose derivation reads Python values, an unknown stored type) goes the plain way, one
event at a time. `plain=True` is the plain way throughout, the reference the direct path
is tested against byte for byte (tests/integration/test_events_export_scale.py).
"""

from __future__ import annotations

import fnmatch
import io
import json
import os
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import IO, Any
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import get_topic, resolve_topic
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from application.csv_safe import SafeCsvWriter
from application.store import EventStore
from bus.public_events import (
    CHECK_SCHEMA_ENV,
    LAST_DIGITS,
    OPT_OUT_KEY,
    PLANNED,
    RULES,
    SENDER_KEY,
    CommunicationContexts,
    Public,
    Rule,
    domain_time,
    public_message,
    rule_for,
)
from bus.wire import (
    _ENVELOPE_FIELDS,
    WIRE_SCHEMA_VERSION,
    dump_message,
    envelope,
    event_data,
    to_wire_value,
)
from domain.preferences import ContactKeys

FORMATS = ("jsonl", "csv")
# Small pages: an internal page can hold patient-import chunks of 1,000 rows each.
PAGE_SIZE = 200
# The server-side cursor's page (rows fetched per round trip): import chunks are stored
# compressed (a few kB each), so a page stays a few MB at worst.
CURSOR_PAGE = 1_000
# Communications whose campaign and patient are remembered: as the relay's. Bounded, so the
# export's memory stops growing once that many were seen; a miss reads one stored event.
CONTEXT_CACHE = 50_000
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
                 flt: EventFilter, page_size: int = PAGE_SIZE, plain: bool = False,
                 context_cache: int = CONTEXT_CACHE) -> None:
        self._store = store
        self._keys = keys
        self._internal = internal
        self._filter = flt
        self._topics = topics_for(flt.types, internal)
        # A communication's campaign and patient: the public view needs them for its
        # records, the campaign and patient filters for both views.
        self._contexts = _Contexts(store, size=context_cache)
        self._page_size = page_size
        self._plain = plain
        self._kinds: dict[str, _Kind] = {}
        self._check_schema = os.environ.get(CHECK_SCHEMA_ENV) == "1"

    def records(self, after: int, summary: ExportSummary) -> Iterator[tuple[bytes, dict[str,
                                                                                      Any]]]:
        """(encoded record, decoded record) for each kept event, in log order."""
        stop = self._store.recorder.max_notification_id()  # the snapshot's end (docstring)
        if stop is None or after >= stop:
            return
        rows = self._paged_rows(after, stop) if self._plain else self._rows(after, stop)
        with closing(rows):  # a stop by --limit ends the cursor's transaction at once
            for row in rows:
                summary.last_position = row[0]
                kept = (self._keep(self._decoded(row), row[0]) if self._plain
                        else self._keep_stored(row))
                if kept is not None:
                    yield kept

    # -- reading -----------------------------------------------------------------------------
    def _rows(self, after: int, stop: int) -> Generator[_Row, None, None]:
        recorder = self._store.recorder
        if not isinstance(recorder, PostgresApplicationRecorder):
            # SQLite reads pages in-process (no round trip): the recorder's paging is cheap.
            yield from self._paged_rows(after, stop, max(self._page_size, CURSOR_PAGE))
            return
        # The id as text: what the envelope prints (a UUID object is made only when needed).
        query = "SELECT notification_id, originator_id::text, originator_version, topic, state " \
                "FROM {}.{} WHERE notification_id > %s AND notification_id <= %s"
        params: list[Any] = [after, stop]
        if self._topics:
            query += " AND topic = ANY(%s)"
            params.append(list(self._topics))
        statement = SQL(query + " ORDER BY notification_id").format(
            Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
        # One named cursor: the server keeps the result and sends it a page at a time, so
        # neither side holds the history, and there is one query instead of one per page.
        with recorder.datastore.get_connection() as conn, conn.transaction(), conn.cursor(
                name="outreach_events_export", row_factory=tuple_row) as cursor:
            # The pool's sessions end a transaction idle for a few seconds; a reader slower
            # than that (`outreach events | …` paused) would lose the cursor mid-export.
            conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            cursor.itersize = CURSOR_PAGE
            cursor.execute(statement, params)
            for notification_id, originator_id, version, topic, state in cursor:
                yield (notification_id, originator_id, version, topic,
                       state if isinstance(state, bytes) else bytes(state))

    def _paged_rows(self, after: int, stop: int, page_size: int | None = None
                    ) -> Generator[_Row, None, None]:
        """The recorder's notification log, page by page (the plain way)."""
        size = page_size or self._page_size
        recorder = self._store.recorder
        position = after
        while position < stop:
            page = recorder.select_notifications(start=position, limit=size, stop=stop,
                                                 topics=self._topics,
                                                 inclusive_of_start=False)
            for n in page:
                position = n.id
                yield n.id, n.originator_id, n.originator_version, n.topic, n.state
            if len(page) < size:
                return

    def _decoded(self, row: _Row) -> Any:
        return self._store.mapper.to_domain_event(Notification(
            id=row[0], originator_id=row[1], originator_version=row[2], topic=row[3],
            state=row[4]))

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
        if flt.needs_context and not self._concerns(domain_event.originator_id, record):
            return None
        return dump_message(record), record

    def _keep_stored(self, row: _Row) -> tuple[bytes, dict[str, Any]] | None:
        """`_keep` straight from the stored state; the plain way when it cannot vouch."""
        position, originator_id, version, topic, state = row
        kind = self._kinds.get(topic)
        if kind is None:
            kind = self._kinds[topic] = _kind_of(topic)
        fast = kind.internal_fast if self._internal else kind.public_fast
        if not fast:
            return self._keep(self._decoded(row), position)
        try:
            fields = _stored_fields(self._store.mapper, state)
        except _Declined:
            return self._keep(self._decoded(row), position)
        timestamp = fields.get("timestamp")
        if not isinstance(timestamp, _Instant):
            return self._keep(self._decoded(row), position)
        if kind.planned:  # noted whether kept or not, as `_keep` does
            self._contexts.note_stored(_uuid(originator_id), fields)
        rule = kind.rule
        when = fields.get(rule.time) if isinstance(rule, Public) and rule.time else None
        at = when if isinstance(when, _Instant) else timestamp
        flt = self._filter
        if flt.since is not None or flt.until is not None:
            moment = datetime.fromisoformat(at)
            if (flt.since is not None and moment < flt.since) or (
                    flt.until is not None and moment >= flt.until):
                return None
        aggregate_id = str(originator_id)
        if self._internal:
            data = {k: WITHHELD if k in CREDENTIAL_FIELDS else v for k, v in fields.items()
                    if k not in _ENVELOPE_FIELDS}
        else:
            assert isinstance(rule, Public)  # public_fast says so
            data = {name: fields[name] for name in rule.keep if name in fields}
            if rule.derived is not None:
                data.update({k: to_wire_value(v) for k, v in
                             rule.derived.compute(fields, self._keys).items()})
            if rule.context:
                found = self._contexts(_uuid(originator_id))
                data.update({name: to_wire_value(found[name]) for name in rule.context})
            if rule.public_id is not None:
                aggregate_id = str(rule.public_id(fields, self._keys))
        record = {
            "schema_version": WIRE_SCHEMA_VERSION,
            "event_type": kind.event_type,
            "topic": kind.topic,
            "aggregate_id": aggregate_id,
            "aggregate_version": int(version),
            "position": int(position),
            "occurred_at": str(timestamp),
            "at": str(at),
            "data": data,
        }
        if self._check_schema and not self._internal:
            from bus.event_schema import check_message  # as public_message does (tests)

            check_message(record, RULES)
        if flt.aggregate_id is not None and aggregate_id != flt.aggregate_id:
            return None
        if flt.needs_context and not self._concerns(_uuid(originator_id), record):
            return None
        return _ENCODER.encode(record).encode("utf-8"), record

    def _concerns(self, communication_id: UUID, record: dict[str, Any]) -> bool:
        """Is the event about the filter's campaign and/or patient?"""
        flt = self._filter
        data = record["data"]
        campaign, patient = data.get("campaign_id"), data.get("patient_id")
        if record["event_type"].startswith(_COMMUNICATION):
            try:
                found = self._contexts(communication_id)
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


# -- the direct path ---------------------------------------------------------------------
_Row = tuple[int, Any, int, str, bytes]  # position, originator id, version, topic, state

# Public derivations that read their stored fields as text (str(...)): the same from the
# stored state's JSON values as from the domain object. Any other goes the plain way.
_TEXT_DERIVATIONS = (OPT_OUT_KEY, SENDER_KEY, LAST_DIGITS)
_TEXT_PUBLIC_IDS = {rule.public_id for rule in RULES.values()
                    if isinstance(rule, Public) and rule.derived is OPT_OUT_KEY}


@dataclass(frozen=True)
class _Kind:
    """What the direct path needs to know of a stored topic, worked out once."""

    topic: str  # the class's topic now (the envelope's), maybe not the stored one
    event_type: str
    rule: Rule | None
    internal_fast: bool
    public_fast: bool
    planned: bool


def _kind_of(stored_topic: str) -> _Kind:
    cls = resolve_topic(stored_topic)
    topic = get_topic(cls)
    rule = RULES.get(topic)
    # An upcast class changes its stored state on reading: the plain way.
    plain = getattr(cls, "class_version", 1) != 1
    public_fast = (isinstance(rule, Public) and not plain
                   and (rule.derived is None or rule.derived in _TEXT_DERIVATIONS)
                   and (rule.public_id is None or rule.public_id in _TEXT_PUBLIC_IDS))
    return _Kind(topic, cls.__qualname__, rule, internal_fast=not plain,
                 public_fast=public_fast, planned=cls is PLANNED)


class _Contexts(CommunicationContexts):
    """Also noted from a Planned event's stored fields (JSON values: the campaign id as its
    text, which is what the wire and the filters make of it anyway)."""

    def note_stored(self, communication_id: UUID, fields: dict[str, Any]) -> None:
        self._remember(communication_id, fields)


class _Declined(Exception):
    """The direct path cannot vouch for this state: decode it the plain way."""


class _Instant(str):
    """A stored datetime as its ISO text: the transcoder stored `isoformat()`, which is what
    bus.wire prints, so the text goes out as it came in."""

    __slots__ = ()


def _wire_object(obj: dict[str, Any]) -> Any:
    """eventsourcing's JSONTranscoder object hook, giving wire values instead of objects."""
    if len(obj) == 2 and "_type_" in obj and "_data_" in obj:
        kind, data = obj["_type_"], obj["_data_"]
        if kind == "uuid_hex" and isinstance(data, str):
            return str(UUID(data))
        if kind == "datetime_iso" and isinstance(data, str):
            return _Instant(data)
        if kind == "decimal_str" and isinstance(data, str):
            return str(Decimal(data))
        raise _Declined(kind)
    return obj


_DECODER = json.JSONDecoder(object_hook=_wire_object)
# bus.wire.dump_message's encoder, made once (json.dumps with options builds one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _stored_fields(mapper: Any, state: bytes) -> dict[str, Any]:
    """The stored event's fields as JSON values, in stored order (as the mapper gives them)."""
    if mapper.cipher is not None:
        state = mapper.cipher.decrypt(state)
    if mapper.compressor is not None:
        state = mapper.compressor.decompress(state)
    # The scanner itself (json.loads less its whitespace checks): the store wrote this JSON.
    fields = _DECODER.scan_once(state.decode("utf-8"), 0)[0]  # type: ignore[attr-defined]
    if not isinstance(fields, dict) or "class_version" in fields:
        raise _Declined("class_version")
    return fields


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))
