"""The application under test, on either stack: SQLite (embedded default) or PostgreSQL.

Behavioural tests take `make_outreach` and get the same suite on both stacks via the
`stack` parameter; time is a SimulatedClock they move themselves."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from application.bootstrap import Outreach, build
from application.clock import SimulatedClock
from application.settings import Settings
from application.synthetic import PATIENT_HEADER
from gateways.simulator_sms import SimulatorSmsGateway

# A fixed contact-key secret for the whole test session, as a deployment sets one (PostgreSQL
# refuses to start without it). In the environment, so Settings built anywhere in the tests
# and the CLI subprocesses (which inherit it) all key numbers alike.
TEST_CONTACT_KEY_SECRET = "test-contact-key-secret-0123456789abcdef"
os.environ.setdefault("OUTREACH_CONTACT_KEY_SECRET", TEST_CONTACT_KEY_SECRET)

# Tuesday 24 November 2026, 09:00 US Central: a sending day, before the text window opens.
TUESDAY_9AM = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of the stack under test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/outreach.db"
    return str(request.getfixturevalue("pg_url"))


def patient_row(pid: str, mobile: str | None, *, first: str = "Ann", last: str | None = None,
                status: str = "Active", appt_only: bool = False,
                email: str = "") -> dict[str, str]:
    return {"Patient ID": pid, "First Name": first, "Last Name": last or f"Lee{pid}",
            "Date of Birth": "1950-03-04", "Mobile Phone": mobile or "", "Status": status,
            "Appointment Reminders Only": "Yes" if appt_only else "No", "Email": email}


def import_patients(o: Outreach, folder: Path, rows: Sequence[dict[str, str]]) -> None:
    path = folder / f"patients-{len(list(folder.glob('patients-*.csv')))}.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=PATIENT_HEADER)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in PATIENT_HEADER})
    summary = o.patients.import_file("patients", path, folder / "rejects")
    assert summary.rejected == 0, summary.rejections


@pytest.fixture
def make_outreach(stack: str, tmp_path: Path) -> Iterator[Callable[..., Outreach]]:
    """Build the application on the stack with a simulated clock and the simulator gateway.
    Settings can be overridden per test: make_outreach(rate_cap_per_hour=10)."""
    built: list[Outreach] = []

    def make(clock: SimulatedClock | None = None, gateway: Any = None,
             email_gateway: Any = None, voice_gateway: Any = None,
             **overrides: Any) -> Outreach:
        settings = Settings(database_url=stack, **overrides)
        clock = clock or SimulatedClock(TUESDAY_9AM)
        gateway = gateway or SimulatorSmsGateway(
            now=clock.now, failure_rate=settings.simulator_failure_rate,
            seed=settings.simulator_seed)
        o = build(settings, clock=clock, gateway=gateway, email_gateway=email_gateway,
                  voice_gateway=voice_gateway)
        built.append(o)
        return o

    yield make
    for o in built:
        o.close()
