"""`Idempotency-Key` on the POSTs that create (imports, campaigns, users, views, opt-outs,
follow-ups): a client that lost the answer sends the same request again with the same key
and gets the first answer back, and nothing is created twice.

Usage in a route module (the key is optional: without it the request simply runs):

    from api.staff.idempotency import IdempotencyKey, idempotent

    @router.post("/views", status_code=201, response_model=ViewOut)
    async def save_view(request: Request, actor: CurrentActor, body: ViewIn,
                        key: IdempotencyKey = None) -> Response:
        async def create() -> tuple[int, dict[str, Any]]:
            saved = await run_in_threadpool(staff_of(request).patients.save_view, actor, ...)
            return 201, view_json(saved)
        return await idempotent(request, actor, create)

`create` returns (status, JSON-able body); a DomainError it raises is answered as usual
(a problem) and the key is released, so a corrected retry may use it again. A multipart
route passes `body=` (the bytes that identify the request: e.g. the file's and fields'
content), because the raw body has been consumed by the form parser.

Rules: keys belong to the user who sent them (another user's same key is another key); the
same key with a different method, path or body is a 422 problem; a retry while the first
is still running is a 409 problem; keys are forgotten after 24 hours.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import uuid4

from fastapi import Header, Request, Response
from fastapi.encoders import jsonable_encoder
from starlette.concurrency import run_in_threadpool

from domain.access import Actor
from domain.errors import DomainError
from projections.db import Database

HEADER = "Idempotency-Key"
KEEP_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 255
RUNNING = 0  # status of a key whose first request has not answered yet

DDL = """
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT NOT NULL, user_id TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,
    body_sha256 TEXT NOT NULL, status INTEGER NOT NULL, response_body TEXT NOT NULL,
    created_at TEXT NOT NULL, PRIMARY KEY (user_id, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_at)
"""

IdempotencyKey = Annotated[str | None, Header(
    alias=HEADER, max_length=MAX_KEY_LENGTH,
    description="Send the same key again to get the first answer back instead of creating "
                "twice (kept 24 hours).")]


class KeyReused(DomainError):
    """The key was used for another request (another method, path or body)."""


class KeyInFlight(DomainError):
    """The key's first request is still running."""


class IdempotencyStore:
    """The keys, in the projection database (both SQLite and PostgreSQL)."""

    def __init__(self, db: Database, now: Callable[[], datetime]) -> None:
        self.db = db
        self.now = now
        db.migrate(DDL)

    def claim(self, actor: Actor, key: str, method: str, path: str,
              body_sha256: str) -> tuple[int, str] | None:
        """None: the key is ours now (run the request, then `remember` or `release`).
        Otherwise the stored (status, body) of the first request."""
        now = self.now()
        cutoff = (now - KEEP_FOR).isoformat()
        # Ours if the row holds our claim afterwards (no rowcount on both drivers' Tx).
        claim = f"claim:{uuid4()}"
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM idempotency_keys WHERE created_at < ?", (cutoff,))
            tx.execute(
                "INSERT INTO idempotency_keys (key, user_id, method, path, body_sha256, status,"
                " response_body, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (user_id, key) DO NOTHING",
                (key, actor.user_id, method, path, body_sha256, RUNNING, claim,
                 now.isoformat()))
            row = tx.fetchone(
                "SELECT method, path, body_sha256, status, response_body"
                " FROM idempotency_keys WHERE user_id = ? AND key = ?", (actor.user_id, key))
        assert row is not None
        if (str(row[0]), str(row[1]), str(row[2])) != (method, path, body_sha256):
            raise KeyReused(f"this {HEADER} was used for another request: use a new key")
        if int(row[3]) == RUNNING and str(row[4]) == claim:
            return None
        if int(row[3]) == RUNNING:
            raise KeyInFlight(f"a request with this {HEADER} is still running: retry later")
        return int(row[3]), str(row[4])

    def remember(self, actor: Actor, key: str, status: int, body: str) -> None:
        self.db.execute("UPDATE idempotency_keys SET status = ?, response_body = ?"
                        " WHERE user_id = ? AND key = ?", (status, body, actor.user_id, key))

    def release(self, actor: Actor, key: str) -> None:
        self.db.execute("DELETE FROM idempotency_keys WHERE user_id = ? AND key = ?",
                        (actor.user_id, key))


async def idempotent(request: Request, actor: Actor,
                     create: Callable[[], Awaitable[tuple[int, Any]]], *,
                     body: bytes | None = None) -> Response:
    """Run `create` once per Idempotency-Key (see the module's docstring)."""
    key = request.headers.get(HEADER)
    if not key:
        status, content = await create()
        return Response(_json(content), status_code=status, media_type="application/json")
    store: IdempotencyStore = request.app.state.idempotency
    raw = body if body is not None else await request.body()
    digest = hashlib.sha256(raw).hexdigest()
    stored = await run_in_threadpool(store.claim, actor, key, request.method,
                                     request.url.path, digest)
    if stored is not None:
        return Response(stored[1], status_code=stored[0], media_type="application/json",
                        headers={"Idempotent-Replayed": "true"})
    try:
        status, content = await create()
    except BaseException:
        await run_in_threadpool(store.release, actor, key)
        raise
    text = _json(content)
    await run_in_threadpool(store.remember, actor, key, status, text)
    return Response(text, status_code=status, media_type="application/json")


def _json(content: Any) -> str:
    return json.dumps(jsonable_encoder(content), ensure_ascii=False)
