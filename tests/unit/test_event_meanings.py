"""What public events mean, fixed: Completed counts sent and delivered apart (and a stored
version 1 still loads and means what it meant), a transient failure after the end is not
"permanent", and a communication's events carry whose and which communication they are."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from hypothesis import given
from hypothesis import strategies as st

from bus.event_schema import check_message
from bus.public_events import CommunicationContexts, public_message
from domain.campaign import Campaign, CampaignStatus
from domain.communication import CommStatus, Communication
from domain.preferences import ContactKeys
from domain.retry import FailureKind

AT = datetime(2026, 11, 24, 17, tzinfo=UTC)
KEYS = ContactKeys(b"a-contact-key-secret-for-unit-tests")


class Store(Application):  # type: ignore[type-arg]
    """eventsourcing's in-memory store: the same mapper and upcasting as the real ones."""


def active_campaign() -> Campaign:
    campaign = Campaign(name="Flu", description="", channel="text", content={"body": "Hi"},
                        requested_start="2026-11-24", start_date="2026-11-24",
                        audience=["P1"], created_at=AT, created_by="staff")
    campaign._activated(at=AT)
    return campaign


# -- Campaign.Completed, version 2 --------------------------------------------------------------

def test_completed_counts_sent_and_delivered_apart() -> None:
    campaign = active_campaign()
    campaign.complete(now=AT, sent=3, delivered=5, unsuccessful=2)
    completed = campaign.collect_events()[-1]
    message = public_message(completed, 9, KEYS)
    assert message is not None
    assert message["data"] == {"at": AT.isoformat(), "accepted": 8, "sent": 3, "delivered": 5,
                               "unsuccessful": 2, "introduced": 0}
    check_message(message)


@given(sent=st.integers(0, 4000), delivered=st.integers(0, 4000),
       unsuccessful=st.integers(0, 4000))
def test_completed_accepted_is_always_sent_plus_delivered_and_valid(
        sent: int, delivered: int, unsuccessful: int) -> None:
    campaign = active_campaign()
    campaign.complete(now=AT, sent=sent, delivered=delivered, unsuccessful=unsuccessful)
    message = public_message(campaign.collect_events()[-1], 9, KEYS)
    assert message is not None
    data = message["data"]
    assert (data["accepted"], data["sent"], data["delivered"]) == (
        sent + delivered, sent, delivered)
    check_message(message)


def test_a_completed_event_stored_as_version_1_loads_and_keeps_its_meaning() -> None:
    # Given a campaign whose Completed event was stored by the previous version: no class
    # version, and `delivered` = every text the provider accepted (sent + delivered)
    store = Store()
    campaign = active_campaign()
    campaign.complete(now=AT, sent=0, delivered=7, unsuccessful=2)
    *earlier, completed = campaign.collect_events()
    stored = store.mapper.to_stored_event(completed)
    state = json.loads(stored.state)
    assert state.pop("class_version") == 3
    v1 = {k: v for k, v in state.items() if k not in ("accepted", "sent", "introduced")}
    store.recorder.insert_events([store.mapper.to_stored_event(e) for e in earlier] + [
        StoredEvent(stored.originator_id, stored.originator_version, stored.topic,
                    json.dumps({**v1, "delivered": 7}).encode())])
    # When it is read back
    loaded: Campaign = store.repository.get(campaign.id)
    [old] = list(store.events.get(campaign.id, gt=len(earlier)))
    # Then the campaign is completed, and the old count is what it was: texts accepted,
    # with no claim about receipts (sent and delivered were never counted apart)
    assert loaded.status == CampaignStatus.COMPLETED
    assert (old.accepted, old.sent, old.delivered, old.unsuccessful) == (7, None, None, 2)
    assert old.introduced == 0  # version 1 predates email
    message = public_message(old, 4, KEYS)
    assert message is not None
    assert message["data"]["accepted"] == 7 and message["data"]["delivered"] is None
    check_message(message)


def test_a_completed_event_stored_as_version_2_loads_with_no_introductions() -> None:
    # Given a Completed event stored before email existed (version 2: no `introduced`)
    store = Store()
    campaign = active_campaign()
    campaign.complete(now=AT, sent=1, delivered=4, unsuccessful=2)
    *earlier, completed = campaign.collect_events()
    stored = store.mapper.to_stored_event(completed)
    state = json.loads(stored.state)
    state.pop("introduced")
    state["class_version"] = 2
    store.recorder.insert_events([store.mapper.to_stored_event(e) for e in earlier] + [
        StoredEvent(stored.originator_id, stored.originator_version, stored.topic,
                    json.dumps(state).encode())])
    # When it is read back, then it counts no introductory emails and publishes 0
    [old] = list(store.events.get(campaign.id, gt=len(earlier)))
    assert (old.accepted, old.sent, old.delivered, old.introduced) == (5, 1, 4, 0)
    message = public_message(old, 4, KEYS)
    assert message is not None and message["data"]["introduced"] == 0
    check_message(message)


# -- a transient failure when no retry can happen ------------------------------------------------

def sent_communication() -> Communication:
    comm = Communication(campaign_id=uuid4(), patient_id="P1", channel="text", sequence=0,
                         due_at=AT)
    comm.start_attempt(1, AT)
    comm.accept(1, AT, "SM1")
    return comm


def test_a_transient_failure_with_no_retry_possible_is_not_recorded_as_permanent() -> None:
    # Given a text accepted on its first attempt, whose campaign then completed
    comm = sent_communication()
    # When its receipt says 30003 (handset unreachable: transient) and no retry can be planned
    comm.fail(1, AT + timedelta(minutes=5), "handset unreachable", "30003",
              FailureKind.TRANSIENT, None, no_retry_because="campaign completed")
    names = [type(e).__name__ for e in comm.collect_events()]
    # Then it ends unsuccessful, saying why, and never as a permanent failure
    assert names[-2:] == ["AttemptFailed", "RetryNotPossible"]
    assert "FailedPermanently" not in names
    assert comm.status == CommStatus.UNSUCCESSFUL
    assert comm.reason == "Unsuccessful - retry not possible: campaign completed"


def test_a_permanent_failure_is_still_permanent() -> None:
    comm = sent_communication()
    comm.fail(1, AT, "invalid number", "21211", FailureKind.PERMANENT, None)
    assert [type(e).__name__ for e in comm.collect_events()][-1] == "FailedPermanently"


# -- whose communication: campaign, patient, channel on every communication event ---------------

def test_every_communication_event_carries_its_campaign_patient_and_channel() -> None:
    # Given communications stored earlier (as a relay started later, or an export, finds them)
    store = Store()
    comms = [Communication(campaign_id=uuid4(), patient_id=f"P{n}", channel="text",
                           sequence=n, due_at=AT) for n in range(3)]
    for comm in comms:
        comm.start_attempt(1, AT)
        comm.accept(1, AT, f"SM{comm.patient_id}")
    store.save(*comms)
    # When their later events are published with a cache smaller than the history
    contexts = CommunicationContexts(store, size=2)
    for comm in comms * 2:
        for stored in store.events.get(comm.id, gt=1):
            message = public_message(stored, 1, KEYS, context=contexts)
            assert message is not None
            # Then each names its own campaign, patient and channel (read from its Planned
            # event in the store when not cached), and matches the schema
            assert {k: message["data"][k] for k in ("campaign_id", "patient_id", "channel")} \
                == {"campaign_id": str(comm.campaign_id), "patient_id": comm.patient_id,
                    "channel": "text"}
            check_message(message)


def test_a_planned_event_seen_in_the_stream_is_remembered_without_a_store_read() -> None:
    # A store that holds nothing: only the stream's own Planned event can answer
    empty = Store()
    contexts = CommunicationContexts(empty)
    comm = sent_communication()
    planned, *later = comm.collect_events()
    for event in (planned, *later):
        message = public_message(event, 1, KEYS, context=contexts)
        assert message is not None and message["data"]["patient_id"] == "P1"
