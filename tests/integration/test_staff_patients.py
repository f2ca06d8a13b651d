"""Staff find patients, run lists, keep views, import files and manage opt-outs over HTTP,
each seeing only their groups' patients — on SQLite and PostgreSQL.

North (provider D1) has P1 and P2; South (D2) has P3 (tests/integration/staff_app.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from application.bootstrap import Outreach
from domain.access import Role
from domain.inbound import InboundText
from tests.integration.staff_app import StaffApi, open_staff_api, seed_patients
from tests.patient_data import PATIENT_HEADER, patient_row

NORTH = ("North",)


@pytest.fixture
def api(make_outreach: Callable[..., Outreach], tmp_path: Path) -> StaffApi:
    opened = open_staff_api(make_outreach(), tmp_path)
    seed_patients(opened)
    return opened


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [i["patient_id"] for i in items]


def test_search_shows_only_the_patients_of_the_users_groups_and_audits_them(
        api: StaffApi) -> None:
    everyone = api.client.get("/patients", params={"search": "Lee"},
                              headers=api.user("boss"))
    assert sorted(ids(everyone.json()["items"])) == ["P1", "P2", "P3"]
    north = api.client.get("/patients", params={"search": "Lee"},
                           headers=api.user("nora", groups=NORTH))
    assert sorted(ids(north.json()["items"])) == ["P1", "P2"]
    assert ("nora", "patients.search", "allowed", ("P1", "P2")) in [
        (r[0], r[1], r[2], tuple(sorted(r[3]))) for r in api.audit.records]
    nobody = api.client.get("/patients", params={"search": "Lee"},
                            headers=api.user("new", groups=()))
    assert nobody.json()["items"] == []


def test_a_single_hit_in_the_users_groups_opens_its_summary(api: StaffApi) -> None:
    found = api.client.get("/patients", params={"search": "512-555-0103"},
                           headers=api.user("boss")).json()
    assert found["summary"]["patient_id"] == "P3"
    hidden = api.client.get("/patients", params={"search": "512-555-0103"},
                            headers=api.user("nora", groups=NORTH)).json()
    assert hidden["items"] == [] and hidden["summary"] is None


def test_a_summary_outside_the_users_groups_is_refused_and_recorded(api: StaffApi) -> None:
    nora = api.user("nora", roles=(), groups=NORTH)
    assert api.client.get("/patients/P1", headers=nora).json()["patient_id"] == "P1"
    refused = api.client.get("/patients/P3", headers=nora)
    assert refused.status_code == 403
    assert ("nora", "patients.summary", "denied") in [r[:3] for r in api.audit.records]
    # Unknown to a restricted user reads the same as outside: ids cannot be probed.
    assert api.client.get("/patients/P9", headers=nora).status_code == 403
    assert api.client.get("/patients/P9", headers=api.user("boss")).status_code == 404


def test_a_restricted_users_all_subscribers_list_is_their_groups(api: StaffApi) -> None:
    nora = api.user("nora", roles={Role.CAMPAIGNS}, groups=NORTH)
    listed = api.client.get("/lists", headers=nora).json()
    assert sorted(ids(listed["items"])) == ["P1", "P2"] and listed["total"] == 2
    assert api.client.get("/lists", params={"group": "South"}, headers=nora).status_code == 403
    assert api.client.get("/lists", params={"provider": "D2"}, headers=nora).status_code == 403
    assert api.client.get("/lists", params={"provider": "D1"}, headers=nora).json()[
        "total"] == 2
    boss = api.client.get("/lists", params={"group": "South"}, headers=api.user("boss"))
    assert ids(boss.json()["items"]) == ["P3"]
    lonely = api.client.get("/lists", headers=api.user("new", {Role.CAMPAIGNS}, groups=()))
    assert lonely.json()["total"] == 0


def test_lists_take_the_command_lines_filters_sort_columns_and_pages(api: StaffApi) -> None:
    boss = api.user("boss")
    page = api.client.get("/lists", headers=boss, params={
        "filter": ["mobile|contains|555-010"], "sort": ["date_of_birth:desc"],
        "columns": "name,date_of_birth", "page": 2, "page_size": 2}).json()
    assert (page["total"], page["page"], page["page_size"]) == (3, 2, 2)
    assert ids(page["items"]) == ["P1"] and page["columns"] == ["name", "date_of_birth"]
    bad = api.client.get("/lists", headers=boss, params={"filter": ["nosuch|is|x"]})
    assert bad.status_code == 400 and "nosuch" in bad.json()["detail"]


def test_a_list_download_is_formula_safe_csv_led_by_the_patient_id(
        make_outreach: Callable[..., Outreach], tmp_path: Path) -> None:
    api = open_staff_api(make_outreach(), tmp_path)
    seed_patients(api, [patient_row("P1", "Ann", "=HYPERLINK(\"x\")", pcp="D1")])
    response = api.client.get("/lists.csv", headers=api.user("boss"),
                              params={"columns": "name"})
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["Patient ID", "Patient Name"]
    assert rows[1][0] == "P1" and rows[1][1].startswith("'")


def test_views_are_saved_changed_shared_and_deleted_by_their_owner(api: StaffApi) -> None:
    ann = api.user("ann", {Role.CAMPAIGNS, Role.SHARE_VIEWS})
    bob = api.user("bob", {Role.CAMPAIGNS})
    saved = api.client.post("/views", headers=ann, json={
        "name": "Mobiles", "filters": ["mobile|is not empty|"]})
    assert saved.status_code == 201, saved.text
    view = saved.json()
    assert view["owner"] == "ann"
    assert api.client.get(f"/views/{view['id']}", headers=bob).status_code == 404
    shared = api.client.post(f"/views/{view['id']}/share", headers=ann, json={"users": ["bob"]})
    assert shared.json()["shared_with"] == ["bob"]
    assert api.client.get("/lists", headers=bob, params={"view": view["id"]}).json()[
        "total"] == 3
    assert api.client.post(f"/views/{view['id']}/share", headers=bob,
                           json={"users": ["eve"]}).status_code == 403  # no share role
    renamed = api.client.patch(f"/views/{view['id']}", headers=ann,
                               json={"rename": "Texts", "groups": ["North"]})
    assert renamed.json()["name"] == "Texts"
    assert renamed.json()["definition"]["scope"]["groups"] == ["North"]
    assert api.client.post(f"/views/{view['id']}/unshare", headers=ann,
                           json={"users": ["bob"]}).json()["shared_with"] == []
    assert api.client.delete(f"/views/{view['id']}", headers=ann).status_code == 204
    assert api.client.get(f"/views/{view['id']}", headers=ann).status_code == 404


def test_a_restricted_user_cannot_save_a_view_of_another_group(api: StaffApi) -> None:
    nora = api.user("nora", {Role.CAMPAIGNS}, groups=NORTH)
    refused = api.client.post("/views", headers=nora, json={"name": "S", "groups": ["South"]})
    assert refused.status_code == 403


def test_an_audience_check_counts_what_a_campaign_would_reach(api: StaffApi) -> None:
    nora = api.user("nora", {Role.CAMPAIGNS}, groups=NORTH)
    check = api.client.post("/audience", headers=nora, json={"channel": "text"}).json()
    assert (check["selected"], check["size"]) == (2, 2)
    chosen = api.client.post("/audience", headers=nora, json={
        "channel": "text", "patient_ids": ["P1", "P3"]}).json()
    assert list(chosen["patient_ids"]) == ["P1"] and chosen["unknown"] == 1


def test_an_uploaded_import_reports_its_rejects_for_download(api: StaffApi) -> None:
    admin = api.user("root")
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(PATIENT_HEADER)
    writer.writerow(patient_row("P7", "Dee", "Lee", "1980-05-05", pcp="D1"))
    writer.writerow(patient_row("P8", "Eve", "Lee", "not-a-date", pcp="D1"))
    files = {"file": ("patients.csv", text.getvalue().encode(), "text/csv")}
    done = api.client.post("/imports/patients", headers=admin, files=files)
    assert done.status_code == 201, done.text
    summary = done.json()
    assert (summary["new"], summary["rejected"]) == (1, 1)
    started = next(iter(api.o.store.events.get(UUID(summary["import_id"]))))
    assert started.by == api.usernames["root"]  # the import records who ran it
    rejects = api.client.get(summary["rejects_url"], headers=admin)
    assert rejects.status_code == 200 and "P8" in rejects.text
    assert api.client.get(summary["rejects_url"], headers=api.user(
        "ann", {Role.CAMPAIGNS})).status_code == 403
    assert api.client.get("/imports/nope/rejects.csv", headers=admin).status_code == 404
    wrong = api.client.post("/imports/billing", headers=admin, files=files)
    assert wrong.status_code == 400


def test_opt_outs_are_added_listed_and_removed_by_opt_out_managers(api: StaffApi) -> None:
    olga = api.user("olga", {Role.OPT_OUTS}, groups=NORTH)
    added = api.client.post("/patients/P1/opt-outs", headers=olga, json={
        "type": "All Text", "reason": "Patient request", "days": 30})
    assert added.status_code == 201, added.text
    item = added.json()["items"][0]
    assert (item["type"], item["created_by"]) == ("All Text", "olga")
    assert api.client.get("/patients/P1/opt-outs", headers=api.user(
        "reader", (), NORTH)).json()["total"] == 1
    assert api.client.post("/patients/P3/opt-outs", headers=olga, json={
        "type": "Global", "reason": "x"}).status_code == 403  # South's patient
    assert api.client.post("/patients/P1/opt-outs", headers=api.user("ann", {Role.CAMPAIGNS}),
                           json={"type": "Global", "reason": "x"}).status_code == 403
    rule = api.client.post("/patients/P1/opt-outs", headers=olga, json={
        "type": "Global", "reason": "x", "days": 3})
    assert rule.status_code == 400 and "always permanent" in rule.json()["detail"]
    removed = api.client.delete("/patients/P1/opt-outs", params={"type": "All Text"},
                                headers=olga)
    assert removed.json()["items"] == []
    again = api.client.delete("/patients/P1/opt-outs", params={"type": "All Text"},
                              headers=olga)
    assert again.status_code == 400


def test_a_summary_says_when_the_patients_mobile_texted_stop_and_start_lifts_it(
        api: StaffApi) -> None:
    root = api.user("root")

    def text(body: str, ref: str) -> None:
        api.o.inbound.on_text(InboundText(ref, "+15125550101", "+15005550006", body,
                                          api.o.clock.now()))

    assert api.client.get("/patients/P1", headers=root).json()["text_status"] is None
    text("STOP", "SM" + "1" * 32)
    stopped = api.client.get("/patients/P1", headers=root).json()["text_status"]
    assert stopped is not None and "replied STOP" in stopped
    assert api.client.get("/patients/P2", headers=root).json()["text_status"] is None
    text("START", "SM" + "2" * 32)
    assert api.client.get("/patients/P1", headers=root).json()["text_status"] is None
