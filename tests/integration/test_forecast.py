"""The forecast before activation (issue 13), on SQLite and PostgreSQL: its first and last
times are the planned times activation then gives, its excluded patients are exactly those
the dispatcher skips, and the API, the command line and the audit trail tell the same."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from application.bootstrap import Outreach, build
from application.clock import SimulatedClock
from application.settings import Settings
from application.staff import opt_out_service
from domain.access import SETUP_ACTOR
from domain.errors import CampaignRuleViolation
from domain.inbound import InboundText
from projections.timefmt import parse_iso
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from tests.integration.staff_app import open_staff_api
from workers.runner import EmbeddedRunner

BODY = "Flu shots are here. Call (555) 010-0100 to book."
HELP = "+15550100100"
OUR_NUMBER = "+15005550006"
SATURDAY = date(2026, 11, 28)
SHARED = "+13125559999"  # one phone, two patients: a STOP from it stops both


def mobile(i: int) -> str:
    return f"+1312555{i:04d}"


def clinic(o: Outreach, folder: Path, plain: int) -> list[str]:
    """`plain` patients who may be texted, and around them the four a text campaign skips:
    X-OPT (All Text opt-out) first on the list, X-SH1/X-SH2 (a shared mobile that texted
    STOP), X-NOM (no mobile) last. Returns the list in order."""
    rows = [patient_row("X-OPT", mobile(9000), last="Optout")]
    rows += [patient_row(f"P{i:03d}", mobile(i)) for i in range(plain)]
    rows.insert(3, patient_row("X-SH1", SHARED, last="Shared", first="One"))
    rows.insert(5, patient_row("X-SH2", SHARED, last="Shared", first="Two"))
    rows.append(patient_row("X-NOM", None, last="Nomobile"))
    import_patients(o, folder, rows)
    opt_out_service(o).add("X-OPT", "All Text", "Patient request", by="test")
    o.inbound.on_text(InboundText("SM" + "5" * 32, SHARED, OUR_NUMBER, "STOP", o.clock.now()))
    o.catch_up()
    return [r["Patient ID"] for r in rows]


def planned(o: Outreach, campaign_id: Any) -> dict[str, datetime]:
    found = {}
    for r in o.campaigns.report(UUID(str(campaign_id))):
        at = parse_iso(r.due_at)
        assert at is not None
        found[r.patient_id] = at
    return found


def excluded_by_reason(made: Any) -> dict[str, set[str]]:
    return {g.reason: {p.patient_id for p in g.patients} for g in made.groups}


def test_the_first_and_last_patient_times_are_those_activation_then_plans(
        make_outreach: Any, tmp_path: Path) -> None:
    # Given one text an hour (nine a day) and a list starting on a Saturday: 12 to contact
    o = make_outreach(rate_cap_per_hour=1)
    order = clinic(o, tmp_path, 12)
    detail = o.staff.campaigns.create(SETUP_ACTOR, name="Flu", body=BODY, help_number=HELP,
                                      start=SATURDAY, patients=order)
    # When the forecast is read, then the campaign activated at the same instant
    made = o.staff.campaigns.forecast(SETUP_ACTOR, detail.campaign_id)
    o.staff.campaigns.activate(SETUP_ACTOR, detail.campaign_id)
    plan = planned(o, detail.campaign_id)
    # Then the first and last patient to be contacted are reached when the plan says
    contacted = [p for p in order if not p.startswith("X-")]
    assert made.first_at == plan[contacted[0]] and made.last_at == plan[contacted[-1]]
    assert made.first_at == min(plan[p] for p in contacted)
    assert made.last_at == max(plan[p] for p in contacted)
    # And the 11:00 slot is the opted-out patient's (first on the list), so the first patient
    # reached is at 12:00; Saturday's window holds nine, Sunday is skipped, Monday the rest
    assert made.local(made.first_at).startswith("2026-11-28T12:00:00")
    assert made.local(made.last_at).startswith("2026-11-30T")
    assert made.sending_days == 2
    assert any("1 per hour" in n and "2 sending days" in n for n in made.notes)
    assert (made.patients, made.to_contact, made.excluded) == (16, 12, 4)


def test_the_excluded_are_exactly_the_patients_the_dispatcher_skips(
        make_outreach: Any, tmp_path: Path) -> None:
    # Given a list with an opted-out patient, a STOP'd phone shared by two, one without mobile
    o = make_outreach()
    order = clinic(o, tmp_path, 5)
    detail = o.staff.campaigns.create(SETUP_ACTOR, name="Flu", body=BODY, help_number=HELP,
                                      patients=order)
    made = o.staff.campaigns.forecast(SETUP_ACTOR, detail.campaign_id)
    assert excluded_by_reason(made) == {"opted_out": {"X-OPT", "X-SH1", "X-SH2"},
                                        "no_contact": {"X-NOM"}}
    why = {p.patient_id: (p.kind, p.detail) for g in made.groups for p in g.patients}
    assert why["X-OPT"] == ("All Text", "All Text")
    assert why["X-SH1"][1] == why["X-SH2"][1] == f"STOP texted from {SHARED}"
    assert why["X-NOM"][0] == "no mobile phone"
    # When it is activated and the workers run the day through
    o.staff.campaigns.activate(SETUP_ACTOR, detail.campaign_id)
    EmbeddedRunner(o).run_simulated(TUESDAY_9AM + timedelta(days=1))
    # Then the dispatcher skipped exactly those, for the same reasons, and sent the rest
    report = {r.patient_id: r for r in o.campaigns.report(UUID(detail.campaign_id))}
    skipped = {p: r.reason for p, r in report.items() if r.status == "Skipped"}
    assert skipped == {"X-OPT": "opted out", "X-SH1": "opted out", "X-SH2": "opted out",
                       "X-NOM": "no mobile phone"}
    sent = [p for p, r in report.items() if r.status in ("Sent", "Delivered")]
    assert len(sent) == made.to_contact == len(report) - len(skipped)


def test_a_campaign_over_the_size_cap_is_forecast_as_not_activatable(
        make_outreach: Any, tmp_path: Path) -> None:
    o = make_outreach()
    import_patients(o, tmp_path, [patient_row(f"P{i}", mobile(i)) for i in range(5)])
    detail = o.staff.campaigns.create(SETUP_ACTOR, name="Big", body=BODY, help_number=HELP,
                                      patients=[f"P{i}" for i in range(5)])
    # When the organisation lowers the cap to 3 after the list was made
    o.settings.adopt(o.settings.with_values({"campaign_size_cap": "3"}), {"campaign_size_cap": 3})
    made = o.staff.campaigns.forecast(SETUP_ACTOR, detail.campaign_id)
    # Then the two beyond it are excluded, and the forecast says it cannot be activated
    assert excluded_by_reason(made) == {"over_size_cap": {"P3", "P4"}}
    assert not made.can_activate and "at most 3" in made.blocked
    assert made.to_contact == 3


def test_a_pending_campaign_is_forecast_until_its_start_day_and_then_refused(
        make_outreach: Any, tmp_path: Path) -> None:
    o = make_outreach()
    import_patients(o, tmp_path, [patient_row(f"P{i}", mobile(i)) for i in range(3)])
    detail = o.staff.campaigns.create(SETUP_ACTOR, name="Later", body=BODY, help_number=HELP,
                                      start=SATURDAY, patients=["P0", "P1", "P2"], active=True)
    made = o.staff.campaigns.forecast(SETUP_ACTOR, detail.campaign_id)
    plan = planned(o, detail.campaign_id)
    assert (made.first_at, made.last_at) == (plan["P0"], plan["P2"])
    o.clock.advance_to(TUESDAY_9AM + timedelta(days=4))  # Saturday 09:00: the start day
    with pytest.raises(CampaignRuleViolation, match="start day .* has begun"):
        o.staff.campaigns.forecast(SETUP_ACTOR, detail.campaign_id)
    o.staff.campaigns.stop(SETUP_ACTOR, detail.campaign_id)
    with pytest.raises(CampaignRuleViolation, match="Stopped"):
        o.staff.campaigns.forecast(SETUP_ACTOR, detail.campaign_id)


def test_the_api_and_the_command_line_give_the_same_forecast_and_the_read_is_audited(
        make_outreach: Any, stack: str, tmp_path: Path) -> None:
    # A start far enough ahead that the command line's real clock plans the same days
    o = make_outreach()
    order = clinic(o, tmp_path, 4)
    detail = o.staff.campaigns.create(SETUP_ACTOR, name="Spring", body=BODY,
                                      help_number=HELP, start=date(2030, 3, 5),
                                      patients=order)
    staff_api = open_staff_api(o, tmp_path, ("api.staff.campaigns",))
    answer = staff_api.client.get(f"/campaigns/{detail.campaign_id}/forecast",
                                  headers=staff_api.user("maya", groups=("All Subscribers",)))
    assert answer.status_code == 200, answer.text
    given_by_api = answer.json()

    import api.cli_campaigns  # noqa: F401 - registers `campaign forecast`
    from api.cli import app

    ran = CliRunner().invoke(app, ["campaign", "forecast", detail.campaign_id[:8], "--json"],
                             env={"OUTREACH_DATABASE_URL": stack,
                                  "OUTREACH_LOG_LEVEL": "WARNING"})
    assert ran.exit_code == 0, ran.output
    given_by_cli = json.loads(ran.stdout)
    for answer_ in (given_by_api, given_by_cli):
        answer_.pop("computed_at")
    assert given_by_api == given_by_cli
    assert given_by_api["first_at"] == "2030-03-05T11:00:03-06:00"  # the 2nd slot
    assert (given_by_api["to_contact"], given_by_api["excluded"]) == (4, 4)
    # The read names the excluded patients it showed
    [record] = [r for r in staff_api.audit.records if r[1] == "campaign.forecast"]
    assert record[0] == "maya" and record[2] == "allowed"
    assert set(record[3]) == {"X-OPT", "X-SH1", "X-SH2", "X-NOM"}


def test_the_command_line_refuses_an_unknown_campaign_in_one_line(stack: str,
                                                                   make_outreach: Any) -> None:
    make_outreach().close()  # the schema
    import api.cli_campaigns  # noqa: F401
    from api.cli import app

    ran = CliRunner().invoke(app, ["campaign", "forecast", "ffffffff"],
                             env={"OUTREACH_DATABASE_URL": stack,
                                  "OUTREACH_LOG_LEVEL": "WARNING"})
    assert ran.exit_code == 1
    assert ran.stderr.strip().splitlines() == ["error: no campaign matches 'ffffffff'"]


# -- the property: whatever the list, the start day, the hour and the cap --------------------
POOL = 40


@pytest.fixture
def sqlite_outreach(tmp_path: Path) -> Iterator[tuple[Outreach, SimulatedClock]]:
    """SQLite only: the stories above cover PostgreSQL; this one tries many cases."""
    clock = SimulatedClock(TUESDAY_9AM)
    o = build(Settings(database_url=f"sqlite:///{tmp_path}/outreach.db"), clock=clock)
    try:
        import_patients(o, tmp_path, [patient_row(f"P{i:03d}", mobile(i)) for i in range(POOL)])
        yield o, clock
    finally:
        o.close()


def test_the_forecast_agrees_with_the_plan_for_any_list_start_hour_and_rate_cap(
        sqlite_outreach: tuple[Outreach, SimulatedClock]) -> None:
    o, clock = sqlite_outreach
    ids = [f"P{i:03d}" for i in range(POOL)]
    holiday = date(2026, 12, 25)

    @settings(max_examples=40, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(size=st.integers(1, POOL), minutes=st.integers(0, 60 * 30),
           start_in=st.one_of(st.just(0), st.integers(0, 12)), christmas=st.booleans(),
           per_hour=st.integers(1, 4000))
    def agrees(size: int, minutes: int, start_in: int, christmas: bool,
               per_hour: int) -> None:
        clock.advance_to(clock.now() + timedelta(minutes=minutes))
        today = o.settings.calendar.today(o.clock.now())
        start = holiday if christmas and holiday >= today else today + timedelta(days=start_in)
        o.settings.adopt(o.settings.with_values({"rate_cap_per_hour": str(per_hour)}),
                         {"rate_cap_per_hour": per_hour})
        detail = o.staff.campaigns.create(SETUP_ACTOR, name="Any", body=BODY,
                                          help_number=HELP, start=start, patients=ids[:size])
        made = o.staff.campaigns.forecast(SETUP_ACTOR, detail.campaign_id)
        o.staff.campaigns.activate(SETUP_ACTOR, detail.campaign_id)
        plan = planned(o, detail.campaign_id)
        assert made.first_at == min(plan.values()) == plan[ids[0]]
        assert made.last_at == max(plan.values()) == plan[ids[size - 1]]
        calendar = o.settings.calendar
        days = {calendar.today(t) for t in plan.values()}
        assert all(calendar.is_sending_day(d) for d in days)
        assert made.sending_days == len(days)
        o.staff.campaigns.stop(SETUP_ACTOR, detail.campaign_id)

    agrees()
