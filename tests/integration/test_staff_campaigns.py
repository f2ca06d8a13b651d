"""Campaigns at the staff boundary (issue 12), through the facade, on SQLite and PostgreSQL:
every command is made for a signed-in user, checked against their role and groups, and
audited; the campaign is created by that user, within their groups."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from application.bootstrap import Outreach
from application.clock import SimulatedClock
from application.staff_base import MemoryAudit
from application.staff_campaigns import CampaignsFacade
from application.staff_scope import patients_in_scope
from domain.access import ALL_SUBSCRIBERS, AccessDenied, Actor, Role
from domain.channels import Channel
from domain.errors import CampaignRuleViolation, NotFound
from domain.lists import ListQuery, Scope
from gateways.null_voice import NullVoiceGateway
from tests.fixtures_app import TUESDAY_9AM, import_patients, patient_row
from tests.patient_data import PROVIDER_HEADER, write_csv
from workers.runner import EmbeddedRunner

BODY = "Flu shots are here. Call (555) 010-0100 to book."
HELP = "+15550100100"
# Wednesday 25 November 2026, 00:30 US Central: past midnight before a Wednesday start.
WEDNESDAY_0030 = datetime(2026, 11, 25, 6, 30, tzinfo=UTC)
ADDRESS = {"Address Line 1": "100 Main St", "City": "Springfield", "State": "IL",
           "Postal Code": "62701"}

ALICE = Actor("u-alice", "alice", frozenset({Role.CAMPAIGNS}), (ALL_SUBSCRIBERS,), "10.0.0.1",
              "token")
NORA = Actor("u-nora", "nora", frozenset({Role.CAMPAIGNS}), ("North Clinic",), "10.0.0.2",
             "token")
SAM = Actor("u-sam", "sam", frozenset({Role.CAMPAIGNS}), ("South Clinic",), "10.0.0.3",
            "token")
OSCAR = Actor("u-oscar", "oscar", frozenset({Role.OPT_OUTS}), (ALL_SUBSCRIBERS,), "10.0.0.4",
              "token")


def practice(o: Outreach, folder: Path) -> None:
    """Dr. Adams (D1) of North Clinic and Dr. Baker (D2) of South Clinic; N1, N2 and the
    formula-named F1 are Dr. Adams's patients, S1 is Dr. Baker's."""
    o.patients.import_file("providers", write_csv(folder / "providers.csv", PROVIDER_HEADER, [
        ["D1", "Dr. Adams", "North Clinic", "Yes"], ["D2", "Dr. Baker", "South Clinic", "Yes"]]),
        folder / "rejects")

    def row(pid: str, mobile: str, pcp: str, **extra: str) -> dict[str, str]:
        return {**patient_row(pid, mobile), "PCP Provider ID": pcp, **ADDRESS, **extra}

    import_patients(o, folder, [
        row("N1", "+13125550001", "D1"), row("N2", "+13125550002", "D1"),
        row("S1", "+13125550003", "D2"),
        row("F1", "+13125550004", "D1", **{"Last Name": '=HYPERLINK("http://x","y")'}),
    ])


@pytest.fixture
def staff(make_outreach: Any, tmp_path: Path) -> tuple[Outreach, CampaignsFacade, MemoryAudit]:
    o = make_outreach(clock=SimulatedClock(TUESDAY_9AM), voice_gateway=NullVoiceGateway(),
                      letters_dir=tmp_path / "letters",
                      return_addresses="Main=Total Healthcare|200 Clinic Rd|Springfield")
    practice(o, tmp_path)
    audit = MemoryAudit()
    return o, CampaignsFacade.from_outreach(o, audit), audit


def outcomes(audit: MemoryAudit, action: str) -> list[str]:
    return [r[2] for r in audit.records if r[1] == action]


def test_a_campaign_goes_from_creation_through_sending_to_its_report_and_stop(staff) -> None:
    o, campaigns, audit = staff
    created = campaigns.create(ALICE, name="Flu", body=BODY, help_number=HELP,
                               patients=["N1", "N2"])
    assert created.status == "Inactive" and created.created_by == "alice"
    assert created.progress == "0 completed of 2 to be contacted"
    active = campaigns.activate(ALICE, created.campaign_id[:8])  # a prefix, as staff type it
    assert active.status == "Pending" and active.schedule_preview
    EmbeddedRunner(o).run_simulated(TUESDAY_9AM + timedelta(hours=10))
    listed = {r.campaign_id: r for r in campaigns.campaigns(ALICE)}
    assert listed[created.campaign_id].progress == "2 completed of 2 to be contacted"
    report = campaigns.report(ALICE, created.campaign_id)
    assert [r.patient_id for r in report.rows] == ["N1", "N2"] and report.total == 2
    assert {r.status for r in report.rows} <= {"Sent", "Delivered"}
    # The report is audited with the patients it showed
    assert ("alice", "campaign.report", "allowed", ("N1", "N2"), created.campaign_id, "") \
        in audit.records
    assert {a.patient_id for a in campaigns.attempts(ALICE, created.campaign_id)} == \
        {"N1", "N2"}
    # A second campaign, stopped before it sends: nothing planned is left
    other = campaigns.create(ALICE, name="Later", body=BODY, help_number=HELP,
                             patients=["N1"], active=True,
                             start=(TUESDAY_9AM + timedelta(days=7)).date())
    stopped, cancelled = campaigns.stop(ALICE, other.campaign_id)
    assert stopped.status == "Stopped" and cancelled == 1
    assert o.campaigns.get(o.campaigns.resolve(other.campaign_id)).status == "Stopped"
    assert outcomes(audit, "campaign.stop") == ["allowed"]


def test_an_active_campaign_cannot_be_edited_after_midnight_before_its_start(staff) -> None:
    o, campaigns, audit = staff
    tomorrow = WEDNESDAY_0030.date()
    created = campaigns.create(ALICE, name="Flu", body=BODY, help_number=HELP,
                               patients=["N1"], start=tomorrow, active=True)
    campaigns.edit(ALICE, created.campaign_id, name="Flu 2026")  # before midnight: fine
    o.clock.advance_to(WEDNESDAY_0030)
    with pytest.raises(CampaignRuleViolation, match="only until midnight before its start"):
        campaigns.edit(ALICE, created.campaign_id, name="Too late")
    assert outcomes(audit, "campaign.edit") == ["allowed", "failed"]
    assert campaigns.get(ALICE, created.campaign_id).name == "Flu 2026"


def test_a_user_without_the_campaigns_role_is_refused_and_the_refusal_audited(staff) -> None:
    _o, campaigns, audit = staff
    with pytest.raises(AccessDenied, match="Campaigns role"):
        campaigns.create(OSCAR, name="Flu", body=BODY, help_number=HELP, patients=["N1"])
    with pytest.raises(AccessDenied):
        campaigns.campaigns(OSCAR)
    with pytest.raises(AccessDenied):
        campaigns.templates(OSCAR)
    assert [(r[0], r[1], r[2]) for r in audit.records] == [
        ("oscar", "campaign.create", "denied"), ("oscar", "campaign.list", "denied"),
        ("oscar", "templates.list", "denied")]
    assert campaigns.campaigns(ALICE) == []  # nothing was created


def test_a_restricted_user_targets_only_patients_of_their_groups(staff) -> None:
    o, campaigns, audit = staff
    with pytest.raises(AccessDenied, match="1 of the chosen patients are outside"):
        campaigns.create(NORA, name="Flu", body=BODY, help_number=HELP,
                         patients=["N1", "S1"])
    assert audit.records[-1][:3] == ("nora", "campaign.create", "denied")
    assert "S1" not in audit.records[-1][5]  # the refusal names no patient
    mine = campaigns.create(NORA, name="Flu", body=BODY, help_number=HELP,
                            patients=["N1", "N2"])
    assert mine.groups == ("North Clinic",) and mine.created_by == "nora"
    # Nor can an edit bring another group's patient in
    with pytest.raises(AccessDenied):
        campaigns.edit(NORA, mine.campaign_id, patients=["N1", "S1"])
    # With no list given, the default audience is the user's groups' patients only
    default = campaigns.create(NORA, name="Everyone", body=BODY, help_number=HELP)
    assert sorted(o.campaigns.get(o.campaigns.resolve(default.campaign_id)).audience) == \
        ["F1", "N1", "N2"]
    # South Clinic's user neither lists nor opens North Clinic's campaigns
    assert campaigns.campaigns(SAM) == []
    with pytest.raises(AccessDenied):
        campaigns.report(SAM, mine.campaign_id)
    assert {r.campaign_id for r in campaigns.campaigns(ALICE)} >= {mine.campaign_id}
    # A campaign of All Subscribers is seen only in All Subscribers: it may hold anyone
    everyone = campaigns.create(ALICE, name="All", body=BODY, help_number=HELP,
                                patients=["N1", "S1"])
    assert everyone.campaign_id not in {r.campaign_id for r in campaigns.campaigns(NORA)}
    with pytest.raises(AccessDenied):
        campaigns.get(NORA, everyone.campaign_id)
    assert audit.records[-1][:3] == ("nora", "campaign.read", "denied")


def test_a_view_s_audience_is_narrowed_to_the_restricted_user_s_groups(staff) -> None:
    o, campaigns, _audit = staff
    o.patients.save_view("nora", "Everyone", ListQuery())
    created = campaigns.create(NORA, name="From a view", body=BODY, help_number=HELP,
                               view="Everyone")
    audience = o.campaigns.get(o.campaigns.resolve(created.campaign_id)).audience
    assert sorted(audience) == ["F1", "N1", "N2"]
    o.patients.save_view("nora", "South", ListQuery(scope=Scope(groups=("South Clinic",))))
    with pytest.raises(AccessDenied):
        campaigns.create(NORA, name="Theirs", body=BODY, help_number=HELP, view="South")


def test_patients_in_scope_follows_the_provider_relation(staff) -> None:
    o, _campaigns, _audit = staff
    ids = ["N1", "S1", "F1", "nobody"]
    assert patients_in_scope(o.db, NORA, ids) == {"N1", "F1"}
    assert patients_in_scope(o.db, SAM, ids) == {"S1"}
    assert patients_in_scope(o.db, ALICE, ids) == set(ids)
    assert patients_in_scope(o.db, Actor("u", "nogroup", frozenset({Role.CAMPAIGNS})),
                             ids) == set()


def test_the_report_csv_is_formula_safe(staff) -> None:
    _o, campaigns, audit = staff
    created = campaigns.create(ALICE, name="=cmd|' /C calc'!A0", body=BODY, help_number=HELP,
                               patients=["F1", "N1"], active=True)
    rows = list(csv.reader(io.StringIO(campaigns.report_csv(ALICE, created.campaign_id))))
    assert rows[0][:3] == ["#", "Patient ID", "Name"]
    assert rows[1][1] == "F1" and rows[1][2].startswith("'=HYPERLINK")
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    assert audit.records[-1][1:4] == ("campaign.report_csv", "allowed", ("F1", "N1"))


def test_every_channel_can_be_created_by_staff(staff) -> None:
    _o, campaigns, _audit = staff
    email = campaigns.create(ALICE, name="Mail", channel=Channel.EMAIL, patients=["N1"],
                             subject="News", body="<p>Hello</p>",
                             from_address="noreply@example.org")
    letter = campaigns.create(ALICE, name="Letter", channel="letter", patients=["N1"],
                              body="<p>Closed on Friday.</p>", page_size="A4")
    phone = campaigns.create(ALICE, name="Call", channel="phone", patients=["N1"],
                             script="This is the clinic calling.", callback_number=HELP)
    assert [c.channel for c in (email, letter, phone)] == ["email", "letter", "phone"]
    assert letter.content["page_size"] == "A4" and email.content["subject"] == "News"
    assert {t.channel for t in campaigns.templates(ALICE)} >= {"email"}


def test_letter_files_are_served_only_by_the_names_the_campaign_recorded(staff) -> None:
    _o, campaigns, audit = staff
    letter = campaigns.create(ALICE, name="Letter", channel="letter", patients=["N1", "N2"],
                              body="<p>Closed on Friday.</p>", active=True)
    made = campaigns.letters_make(ALICE, letter.campaign_id)
    assert made.letters == 2
    files = campaigns.letter_files(ALICE, letter.campaign_id)
    names = [str(f["name"]) for f in files]
    path = campaigns.letter_download(ALICE, letter.campaign_id, names[0])
    assert path.read_bytes().startswith(b"%PDF")
    assert audit.records[-1][1:4] == ("letters.download", "allowed", ("N1", "N2"))
    labels = next(n for n in names if "-labels-" in n)
    campaigns.letter_download(ALICE, letter.campaign_id, labels)
    assert audit.records[-1][3] == ("N1", "N2")
    for name in ("../../etc/passwd", f"../{names[0]}", "/etc/passwd", names[0] + "x"):
        with pytest.raises(NotFound):
            campaigns.letter_download(ALICE, letter.campaign_id, name)


def test_an_unknown_campaign_is_not_found(staff) -> None:
    _o, campaigns, audit = staff
    with pytest.raises(NotFound):
        campaigns.get(ALICE, "ffffffff")
    assert outcomes(audit, "campaign.read") == ["failed"]
