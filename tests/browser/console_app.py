"""The console a browser test drives: the real application (bootstrap.build on SQLite, a
simulated clock at Tuesday 9:00 US Central), the app `outreach serve` runs with the console
added, served by uvicorn on a free 127.0.0.1 port in a background thread, and a seeded clinic:
two provider groups, six patients, two text campaigns, two patient texts, four staff users.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from api.http import serving_app
from application.bootstrap import Outreach, build
from application.clock import SimulatedClock
from application.settings import Settings
from domain.access import ALL_SUBSCRIBERS, SETUP_ACTOR, Role
from domain.inbound import InboundText
from gateways.simulator_sms import SimulatorSmsGateway
from tests.fixtures_app import TUESDAY_9AM
from tests.patient_data import (
    APPOINTMENT_HEADER,
    PATIENT_HEADER,
    PROVIDER_HEADER,
    patient_row,
    write_csv,
)

PASSWORD = "Clinic-Pass-2026!"
#: Who signs in: the short name a test uses → (email, roles, groups).
USERS: dict[str, tuple[str, frozenset[Role], tuple[str, ...]]] = {
    "admin": ("admin@clinic.example", frozenset(Role), (ALL_SUBSCRIBERS,)),
    "campaigns": ("campaigns@clinic.example", frozenset({Role.CAMPAIGNS}), (ALL_SUBSCRIBERS,)),
    "optouts": ("optouts@clinic.example", frozenset({Role.OPT_OUTS}), (ALL_SUBSCRIBERS,)),
    "north": ("north@clinic.example", frozenset({Role.CAMPAIGNS, Role.OPT_OUTS}), ("North",)),
}
# Two clinics: North (D1) and South (D2).
PROVIDERS = [["D1", "Dr. Adams", "North", "Yes"], ["D2", "Dr. Brown", "South", "Yes"]]
#: The seeded patients: P1-P3 are North's, P4-P6 South's.
PATIENTS = [
    patient_row("P1", "Ann", "Lee", "1950-02-03", mobile="512-555-0101", pcp="D1",
                email="ann@example.com"),
    patient_row("P2", "Bob", "Lee", "1960-01-01", mobile="512-555-0102", pcp="D1"),
    patient_row("P3", "Cara", "Diaz", "1971-05-06", mobile="512-555-0103", pcp="D1"),
    patient_row("P4", "Dan", "Moss", "1982-07-08", mobile="512-555-0104", pcp="D2"),
    patient_row("P5", "Eve", "Park", "1945-09-10", mobile="512-555-0105", pcp="D2"),
    patient_row("P6", "Finn", "Lee", "1990-11-12", mobile="512-555-0106", pcp="D2"),
]
BODY = "Flu shots are here. Call (555) 010-0100 to book."
HELP = "+15550100100"
OUR_NUMBER = "+15005550006"
QUESTION = "Can I come on Friday?"


@dataclass
class Seeded:
    """What the seeding made, for tests to refer to."""

    upcoming: str = ""  # an Inactive text campaign starting next week (id)
    running: str = ""  # an Active text campaign (id)
    question_from: str = "P1"  # the patient who texted QUESTION
    stop_from: str = "P4"  # the patient who texted STOP
    emails: dict[str, str] = field(default_factory=lambda: {k: v[0] for k, v in USERS.items()})


def seed(o: Outreach, folder: Path) -> Seeded:
    """Providers, patients with a confirmed appointment last month (search lists patients
    seen in the last two years), two campaigns, two inbound texts, the staff users."""
    folder.mkdir(parents=True, exist_ok=True)
    when = (o.clock.now() - timedelta(days=30)).strftime("%Y-%m-%d 10:00")
    o.patients.import_file("providers", write_csv(folder / "pr.csv", PROVIDER_HEADER,
                                                  PROVIDERS))
    o.patients.import_file("patients", write_csv(folder / "p.csv", PATIENT_HEADER, PATIENTS))
    o.patients.import_file("appointments", write_csv(
        folder / "a.csv", APPOINTMENT_HEADER,
        [[f"A{r[0]}", r[0], when, r[9], "Main", "Office Visit", "Confirmed", ""]
         for r in PATIENTS]))
    o.catch_up()
    for email, roles, groups in USERS.values():
        o.users.create(email, email.split("@")[0].title(), PASSWORD, roles, groups,
                       by="setup")
    campaigns = o.staff.campaigns
    next_week = (o.clock.now() + timedelta(days=7)).date()
    upcoming = campaigns.create(SETUP_ACTOR, name="Flu shots", body=BODY, help_number=HELP,
                                start=next_week, patients=["P1", "P2", "P4"])
    running = campaigns.create(SETUP_ACTOR, name="Check-up reminder", body=BODY,
                               help_number=HELP, patients=["P2", "P3", "P5", "P6"],
                               active=True)
    seeded = Seeded(upcoming=upcoming.campaign_id, running=running.campaign_id)
    mobile = {r[0]: f"+1{r[5].replace('-', '')}" for r in PATIENTS}
    at = o.clock.now()
    o.inbound.on_text(InboundText("SM" + "1" * 32, mobile[seeded.question_from], OUR_NUMBER,
                                  QUESTION, at))
    o.inbound.on_text(InboundText("SM" + "2" * 32, mobile[seeded.stop_from], OUR_NUMBER,
                                  "STOP", at))
    o.catch_up()
    return seeded


def console_app(o: Outreach) -> FastAPI:
    """The app `outreach serve` runs: webhooks, the staff API and the whole console."""
    return serving_app(o, insecure_dev_no_signatures=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """uvicorn serving an app in a daemon thread until stop()."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="console", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the console server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


def open_console(folder: Path) -> tuple[Outreach, SimulatedClock, Seeded, Served]:
    clock = SimulatedClock(TUESDAY_9AM)
    settings = Settings(database_url=f"sqlite:///{folder}/outreach.db",
                        letters_dir=folder / "letters")
    o = build(settings, clock=clock, gateway=SimulatorSmsGateway(now=clock.now))
    try:
        seeded = seed(o, folder / "seed")
        served = Served(console_app(o)).start()
    except BaseException:
        o.close()
        raise
    return o, clock, seeded, served


def close(o: Outreach, served: Any) -> None:
    served.stop()
    o.close()
