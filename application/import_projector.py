"""Projecting a large import in a process of its own, beside the importing one.

An import records windows of rows in the event store and has the patient projection catch
up with each window while it records the next (application/patients_import.py). In a
thread, the projection's Python (building ~50 columns a patient row) and the importer's
(comparing, encoding events) take turns on one interpreter lock: profiles of a million-row
patients file showed the projecting thread waiting for the lock about a third of the time
while the machine's cores were a third idle. A child process has its own interpreter.

The child is `python -m application.import_projector`, a fresh interpreter (no
multiprocessing start method: callers need no `__main__` guard). The parent sends one
line of JSON (the event store's settings and the read model's URL, through the pipe rather
than the command line, where any user could read a password), then one line per saved
window; the child catches up and answers with the window's number. Catching up is what
any projector does (projections/runner.py locks the projection's tracking row), so a
crash of either process loses nothing: the events are stored, and the next catch-up
projects them.

Only for PostgreSQL: a SQLite read model has one writer at a time anyway.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

from application.import_rows import child_failure, start_child


class ImportProjectionError(Exception):
    """The projecting process failed (its last line of error output says why)."""


class ProjectorProcess:
    """The same face as patients_import.BackgroundCatchUp: request, wait_for, done, close."""

    def __init__(self, store_env: Mapping[str, str], database_url: str) -> None:
        self._child, self._errors = start_child(
            __name__, [], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self._done = 0
        self._send(json.dumps({"env": dict(store_env), "database_url": database_url}))

    @property
    def done(self) -> int:
        """Windows known to be projected (answers not yet read count later)."""
        return self._done

    def _send(self, line: str) -> None:
        assert self._child.stdin is not None
        try:
            self._child.stdin.write(line + "\n")
            self._child.stdin.flush()
        except BrokenPipeError:
            self._failed()

    def request(self, window: int) -> None:
        self._send(str(window))

    def wait_for(self, window: int) -> None:
        assert self._child.stdout is not None
        while self._done < window:
            answer = self._child.stdout.readline()
            if not answer:
                self._failed()
            self._done = int(answer)

    def _failed(self) -> NoReturn:
        raise ImportProjectionError(child_failure(self._child, self._errors, "projecting"))

    def close(self) -> None:
        """No more windows: the child finishes what it was asked and exits."""
        try:
            if self._child.stdin is not None:
                self._child.stdin.close()
        except BrokenPipeError:
            pass
        self._child.wait()
        if self._child.stdout is not None:
            self._child.stdout.close()
        self._errors.close()


def store_settings(store: Any) -> dict[str, str] | None:
    """What a child needs to open the same event store: the settings it was opened with
    (those that differ from this process's environment, which the child inherits). None
    when the store is not PostgreSQL (another process could not see it, or share it)."""
    env = dict(getattr(store, "env", {}) or {})
    if env.get("PERSISTENCE_MODULE") != "eventsourcing.postgres":
        return None
    return {key: value for key, value in env.items() if os.environ.get(key) != value}


def _child_main() -> int:
    from application.store import EventStore
    from projections.db import open_database
    from projections.patients import PatientsProjection
    from projections.runner import catch_up

    # Answers go out on the original stdout; anything else printed (logs) goes to stderr,
    # where it cannot be mistaken for an answer.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    config = json.loads(sys.stdin.readline())
    store = EventStore(env=config["env"])
    db = open_database(config["database_url"], pool_size=1)
    projection = PatientsProjection()
    try:
        for line in sys.stdin:
            catch_up(store, db, [projection])
            answers.write(line)
            answers.flush()
    except BrokenPipeError:  # the importer is gone; what was projected is committed
        return 1
    finally:
        db.close()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
