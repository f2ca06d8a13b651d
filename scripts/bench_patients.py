"""Benchmark: patient imports and list queries, next to hand-written SQL.

    python -m scripts.bench_patients [--patients N] [--postgres URL] [--repeats N] [--keep]

SQLite (a temporary file) with 100,000 patients by default; PostgreSQL when
OUTREACH_BENCH_POSTGRES_URL (or --postgres) gives a server URL, with 1,000,000 patients: a
fresh database is created on that server and dropped afterwards (--keep keeps it).

Reports import rows/s per file and overall, then for the two built-in views and three
multi-row filters: total count and first-page latency (p50/p95 of count + page, as staff
wait for them), next to the same list written by hand in SQL, and the ratio; then the
console's list page for the same lists, next to the list query under it
(scripts/bench_console.py).
Targets: import ≥ 20,000 rows/s; list p95 < 300 ms for 1M patients on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from application.clock import SimulatedClock
from application.patients import PatientService
from application.settings import Settings
from application.store import open_event_store
from application.synthetic import write_dataset
from domain.lists import Focus, ListQuery, build_query
from domain.lists_views import BUILT_IN_VIEWS
from projections.db import Database, open_database
from tests.fixtures_servers import scratch_database

# Numbers are keyed like a deployment keys them (PostgreSQL refuses to start without it).
os.environ.setdefault("OUTREACH_CONTACT_KEY_SECRET",
                      "benchmark-contact-key-secret-0123456789abcdef")

NOW = datetime(2025, 3, 10, 15, 0, tzinfo=UTC)
TODAY = date(2025, 3, 10)
# A first load imports patients last: each patient row is then written once, with its
# derived columns (scope, A&R, conditions) already known, instead of rewritten by every
# later file (docs/patients.md).
KINDS = ("providers", "appointments", "care-gaps", "conditions", "billing", "patients")


class Report(Protocol):
    def __call__(self, name: str, value: float, unit: str, *, baseline: float | None = None,
                 note: str = "") -> None: ...


def print_report(name: str, value: float, unit: str, *, baseline: float | None = None,
                 note: str = "") -> None:
    line = f"{name:<58} {value:>12,.1f} {unit}"
    if baseline is not None:
        ratio = value / baseline if baseline else float("inf")
        line += f"   hand-written SQL {baseline:,.1f} {unit}  ratio {ratio:.2f}"
    print(line + (f"   {note}" if note else ""), flush=True)


@dataclass(frozen=True)
class Case:
    name: str
    query: ListQuery
    count_sql: str  # hand-written: what a developer would write for the same list
    page_sql: str
    params: tuple[Any, ...]


def _cases() -> list[Case]:
    today = TODAY.isoformat()
    in_a_week = (TODAY + timedelta(days=8)).isoformat()
    in_a_month = "2025-04-11"  # today + one month + 1 day (exclusive bound)
    born_65 = "1960-03-10"
    patient_columns = ("p.patient_id, p.first_name, p.middle_name, p.last_name,"
                       " p.date_of_birth, p.mobile, p.home_phone, p.email, p.pcp_name,"
                       " p.pcp_id, p.payor")
    seniors, week = (v.query for v in BUILT_IN_VIEWS)
    return [
        Case("view: Patients Ages 65+", seniors,
             "SELECT COUNT(*) FROM patients p WHERE p.subscribed = 1 AND p.date_of_birth <= ?",
             f"SELECT {patient_columns} FROM patients p WHERE p.subscribed = 1"
             " AND p.date_of_birth <= ? ORDER BY p.sort_name, p.patient_id LIMIT 50",
             (born_65,)),
        Case("view: Pts w/ Appts in 1 week", week,
             "SELECT COUNT(*) FROM appointments a JOIN patients p ON p.patient_id = a.patient_id"
             " WHERE p.subscribed = 1 AND a.starts_at >= ? AND a.starts_at < ?"
             " AND a.status NOT IN ('Canceled', 'Rescheduled')",
             f"SELECT a.appointment_id, a.starts_at, a.type, a.status, pr.name, {patient_columns}"
             " FROM appointments a JOIN patients p ON p.patient_id = a.patient_id"
             " LEFT JOIN providers pr ON pr.provider_id = a.provider_id"
             " WHERE p.subscribed = 1 AND a.starts_at >= ? AND a.starts_at < ?"
             " AND a.status NOT IN ('Canceled', 'Rescheduled')"
             " ORDER BY pr.name_f, a.starts_at, p.patient_id, a.appointment_id LIMIT 50",
             (today, in_a_week)),
        Case("filters: payor Medicare;Anthem, Active, has mobile",
             build_query(filters=["Payor|contains|Medicare;Anthem",
                                  "Patient Status|is equal to|Active", "Phone (M)|is not empty"]),
             "SELECT COUNT(*) FROM patients p WHERE p.subscribed = 1 AND (p.payor_f LIKE"
             " '%medicare%' OR p.payor_f LIKE '%anthem%') AND p.status = 'Active'"
             " AND p.mobile IS NOT NULL",
             f"SELECT {patient_columns} FROM patients p WHERE p.subscribed = 1 AND (p.payor_f"
             " LIKE '%medicare%' OR p.payor_f LIKE '%anthem%') AND p.status = 'Active'"
             " AND p.mobile IS NOT NULL ORDER BY p.sort_name, p.patient_id LIMIT 50", ()),
        Case("filters: A&R flu, no appointment within a month; A&R count desc",
             build_query(filters=["A&R|contains|Influenza",
                                  "Next Appointment Date|not in one month"],
                         sort=["A&R Count:desc", "Patient Name"]),
             "SELECT COUNT(*) FROM patients p WHERE p.subscribed = 1 AND p.ar_f LIKE"
             " '%influenza%' AND NOT EXISTS (SELECT 1 FROM appointments a"
             " WHERE a.patient_id = p.patient_id AND a.starts_at >= ? AND a.starts_at < ?"
             " AND a.status_f IN ('scheduled', 'confirmed'))",
             f"SELECT {patient_columns} FROM patients p WHERE p.subscribed = 1 AND p.ar_f LIKE"
             " '%influenza%' AND NOT EXISTS (SELECT 1 FROM"
             " appointments a WHERE a.patient_id = p.patient_id AND a.starts_at >= ? AND"
             " a.starts_at < ? AND a.status_f IN ('scheduled', 'confirmed'))"
             " ORDER BY p.ar_count DESC, p.sort_name, p.patient_id LIMIT 50",
             (today, in_a_month)),
        Case("filters: diabetes, age 40-75, email, visit in last year",
             build_query(filters=["Conditions|contains|diabetes", "Age|between|40..75",
                                  "Email|is not empty", "Last Visit|in last 365 days"]),
             "SELECT COUNT(*) FROM patients p WHERE p.subscribed = 1 AND p.conditions_f LIKE"
             " '%diabetes%' AND p.date_of_birth > ? AND p.date_of_birth <= ? AND p.email IS"
             " NOT NULL AND EXISTS (SELECT 1 FROM appointments a WHERE a.patient_id ="
             " p.patient_id AND a.starts_at >= ? AND a.starts_at < ? AND a.status_f NOT IN"
             " ('canceled', 'rescheduled', 'no-show'))",
             f"SELECT {patient_columns} FROM patients p WHERE p.subscribed = 1 AND"
             " p.conditions_f LIKE '%diabetes%' AND p.date_of_birth > ? AND p.date_of_birth"
             " <= ? AND p.email IS NOT NULL AND EXISTS (SELECT 1 FROM appointments a WHERE"
             " a.patient_id = p.patient_id AND a.starts_at >= ? AND a.starts_at < ? AND"
             " a.status_f NOT IN ('canceled', 'rescheduled', 'no-show'))"
             " ORDER BY p.sort_name, p.patient_id LIMIT 50",
             ("1949-03-10", "1985-03-10", "2024-03-10", today)),
    ]


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return statistics.median(ordered), p95


def _timed(action: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    action()  # warm the caches: staff run a view more than once
    samples, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples, result


def _hand_written(db: Database, case: Case) -> int:
    params = case.params
    with db.transaction() as tx:
        row = tx.fetchone(case.count_sql, params)
        tx.fetchall(case.page_sql, params)
    return int(row[0]) if row else 0


def run(report: Report = print_report, *, patients: int | None = None,
        postgres_url: str | None = None, repeats: int = 20, keep: bool = False,
        workdir: Path | None = None, reuse: str | None = None) -> dict[str, float]:
    """Generate, import, query; report every figure. Returns them by name. `reuse` (a
    database URL from an earlier `--keep` run) skips generating and importing."""
    figures: dict[str, float] = {}

    def emit(name: str, value: float, unit: str, *, baseline: float | None = None,
             note: str = "") -> None:
        figures[name] = value
        report(name, value, unit, baseline=baseline, note=note)

    if reuse:
        _measure(reuse, None, repeats, emit)
        return figures

    server = postgres_url or os.environ.get("OUTREACH_BENCH_POSTGRES_URL")
    size = patients or (1_000_000 if server else 100_000)
    folder = workdir or Path(tempfile.mkdtemp(prefix="outreach-bench-patients-"))
    with ExitStack() as cleanups:
        if not keep and workdir is None:
            cleanups.callback(shutil.rmtree, folder, ignore_errors=True)
        url = cleanups.enter_context(scratch_database(server, "outreach_bench", keep)) \
            if server else f"sqlite:///{folder / 'db' / 'outreach.db'}"
        print(f"{'PostgreSQL' if server else 'SQLite'}, {size:,} patients, data in {folder}",
              flush=True)
        started = time.perf_counter()
        paths = write_dataset(folder / "data", size, seed=2025, today=TODAY)
        emit("generate data set", time.perf_counter() - started, "s")
        _measure(url, paths, repeats, emit)
    return figures


def _measure(url: str, paths: dict[str, Path] | None, repeats: int,
             emit: Callable[..., None]) -> None:
    """Import the files (unless None: already imported), settle, time the lists."""
    settings = Settings(database_url=url)
    store = open_event_store(settings)
    db = open_database(url)
    try:
        service = PatientService(store, db, SimulatedClock(NOW), settings)
        if paths is not None:
            _bench_imports(service, paths, emit)
        started = time.perf_counter()
        _settle(url, db)
        emit("vacuum + analyze (what autovacuum does in time)",
             time.perf_counter() - started, "s")
        _bench_lists(service, db, repeats, emit)
        # The console's list page beside the same query (issue 13), on the same data.
        from scripts.bench_console import bench_list_page

        bench_list_page(url, NOW, [(c.name, c.query) for c in _cases()], repeats, emit)
    finally:
        db.close()
        store.close()


def _bench_imports(service: PatientService, paths: dict[str, Path],
                   emit: Callable[..., None]) -> None:
    total_rows, total_seconds = 0, 0.0
    for kind in KINDS:
        summary = service.import_file(kind, paths[kind], paths[kind].parent / "rejects")
        total_rows += summary.rows
        total_seconds += summary.seconds
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in summary.phases.items())
        emit(f"import {kind} ({summary.rows:,} rows, {summary.rejected:,} rejected)",
             summary.rows_per_second, "rows/s", note=phases)
    emit(f"import all files ({total_rows:,} rows)", total_rows / total_seconds, "rows/s")
    started = time.perf_counter()
    again = service.import_file("patients", paths["patients"], paths["patients"].parent)
    emit("re-import patients (nothing changes)", again.rows / (time.perf_counter() - started),
         "rows/s", note=f"{again.unchanged:,} unchanged")


def _settle(url: str, db: Database) -> None:
    """Bring statistics and the visibility map up to date, as autovacuum would after a bulk
    load (some servers, like this benchmark's, run with autovacuum off)."""
    if db.dialect == "postgres":
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
    else:
        db.execute("ANALYZE")


def _bench_lists(service: PatientService, db: Database, repeats: int,
                 emit: Callable[..., None]) -> None:
    for case in _cases():
        samples, result = _timed(partial(service.list, case.query), repeats)
        base_samples, base_total = _timed(partial(_hand_written, db, case), repeats)
        p50, p95 = _percentiles(samples)
        b50, b95 = _percentiles(base_samples)
        unit = "appointments" if case.query.focus == Focus.APPOINTMENT else "patients"
        note = f"total {result.total:,} {unit}"
        if result.total != base_total:
            note += f" (hand-written SQL counts {base_total:,}: they differ!)"
        emit(f"{case.name}: p50", p50, "ms", baseline=b50, note=note)
        emit(f"{case.name}: p95", p95, "ms", baseline=b95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, help="how many patients to generate")
    parser.add_argument("--postgres", help="PostgreSQL server URL (a fresh database is made)")
    parser.add_argument("--repeats", type=int, default=20, help="runs per list query")
    parser.add_argument("--keep", action="store_true", help="keep the data and the database")
    parser.add_argument("--reuse", help="time the lists on this already imported database")
    args = parser.parse_args()
    run(patients=args.patients, postgres_url=args.postgres, repeats=args.repeats,
        keep=args.keep, reuse=args.reuse)


if __name__ == "__main__":
    main()
