"""Instants in read models are fixed-width UTC ISO strings, so text order is time order on
SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text)  # Python 3.11 reads the trailing Z as UTC
