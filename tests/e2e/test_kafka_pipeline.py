"""End to end, with real processes: the Kafka pipeline of the scale-out stack.

(a) several `outreach worker dispatch` processes in one consumer group split the work;
(b) the event relay (`outreach worker relay`) publishes every stored event to
    `<prefix>.events` in the public wire format (bus.wire, schema_version 1).

The stack (PostgreSQL, Tansu, the real Twilio adapter on
the fake Twilio server, the `outreach` console script) comes from tests/e2e/stack.py.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from bus.public_events import CommunicationContexts, public_record
from bus.wire import decode_event, events_topic
from tests.e2e.stack import (
    StackConfig,
    assert_each_patient_texted_once,
    campaign_status,
    create_campaign,
    e2e_stack,
    explain_unfinished,
    fake_twilio,
    group_name,
    import_patients,
    in_process_app,
    partition_of,
)

# -- (a) three dispatchers split the work ---------------------------------------------------

SPLIT_PATIENTS = 300


@pytest.mark.slow
def test_three_dispatchers_in_one_group_split_the_campaign_and_text_each_patient_once(
    pg_url: str, kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path
) -> None:
    with fake_twilio() as twilio:
        config = StackConfig(pg_url, kafka_bootstrap, unique_topic_prefix, twilio)
        with in_process_app(config) as app, e2e_stack(config, tmp_path / "stack") as stack:
            # Given 300 patients, the scheduler + relay process, and three dispatchers of one
            # group that have split the six intent partitions between them
            mobiles = import_patients(app, tmp_path, SPLIT_PATIENTS)
            stack.start_run()
            dispatchers = stack.start_dispatchers(3, group_name("split"))
            owned = {d.name: d.assigned_partitions() for d in dispatchers}

            # When a text campaign to all of them is activated and runs to the end
            campaign_id = create_campaign(app, list(mobiles))
            stack.wait_for(lambda: campaign_status(app, campaign_id) == "Completed", 120,
                           f"campaign {campaign_id} to complete", every_s=0.5,
                           explain=explain_unfinished(app, campaign_id, list(mobiles), twilio))

            # Then every patient got exactly one text
            assert_each_patient_texted_once(twilio.accepted_count_by_number(), mobiles)
            assert {r.status for r in app.campaigns.report(campaign_id)} == {"Sent"}

            # and each dispatcher sent the texts of its own partitions — no more, no less —
            # as its `batch_done` log lines count them (the group never re-formed meanwhile)
            assert {d.name: d.assigned_partitions() for d in dispatchers} == owned, (
                f"the group re-formed during the campaign\n{stack.diagnostics()}")
            routed = Counter(partition_of(pid, mobile) for pid, mobile in mobiles.items())
            expected = {name: sum(routed[p] for p in parts) for name, parts in owned.items()}
            reported = {d.name: d.sent_by_batches() for d in dispatchers}
            assert all(reported.values()), f"a dispatcher sent nothing: {reported}"
            assert reported == expected, (
                f"texts sent by each dispatcher {reported} != routed to its partitions "
                f"{expected} (partitions {owned})")


# -- (b) the relay publishes every stored event ---------------------------------------------

RELAY_PATIENTS = 20


def stored_events(app: Any) -> dict[tuple[str, int], tuple[int, str]]:
    """(public aggregate id, version) → (notification id, stored topic) of every stored event
    the public topic carries (bus.public_events: internal ones, such as import rows, never
    go there; a phone opt-out goes under its public id)."""
    events: dict[tuple[str, int], tuple[int, str]] = {}
    contexts = CommunicationContexts(app.store)
    start = 1
    while True:
        notifications = app.store.recorder.select_notifications(start=start, limit=1000)
        for n in notifications:
            record = public_record(app.store.mapper.to_domain_event(n), n.id, app.contact_keys,
                                   context=contexts)
            if record is not None:
                events[(record[0].decode(), int(n.originator_version))] = (int(n.id), n.topic)
        if len(notifications) < 1000:
            return events
        start = notifications[-1].id + 1


def consume_events(bootstrap: str, topic: str, wanted: set[tuple[str, int]],
                   timeout_s: float = 30) -> list[tuple[int, bytes, bytes]]:
    """Every record of `topic` from the beginning — (partition, key, value) — read until
    each wanted (aggregate id, version) has been seen (end offsets are not reliable on
    Tansu, so completeness is judged by content), then a short quiet spell."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert partitions, f"topic {topic} does not exist"
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[tuple[int, bytes, bytes]] = []
        seen: set[tuple[str, int]] = set()
        deadline = time.monotonic() + timeout_s
        quiet_until: float | None = None
        while time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=200).items():
                for record in batch:
                    records.append((tp.partition, record.key, record.value))
                    message = json.loads(record.value)
                    seen.add((message["aggregate_id"], message["aggregate_version"]))
            if wanted <= seen:
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() >= quiet_until:
                    return records
        missing = sorted(wanted - seen)
        raise AssertionError(f"{len(missing)} stored events never reached {topic} within "
                             f"{timeout_s:.0f} s, e.g. {missing[:5]}")
    finally:
        consumer.close()


@pytest.mark.slow
def test_the_relay_publishes_every_stored_event_as_versioned_json_keyed_by_aggregate(
    pg_url: str, kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path
) -> None:
    with fake_twilio() as twilio:
        config = StackConfig(pg_url, kafka_bootstrap, unique_topic_prefix, twilio)
        with in_process_app(config) as app, e2e_stack(config, tmp_path / "stack") as stack:
            # Given 20 patients, and the stack split into its single-purpose workers:
            # scheduler (`worker schedule`), relay (`worker relay`) and one dispatcher
            mobiles = import_patients(app, tmp_path, RELAY_PATIENTS)
            scheduler = stack.start("schedule", "worker", "schedule", "--interval", "1")
            stack.wait_for(lambda: scheduler.has_logged("running"), 60,
                           "`outreach worker schedule` to start")
            relay = stack.start("relay", "worker", "relay")
            stack.wait_for(lambda: relay.has_logged("relay_started"), 60,
                           "`outreach worker relay` to start")
            stack.start_dispatchers(1, group_name("relay"))

            # When a text campaign runs to completion and the relay has caught up
            campaign_id = create_campaign(app, list(mobiles))
            stack.wait_for(lambda: campaign_status(app, campaign_id) == "Completed", 90,
                           f"campaign {campaign_id} to complete", every_s=0.5,
                           explain=explain_unfinished(app, campaign_id, list(mobiles), twilio))
            assert_each_patient_texted_once(twilio.accepted_count_by_number(), mobiles)
            stored = stored_events(app)
            records = consume_events(kafka_bootstrap, events_topic(unique_topic_prefix),
                                     set(stored))

            # Then every record is wire-format JSON of schema_version 1, keyed by its
            # aggregate id…
            messages = []
            for partition, key, value in records:
                raw = json.loads(value)
                assert raw["schema_version"] == 1, raw
                message = decode_event(value)  # checks the envelope of schema_version 1
                assert key == message["aggregate_id"].encode("utf-8"), (key, message)
                messages.append((partition, message))

            # …every stored event is there, at its position in the store's log, with its type
            published = {(m["aggregate_id"], m["aggregate_version"]): m for _, m in messages}
            assert set(published) == set(stored)
            for aggregate_version, (position, topic) in stored.items():
                message = published[aggregate_version]
                assert (message["position"], message["topic"]) == (position, topic)
                assert topic.endswith(":" + message["event_type"]), (topic, message)

            # …each aggregate's events on one partition, in version order
            partitions_of: dict[str, set[int]] = defaultdict(set)
            versions_of: dict[str, list[int]] = defaultdict(list)
            for partition, message in messages:
                partitions_of[message["aggregate_id"]].add(partition)
                versions_of[message["aggregate_id"]].append(message["aggregate_version"])
            assert all(len(p) == 1 for p in partitions_of.values()), partitions_of
            assert all(v == sorted(v) for v in versions_of.values()), versions_of

            # …including the campaign's life and every text's acceptance
            campaign_types = [m["event_type"] for _, m in messages
                              if m["aggregate_id"] == str(campaign_id)]
            assert campaign_types[:2] == ["Campaign.Created", "Campaign.Activated"]
            assert campaign_types[-1] == "Campaign.Completed"
            accepted = {m["aggregate_id"] for _, m in messages
                        if m["event_type"] == "Communication.Accepted"}
            assert len(accepted) == RELAY_PATIENTS
            created = next(m for _, m in messages if m["aggregate_id"] == str(campaign_id))
            assert created["data"]["name"].startswith("Flu shots"), created["data"]
