"""The simulated clock's benchmark: K text campaigns × M patients (raised rate and size caps)
on the embedded default (SQLite, in-process bus, simulator gateway), simulated from before
the first window until every campaign completed. Printed at two sizes, so the growth shows:
communications per second of wall time and the total, beside the raw baseline measured in
the same run — one plain SELECT reading as many communications' rows from the same read
model (the least a run must do: look at each communication once).

    python -m scripts.bench_simulation [--campaigns K] [--patients M] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import math
import pstats
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from application.bootstrap import Outreach, build
from application.clock import SimulatedClock
from application.logging import configure_logging
from application.settings import Settings
from application.synthetic import write_dataset
from domain.channels import Channel
from gateways.simulator_sms import SimulatorSmsGateway
from workers.runner import EmbeddedRunner

Report = Callable[..., None]
BODY = "Total Healthcare: flu shots are now available. Call (555) 010-0100 to book."
# Tuesday 24 November 2026, 09:00 US Central: before the text window opens at 11:00.
START = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
#: Raised caps: each campaign sends at 36,000 an hour (one every 0.1 s), so thousands of
#: communications are thousands of distinct slots — the simulated clock's real work.
RATE_CAP = 36_000
SIZES = ((10, 300), (10, 1_200))  # K campaigns × M patients: 3,000 then 12,000


def simulate(workdir: Path, campaigns: int, patients: int,
             profile: bool = False) -> tuple[float, float, int, int]:
    """(seconds simulating, seconds of the raw SELECT, communications, completed)."""
    settings = Settings(
        database_url=f"sqlite:///{workdir}/outreach.db", rate_cap_per_hour=RATE_CAP,
        campaign_size_cap=max(patients, 4_000), log_level="WARNING", simulator_failure_rate=0.05)
    clock = SimulatedClock(START)
    gateway = SimulatorSmsGateway(now=clock.now, failure_rate=settings.simulator_failure_rate,
                                  seed=settings.simulator_seed, keep=1)
    app: Outreach = build(settings, clock=clock, gateway=gateway)
    try:
        audience = texting_audience(app, workdir, campaigns * patients)
        for k in range(campaigns):
            app.campaigns.create(name=f"Simulation {k + 1}", body=BODY,
                                 help_number="(555) 010-0100",
                                 audience=audience[k * patients:(k + 1) * patients], active=True)
        app.catch_up()
        runner = EmbeddedRunner(app)
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        done = runner.run_simulated(START + timedelta(days=30))
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        elapsed = time.perf_counter() - started
        started = time.perf_counter()
        rows = app.db.fetchall("SELECT communication_id, campaign_id, status, attempts, due_at,"
                               " updated_at FROM communications")
        raw = time.perf_counter() - started
        completed = sum(1 for c in app.campaigns.campaigns() if c.status == "Completed")
        assert done.to_contact == len(rows) == campaigns * patients, (done, len(rows))
        return elapsed, raw, len(rows), completed
    finally:
        app.close()


def texting_audience(app: Outreach, workdir: Path, size: int) -> list[str]:
    patients = math.ceil(size / 0.65) + 100  # ~70% of synthetic patients can be texted
    files = write_dataset(workdir, patients, seed=7,
                          today=app.settings.calendar.today(app.clock.now()))
    for kind in ("providers", "patients"):
        app.patients.import_file(kind, files[kind], workdir / "rejects")
    audience = app.directory.default_audience(Channel.TEXT)
    if len(audience) < size:
        raise RuntimeError(f"only {len(audience)} patients can be texted; {size} needed")
    return audience[:size]


def bench_simulation(servers: Any, sizes: Any, report: Report, workdir: Path) -> None:
    """`servers` is unused (the embedded default needs none); `sizes.simulation`, when
    present, is a sequence of (campaigns, patients) pairs."""
    del servers
    for campaigns, patients in getattr(sizes, "simulation", SIZES):
        folder = workdir / f"simulation-{campaigns}x{patients}"
        folder.mkdir(parents=True, exist_ok=True)
        seconds, raw, n, completed = simulate(folder, campaigns, patients)
        report(f"simulation: {campaigns} campaigns × {patients:,} patients, SQLite",
               n / seconds, "communications/s", baseline=n / raw,
               note=f"{seconds:.1f} s simulated to completion ({completed} of {campaigns}"
                    f" completed); raw: one SELECT of {n:,} communications' rows")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_simulation",
                                     description=__doc__)
    parser.add_argument("--campaigns", type=int)
    parser.add_argument("--patients", type=int)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the run")
    args = parser.parse_args(argv)
    configure_logging("console", "WARNING")

    def report(name: str, value: float, unit: str = "", *, baseline: float | None = None,
               note: str = "", **_: Any) -> None:
        ratio = f" (raw {baseline:,.0f}, ratio {value / baseline:.3f})" if baseline else ""
        print(f"{name}: {value:,.0f} {unit}{ratio}  {note}", flush=True)

    with tempfile.TemporaryDirectory(prefix="outreach-bench-sim-") as tmp:
        if args.campaigns and args.patients:
            seconds, raw, n, completed = simulate(Path(tmp), args.campaigns, args.patients,
                                                  args.profile)
            report(f"simulation: {args.campaigns} × {args.patients:,}", n / seconds,
                   "communications/s", baseline=n / raw,
                   note=f"{seconds:.1f} s, {completed} completed")
        else:
            bench_simulation(None, None, report, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
