"""A projection turns stored events into read-model rows, tracked in the same transaction."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from projections.db import Tx


class Projection(ABC):
    #: unique, stable: the tracking row's key
    name: str

    @abstractmethod
    def ddl(self) -> str:
        """`;`-separated CREATE TABLE/INDEX IF NOT EXISTS statements (portable SQL)."""

    @abstractmethod
    def apply(self, tx: Tx, event: Any, position: int) -> None:
        """Apply one domain event (ignore the ones this projection does not care about)."""

    def reset(self, tx: Tx) -> None:  # noqa: B027 - optional
        """Empty the projection's tables before a rebuild from the start of history."""
