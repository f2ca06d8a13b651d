"""A run's progress is the progress of the campaigns it drives — on both stacks."""

from __future__ import annotations

from datetime import timedelta

from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from workers.runner import EmbeddedRunner, Progress

BODY = "Flu shots are here. Call (555) 010-0100 to book."


def test_a_run_counts_the_campaigns_it_drives_not_every_campaign_in_the_database(
        make_outreach, tmp_path):
    # Given five patients and an earlier campaign, stopped (five cancelled communications)
    o = make_outreach()
    import_patients(o, tmp_path, [patient_row(f"P{i}", f"+131255501{i:02d}") for i in range(5)])
    earlier = o.campaigns.create(name="Earlier", body=BODY, help_number="555-0100",
                                 active=True)
    o.campaigns.stop(earlier)
    # and this run's campaign for three of them, sent and completed within the run's first
    # steps
    o.campaigns.create(name="Flu", body=BODY, help_number="555-0100",
                       audience=["P0", "P1", "P2"], active=True)
    seen: list[Progress] = []
    # When the run drives it
    runner = EmbeddedRunner(o)
    done = runner.run_simulated(TUESDAY_9AM + timedelta(days=1), seen.append)
    # Then its progress counts that campaign's three communications, not the stopped ones
    assert [p.to_contact for p in seen] == [3] * len(seen)
    assert (done.campaigns, done.to_contact, done.completed) == (1, 3, 3)
    assert runner.stats.sent == 3
