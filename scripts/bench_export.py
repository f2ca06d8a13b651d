"""The events export benchmark (issue 14): `outreach events` (its own process, to /dev/null)
beside a raw psycopg server-side cursor reading the same stored rows and writing them, in
the same run; and the export's peak RSS (VmHWM) at two history sizes, to show it is flat.

    python -m scripts.bench_export [--events N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from application.settings import Settings
from application.store import open_event_store
from domain.communication import Communication

Report = Callable[..., None]
EVENTS = 200_000  # 4 events per communication: planned, attempt started, accepted, delivered
DUE = datetime(2026, 3, 3, 14, tzinfo=UTC)


def fill(url: str, events: int) -> None:
    """Communications planned, sent and delivered, saved 500 at a time (the store's batched
    save, as activation and a busy dispatcher write them)."""
    store = open_event_store(Settings(database_url=url))
    try:
        campaign, batch = uuid.uuid4(), []
        for n in range(events // 4):
            at = DUE + timedelta(seconds=4 * n)
            c = Communication(campaign_id=campaign, patient_id=f"P{n:07d}", channel="text",
                              sequence=n, due_at=at)
            c.start_attempt(1, at)
            c.accept(1, at, f"SM{n:032d}", 1)
            c.confirm_delivery(at + timedelta(seconds=3))
            batch.append(c)
            if len(batch) == 500:
                store.save(*batch)
                batch = []
        if batch:
            store.save(*batch)
    finally:
        store.close()


def raw_cursor(url: str) -> tuple[float, int]:
    """(seconds, rows): a named cursor over the events table, each row written as a line."""
    started, rows = time.perf_counter(), 0
    with psycopg.connect(url) as conn, open(os.devnull, "wb") as out, conn.cursor(
            name="raw_export") as cursor:
        cursor.itersize = 1_000
        cursor.execute("SELECT notification_id, originator_id, originator_version, topic, "
                       "state FROM outreach_events ORDER BY notification_id")
        for position, originator_id, version, topic, state in cursor:
            out.write(b"%d\t%s\t%d\t%s\t%s\n" % (position, str(originator_id).encode(),
                                                 version, topic.encode(), bytes(state)))
            rows += 1
    return time.perf_counter() - started, rows


def outreach_events(url: str, *args: str) -> tuple[float, int]:
    """(seconds, peak RSS in kB) of `outreach events ARGS > /dev/null`, its own process:
    the peak is read from /proc just before it exits (it waits on a pipe for that)."""
    env = {**os.environ, "OUTREACH_DATABASE_URL": url, "OUTREACH_LOG_LEVEL": "WARNING"}
    code = ("import atexit, re\n"
            "def hwm():\n"
            "    status = open('/proc/self/status').read()\n"
            "    print(re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=__import__('sys')"
            ".stderr)\n"
            "atexit.register(hwm)\n"
            "from api.cli import main\nmain()\n")
    started = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        done = subprocess.run([sys.executable, "-c", code, "events", *args], env=env,
                              stdout=devnull, stderr=subprocess.PIPE, text=True, check=True)
    seconds = time.perf_counter() - started
    return seconds, int(done.stderr.strip().splitlines()[-1])


def bench_export(servers: Any, sizes: Any, report: Report, workdir: Path) -> None:
    """Export rate (events/s) beside the raw cursor's, public and --internal; peak RSS of the
    export at N/4 and N events. `sizes.export_events`, when present, overrides N."""
    del workdir
    n = int(getattr(sizes, "export_events", EVENTS))
    peaks: dict[int, int] = {}
    for events in (n // 4, n):
        with servers.database("bench_export") as url:
            fill(url, events)
            raw_seconds, rows = raw_cursor(url)
            for view in ((), ("--internal",)):
                seconds, peak = outreach_events(url, *view)
                if events == n:
                    report(f"export: outreach events {' '.join(view) or '(public)'}",
                           rows / seconds, "events/s", baseline=rows / raw_seconds,
                           note=f"{rows:,} stored events, process start included; raw: "
                                "psycopg named cursor, each row written to /dev/null")
                peaks[events] = max(peaks.get(events, 0), peak)
    report(f"export: peak RSS at {n // 4:,} events", peaks[n // 4] / 1024, "MB")
    report(f"export: peak RSS at {n:,} events", peaks[n] / 1024, "MB",
           baseline=peaks[n // 4] / 1024, note="baseline: the same export of a quarter "
                                               "of the history (flat: ratio ≈ 1)")


def _print_report(name: str, value: float, unit: str = "", *, baseline: float | None = None,
                  note: str = "") -> None:
    ratio = f" (raw {baseline:,.1f}, ratio {value / baseline:.2f})" if baseline else ""
    print(f"{name}: {value:,.1f} {unit}{ratio}  {note}", flush=True)


def main(argv: list[str] | None = None) -> int:
    import tempfile
    from contextlib import ExitStack
    from types import SimpleNamespace

    from scripts.benchmarks import BENCH_CONTACT_KEY_SECRET, Servers, quiet

    parser = argparse.ArgumentParser(prog="python -m scripts.bench_export")
    parser.add_argument("--events", type=int, default=EVENTS)
    args = parser.parse_args(argv)
    quiet()
    os.environ.setdefault("OUTREACH_CONTACT_KEY_SECRET", BENCH_CONTACT_KEY_SECRET)
    with tempfile.TemporaryDirectory(prefix="outreach-bench-") as tmp, ExitStack() as stack:
        bench_export(Servers(stack, Path(tmp)), SimpleNamespace(export_events=args.events),
                     _print_report, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
