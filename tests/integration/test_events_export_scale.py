"""`outreach events` at scale (issue 14): the direct path (a server-side cursor on
PostgreSQL, stored states decoded straight to wire values) writes exactly what the plain path
(every event decoded to its domain object, page by page) writes, and its memory does not grow
with the history."""

from __future__ import annotations

import io
import os
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from application.bootstrap import Outreach, build
from application.event_export import EventExport, EventFilter
from application.settings import Settings
from domain.communication import Communication
from tests.e2e.test_audit_exports import ClinicRun, _run_clinic
from tests.fixtures_servers import scratch_database

DUE = datetime(2026, 3, 3, 14, tzinfo=UTC)


def export(o: Outreach, *, plain: bool, internal: bool, flt: EventFilter, fmt: str = "jsonl",
           after: int = 0, limit: int | None = None) -> tuple[bytes, int, bool]:
    out = io.BytesIO()
    summary = EventExport(o.store, o.contact_keys, internal=internal, flt=flt,
                          plain=plain).write(out, fmt, after=after, limit=limit)
    return out.getvalue(), summary.last_position, summary.stopped_by_limit


def filters(run: ClinicRun) -> list[tuple[bool, EventFilter, str]]:
    """(internal, filter, format): every view and filter over the clinic's mixed history."""
    middle = run.stop_at
    chosen = [
        EventFilter(),
        EventFilter(types=("Communication.*",)),
        EventFilter(campaign_id=run.flu),
        EventFilter(campaign_id=run.other, patient_id="P0003"),
        EventFilter(patient_id="P0009"),
        EventFilter(since=middle, until=middle + timedelta(days=1)),
        EventFilter(types=("PhoneOptOut.*", "Communication.Accepted"), since=middle),
    ]
    return [(internal, flt, fmt) for internal in (False, True) for flt in chosen
            for fmt in ("jsonl", "csv")]


def assert_same_exports(run: ClinicRun, url: str) -> None:
    o = build(Settings(database_url=url))
    try:
        for internal, flt, fmt in filters(run):
            plain = export(o, plain=True, internal=internal, flt=flt, fmt=fmt)
            direct = export(o, plain=False, internal=internal, flt=flt, fmt=fmt)
            assert direct == plain, (internal, flt, fmt)
        assert plain[0], "the last filter keeps events: the comparison compared something"
        # An aggregate filter needs an id: a communication of the flu campaign's.
        first = export(o, plain=True, internal=False, flt=EventFilter(
            types=("Communication.Accepted",)))[0].splitlines()[0]
        aggregate = first.split(b'"aggregate_id":"')[1].split(b'"')[0].decode()
        for internal in (False, True):
            flt = EventFilter(aggregate_id=aggregate)
            assert export(o, plain=False, internal=internal, flt=flt) == export(
                o, plain=True, internal=internal, flt=flt)
        # Pages by --limit/--after stop and resume at the same places.
        for after in (0, 17):
            assert export(o, plain=False, internal=True, flt=EventFilter(), after=after,
                          limit=25) == export(o, plain=True, internal=True, flt=EventFilter(),
                                              after=after, limit=25)
    finally:
        o.close()


def test_the_direct_export_writes_byte_for_byte_what_the_plain_one_writes_on_sqlite(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/outreach.db"
    assert_same_exports(_run_clinic(url, tmp_path), url)


@pytest.mark.postgres
def test_the_direct_export_writes_byte_for_byte_what_the_plain_one_writes_on_postgresql(
        pg_url: str, tmp_path: Path) -> None:
    assert_same_exports(_run_clinic(pg_url, tmp_path), pg_url)


# -- memory --------------------------------------------------------------------------------
def sent_communications(o: Outreach, count: int) -> None:
    """`count` communications planned, started, accepted and delivered (4 events each),
    saved 250 at a time as a busy dispatcher's history would be."""
    campaign = uuid.uuid4()
    batch: list[Communication] = []
    for n in range(count):
        at = DUE + timedelta(seconds=4 * n)
        c = Communication(campaign_id=campaign, patient_id=f"P{n:07d}", channel="text",
                          sequence=n, due_at=at)
        c.start_attempt(1, at)
        c.accept(1, at, f"SM{n:032d}", 1)
        c.confirm_delivery(at + timedelta(seconds=3))
        batch.append(c)
        if len(batch) == 250:
            o.store.save(*batch)
            batch = []
    if batch:
        o.store.save(*batch)


def export_peak(o: Outreach, internal: bool) -> tuple[int, int]:
    """(events written, tracemalloc peak in bytes) of one whole export. The contexts'
    cache is made small so both sizes fill it: what is left to grow is the export itself."""
    exporter = EventExport(o.store, o.contact_keys, internal=internal, flt=EventFilter(),
                           context_cache=100)
    tracemalloc.start()
    try:
        with open(os.devnull, "wb") as sink:
            summary = exporter.write(sink, "jsonl")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return summary.written, peak


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_histories(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[tuple[Outreach, Outreach]]:
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("histories")
        urls = [f"sqlite:///{folder}/small.db", f"sqlite:///{folder}/large.db"]
    else:
        urls = [request.getfixturevalue("pg_url_small"),
                request.getfixturevalue("pg_url_large")]
    small, large = (build(Settings(database_url=url)) for url in urls)
    try:
        sent_communications(small, 750)
        sent_communications(large, 3_000)
        yield small, large
    finally:
        small.close()
        large.close()


@pytest.fixture(scope="module")
def pg_url_small(postgres_server_url: str) -> Iterator[str]:
    with scratch_database(postgres_server_url, "export_small") as url:
        yield url


@pytest.fixture(scope="module")
def pg_url_large(postgres_server_url: str) -> Iterator[str]:
    with scratch_database(postgres_server_url, "export_large") as url:
        yield url


@pytest.mark.parametrize("internal", [False, True], ids=["public", "internal"])
def test_an_export_of_four_times_the_history_needs_no_more_memory(
        two_histories: tuple[Outreach, Outreach], internal: bool) -> None:
    small, large = two_histories
    small_written, small_peak = export_peak(small, internal)
    large_written, large_peak = export_peak(large, internal)
    assert large_written >= 4 * small_written - 10 and small_written >= 3_000
    assert large_peak <= 1.2 * small_peak, (small_peak, large_peak)
