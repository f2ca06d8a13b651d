"""What a simulator gateway remembers: the last `keep` records, oldest first, with an index
by key, and the count of every record ever added.

A simulator stands in for a provider for demos, load runs and tests. Keeping every message
it ever accepted made a long-running dispatcher grow by ~60 MB per 100,000 sends (issue 14);
a real provider keeps the history, not our process. What the simulators still need is
recent: a crashed attempt's reconciliation asks "was this sent since a minute ago?", and a
test reads the few messages it sent. Older records are forgotten together with their keys.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

DEFAULT_KEEP = 10_000


class Recent(Generic[K, T]):
    """Thread-safe. `key` gives the index key of a record; several records may share one."""

    def __init__(self, key: Callable[[T], K], keep: int = DEFAULT_KEEP) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self._key = key
        self._records: deque[T] = deque()
        self._by_key: dict[K, list[T]] = {}
        self._keep = keep
        self._total = 0
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        """Every record ever added, forgotten ones included."""
        return self._total

    def add(self, record: T) -> None:
        key = self._key(record)
        with self._lock:
            self._records.append(record)
            self._by_key.setdefault(key, []).append(record)
            self._total += 1
            if len(self._records) > self._keep:
                self._forget(self._records.popleft())

    def _forget(self, oldest: T) -> None:
        key = self._key(oldest)
        same = self._by_key[key]
        same.pop(0)  # the oldest of its key is the oldest record overall with that key
        if not same:
            del self._by_key[key]

    def snapshot(self) -> list[T]:
        """The kept records, oldest first."""
        with self._lock:
            return list(self._records)

    def with_key(self, key: K) -> list[T]:
        """The kept records with this key, oldest first."""
        with self._lock:
            return list(self._by_key.get(key, ()))

    def count(self, key: K) -> int:
        with self._lock:
            return len(self._by_key.get(key, ()))

    def newest_first(self) -> list[T]:
        with self._lock:
            return list(reversed(self._records))

    def __len__(self) -> int:
        return len(self._records)
