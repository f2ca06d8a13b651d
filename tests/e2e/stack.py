"""The scale-out stack for end-to-end tests, with real processes.

As it runs in production, minus the internet: PostgreSQL (`pg_url`), a
Kafka-protocol broker (Tansu, `kafka_bootstrap`), the real Twilio adapter pointed at a local
fake of Twilio's REST API, and the `outreach` console script started as subprocesses —
`outreach run` (projections, scheduler, event relay) and `outreach worker dispatch` ×N.

Used by tests/e2e/test_kafka_crash.py and tests/e2e/test_kafka_pipeline.py.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import phonenumbers
from eventsourcing.utils import get_topic
from kafka.partitioner.default import murmur2

from application.bootstrap import Outreach, build
from application.settings import Settings
from application.synthetic import AREA_CODES, PATIENT_HEADER
from domain.communication import Communication, communication_id
from domain.preferences import ContactKeys
from tests.fakes.twilio_server import FakeTwilioServer
from tests.fixtures_app import TEST_CONTACT_KEY_SECRET
from workers.scheduler import routing_key

T = TypeVar("T")

OUTREACH_SCRIPT = Path(sys.executable).with_name("outreach")
INTENT_PARTITIONS = 6
FROM_NUMBER = "+15005550006"  # Twilio's magic "valid sender"; the fake accepts any sender
BODY = "Total Healthcare: flu shots are now available. Call (555) 010-0100 to book."
HELP_NUMBER = "(555) 010-0100"

# Windows open all day, every day; a cap so high it never defers anything; timeouts short
# enough that a dead dispatcher's partitions move (session) and its half-done attempts are
# reconciled (stale attempt, intent re-issue) within seconds instead of minutes.
TEXT_WINDOW = "00:00-23:59:59"
RATE_CAP_PER_HOUR = 100_000  # also paces the plan: one slot every 36 ms
SESSION_TIMEOUT_MS = 3_000
STALE_ATTEMPT_SECONDS = 5
REISSUE_AFTER_SECONDS = 8
# No delivery receipts come in these tests: a campaign may complete once every text is out.
RECEIPT_GRACE_SECONDS = 1
FAKE_TWILIO_DELAY_S = 0.01  # per message POST: a kill lands between a call and its outcome

_ASSIGNED = re.compile(r"intent_partitions_assigned\b.*?partitions=\[([\d, ]*)\]")
_BATCH_SENT = re.compile(r"\bbatch_done\b.*?\bsent=(\d+)")


# -- patients -------------------------------------------------------------------------------


def mobile_numbers(count: int) -> list[str]:
    """Distinct fictional US mobiles (NANP 555-01xx) that phonenumbers accepts as valid and
    that are none of Twilio's magic error numbers: the fake accepts every one of them."""
    numbers: list[str] = []
    for area in AREA_CODES:
        for last in range(100):
            number = f"+1{area}55501{last:02d}"
            if phonenumbers.is_valid_number(phonenumbers.parse(number, "US")):
                numbers.append(number)
            if len(numbers) == count:
                return numbers
    raise ValueError(f"only {len(numbers)} fictional numbers available, {count} wanted")


def write_patients(path: Path, count: int) -> dict[str, str]:
    """A patients import file of `count` active patients, each with its own valid mobile.
    Returns patient id → E.164 mobile."""
    by_patient = {f"E{n:05d}": number for n, number in enumerate(mobile_numbers(count))}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as file:
        out = csv.writer(file)
        out.writerow(PATIENT_HEADER)
        for n, (patient_id, mobile) in enumerate(by_patient.items()):
            row = dict.fromkeys(PATIENT_HEADER, "")
            row.update({
                "Patient ID": patient_id, "First Name": "Pat", "Last Name": f"Tester{n}",
                "Date of Birth": "1970-01-01", "Mobile Phone": mobile, "Status": "Active",
                "Appointment Reminders Only": "No",
            })
            out.writerow([row[column] for column in PATIENT_HEADER])
    return by_patient


# -- configuration --------------------------------------------------------------------------


@dataclass(frozen=True)
class StackConfig:
    database_url: str
    kafka_bootstrap: str
    topic_prefix: str
    twilio: FakeTwilioServer
    #: more settings for every process (email tests: SES endpoint, windows, grace…)
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """The subprocesses' environment: ours without any OUTREACH_*/TWILIO_* setting of
        the developer's, plus exactly the configuration of this stack."""
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith(("OUTREACH_", "TWILIO_"))}
        return {
            **inherited,
            "PYTHONUNBUFFERED": "1",
            "OUTREACH_DATABASE_URL": self.database_url,
            "OUTREACH_CONTACT_KEY_SECRET": TEST_CONTACT_KEY_SECRET,
            "OUTREACH_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "OUTREACH_KAFKA_TOPIC_PREFIX": self.topic_prefix,
            "OUTREACH_KAFKA_INTENT_PARTITIONS": str(INTENT_PARTITIONS),
            "OUTREACH_KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            "OUTREACH_STALE_ATTEMPT_SECONDS": str(STALE_ATTEMPT_SECONDS),
            "OUTREACH_REISSUE_AFTER_SECONDS": str(REISSUE_AFTER_SECONDS),
            "OUTREACH_TEXT_WINDOW": TEXT_WINDOW,
            "OUTREACH_SENDING_DAYS": "all",
            "OUTREACH_HOLIDAYS": "none",
            "OUTREACH_RATE_CAP_PER_HOUR": str(RATE_CAP_PER_HOUR),
            "OUTREACH_RECEIPT_GRACE_SECONDS": str(RECEIPT_GRACE_SECONDS),
            "OUTREACH_LOG_FORMAT": "console",
            "OUTREACH_LOG_LEVEL": "INFO",
            "TWILIO_ACCOUNT_SID": self.twilio.account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio.auth_token,
            "TWILIO_FROM_NUMBER": FROM_NUMBER,
            "OUTREACH_TWILIO_API_BASE_URL": self.twilio.url,
            **self.extra_env,
        }

    def settings(self) -> Settings:
        """The same configuration for the test's own in-process application (which only
        imports, plans and reads: it never dispatches)."""
        return Settings(
            database_url=self.database_url, text_window=TEXT_WINDOW, sending_days="all",
            holidays="none", rate_cap_per_hour=RATE_CAP_PER_HOUR, log_level="WARNING",
        )


# -- processes ------------------------------------------------------------------------------


@dataclass
class OutreachProcess:
    """One `outreach …` subprocess; its stderr (structlog console lines) goes to a file."""

    name: str
    args: tuple[str, ...]
    popen: subprocess.Popen[bytes]
    log_path: Path
    killed: bool = False  # by the test, on purpose

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def has_logged(self, event: str) -> bool:
        return re.search(rf"\b{re.escape(event)}\b", self.log()) is not None

    def assigned_partitions(self) -> frozenset[int]:
        """The partitions of its latest assignment (empty before its first)."""
        found = _ASSIGNED.findall(self.log())
        if not found:
            return frozenset()
        return frozenset(int(p) for p in found[-1].split(",") if p.strip())

    def sent_by_batches(self) -> int:
        """Messages its dispatcher reported accepted, summed over its `batch_done` lines."""
        return sum(int(n) for n in _BATCH_SENT.findall(self.log()))

    def kill(self) -> None:
        """SIGKILL: no signal handler, no `finally`, no goodbye to the group."""
        self.killed = True
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)  # the processes stop cleanly on SIGTERM
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


@dataclass
class E2EStack:
    config: StackConfig
    workdir: Path
    processes: list[OutreachProcess] = field(default_factory=list)

    def start(self, name: str, *args: str) -> OutreachProcess:
        log_path = self.workdir / f"{name}.stderr.log"
        with log_path.open("wb") as stderr:
            popen = subprocess.Popen(
                [str(OUTREACH_SCRIPT), *args], env=self.config.env(), cwd=self.workdir,
                stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
            )
        process = OutreachProcess(name, args, popen, log_path)
        self.processes.append(process)
        return process

    def start_run(self) -> OutreachProcess:
        """`outreach run` (projections + scheduler + relay): started first, so the topics
        exist before any dispatcher subscribes."""
        run = self.start("run", "run", "--interval", "1")
        self.wait_for(lambda: run.has_logged("running") and run.has_logged("relay_started"),
                      60, "`outreach run` to start its scheduler and relay")
        return run

    def start_dispatchers(self, count: int, group: str) -> list[OutreachProcess]:
        """`count` dispatchers in one (fresh) group, returned once the group has settled:
        each owns partitions and together they own each one exactly once."""
        dispatchers = []
        for n in range(1, count + 1):
            # One at a time: processes opening the PostgreSQL event store at the same
            # instant can fail (eventsourcing's CREATE OR REPLACE FUNCTION races).
            dispatcher = self.start(f"dispatch-{n}", "worker", "dispatch", "--group", group)
            self.wait_for(partial(dispatcher.has_logged, "dispatcher_started"), 60,
                          f"{dispatcher.name} to open the store and connect")
            dispatchers.append(dispatcher)

        def settled() -> bool:
            owned = [d.assigned_partitions() for d in dispatchers]
            return all(owned) and sum(map(len, owned)) == INTENT_PARTITIONS == len(
                frozenset().union(*owned))

        self.wait_for(settled, 90, f"{count} dispatchers of group {group} to split the "
                                   f"{INTENT_PARTITIONS} intent partitions between them")
        return dispatchers

    def check_alive(self) -> None:
        for process in self.processes:
            if not process.killed and process.popen.poll() is not None:
                raise AssertionError(
                    f"`outreach {' '.join(process.args)}` ({process.name}) exited with "
                    f"{process.popen.returncode}\n{self.diagnostics()}")

    def wait_for(self, condition: Callable[[], T], timeout_s: float, what: str,
                 every_s: float = 0.2, explain: Callable[[], str] | None = None) -> T:
        """Poll `condition` until it is truthy; fail with every process's stderr tail (and
        `explain()`) when it is not within `timeout_s`, or as soon as a process dies."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = condition()
            if value:
                return value
            self.check_alive()
            if time.monotonic() > deadline:
                more = f"{explain()}\n" if explain else ""
                raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n"
                                     f"{more}{self.diagnostics()}")
            time.sleep(every_s)

    def diagnostics(self) -> str:
        parts = []
        for process in self.processes:
            state = process.popen.poll()
            status = "running" if state is None else f"exit {state}"
            if process.killed:
                status += ", killed by the test"
            parts.append(f"--- {process.name} ({status}): last lines of stderr ---\n"
                         f"{process.tail()}")
        return "\n".join(parts)

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()


@contextmanager
def e2e_stack(config: StackConfig, workdir: Path) -> Iterator[E2EStack]:
    """The processes of one test; every one is ended on the way out, whatever happened."""
    workdir.mkdir(parents=True, exist_ok=True)
    stack = E2EStack(config, workdir)
    try:
        yield stack
    finally:
        stack.stop_all()


@contextmanager
def fake_twilio() -> Iterator[FakeTwilioServer]:
    with FakeTwilioServer() as twilio:
        yield twilio


def slow_down(twilio: FakeTwilioServer, posts: int) -> None:
    """Make each of the next `posts` message creations take a little longer (accepted all
    the same), as a real provider's round trip would."""
    twilio.delay_next(FAKE_TWILIO_DELAY_S, n=posts, method="POST")


@contextmanager
def in_process_app(config: StackConfig) -> Iterator[Outreach]:
    app = build(config.settings())
    try:
        yield app
    finally:
        app.close()


def import_patients(app: Outreach, workdir: Path, count: int) -> dict[str, str]:
    """Imports `count` patients; returns patient id → mobile."""
    by_patient = write_patients(workdir / "patients.csv", count)
    summary = app.patients.import_file("patients", workdir / "patients.csv",
                                       workdir / "rejects")
    assert (summary.new, summary.rejected) == (count, 0), summary
    return by_patient


def create_campaign(app: Outreach, patient_ids: Sequence[str]) -> UUID:
    """An active text campaign to these patients, planned from now."""
    return app.campaigns.create(
        name=f"Flu shots {uuid.uuid4().hex[:6]}", body=BODY, help_number=HELP_NUMBER,
        audience=list(patient_ids), active=True, by="e2e-test")


def campaign_status(app: Outreach, campaign_id: UUID) -> str:
    return str(app.campaigns.get(campaign_id).status)


def explain_unfinished(app: Outreach, campaign_id: UUID, patient_ids: Sequence[str],
                       twilio: FakeTwilioServer) -> Callable[[], str]:
    """For a failure message: each unfinished communication as the event store has it, as
    the read model has it, and how many texts the fake accepted for its number."""

    def explain() -> str:
        read_model = {r.patient_id: r for r in app.campaigns.report(campaign_id)}
        counts = twilio.accepted_count_by_number()
        lines = [f"campaign {campaign_id}: {campaign_status(app, campaign_id)}; the fake "
                 f"accepted {sum(counts.values())} texts to {len(counts)} numbers"]
        for pid in patient_ids:
            comm: Any = app.store.repository.get(communication_id(campaign_id, pid))
            row = read_model.get(pid)
            if str(comm.status) in ("Sent", "Delivered") and row and row.status == "Sent":
                continue
            contact = row.contact if row else "?"
            lines.append(
                f"  {pid}: store {comm.status} (attempts {comm.attempts}, started "
                f"{comm.attempt_started_at}, version {comm.version}); read model "
                f"{row.status if row else None} due {row.due_at if row else None}; "
                f"fake accepted {counts.get(contact, 0)}")
        return "\n".join(lines[:40])

    return explain


def partition_of(patient_id: str, mobile: str) -> int:
    """The intents partition the scheduler's producer puts this patient's intents on
    (kafka-python's default partitioner: murmur2 of the key, as Java's)."""
    keys = ContactKeys(TEST_CONTACT_KEY_SECRET.encode("utf-8"))
    key = routing_key(mobile, patient_id, keys).encode("utf-8")
    return (murmur2(key) & 0x7FFFFFFF) % INTENT_PARTITIONS


def accepted_at_by_communication(app: Outreach) -> dict[UUID, datetime]:
    """When each communication's Accepted outcome was recorded (from the event store)."""
    topic = get_topic(Communication.Accepted)  # type: ignore[attr-defined]  # from @event
    recorded: dict[UUID, datetime] = {}
    start = 1
    while True:
        notifications = app.store.recorder.select_notifications(
            start=start, limit=1000, topics=(topic,))
        for notification in notifications:
            event: Any = app.store.mapper.to_domain_event(notification)
            recorded[event.originator_id] = event.timestamp
        if len(notifications) < 1000:
            return recorded
        start = notifications[-1].id + 1


def assert_each_patient_texted_once(counts: dict[str, int], mobiles: dict[str, str]) -> None:
    """`counts`: texts the fake accepted by number; `mobiles`: patient id → number."""
    missing = sorted(set(mobiles.values()) - set(counts))
    doubled = {n: c for n, c in counts.items() if c != 1}
    strangers = sorted(set(counts) - set(mobiles.values()))
    assert not missing, f"{len(missing)} patients never got their text: {missing[:5]}"
    assert not doubled, f"{len(doubled)} numbers got more than one text: {doubled}"
    assert not strangers, f"texts to numbers outside the audience: {strangers[:5]}"


def group_name(purpose: str) -> str:
    """A fresh consumer group per test: a Tansu group whose members left can stall."""
    return f"e2e-{purpose}-{uuid.uuid4().hex[:8]}"
