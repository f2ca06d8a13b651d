"""End to end, with real processes: a dispatcher killed mid-campaign loses and doubles nothing.

The stack (PostgreSQL, Tansu, the real Twilio adapter on the fake Twilio server, the
`outreach` console script) is set up by tests/e2e/stack.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from domain.communication import communication_id
from tests.e2e.stack import (
    StackConfig,
    accepted_at_by_communication,
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
    slow_down,
)

# -- the crash test -------------------------------------------------------------------------

PATIENTS = 400


@pytest.mark.slow
def test_a_dispatcher_killed_mid_campaign_loses_and_doubles_no_text(
    pg_url: str, kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path
) -> None:
    with fake_twilio() as twilio:
        config = StackConfig(pg_url, kafka_bootstrap, unique_topic_prefix, twilio)
        slow_down(twilio, posts=4 * PATIENTS)
        with in_process_app(config) as app, e2e_stack(config, tmp_path / "stack") as stack:
            # Given 400 patients with a valid mobile each, the scheduler + relay process,
            # and two dispatchers that have split the intent partitions between them
            mobiles = import_patients(app, tmp_path, PATIENTS)
            stack.start_run()
            survivor, victim = stack.start_dispatchers(2, group_name("crash"))
            victim_numbers = {mobile for pid, mobile in mobiles.items()
                              if partition_of(pid, mobile) in victim.assigned_partitions()}
            assert 0 < len(victim_numbers) < PATIENTS

            # When a text campaign to all of them is activated…
            campaign_id = create_campaign(app, list(mobiles))

            # …and the victim is SIGKILLed in the middle of a batch, once the fake has
            # accepted at least 20% of the texts (right after one of its own calls went
            # through: its batch's outcomes are then not yet stored)
            seen = {"victim": 0}

            def victim_mid_batch() -> bool:
                counts = twilio.accepted_count_by_number()
                victim_now = sum(counts.get(n, 0) for n in victim_numbers)
                moved, seen["victim"] = victim_now > seen["victim"], victim_now
                return moved and len(counts) >= PATIENTS // 5

            stack.wait_for(victim_mid_batch, 90, "the victim to be sending, 20% in", 0.002)
            killed_at = datetime.now(UTC)
            victim.kill()
            accepted_before_kill = {m.to: m.date_created for m in twilio.messages()}
            assert len(accepted_before_kill) < PATIENTS, "the kill came after the last send"

            # Then the survivor takes over and the campaign completes
            stack.wait_for(lambda: campaign_status(app, campaign_id) == "Completed", 120,
                           f"campaign {campaign_id} to complete after the kill "
                           f"(fake accepted {len(twilio.accepted_count_by_number())} "
                           f"of {PATIENTS} numbers at the kill)", every_s=0.5,
                           explain=explain_unfinished(app, campaign_id, list(mobiles), twilio))

            # every patient got exactly one text: none lost, none doubled
            assert_each_patient_texted_once(twilio.accepted_count_by_number(), mobiles)

            # and every communication ended Sent
            report = app.campaigns.report(campaign_id)
            assert len(report) == PATIENTS
            not_sent = [(r.patient_id, r.status, r.last_outcome) for r in report
                        if r.status != "Sent"]
            assert not not_sent, f"{len(not_sent)} communications not Sent: {not_sent[:5]}"

            # The kill really did land between a provider call and its stored outcome: some
            # of the victim's texts, accepted before it died, were recorded only afterwards —
            # by reconciliation with the provider (they were not sent again: counts are 1).
            recorded = accepted_at_by_communication(app)
            reconciled = [
                number for pid, number in mobiles.items()
                if number in victim_numbers and number in accepted_before_kill
                and recorded[communication_id(campaign_id, pid)] > killed_at
            ]
            assert reconciled, ("no text was in flight when the victim died: every one it "
                                "had sent was already recorded, reconciliation went untested")
