"""End to end, with real processes: the workers survive their dependencies.

A PostgreSQL restart and a broker restart in the middle of a campaign: every process keeps
running, says so once per outage, and the campaign completes with exactly one text per
patient. The truth is the event store and the provider (the fake Twilio server): the broker
may lose intents (Tansu keeps nothing across a restart), and the scheduler re-issues them.
And a thread never dies alone: the relay dying inside `outreach run` ends the process,
non-zero. `outreach serve` answers 503 (never 500) while the database is away.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

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
)
from tests.fixtures_app import TEST_CONTACT_KEY_SECRET
from tests.fixtures_servers import RestartablePostgres, RestartableTansu, _free_port

PATIENTS = 200
OUTAGE_S = 15
FAKE_TWILIO_DELAY_S = 0.03  # per text: the campaign lasts long enough to be cut in two


@dataclass(frozen=True)
class ShortTimeouts(StackConfig):
    """The stack's settings, plus short waits for a lost connection, so an outage is seen
    (and the campaign finishes) within the test's minute."""

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "OUTREACH_DB_CONNECT_TIMEOUT_SECONDS": "1",
            # Tansu completes a group join only after the rebalance timeout, which is this.
            "OUTREACH_KAFKA_MAX_POLL_INTERVAL_MS": "15000",
        }


def outage_lines(log: str) -> dict[str, int]:
    """component → how many `dependency_unavailable` lines it logged."""
    counts: dict[str, int] = {}
    for component in re.findall(r"dependency_unavailable\b.*?component=(\w+)", log):
        counts[component] = counts.get(component, 0) + 1
    return counts


def mid_campaign(twilio: object, share: float) -> bool:
    return len(twilio.accepted_count_by_number()) >= PATIENTS * share  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.postgres
def test_a_database_restart_mid_campaign_stops_no_process_and_loses_or_doubles_no_text(
    private_postgres: RestartablePostgres, kafka_bootstrap: str, unique_topic_prefix: str,
    tmp_path: Path,
) -> None:
    with fake_twilio() as twilio:
        config = ShortTimeouts(private_postgres.url, kafka_bootstrap, unique_topic_prefix,
                               twilio)
        twilio.delay_next(FAKE_TWILIO_DELAY_S, n=4 * PATIENTS, method="POST")
        with in_process_app(config) as app, e2e_stack(config, tmp_path / "stack") as stack:
            # Given the scheduler + relay process and two dispatchers, and an active campaign
            mobiles = import_patients(app, tmp_path, PATIENTS)
            stack.start_run()
            stack.start_dispatchers(2, group_name("pg-restart"))
            campaign_id = create_campaign(app, list(mobiles))

            # When PostgreSQL stops a fifth of the way in, and starts again 10 s later
            stack.wait_for(lambda: mid_campaign(twilio, 0.2), 60, "20% of the texts", 0.01)
            private_postgres.stop()
            assert not mid_campaign(twilio, 1.0), "the campaign ended before the outage"
            time.sleep(OUTAGE_S)
            stack.check_alive()
            private_postgres.start()

            # Then the campaign completes, every process still running
            stack.wait_for(lambda: campaign_status(app, campaign_id) == "Completed", 120,
                           "the campaign to complete after the restart", every_s=0.5,
                           explain=explain_unfinished(app, campaign_id, list(mobiles), twilio))
            stack.check_alive()
            # with exactly one text per patient: none lost, none doubled
            assert_each_patient_texted_once(twilio.accepted_count_by_number(), mobiles)
            assert {r.status for r in app.campaigns.report(campaign_id)} == {"Sent"}
            # and each component that met the outage said so once, and that it was over
            logs = {p.name: p.log() for p in stack.processes}
            counts = {name: outage_lines(log) for name, log in logs.items()}
            assert any(counts.values()), f"no process noticed the outage\n{stack.diagnostics()}"
            assert all(n == 1 for c in counts.values() for n in c.values()), counts
            for name, log in logs.items():
                if counts[name]:
                    assert "dependency_recovered" in log, f"{name}\n{stack.diagnostics()}"


@pytest.mark.slow
@pytest.mark.kafka
def test_a_broker_restart_mid_campaign_stops_no_process_and_loses_or_doubles_no_text(
    pg_url: str, private_tansu: RestartableTansu, unique_topic_prefix: str, tmp_path: Path,
) -> None:
    with fake_twilio() as twilio:
        config = ShortTimeouts(pg_url, private_tansu.bootstrap, unique_topic_prefix, twilio)
        twilio.delay_next(FAKE_TWILIO_DELAY_S, n=4 * PATIENTS, method="POST")
        with in_process_app(config) as app, e2e_stack(config, tmp_path / "stack") as stack:
            mobiles = import_patients(app, tmp_path, PATIENTS)
            run = stack.start_run()
            stack.start_dispatchers(2, group_name("broker-restart"))
            campaign_id = create_campaign(app, list(mobiles))

            # When the broker stops a fifth of the way in and comes back empty (Tansu keeps
            # no topics, records, groups or offsets across a restart)
            stack.wait_for(lambda: mid_campaign(twilio, 0.2), 60, "20% of the texts", 0.01)
            private_tansu.stop()
            assert not mid_campaign(twilio, 1.0), "the campaign ended before the outage"
            time.sleep(OUTAGE_S)
            stack.check_alive()
            private_tansu.start()

            # Then the topics are created again, lost intents are re-issued, and the campaign
            # completes with every process still running
            stack.wait_for(lambda: campaign_status(app, campaign_id) == "Completed", 150,
                           "the campaign to complete after the broker restart", every_s=0.5,
                           explain=explain_unfinished(app, campaign_id, list(mobiles), twilio))
            stack.check_alive()
            assert_each_patient_texted_once(twilio.accepted_count_by_number(), mobiles)
            assert {r.status for r in app.campaigns.report(campaign_id)} == {"Sent"}
            counts = {p.name: outage_lines(p.log()) for p in stack.processes}
            assert counts["run"], f"`outreach run` never noticed\n{stack.diagnostics()}"
            assert all(n == 1 for c in counts.values() for n in c.values()), counts
            assert "kafka_topics_created" in run.log()


@pytest.mark.kafka
def test_the_relay_thread_dying_inside_outreach_run_ends_the_process_non_zero(
    pg_url: str, kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path,
) -> None:
    with fake_twilio() as twilio:
        config = ShortTimeouts(pg_url, kafka_bootstrap, unique_topic_prefix, twilio)
        with in_process_app(config) as app, e2e_stack(config, tmp_path / "stack") as stack:
            run = stack.start_run()
            # When the relay's position table is dropped under it (an operator's mistake)
            # and a new event must be relayed: the relay fails for good, the scheduler not
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute("DROP TABLE relay_position")
            import_patients(app, tmp_path, 3)

            # Then the whole process ends, non-zero, saying which component stopped
            deadline = time.monotonic() + 60
            while run.popen.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert run.popen.poll() is not None, (
                f"`outreach run` kept running without its relay\n{stack.diagnostics()}")
            assert run.popen.returncode != 0
            assert re.search(r"component_stopped\b.*component=relay", run.log()), run.tail()


@pytest.mark.postgres
def test_serve_answers_503_while_the_database_is_away_and_works_again_after(
    private_postgres: RestartablePostgres, tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "OUTREACH_"))}
    env.update(OUTREACH_DATABASE_URL=private_postgres.url,
               OUTREACH_CONTACT_KEY_SECRET=TEST_CONTACT_KEY_SECRET,
               OUTREACH_DB_CONNECT_TIMEOUT_SECONDS="1", OUTREACH_LOG_LEVEL="WARNING")
    port = _free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        serve = subprocess.Popen(
            [sys.executable, "-c", "from api.cli import main; main()", "serve", "--port",
             str(port), "--insecure-dev-no-signatures"],
            env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"

    def text(n: int) -> httpx.Response:
        form = {"MessageSid": f"SM{n:032d}", "AccountSid": "AC" + "b" * 32,
                "From": "+13125550100", "To": "+15005550006", "Body": "HELLO"}
        return httpx.post(f"{base}/webhooks/twilio/sms", data=form, timeout=90)

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert serve.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
        # Given a server that records texts
        assert text(1).status_code == 200, log_path.read_text()
        # When the database goes away, a webhook gets 503 with Retry-After (Twilio retries)
        private_postgres.stop()
        during = text(2)
        assert during.status_code == 503, (during.status_code, during.text)
        assert during.headers["Retry-After"]
        assert serve.poll() is None, "the server died with its database"
        # Then, once the database is back, the next webhook works
        private_postgres.start()
        assert text(3).status_code == 200, log_path.read_text()
    finally:
        serve.terminate()
        serve.wait(timeout=30)


def test_a_scheduler_step_failing_for_good_ends_outreach_run_non_zero(tmp_path: Path) -> None:
    import sqlite3
    import threading

    from application.bootstrap import build
    from application.settings import Settings
    from workers.processes import run_forever

    # Given the embedded `outreach run` loop, whose read models are then broken under it
    o = build(Settings(database_url=f"sqlite:///{tmp_path}/o.db"))
    stop = threading.Event()
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            run_forever(o, interval_s=0.1, stop=stop)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - the outcome is what the test checks
            outcome.append(exc)

    loop = threading.Thread(target=run, daemon=True)
    loop.start()
    with sqlite3.connect(tmp_path / "o-read.db", timeout=30) as db:
        db.execute("DROP TABLE communications")
    # When every step fails with the same bug: then the loop is not kept alive forever, it
    # ends with exit code 1 (a few tries first, in case it was a one-off)
    loop.join(timeout=30)
    stop.set()
    o.close()
    assert outcome and isinstance(outcome[0], SystemExit), outcome
    assert outcome[0].code == 1


def test_outreach_run_serves_liveness_and_readiness_on_its_health_port(tmp_path: Path) -> None:
    import threading

    from application.bootstrap import build
    from application.settings import Settings
    from workers.processes import run_forever

    o = build(Settings(database_url=f"sqlite:///{tmp_path}/o.db"))
    stop = threading.Event()
    port = _free_port()
    loop = threading.Thread(target=run_forever, args=(o,), daemon=True,
                            kwargs={"interval_s": 0.1, "stop": stop, "health_port": port})
    loop.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        alive = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
        assert (alive.status_code, alive.json()["status"]) == (200, "alive")
    finally:
        stop.set()
        loop.join(timeout=10)
        o.close()
