"""Twilio Voice's webhooks on `outreach serve`: the script fetch when a call connects, status
callbacks, the asynchronous answering-machine verdict and key presses. Each is signed as
the SMS ones are (api.http's `read_verified_form`); parsing is gateways.
twilio_voice_webhooks', every decision application.voice_events'. Logs carry call sids and
references, never numbers or words said.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from application.inbound_service import ReceiptConflictError
from application.voice_events import VoiceEventService
from gateways.twilio_voice_webhooks import parse_amd, parse_call_status, parse_gather
from gateways.twilio_webhooks import WebhookError
from gateways.voice import AMD_PATH, GATHER_PATH, STATUS_PATH, TWIML_PATH

log = logging.getLogger(__name__)

XML = "application/xml"
ReadForm = Callable[[Request], Awaitable[list[tuple[str, str]] | JSONResponse]]


def _refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def _busy() -> JSONResponse:
    # Not applied, nothing lost: the communication kept changing under the callback.
    return JSONResponse({"error": "communication busy, retry"}, status_code=503,
                        headers={"Retry-After": "1"})


def add_voice_routes(app: FastAPI, read_verified_form: ReadForm,
                     service: VoiceEventService,
                     now: Callable[[], datetime] | None = None) -> None:
    """`now` stamps callbacks that carry no Timestamp (default: the service's clock)."""
    clock = now or service.clock.now

    @app.post(TWIML_PATH)
    async def call_script(request: Request) -> Response:
        form = await read_verified_form(request)
        if isinstance(form, JSONResponse):
            return form
        fields = dict(form)
        ref = request.query_params.get("ref") or ""
        log.info("call script fetch sid=%s ref=%s", fields.get("CallSid", "-"), ref)
        body = await run_in_threadpool(service.twiml, ref, fields.get("AnsweredBy") or None)
        return Response(body, media_type=XML)

    async def apply(request: Request, parse: Callable[..., Any],
                    handle: Callable[[Any], Any]) -> Any:
        """A verified callback, parsed and applied: the service's answer, or the refusal
        to send back (a Response)."""
        form = await read_verified_form(request)
        if isinstance(form, JSONResponse):
            return form
        try:
            parsed = parse(form, request.query_params.get("ref"), clock())
        except WebhookError as exc:
            return _refuse(400, exc.reason)
        log.info("call callback path=%s sid=%s ref=%s", request.url.path, parsed.call_sid,
                 parsed.reference)
        try:
            return await run_in_threadpool(handle, parsed)
        except ReceiptConflictError:
            return _busy()

    @app.post(STATUS_PATH)
    async def call_status(request: Request) -> Response:
        answer = await apply(request, parse_call_status, service.on_status)
        return answer if isinstance(answer, Response) else Response(status_code=204)

    @app.post(AMD_PATH)
    async def call_amd(request: Request) -> Response:
        answer = await apply(request, parse_amd, service.on_amd)
        return answer if isinstance(answer, Response) else Response(status_code=204)

    @app.post(GATHER_PATH)
    async def call_keys(request: Request) -> Response:
        answer = await apply(request, parse_gather, service.on_gather)
        return answer if isinstance(answer, Response) else Response(answer, media_type=XML)
