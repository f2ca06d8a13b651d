"""Reading a request body no larger than a limit (webhooks and public links alike)."""

from __future__ import annotations

from fastapi import Request


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed `limit`: by its declared length
    before reading anything, else while streaming, so an oversized body is never buffered
    whole (a missing or lying Content-Length, or a chunked upload, stops at the limit)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
