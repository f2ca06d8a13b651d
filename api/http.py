"""The HTTP face served by `outreach serve`: Twilio webhooks in, TwiML out, a health check.

Only routing, signature checks and status codes live here; parsing is in
gateways.twilio_webhooks and every decision is the InboundHandler's. Logs carry message
sids and references, never phone numbers or bodies.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from application.inbound import InboundHandler
from domain.keywords import Keyword
from gateways.twilio_webhooks import (
    WebhookError,
    keyword_of,
    parse_inbound,
    parse_status,
    signed_url,
    verify_signature,
)

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_BODY_BYTES = 64 * 1024  # Twilio's payloads are a few hundred bytes
MAX_FIELDS = 200
# Characters XML 1.0 forbids even when escaped: a reply holding one would be unreadable TwiML.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def twiml(reply: str | None) -> str:
    inner = f"<Message>{escape(_XML_ILLEGAL.sub('', reply))}</Message>" if reply else ""
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{inner}</Response>'


def _refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def create_app(
    handler: InboundHandler,
    auth_token: str | None,
    public_url: str | None,
    help_reply: Callable[[], str] | None = None,
    *,
    now: Callable[[], datetime],
) -> FastAPI:
    """`auth_token` None = simulator mode, signatures not required. With a token, every
    webhook must be signed for `public_url` + its path (+ query), the URL Twilio calls.
    `help_reply` answers HELP when the handler itself returns no reply."""
    if auth_token and not public_url:
        raise ValueError("checking Twilio signatures needs the public URL Twilio calls")
    app = FastAPI(title="outreach", docs_url=None, redoc_url=None, openapi_url=None)

    async def read_verified_form(request: Request) -> list[tuple[str, str]] | JSONResponse:
        """The form's fields in order (repeats kept), or the refusal to send back."""
        signature = request.headers.get(SIGNATURE_HEADER)
        if auth_token and not signature:
            return _refuse(403, f"missing {SIGNATURE_HEADER}")
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith(FORM_TYPE):
            return _refuse(400, f"expected a {FORM_TYPE} body")
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return _refuse(413, "body too large")
        try:
            # Parsed by hand, not by request.form(): the signature covers every field,
            # blank and repeated ones included, exactly as sent.
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                              max_num_fields=MAX_FIELDS)
        except (UnicodeDecodeError, ValueError):
            return _refuse(400, "unreadable form body")
        if auth_token and public_url:
            url = signed_url(public_url, request.url.path, request.url.query)
            if not verify_signature(auth_token, url, pairs, signature):
                log.warning("webhook refused: bad signature path=%s", request.url.path)
                return _refuse(403, f"invalid {SIGNATURE_HEADER}")
        return pairs

    @app.post("/webhooks/twilio/sms")
    async def inbound_text(request: Request) -> Response:
        form = await read_verified_form(request)
        if isinstance(form, JSONResponse):
            return form
        try:
            message = parse_inbound(form, now())
        except WebhookError as exc:
            return _refuse(400, exc.reason)
        keyword = keyword_of(message)
        log.info("inbound text sid=%s keyword=%s", message.message_ref, keyword or "-")
        reply = await run_in_threadpool(handler.on_text, message)
        if reply is None and keyword is Keyword.HELP and help_reply is not None:
            reply = help_reply()
        return Response(twiml(reply), media_type="application/xml")

    @app.post("/webhooks/twilio/status")
    async def delivery_status(request: Request) -> Response:
        form = await read_verified_form(request)
        if isinstance(form, JSONResponse):
            return form
        try:
            receipt = parse_status(form, request.query_params.get("ref"), now())
        except WebhookError as exc:
            return _refuse(400, exc.reason)
        log.info("delivery receipt sid=%s ref=%s status=%s",
                 receipt.provider_ref, receipt.reference, receipt.status)
        await run_in_threadpool(handler.on_receipt, receipt)
        return Response(status_code=204)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
