"""Send-intents: 'attempt N of communication C is due'. The scheduler publishes them; the
dispatchers consume them. Keyed by a routing key (a hash of the phone number, never the
number itself) so one number's messages stay in order on one partition.

Delivery is at least once; dispatchers are idempotent by (communication id, attempt).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

INTENT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SendIntent:
    communication_id: UUID
    campaign_id: UUID
    attempt: int
    routing_key: str
    due_at: datetime

    def to_json(self) -> dict[str, object]:
        return {
            "schema": INTENT_SCHEMA_VERSION,
            "communication_id": str(self.communication_id),
            "campaign_id": str(self.campaign_id),
            "attempt": self.attempt,
            "routing_key": self.routing_key,
            "due_at": self.due_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SendIntent:
        if data.get("schema") != INTENT_SCHEMA_VERSION:
            raise ValueError(f"unsupported send-intent schema {data.get('schema')!r}")
        return cls(
            communication_id=UUID(str(data["communication_id"])),
            campaign_id=UUID(str(data["campaign_id"])),
            attempt=int(str(data["attempt"])),
            routing_key=str(data["routing_key"]),
            due_at=datetime.fromisoformat(str(data["due_at"])),
        )


class IntentPublisher(ABC):
    @abstractmethod
    def publish(self, intents: Sequence[SendIntent]) -> None:
        """Returns only once every intent is durably accepted by the bus."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class IntentConsumer(ABC):
    @abstractmethod
    def poll(self, max_records: int = 500, timeout_s: float = 1.0) -> list[SendIntent]:
        """The next intents. Those returned by the previous poll must be committed first."""

    @abstractmethod
    def commit(self) -> None:
        """Everything returned by the last poll is done (its outcome is stored)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class InMemoryIntentBus(IntentPublisher, IntentConsumer):
    """The embedded bus: a queue in the process. Uncommitted intents are redelivered by
    `rewind()`, which tests use to prove the dispatcher's idempotency."""

    def __init__(self) -> None:
        self._queue: deque[SendIntent] = deque()
        self._inflight: list[SendIntent] = []
        self._lock = threading.Lock()

    def publish(self, intents: Sequence[SendIntent]) -> None:
        with self._lock:
            self._queue.extend(intents)

    def poll(self, max_records: int = 500, timeout_s: float = 0.0) -> list[SendIntent]:
        with self._lock:
            if self._inflight:
                raise RuntimeError("commit the previous poll before polling again")
            batch = [self._queue.popleft() for _ in range(min(max_records, len(self._queue)))]
            self._inflight = batch
            return list(batch)

    def commit(self) -> None:
        with self._lock:
            self._inflight = []

    def rewind(self) -> None:
        """Put back what was polled but not committed (as a consumer crash would)."""
        with self._lock:
            self._queue.extendleft(reversed(self._inflight))
            self._inflight = []

    def __len__(self) -> int:
        return len(self._queue)
