"""Shared fixtures: real servers (tests/fixtures_servers.py) and the application on either
stack (tests/fixtures_app.py)."""

import os

# Every public event the suite publishes or exports is validated against the shipped JSON
# Schema (bus.public_events.public_message raises on a mismatch). Set at import, so the
# `outreach` subprocesses of the end-to-end tests inherit it.
os.environ.setdefault("OUTREACH_CHECK_EVENT_SCHEMA", "1")

pytest_plugins = ["tests.fixtures_servers", "tests.fixtures_app"]
