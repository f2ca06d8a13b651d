"""The replies inbox ("Review responses"): every text a patient sent, with its patient,
campaign, time and words; unexpected ones flagged; sorted, paged, downloaded formula-safe;
marked handled once; and each patient's conversation. Through the staff facade, a user sees
only the replies of their groups' patients. On SQLite and PostgreSQL alike."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.staff.app import create_staff_app
from application.replies import ReplyInbox
from application.staff_base import MemoryAudit
from application.staff_replies import RepliesFacade
from domain.access import ALL_SUBSCRIBERS, AccessDenied, Actor, NotSignedIn, Role
from domain.errors import NotFound
from domain.inbound import InboundText
from domain.replies import inbound_message_id
from domain.sms import DEFAULT_FOOTER
from projections.runner import catch_up
from tests.fixtures_app import import_patients, patient_row
from tests.patient_data import PROVIDER_HEADER, write_csv
from workers.runner import EmbeddedRunner

ANN, BOB, CAROL = "+13125550101", "+13125550102", "+13125550103"
STRANGER = "+13125550199"
_sids = itertools.count(1)


class Clinic:
    """Patients of two provider groups, texted by campaigns, texting back."""

    def __init__(self, o: Any, tmp_path: Path) -> None:
        self.o = o
        self.tmp_path = tmp_path
        self.inbox = ReplyInbox(o.store, o.db, o.clock, o.settings, self._catch_up)
        self.audit = MemoryAudit()
        self.facade = RepliesFacade(self.audit, self.inbox)

    def _catch_up(self) -> int:
        return self.o.catch_up() + catch_up(self.o.store, self.o.db, self.inbox.projections)

    def import_patients(self, *rows: dict[str, str]) -> None:
        import_patients(self.o, self.tmp_path, rows)

    def campaign(self, name: str, audience: list[str], body: str = "Flu shots are here.") -> str:
        cid = self.o.campaigns.create(name=name, body=body, help_number="555-0100",
                                      active=True, audience=audience)
        EmbeddedRunner(self.o).run_simulated(self.o.clock.now() + timedelta(days=1))
        return str(cid)

    def later(self, minutes: int = 5) -> None:
        self.o.clock.advance_to(self.o.clock.now() + timedelta(minutes=minutes))

    def text(self, number: str, body: str) -> str:
        self.later()
        ref = f"SM{next(_sids):032d}"
        self.o.inbound.on_text(InboundText(ref, number, "+15005550006", body,
                                           self.o.clock.now()))
        return str(inbound_message_id(ref))


def patient(pid: str, mobile: str, first: str, pcp: str) -> dict[str, str]:
    return {**patient_row(pid, mobile, first=first), "PCP Provider ID": pcp}


@pytest.fixture
def clinic(make_outreach: Any, tmp_path: Path) -> Clinic:
    o = make_outreach()
    o.patients.import_file("providers", write_csv(tmp_path / "providers.csv", PROVIDER_HEADER, [
        ["D1", "Dr. North", "North", "Yes"], ["D2", "Dr. South", "South", "Yes"]]))
    c = Clinic(o, tmp_path)
    c.import_patients(patient("P1", ANN, "Ann", "D1"), patient("P2", BOB, "Bob", "D2"))
    return c


def actor(*groups: str, roles: frozenset[Role] = frozenset({Role.CAMPAIGNS})) -> Actor:
    return Actor(user_id="u1", username="nora", roles=roles, groups=groups)


def test_every_text_is_listed_with_its_patient_campaign_time_and_words(clinic: Clinic) -> None:
    flu = clinic.campaign("Flu", ["P1", "P2"])
    question = clinic.text(ANN, "Can I come Tuesday?")
    clinic.text(BOB, "Yes")
    clinic.text(STRANGER, "who is this")
    page = clinic.inbox.list()
    assert page.total == 3
    newest_first = [(r.patient_id, r.patient_name, r.campaign_name, r.body, r.unexpected)
                    for r in page.rows]
    assert newest_first == [
        (None, None, None, "who is this", True),  # a number we never texted
        ("P2", "LeeP2, Bob", "Flu", "Yes", False),
        ("P1", "LeeP1, Ann", "Flu", "Can I come Tuesday?", True)]
    ann = page.rows[2]
    assert (ann.message_id, ann.campaign_id) == (question, flu)
    assert ann.received_at == clinic.o.clock.now() - timedelta(minutes=10)


def test_unexpected_replies_are_flagged_and_filterable(clinic: Clinic) -> None:
    clinic.campaign("Flu", ["P1", "P2"])
    for number, body in ((ANN, "ok!"), (ANN, "STOP"), (BOB, "I moved, new address?"),
                         (BOB, "thank you")):
        clinic.text(number, body)
    flagged = clinic.inbox.list(unexpected=True)
    assert [r.body for r in flagged.rows] == ["I moved, new address?"]
    assert clinic.inbox.list(unexpected=False).total == 3


def test_a_reply_belongs_to_the_latest_text_campaign_that_reached_the_number_before_it(
        clinic: Clinic) -> None:
    early = clinic.text(ANN, "hello?")  # nothing sent to Ann yet
    first = clinic.campaign("First", ["P1"])
    after_first = clinic.text(ANN, "yes")
    second = clinic.campaign("Second", ["P1"])
    after_second = clinic.text(ANN, "yes again")
    campaign_of = {r.message_id: r.campaign_id for r in clinic.inbox.list().rows}
    assert campaign_of == {early: None, after_first: first, after_second: second}
    assert [r.message_id for r in clinic.inbox.list(campaign_id=first).rows] == [after_first]


def test_a_shared_number_belongs_to_the_patient_the_campaign_reached_else_the_first(
        clinic: Clinic) -> None:
    # Carol shares Ann's mobile (a family phone); only Carol's campaign texted it
    clinic.import_patients(patient("P3", ANN, "Carol", "D1"))
    before = clinic.text(ANN, "who?")
    clinic.campaign("Carol's reminder", ["P3"])
    after = clinic.text(ANN, "see you then")
    owner = {r.message_id: r.patient_id for r in clinic.inbox.list().rows}
    assert owner == {before: "P1", after: "P3"}
    assert [r.message_id for r in clinic.inbox.list(patient_id="P3").rows] == [after]


def test_a_reply_from_a_patient_imported_later_finds_its_patient(clinic: Clinic) -> None:
    reply = clinic.text(CAROL, "Is this the clinic?")
    assert clinic.inbox.get(reply).patient_id is None
    clinic.import_patients(patient("P3", CAROL, "Carol", "D1"))
    assert clinic.inbox.get(reply).patient_name == "LeeP3, Carol"


def test_replies_sort_by_response_patient_and_campaign_and_page(clinic: Clinic) -> None:
    clinic.campaign("Zoster", ["P1"])
    clinic.campaign("Asthma", ["P2"])
    for number, body in ((ANN, "yes"), (BOB, "No"), (ANN, "Maybe"), (BOB, "YES!")):
        clinic.text(number, body)
    by_response = [r.body for r in clinic.inbox.list(sort="response", descending=False).rows]
    assert by_response[:2] == ["Maybe", "No"]
    assert sorted(by_response[2:]) == ["YES!", "yes"]  # the same answer, together
    by_patient = [r.patient_id for r in clinic.inbox.list(sort="patient", descending=False).rows]
    assert by_patient == ["P1", "P1", "P2", "P2"]  # LeeP1 before LeeP2
    by_campaign = [r.campaign_name for r in clinic.inbox.list(sort="campaign",
                                                              descending=False).rows]
    assert by_campaign == ["Asthma", "Asthma", "Zoster", "Zoster"]
    second_page = clinic.inbox.list(sort="received", descending=False, page=2, page_size=3)
    assert (second_page.total, [r.body for r in second_page.rows]) == (4, ["YES!"])


def test_marking_a_reply_handled_keeps_the_first_mark(clinic: Clinic) -> None:
    reply = clinic.text(ANN, "Call me please")
    first = clinic.inbox.mark_handled(reply, "nora")
    clinic.later(30)
    again = clinic.inbox.mark_handled(reply, "omar")
    assert (again.handled_by, again.handled_at) == ("nora", first.handled_at)
    assert first.handled_at is not None
    assert clinic.inbox.list(handled=True).total == 1
    assert clinic.inbox.list(handled=False).total == 0
    with pytest.raises(NotFound):
        clinic.inbox.mark_handled("00000000-0000-0000-0000-000000000000", "nora")


def test_the_download_is_formula_safe_and_follows_the_filters(clinic: Clinic) -> None:
    clinic.campaign("Flu", ["P1", "P2"])
    clinic.text(ANN, '=HYPERLINK("http://x","click")')
    clinic.text(BOB, "ok")
    out = io.StringIO()
    assert clinic.inbox.export_csv(out, unexpected=True) == 1
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0][:5] == ["Received (America/Chicago)", "Patient ID", "Patient", "Campaign",
                           "Response"]
    assert rows[1][1:5] == ["P1", "LeeP1, Ann", "Flu", "'=HYPERLINK(\"http://x\",\"click\")"]


def test_a_patients_thread_shows_what_we_sent_and_what_they_answered_in_order(
        clinic: Clinic) -> None:
    clinic.text(ANN, "hi")
    clinic.campaign("Flu", ["P1"], body="Flu shots are here.")
    clinic.text(ANN, "Can I bring my son?")
    thread = clinic.inbox.thread("P1")
    assert [(i.direction, i.body) for i in thread] == [
        ("in", "hi"), ("out", f"Flu shots are here.\n{DEFAULT_FOOTER}"),
        ("in", "Can I bring my son?")]
    assert thread[1].status in ("Sent", "Delivered")
    assert [i.at for i in thread] == sorted(i.at for i in thread)
    with pytest.raises(NotFound):
        clinic.inbox.thread("P404")


# -- through the staff facade: roles, groups and the audit trail ----------------------------

def test_a_user_sees_only_the_replies_of_their_groups_patients(clinic: Clinic) -> None:
    clinic.campaign("Flu", ["P1", "P2"])
    clinic.text(ANN, "north question?")
    clinic.text(BOB, "south question?")
    clinic.text(STRANGER, "unknown number")
    assert [r.patient_id for r in clinic.facade.list(actor("North")).rows] == ["P1"]
    assert [r.patient_id for r in clinic.facade.list(actor("south")).rows] == ["P2"]
    assert clinic.facade.list(actor(ALL_SUBSCRIBERS)).total == 3
    assert clinic.facade.list(actor()).total == 0  # in no group: nobody
    out = io.StringIO()
    assert clinic.facade.export_csv(actor("North"), out) == 1
    assert ("nora", "reply.list", "allowed", ("P1",), "", "1 of 1") in clinic.audit.records


def test_a_user_may_not_open_or_handle_a_patient_outside_their_groups(clinic: Clinic) -> None:
    clinic.campaign("Flu", ["P2"])
    bobs = clinic.text(BOB, "south question?")
    north = actor("North")
    with pytest.raises(AccessDenied):
        clinic.facade.thread(north, "P2")
    with pytest.raises(AccessDenied):
        clinic.facade.mark_handled(north, bobs)
    assert clinic.inbox.get(bobs).handled_by is None
    denied = [r[1] for r in clinic.audit.records if r[2] == "denied"]
    assert denied == ["reply.thread", "reply.handle"]
    handled = clinic.facade.mark_handled(actor("South"), bobs)
    assert handled.handled_by == "nora"
    assert [i.direction for i in clinic.facade.thread(actor("South"), "P2")] == ["out", "in"]


def test_the_inbox_needs_the_campaigns_role(clinic: Clinic) -> None:
    nobody = actor(ALL_SUBSCRIBERS, roles=frozenset({Role.OPT_OUTS}))
    with pytest.raises(AccessDenied):
        clinic.facade.list(nobody)
    reply = clinic.text(ANN, "hi")
    with pytest.raises(AccessDenied):
        clinic.facade.mark_handled(nobody, reply)
    assert [r[2] for r in clinic.audit.records] == ["denied", "denied"]


# -- over the staff API ----------------------------------------------------------------------

class TokenDesk:
    """A real in-memory sign-in: each bearer token names one user (no mock)."""

    def __init__(self, users: dict[str, Actor]) -> None:
        self.users = users

    def actor_for_token(self, token: str, source: str) -> Actor:
        if token not in self.users:
            raise NotSignedIn("unknown token")
        return self.users[token]


def test_the_inbox_over_http_lists_downloads_marks_and_threads(clinic: Clinic) -> None:
    clinic.campaign("Flu", ["P1", "P2"])
    ann = clinic.text(ANN, "=1+1 can I come?")
    clinic.text(BOB, "ok")
    staff = SimpleNamespace(
        auth=TokenDesk({"north": actor("North"), "all": actor(ALL_SUBSCRIBERS)}),
        patients=SimpleNamespace(patients=clinic.o.patients), replies=clinic.facade)
    client = TestClient(create_staff_app(staff, now=clinic.o.clock.now,
                                         modules=("api.staff.replies",)))

    def call(method: str, path: str, token: str = "north") -> Any:
        return client.request(method, path, headers={"Authorization": f"Bearer {token}"})

    listed = call("GET", "/replies?unexpected=true&sort=patient&descending=false").json()
    assert (listed["total"], listed["items"][0]["message_id"]) == (1, ann)
    assert call("GET", "/replies", "all").json()["total"] == 2
    download = call("GET", "/replies.csv")
    assert download.headers["content-type"].startswith("text/csv")
    assert "'=1+1 can I come?" in download.text and "Bob" not in download.text
    assert call("POST", f"/replies/{ann}/handled").json()["handled_by"] == "nora"
    assert call("POST", "/replies/not-a-reply/handled").status_code == 404
    assert call("GET", "/patients/P2/thread").status_code == 403  # Bob is South's
    thread = call("GET", "/patients/P1/thread").json()
    assert [i["direction"] for i in thread["items"]] == ["out", "in"]
    assert call("GET", "/replies?sort=nonsense").status_code == 422
    assert call("GET", "/replies", "stolen").status_code == 401
