"""Batch loading: EventStore.get_many reads many aggregates in one query and must rebuild each
exactly as repository.get does; the dispatcher and its senders read a batch's communications,
campaigns and opt-outs that way, and an opt-out read for one batch is never reused by the next.
Both stacks (`stack`: SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import AggregateNotFoundError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.bootstrap import Outreach
from application.clock import SimulatedClock
from application.settings import Settings
from application.store import EventStore, open_event_store
from bus.intents import SendIntent
from domain.communication import CommStatus, Communication, SkipReason, communication_id
from domain.errors import DomainError
from domain.keywords import Keyword
from domain.preferences import (
    Duration,
    OptOutType,
    PatientPreferences,
    PhoneOptOut,
    legacy_phone_key,
)
from domain.retry import FailureKind
from gateways.simulator_sms import SimulatorSmsGateway
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from workers.runner import make_dispatcher

BODY = "Flu shots are here. Call (555) 010-0100 to book."
# 11:30 in Chicago on the Tuesday: the text window is open.
IN_WINDOW = TUESDAY_9AM + timedelta(hours=2, minutes=30)
AT = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
LONG_REASON = "window closed; " * 120  # > 1 kB: stored compressed (EventCompressor)


# -- get_many equals repository.get ------------------------------------------------------

OPS = st.lists(st.sampled_from(
    ["defer", "defer_long", "start", "accept", "fail", "fail_permanent", "skip", "cancel",
     "deliver", "stop", "start_texts", "opt_out", "restore"]), max_size=8)


def apply(aggregate: Any, op: str, n: int) -> None:
    """One step of a random history; steps the aggregate refuses are simply not taken."""
    at = AT + timedelta(minutes=n)
    try:
        if isinstance(aggregate, Communication):
            comm_step(aggregate, op, at)
        elif isinstance(aggregate, PhoneOptOut) and op in ("stop", "start_texts"):
            aggregate.keyword(Keyword.STOP if op == "stop" else Keyword.START, at)
        elif isinstance(aggregate, PatientPreferences) and op == "opt_out":
            aggregate.opt_out(OptOutType.HEALTH_TEXT, Duration(days=n % 9 + 1), at.date(), at,
                              "asked")
        elif isinstance(aggregate, PatientPreferences) and op == "restore":
            aggregate.restore(list(aggregate.opt_outs)[:1], at)
    except DomainError:
        pass


def comm_step(comm: Communication, op: str, at: datetime) -> None:
    if op == "defer":
        comm.defer(at + timedelta(hours=1), "outside the communication window")
    elif op == "defer_long":
        comm.defer(at + timedelta(hours=2), LONG_REASON)
    elif op == "start":
        comm.start_attempt(comm.attempts + 1, at)
    elif op == "accept":
        comm.accept(comm.attempts, at, f"SM{comm.attempts}", 1)
    elif op in ("fail", "fail_permanent"):
        permanent = op == "fail_permanent"
        comm.fail(comm.attempts, at, "provider refused", "30003",
                  FailureKind.PERMANENT if permanent else FailureKind.TRANSIENT,
                  None if permanent else at + timedelta(hours=3))
    elif op == "skip":
        comm.skip(at, SkipReason.OPTED_OUT)
    elif op == "cancel":
        comm.cancel(at, "campaign stopped")
    elif op == "deliver":
        comm.confirm_delivery(at, "delivered")


def new_aggregate(kind: int, n: int) -> Any:
    if kind == 0:
        return Communication(campaign_id=uuid4(), patient_id=f"P{n:04d}", channel="text",
                             sequence=n, due_at=AT)
    if kind == 1:
        return PhoneOptOut(key=legacy_phone_key(f"+1312555{n:04d}") + uuid4().hex)
    return PatientPreferences(patient_id=f"P{uuid4().hex}")


HISTORIES = st.lists(st.tuples(st.integers(0, 2), st.lists(OPS, max_size=3)), min_size=1,
                     max_size=12)


def same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and vars(a) == vars(b)


@pytest.fixture
def store(stack: str) -> EventStore:
    return open_event_store(Settings(database_url=stack))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories=HISTORIES, absent=st.integers(0, 3))
def test_many_aggregates_read_at_once_equal_each_one_read_alone(
        store: EventStore, histories: list[tuple[int, list[list[str]]]], absent: int) -> None:
    # Given aggregates of every kind the dispatcher reads, each with a random history stored
    # over several saves (some events large enough to be stored compressed)
    aggregates = [new_aggregate(kind, n) for n, (kind, _) in enumerate(histories)]
    store.save(*aggregates)
    rounds = max((len(saves) for _, saves in histories), default=0)
    for r in range(rounds):
        for n, (_, saves) in enumerate(histories):
            if r < len(saves):
                for step, op in enumerate(saves[r]):
                    apply(aggregates[n], op, 10 * r + step)
        store.save(*aggregates)
    missing = [uuid4() for _ in range(absent)]
    ids = [a.id for a in aggregates] + missing
    # When they are read in one go
    found = store.get_many(ids)
    # Then each equals what repository.get rebuilds, and ids never stored are absent
    assert set(found) == {a.id for a in aggregates}
    for aggregate in aggregates:
        assert same(found[aggregate.id], store.repository.get(aggregate.id))
    for aggregate_id in missing:
        with pytest.raises(AggregateNotFoundError):
            store.repository.get(aggregate_id)


def test_more_ids_than_one_query_takes_are_read_in_chunks(store: EventStore) -> None:
    comms = [new_aggregate(0, n) for n in range(1_100)]
    for n, comm in enumerate(comms):
        if n % 3 == 0:
            comm.start_attempt(1, AT)
    store.save(*comms)
    found = store.get_many([c.id for c in reversed(comms)] + [uuid4(), uuid4()])
    assert len(found) == len(comms)
    assert all(same(found[c.id], store.repository.get(c.id)) for c in comms[::97])
    assert store.get_many([]) == {}


# -- the dispatcher reads a batch at once and caches no opt-out -----------------------------

NUMBERS = {f"P{n}": f"+1312555010{n}" for n in range(6)}


@pytest.fixture
def outreach(make_outreach: Callable[..., Outreach], tmp_path: Path) -> Outreach:
    o = make_outreach(clock=SimulatedClock(IN_WINDOW))
    import_patients(o, tmp_path, [patient_row(pid, mobile) for pid, mobile in NUMBERS.items()])
    return o


def intents_for(campaign_id: UUID, patients: list[str], at: datetime) -> list[SendIntent]:
    return [SendIntent(communication_id(campaign_id, pid), campaign_id, 1, pid, at)
            for pid in patients]


def comm(o: Outreach, campaign_id: UUID, pid: str) -> Communication:
    found: Communication = o.store.repository.get(communication_id(campaign_id, pid))
    return found


def sent_to(o: Outreach) -> list[str]:
    assert isinstance(o.gateway, SimulatorSmsGateway)
    return [m.to for m in o.gateway.sent]


def stop(o: Outreach, pid: str, *, legacy: bool = False, then_start: bool = False) -> None:
    number = NUMBERS[pid]
    record = PhoneOptOut(key=legacy_phone_key(number)) if legacy else \
        PhoneOptOut.for_number(number, o.contact_keys)
    record.keyword(Keyword.STOP, o.clock.now())
    if then_start:
        record.keyword(Keyword.START, o.clock.now())
    o.store.save(record)


def test_one_batch_applies_every_opt_out_as_each_send_alone_would(outreach: Outreach) -> None:
    o = outreach
    now = o.clock.now()
    # Given a STOP under the keyed id (P0), one under the legacy id only (P1), a legacy STOP
    # overruled by a keyed START (P2: the keyed record decides), a staff opt-out of health
    # texts (P3), and two patients with nothing recorded (P4, P5)
    stop(o, "P0")
    stop(o, "P1", legacy=True)
    stop(o, "P2", legacy=True)
    stop(o, "P2", then_start=True)
    prefs = PatientPreferences(patient_id="P3")
    prefs.opt_out(OptOutType.HEALTH_TEXT, Duration(), o.settings.calendar.today(now), now,
                  "asked")
    o.store.save(prefs)
    cid = o.campaigns.create(name="Flu", body=BODY, help_number="555-0100", active=True)
    # When one batch carries all of them, plus an intent for a communication that does not
    # exist and a redelivered duplicate
    intents = intents_for(cid, sorted(NUMBERS), now)
    stray = SendIntent(uuid4(), cid, 1, "stray", now)
    stats = make_dispatcher(o).handle([*intents, stray, intents[4]])
    # Then the opted-out are skipped, the others sent, the stray and the duplicate dropped
    status = {pid: comm(o, cid, pid).status for pid in NUMBERS}
    assert status == {"P0": CommStatus.SKIPPED, "P1": CommStatus.SKIPPED,
                      "P2": CommStatus.SENT, "P3": CommStatus.SKIPPED,
                      "P4": CommStatus.SENT, "P5": CommStatus.SENT}
    assert {comm(o, cid, p).reason for p in ("P0", "P1", "P3")} == {SkipReason.OPTED_OUT}
    assert sorted(sent_to(o)) == [NUMBERS[p] for p in ("P2", "P4", "P5")]
    assert (stats.sent, stats.skipped, stats.duplicates) == (3, 3, 2)


def test_a_stop_stored_after_a_batch_stops_the_next_batch_of_the_same_dispatcher(
        outreach: Outreach) -> None:
    o = outreach
    now = o.clock.now()
    first = o.campaigns.create(name="Flu", body=BODY, help_number="555-0100",
                               audience=["P0", "P1"], active=True)
    second = o.campaigns.create(name="Covid", body=BODY, help_number="555-0100",
                                audience=["P1", "P2"], active=True)
    dispatcher = make_dispatcher(o)
    # Given a batch that read P1's opt-out records (none) and texted them
    dispatcher.handle(intents_for(first, ["P0", "P1"], now))
    assert comm(o, first, "P1").status == CommStatus.SENT
    # When P1 texts STOP and P2 is opted out by staff before the next batch
    stop(o, "P1")
    prefs = PatientPreferences(patient_id="P2")
    prefs.opt_out(OptOutType.GLOBAL, Duration(), o.settings.calendar.today(now), now, "asked")
    o.store.save(prefs)
    dispatcher.handle(intents_for(second, ["P1", "P2"], now))
    # Then the same dispatcher skips both: nothing read for the first batch was reused
    assert comm(o, second, "P1").status == CommStatus.SKIPPED
    assert comm(o, second, "P2").status == CommStatus.SKIPPED
    assert sorted(sent_to(o)) == [NUMBERS["P0"], NUMBERS["P1"]]


def test_a_campaign_stopped_after_a_batch_cancels_in_the_next_batch(
        outreach: Outreach) -> None:
    o = outreach
    now = o.clock.now()
    cid = o.campaigns.create(name="Flu", body=BODY, help_number="555-0100",
                             audience=["P0", "P1"], active=True)
    dispatcher = make_dispatcher(o)
    dispatcher.handle(intents_for(cid, ["P0"], now))
    # The stop is stored before its cancellations reach P1's communication (they race)
    campaign = o.campaigns.get(cid)
    campaign.stop(now=now, by="admin@clinic.example")
    o.store.save(campaign)
    stats = dispatcher.handle(intents_for(cid, ["P1"], now))
    # The campaign is read afresh for each batch: stopped, P1 is cancelled, never texted
    assert comm(o, cid, "P1").status == CommStatus.CANCELLED and stats.cancelled == 1
    assert sent_to(o) == [NUMBERS["P0"]]
