"""Shared fixtures: real servers (tests/fixtures_servers.py) and the application on either
stack (tests/fixtures_app.py)."""

pytest_plugins = ["tests.fixtures_servers", "tests.fixtures_app"]
