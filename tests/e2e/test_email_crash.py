"""End to end, with real processes: a dispatcher killed (SIGKILL) in the middle of an email
batch loses no email and sends none twice.

The stack is tests/e2e/stack.py's (PostgreSQL, Tansu, `outreach run` + two `outreach worker
dispatch`), with OUTREACH_EMAIL_PROVIDER=ses: boto3's sesv2 client against moto's server over
HTTP (tests/fakes/ses_server.py). SES's per-second quota (OUTREACH_SES_MAX_SEND_RATE) paces
each dispatcher's batch, so a batch takes seconds and the kill lands inside one.

What guarantees what:
- Nothing lost: a dispatcher records "attempt started" for its whole batch before any SES
  call, so each communication the victim held is Sending in the event store when it dies. The
  scheduler re-issues Sending intents (OUTREACH_REISSUE_AFTER_SECONDS), the survivor takes the
  victim's partitions and reconciles each one before sending anything.
- Nothing twice: SES cannot be asked whether it took a message. It tells, by publishing a
  Send event to SNS, which posts it to `outreach serve`. Here SES-and-SNS is played by the
  test: every message moto took becomes a signed SNS notification of SES's Send event (moto's
  message id, the X-Outreach-Reference header the message carried), posted to a real
  `outreach serve` process SEND_EVENT_DELAY_S after moto took it, as SNS delivers them some
  seconds later. A communication the victim had sent but not recorded is settled by that
  event (Sending → accepted, moto's message id recorded) — never sent again. One whose SES
  call the victim never made gets no event; after OUTREACH_EMAIL_EVENTS_GRACE_SECONDS the
  dispatcher takes the silence as "not sent" and sends it.
- So the claim holds under the product's one assumption, stated by its setting: SES's Send
  event arrives within the grace. The grace is measured from the attempt's start minus 5 s
  (workers/dispatcher.py `_call`), and reconciliation begins once the attempt is stale; the
  grace here (GRACE_S) leaves the events about 20 s, against a 2 s delay.
Counted from moto itself: every patient received exactly one email (introductory or campaign
email: these patients never had one, so it is the introduction), every communication ended
final, and each recorded SES message id is the one moto gave the single message.
"""

from __future__ import annotations

import csv
import email
import email.policy
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from eventsourcing.utils import get_topic

from application.bootstrap import Outreach, build
from application.settings import Settings
from application.synthetic import PATIENT_HEADER
from domain.channels import Channel
from domain.communication import FINAL, CommStatus, Communication, communication_id
from domain.preferences import ContactKeys
from tests.e2e.stack import (
    INTENT_PARTITIONS,
    RATE_CAP_PER_HOUR,
    E2EStack,
    StackConfig,
    campaign_status,
    e2e_stack,
    fake_twilio,
    group_name,
)
from tests.e2e.test_serve_signatures import free_port
from tests.fakes import sns_signer
from tests.fakes.ses_server import CREDENTIALS, MotoSes
from tests.fakes.sns_signer import SnsSigner
from tests.fixtures_app import TEST_CONTACT_KEY_SECRET
from workers.scheduler import routing_key

PATIENTS = 150
SENDER = "do-not-reply@clinic.example"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:outreach-ses-events"
PUBLIC_URL = "https://outreach.clinic.example"
EMAIL_WINDOW = "00:00-23:59:59"  # all day: a run at 23:59 Chicago must not wait
SES_RATE_PER_S = 10  # 100 ms a send: a batch of ten takes a second
GRACE_S = 30
SEND_EVENT_DELAY_S = 2.0
REFERENCE_HEADER = "X-Outreach-Reference"


# -- SES and SNS played by the test ---------------------------------------------------------


def parsed(raw: dict[str, Any]) -> email.message.EmailMessage:
    message = email.message_from_string(raw["raw_data"], policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def send_event(raw: dict[str, Any], at: datetime) -> dict[str, Any]:
    """SES's Send event (event publishing through a configuration set) for a message moto
    took: its id, and the headers as SES lists them."""
    message = parsed(raw)
    return {
        "eventType": "Send",
        "mail": {
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "source": SENDER, "sendingAccountId": "123456789012", "messageId": raw["id"],
            "destination": [str(message["To"])], "headersTruncated": False,
            "headers": [{"name": k, "value": str(v)} for k, v in message.items()],
            "tags": {"ses:configuration-set": ["outreach-events"]},
        },
        "send": {},
    }


class SnsFeeder:
    """Posts a signed Send notification to `serve` for every message moto took, once it is
    SEND_EVENT_DELAY_S old; retries on 503 as SNS does; records anything else."""

    def __init__(self, ses: MotoSes, signer: SnsSigner, serve_url: str) -> None:
        self.ses, self.signer, self.url = ses, signer, serve_url
        self.first_seen: dict[str, float] = {}
        self.posted: set[str] = set()
        self.refused: list[tuple[str, int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self._stop.is_set():
                now = time.monotonic()
                for raw in self.ses.raw_messages():
                    seen = self.first_seen.setdefault(raw["id"], now)
                    if raw["id"] in self.posted or now - seen < SEND_EVENT_DELAY_S:
                        continue
                    body = self.signer.notification(send_event(raw, datetime.now(UTC)))
                    answer = http.post(self.url + "/webhooks/ses", json=body,
                                       headers={"Content-Type": "text/plain; charset=UTF-8"})
                    if answer.status_code == 200:
                        self.posted.add(raw["id"])
                    elif answer.status_code != 503:
                        self.refused.append((raw["id"], answer.status_code, answer.text))
                        self.posted.add(raw["id"])
                self._stop.wait(0.2)

    @contextmanager
    def running(self) -> Iterator[SnsFeeder]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=15)


# -- the stack ------------------------------------------------------------------------------


def write_patients(path: Path, count: int) -> dict[str, str]:
    """`count` active patients with an email address each and no mobile: patient → email."""
    by_patient = {f"M{n:05d}": f"patient{n}@patients.example" for n in range(count)}
    with path.open("w", encoding="utf-8", newline="") as file:
        out = csv.writer(file)
        out.writerow(PATIENT_HEADER)
        for n, (patient_id, address) in enumerate(by_patient.items()):
            row = dict.fromkeys(PATIENT_HEADER, "")
            row.update({"Patient ID": patient_id, "First Name": "Pat",
                        "Last Name": f"Mailer{n}", "Date of Birth": "1970-01-01",
                        "Email": address, "Status": "Active",
                        "Appointment Reminders Only": "No"})
            out.writerow([row[column] for column in PATIENT_HEADER])
    return by_patient


def email_partition(patient_id: str) -> int:
    """The intents partition of a patient without a mobile (kafka-python's murmur2)."""
    from kafka.partitioner.default import murmur2

    keys = ContactKeys(TEST_CONTACT_KEY_SECRET.encode("utf-8"))
    key = routing_key(None, patient_id, keys).encode("utf-8")
    return (murmur2(key) & 0x7FFFFFFF) % INTENT_PARTITIONS


def email_env(ses: MotoSes, certificate: Path) -> dict[str, str]:
    return {
        "OUTREACH_EMAIL_PROVIDER": "ses", "AWS_REGION": ses.region,
        "AWS_ACCESS_KEY_ID": CREDENTIALS["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["secret_access_key"],
        "OUTREACH_SES_ENDPOINT_URL": ses.endpoint_url,
        "OUTREACH_SES_CONFIGURATION_SET": "outreach-events",
        "OUTREACH_SES_MAX_SEND_RATE": str(SES_RATE_PER_S),
        "OUTREACH_EMAIL_EVENTS_GRACE_SECONDS": str(GRACE_S),
        "OUTREACH_EMAIL_FROM_ADDRESS": SENDER,
        "OUTREACH_EMAIL_WINDOW": EMAIL_WINDOW,
        "OUTREACH_PUBLIC_URL": PUBLIC_URL,
        "OUTREACH_SES_SNS_TOPIC_ARNS": TOPIC_ARN,
        "OUTREACH_SNS_CERTIFICATE_FILE": str(certificate),
    }


def start_serve(stack: E2EStack) -> str:
    port = free_port()
    serve = stack.start("serve", "serve", "--port", str(port))
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    stack.wait_for(up, 60, f"`outreach serve` ({serve.name}) to answer /healthz")
    return url


def outcome_recorded_at(app: Outreach) -> dict[UUID, datetime]:
    """When each communication's send was recorded: Accepted or IntroductionSent."""
    topics = tuple(get_topic(cls) for cls in (
        Communication.Accepted, Communication.IntroductionSent))  # type: ignore[attr-defined]
    recorded: dict[UUID, datetime] = {}
    start = 1
    while True:
        notifications = app.store.recorder.select_notifications(
            start=start, limit=1000, topics=topics)
        for notification in notifications:
            event: Any = app.store.mapper.to_domain_event(notification)
            recorded[event.originator_id] = event.timestamp
        if len(notifications) < 1000:
            return recorded
        start = notifications[-1].id + 1


def explain(app: Outreach, campaign_id: UUID, patients: dict[str, str], ses: MotoSes,
            feeder: SnsFeeder) -> Callable[[], str]:
    def text() -> str:
        counts = emails_by_recipient(ses)
        lines = [f"campaign {campaign_id}: {campaign_status(app, campaign_id)}; moto took "
                 f"{sum(counts.values())} emails to {len(counts)} recipients; Send events "
                 f"posted {len(feeder.posted)}, refused {feeder.refused[:3]}"]
        for pid, address in patients.items():
            comm: Any = app.store.repository.get(communication_id(campaign_id, pid))
            if comm.status in FINAL and counts.get(address) == 1:
                continue
            lines.append(f"  {pid}: {comm.status} (attempts {comm.attempts}, started "
                         f"{comm.attempt_started_at}, version {comm.version}); moto took "
                         f"{counts.get(address, 0)}")
        return "\n".join(lines[:40])

    return text


def emails_by_recipient(ses: MotoSes) -> dict[str, int]:
    counts: dict[str, int] = {}
    for raw in ses.raw_messages():
        to = str(parsed(raw)["To"])
        counts[to] = counts.get(to, 0) + 1
    return counts


# -- the crash test -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_dispatcher_killed_mid_email_batch_loses_and_doubles_no_email(
    pg_url: str, kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path
) -> None:
    certificate = tmp_path / "sns-signing.pem"
    certificate.write_bytes(sns_signer.test_certificate()[1])
    signer = SnsSigner(TOPIC_ARN)
    with MotoSes() as ses, fake_twilio() as twilio:
        ses.verify_sender(SENDER)
        config = StackConfig(pg_url, kafka_bootstrap, unique_topic_prefix, twilio,
                             extra_env=email_env(ses, certificate))
        settings = Settings(database_url=pg_url, email_window=EMAIL_WINDOW, sending_days="all",
                            holidays="none", rate_cap_per_hour=RATE_CAP_PER_HOUR,
                            email_from_address=SENDER, log_level="WARNING")
        app = build(settings)
        try:
            with e2e_stack(config, tmp_path / "stack") as stack:
                # Given patients with an email address each (never introduced), the
                # scheduler + relay, `serve` for SES's events, and two dispatchers
                patients = write_patients(tmp_path / "patients.csv", PATIENTS)
                summary = app.patients.import_file("patients", tmp_path / "patients.csv",
                                                   tmp_path / "rejects")
                assert (summary.new, summary.rejected) == (PATIENTS, 0), summary
                stack.start_run()
                serve_url = start_serve(stack)
                survivor, victim = stack.start_dispatchers(2, group_name("email-crash"))
                victim_patients = {pid: a for pid, a in patients.items()
                                   if email_partition(pid) in victim.assigned_partitions()}
                victim_addresses = set(victim_patients.values())
                assert 0 < len(victim_addresses) < PATIENTS

                with SnsFeeder(ses, signer, serve_url).running() as feeder:
                    # When an email campaign to all of them is activated…
                    campaign_id = app.campaigns.create(
                        name="Flu shots by email", channel=Channel.EMAIL,
                        subject="A reminder from {{ organisation }}",
                        body="<p>Dear {{ first_name }}, flu shots are here.</p>",
                        audience=list(patients), active=True, by="e2e-test")

                    # …and the victim is SIGKILLed in its batch, right after one of its
                    # SES calls went through, once a fifth of the emails are out: SES took
                    # an email of one of its communications that the store still has Sending
                    # (its batch's outcomes are stored after the batch's last call)
                    settled: set[str] = set()

                    def victim_mid_batch() -> bool:
                        taken = {str(parsed(r)["To"]) for r in ses.raw_messages()}
                        if len(taken) < PATIENTS // 5:
                            return False
                        for pid, address in victim_patients.items():
                            if pid in settled or address not in taken:
                                continue
                            status: Any = app.store.repository.get(
                                communication_id(campaign_id, pid)).status
                            if status == CommStatus.SENDING:
                                return True
                            settled.add(pid)
                        return False

                    stack.wait_for(victim_mid_batch, 90, "the victim to be sending, 20% in",
                                   0.01)
                    victim.kill()
                    killed_at = datetime.now(UTC)
                    taken_before_kill = {str(parsed(r)["To"]): r["id"]
                                         for r in ses.raw_messages()}
                    assert len(taken_before_kill) < PATIENTS, "the kill came after the last send"

                    # Then the survivor takes over and the campaign completes
                    stack.wait_for(
                        lambda: campaign_status(app, campaign_id) == "Completed", 180,
                        f"campaign {campaign_id} to complete after the kill", every_s=0.5,
                        explain=explain(app, campaign_id, patients, ses, feeder))
                    # the Send events of the last emails still reach serve (changing nothing)
                    stack.wait_for(lambda: len(feeder.posted) >= PATIENTS, 30,
                                   "the last Send events to be posted")
                assert not feeder.refused, f"serve refused Send events: {feeder.refused[:3]}"

                # every patient got exactly one email: none lost, none doubled
                counts = emails_by_recipient(ses)
                missing = sorted(set(patients.values()) - set(counts))
                doubled = {a: c for a, c in counts.items() if c != 1}
                strangers = sorted(set(counts) - set(patients.values()))
                assert not missing, f"{len(missing)} patients never got an email"
                assert not doubled, f"{len(doubled)} patients got more than one: {doubled}"
                assert not strangers, "emails to addresses outside the audience"
                # one message per communication reference, each attempt's own
                references = [str(parsed(r)[REFERENCE_HEADER]) for r in ses.raw_messages()]
                assert len(set(references)) == len(references) == PATIENTS

                # every communication is final, and records the id of its one SES message
                moto_id = {str(parsed(r)["To"]): r["id"] for r in ses.raw_messages()}
                unfinished, wrong_id = [], []
                for pid, address in patients.items():
                    comm: Any = app.store.repository.get(communication_id(campaign_id, pid))
                    if comm.status not in FINAL:
                        unfinished.append((pid, str(comm.status)))
                    elif comm.provider_ref != moto_id[address]:
                        wrong_id.append(pid)
                assert not unfinished, f"{len(unfinished)} not final: {unfinished[:5]}"
                assert not wrong_id, f"{len(wrong_id)} record another message id"

                # The kill really landed between SES calls and their stored outcome: some of
                # the victim's emails, taken by SES before it died, were recorded only
                # afterwards (by their Send event through serve, or by the survivor) — and
                # were not sent again (every count above is 1).
                recorded = outcome_recorded_at(app)
                in_flight = [
                    pid for pid, address in patients.items()
                    if address in victim_addresses and address in taken_before_kill
                    and recorded[communication_id(campaign_id, pid)] > killed_at]
                assert in_flight, ("no email was in flight when the victim died: every one "
                                   "it had sent was already recorded; the reconcile path "
                                   "went untested")
                # and serve is where they were settled: it applied Send events to
                # communications still Sending
                serve_log = next(p for p in stack.processes if p.name == "serve").log()
                assert "email_event_applied" in serve_log
                for address in patients.values():
                    assert address not in serve_log, "an email address in serve's log"
                assert "Traceback" not in serve_log
        finally:
            app.close()
