"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.patient_data import Backend, database_url, open_backend


# A module that needs another `backend` defines its own, which takes precedence.
@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(database_url(request, tmp_path)) as opened:
        yield opened
