"""`outreach run` in real time: APScheduler drives the embedded loop on the system clock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from application.bootstrap import build
from application.settings import Settings
from tests.fixtures_app import import_patients, patient_row
from workers.processes import run_forever


def test_the_real_time_loop_sends_an_active_campaign_and_stops_cleanly(tmp_path: Path) -> None:
    # Given windows open all day every day, and an active campaign for three patients
    settings = Settings(database_url=f"sqlite:///{tmp_path}/o.db", text_window="00:00-23:59:59",
                        sending_days="all", holidays="none", rate_cap_per_hour=100_000)
    o = build(settings)
    import_patients(o, tmp_path, [patient_row(f"P{i}", f"+1312555010{i}") for i in range(3)])
    cid = o.campaigns.create(name="Now", body="Clinic closed Friday.", help_number="555-0100",
                             active=True)
    # When the loop runs on the system clock
    stop = threading.Event()
    loop = threading.Thread(target=run_forever, args=(o,), kwargs={"interval_s": 0.2,
                                                                    "stop": stop})
    loop.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and {r.status for r in o.campaigns.report(cid)} != {"Sent"}:
        time.sleep(0.2)
    stop.set()
    loop.join(timeout=10)
    # Then every patient got the text, and the loop ended when asked
    assert {r.status for r in o.campaigns.report(cid)} == {"Sent"}
    assert len(o.gateway.sent) == 3  # type: ignore[attr-defined]
    assert not loop.is_alive()
    o.close()
