"""The email benchmark (scripts/benchmarks.py, section "email"): emails/s through one
dispatcher with the null email gateway, beside texts/s through the same dispatcher with the
null SMS gateway, measured in the same run on the same PostgreSQL database.

Both paths: scheduler tick → in-process bus → Dispatcher.handle (every rule checked from the
event store, "attempt started" and the outcome stored) → null gateway. The emails are
campaign emails to patients introduced three days before (the introductory email rule
passed), so each is rendered from its template with the patient's merge fields and its own
signed unsubscribe link; the ratio is what the email channel costs over the text one.
"""

from __future__ import annotations

import math
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from application.bootstrap import build
from application.synthetic import write_dataset
from bus.intents import InMemoryIntentBus
from domain.channels import Channel
from domain.email import EmailState
from gateways.null_email import NullEmailGateway
from gateways.null_sms import NullSmsGateway
from workers.dispatcher import DispatchStats
from workers.runner import make_dispatcher, make_scheduler

EMAIL_BODY = ("<p>Dear {{ first_name }},</p><p>{{ provider }} would like to see you for a "
              "check-up. Please call <b>{{ help_number }}</b> to book.</p>")


def bench_email(servers: Any, sizes: Any, report: Any, workdir: Path) -> None:
    from scripts.benchmarks import CAMPAIGN_SIZE, ShiftedClock, chunks, open_all_day, progress

    n = max(500, sizes.sends // 4)
    with servers.database("bench_email") as url:
        settings = open_all_day(url, email_window="00:00-23:59:59", rate_burst=10_000_000)
        clock = ShiftedClock()
        app = build(settings, gateway=NullSmsGateway(), email_gateway=NullEmailGateway(),
                    clock=clock)
        try:
            progress.print(f"[email] importing patients for {n:,} texts and {n:,} emails…")
            texts, emails = _audiences(app, workdir / "email", n)
            for part in chunks(emails, 500):  # introduced three days ago: campaign emails go
                states = [EmailState(patient_id=pid) for pid in part]
                for state in states:
                    state.introduction_sent(clock.now() - timedelta(days=3), uuid.uuid4())
                app.store.save(*states)
            text_rate = _run(app, clock, Channel.TEXT, texts, CAMPAIGN_SIZE, chunks)
            email_rate = _run(app, clock, Channel.EMAIL, emails, CAMPAIGN_SIZE, chunks)
        finally:
            app.close()
    report("email: dispatch (null SES)", email_rate, "emails/s", baseline=text_rate,
           note=f"{n:,} campaign emails, 1 dispatcher; baseline: {n:,} texts, same "
                "dispatcher and database, null SMS gateway")


def _audiences(app: Any, workdir: Path, n: int) -> tuple[list[str], list[str]]:
    patients = math.ceil(n / 0.40) + 100  # ~45% of synthetic patients have an email
    files = write_dataset(workdir, patients, seed=11,
                          today=app.settings.calendar.today(app.clock.now()))
    for kind in ("providers", "patients"):
        app.patients.import_file(kind, files[kind], workdir / "rejects")
    texts = app.directory.default_audience(Channel.TEXT)[:n]
    emails = app.directory.default_audience(Channel.EMAIL)[:n]
    if len(texts) < n or len(emails) < n:
        raise RuntimeError(f"too few synthetic patients: {len(texts)} texts, {len(emails)} "
                           f"emails of {n} each")
    return texts, emails


def _run(app: Any, clock: Any, channel: Channel, audience: list[str], size: int,
         chunks: Any) -> float:
    """Activate, make everything due, dispatch it all; sends per second of dispatch."""
    for number, part in enumerate(chunks(audience, size), 1):
        if channel == Channel.TEXT:
            app.campaigns.create(name=f"Text benchmark {number}", audience=part, active=True,
                                 body="Total Healthcare: time for a check-up. Call "
                                      "(555) 010-0100.", help_number="(555) 010-0100")
        else:
            app.campaigns.create(name=f"Email benchmark {number}", channel=Channel.EMAIL,
                                 subject="A reminder from {{ organisation }}",
                                 body=EMAIL_BODY, audience=part, active=True)
    app.catch_up()
    clock.ahead += timedelta(hours=2)  # every slot is due
    bus = InMemoryIntentBus()
    scheduler = make_scheduler(app, bus)
    scheduler.batch = len(audience) * 2
    scheduler.tick()
    dispatcher = make_dispatcher(app)
    stats = DispatchStats()
    started = time.perf_counter()
    while True:
        intents = bus.poll(max_records=500, timeout_s=0.0)
        if not intents:
            break
        stats.add(dispatcher.handle(intents))
        bus.commit()
    elapsed = time.perf_counter() - started
    if stats.sent != len(audience):
        raise RuntimeError(f"{channel}: {stats.sent} of {len(audience)} sent ({stats})")
    return stats.sent / elapsed
