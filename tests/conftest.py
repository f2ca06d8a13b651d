"""Shared fixtures: real servers (tests/fixtures_servers.py) and the application (fixtures_app)."""

import os

pytest_plugins = ["tests.fixtures_servers"]
if os.path.exists(os.path.join(os.path.dirname(__file__), "fixtures_app.py")):
    pytest_plugins.append("tests.fixtures_app")
