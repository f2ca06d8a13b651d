"""What `outreach run --simulate` shows: progress while it runs (on stderr) and one summary
at the end (on stdout, or JSON with --json) — not a log line per text (that is `-v`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import tzinfo
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from api.console import ScriptConsole
from workers.dispatcher import DispatchStats
from workers.runner import Progress as RunProgress

# Piped, a progress line each time another tenth of the communications is completed: a
# long run says it is alive; a log file gets ten lines, not one per text.
STEPS = 10


def _when(progress: RunProgress, zone: tzinfo) -> str:
    return f"{progress.now.astimezone(zone):%a %d %b %H:%M %Z}"


@contextmanager
def progress_display(err: ScriptConsole,
                     zone: tzinfo) -> Iterator[Callable[[RunProgress], None]]:
    """A callback for each runner step: a live bar at a terminal, occasional lines when
    stderr is piped."""
    if err.is_terminal:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("communications", total=None)

            def show_bar(p: RunProgress) -> None:
                bar.update(task, total=p.to_contact or None, completed=p.completed,
                           description=f"{_when(p, zone)} communications")

            yield show_bar
        return
    reported = -1

    def show_line(p: RunProgress) -> None:
        nonlocal reported
        if not p.to_contact:
            return
        step = p.completed * STEPS // p.to_contact
        if step > reported and p.completed:
            reported = step
            err.print(f"completed {p.completed:,} of {p.to_contact:,} communications "
                      f"({_when(p, zone)})", markup=False, highlight=False)

    yield show_line


def summary(progress: RunProgress, stats: DispatchStats) -> dict[str, Any]:
    return {"until": progress.now.isoformat(), "campaigns": progress.campaigns,
            "to_contact": progress.to_contact, "completed": progress.completed,
            **asdict(stats)}


def print_summary(out: ScriptConsole, progress: RunProgress, stats: DispatchStats,
                  zone: tzinfo, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(summary(progress, stats)) + "\n")
        return
    campaigns = f"{progress.campaigns} campaign{'' if progress.campaigns == 1 else 's'}"
    extras = "".join(f", {n:,} {label}" for label, n in (
        ("duplicates", stats.duplicates), ("reconciled", stats.reconciled),
        ("cancelled", stats.cancelled), ("with unknown outcome", stats.unknown)) if n)
    out.print(f"simulated until {_when(progress, zone)}: {progress.completed:,} of "
              f"{progress.to_contact:,} communications completed ({campaigns}); texts: "
              f"{stats.sent:,} sent, {stats.failed:,} failed, {stats.skipped:,} skipped, "
              f"{stats.deferred:,} deferred{extras}", markup=False, highlight=False)
