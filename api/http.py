"""The HTTP face served by `outreach serve`: Twilio webhooks in, TwiML out, and the probes
(`/healthz` liveness, `/readyz` readiness, `/metrics` for Prometheus; workers.health,
workers.metrics).

Only routing, signature checks and status codes live here; parsing is in
gateways.twilio_webhooks and every decision is the InboundHandler's. Logs carry message
sids and references, never phone numbers or bodies.

Signatures are always checked: an app without the auth token and public URL is refused at
creation, unless the caller asks, by name, for the development mode without checks (which
`outreach serve` allows only with the simulator gateway: see serving_app).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.bodies import read_limited
from api.webhooks_email import EmailWebhooks, add_email_routes
from api.webhooks_voice import add_voice_routes
from application.inbound import InboundHandler
from application.inbound_service import ReceiptConflictError
from application.voice_events import VoiceEventService
from domain.keywords import Keyword
from gateways import sns
from gateways.twilio_webhooks import (
    WebhookError,
    keyword_of,
    parse_inbound,
    parse_status,
    signed_url,
    verify_signature,
)
from workers.health import Health, database_check
from workers.metrics import CONTENT_TYPE, Metrics

if TYPE_CHECKING:
    from application.bootstrap import Outreach

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_BODY_BYTES = 64 * 1024  # Twilio's payloads are a few hundred bytes
INSECURE_FLAG = "--insecure-dev-no-signatures"
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
    insecure_dev_no_signatures: bool = False,
    health: Health | None = None,
    metrics: Metrics | None = None,
    email: EmailWebhooks | None = None,
    twilio: bool = True,
    voice: VoiceEventService | None = None,
) -> FastAPI:
    """Every webhook must be signed with `auth_token` for `public_url` + its path (+ query),
    the URL Twilio calls; both are required. Only `insecure_dev_no_signatures=True` (and no
    token) serves unsigned requests, for development against the simulator. `help_reply`
    answers HELP when the handler itself returns no reply. `health` holds the readiness
    checks (none: always ready), `metrics` the process's metrics (none: a private registry),
    `email` the SES notifications and unsubscribe links (api.webhooks_email; none: not
    served). `twilio=False` (a clinic sending email only): no Twilio route is served, so
    there is nothing to sign."""
    if not twilio:
        if auth_token or insecure_dev_no_signatures:
            raise ValueError("no Twilio routes: neither an auth token nor the no-signature "
                             "mode applies")
    elif insecure_dev_no_signatures:
        if auth_token:
            raise ValueError("an auth token and the no-signature mode exclude each other")
    elif not auth_token:
        raise ValueError("checking Twilio signatures needs the auth token (or the explicit "
                         "insecure_dev_no_signatures mode)")
    elif not public_url:
        raise ValueError("checking Twilio signatures needs the public URL Twilio calls")
    app = FastAPI(title="outreach", docs_url=None, redoc_url=None, openapi_url=None)
    _answer_outages_with_503(app)
    health = health or Health(now=now)
    metrics = metrics or Metrics()
    app.add_middleware(_CountResponses, metrics=metrics)

    async def read_verified_form(request: Request) -> list[tuple[str, str]] | JSONResponse:
        """The form's fields in order (repeats kept), or the refusal to send back."""
        signature = request.headers.get(SIGNATURE_HEADER)
        if auth_token and not signature:
            return _refuse(403, f"missing {SIGNATURE_HEADER}")
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith(FORM_TYPE):
            return _refuse(400, f"expected a {FORM_TYPE} body")
        raw = await read_limited(request, MAX_BODY_BYTES)
        if raw is None:
            return _refuse(413, f"body larger than {MAX_BODY_BYTES} bytes")
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

    if twilio and voice is not None:
        add_voice_routes(app, read_verified_form, voice, now)
    if twilio:  # an email-only clinic serves no Twilio webhook at all
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
            try:
                await run_in_threadpool(handler.on_receipt, receipt)
            except ReceiptConflictError:
                # Not applied, nothing lost: the communication kept changing under it. Asking
                # for a retry is honest where a 500 would not be.
                return JSONResponse({"error": "communication busy, retry"}, status_code=503,
                                    headers={"Retry-After": "1"})
            return Response(status_code=204)

    if email is not None:
        add_email_routes(app, email)

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        # Answered on the event loop itself: a loop blocked by a handler does not answer,
        # and the probe times out.
        return health.liveness()

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        # The checks block (a query with a connect timeout): off the event loop.
        status, body = await run_in_threadpool(health.readiness)
        return JSONResponse(body, status_code=status)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return app


class _CountResponses:
    """Counts every response by path and status (workers.metrics, outreach_http_responses).
    Plain ASGI, not BaseHTTPMiddleware: the webhook bodies are read as streams, which must
    reach the routes untouched."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        answered = False

        async def counting(message: Any) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                self.metrics.http_response(path, int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, counting)
        except Exception:
            if not answered:  # the server answers 500 for it, outside this middleware
                self.metrics.http_response(path, 500)
            raise


def _answer_outages_with_503(app: FastAPI) -> None:
    """A webhook that arrives while the database is unreachable (a restart, a failover) gets
    503 with Retry-After, never 500: Twilio retries it, and the server keeps running; the
    pools reconnect once the database is back (workers.resilience)."""
    from workers.resilience import DATABASE_OUTAGE_ERRORS

    async def unavailable(request: Request, exc: Exception) -> Response:
        log.warning("webhook refused: database unavailable path=%s error=%s",
                    request.url.path, type(exc).__name__)
        return JSONResponse({"error": "database unavailable, retry"}, status_code=503,
                            headers={"Retry-After": "5"})

    for error in DATABASE_OUTAGE_ERRORS:
        app.add_exception_handler(error, unavailable)


def serving_app(o: Outreach, insecure_dev_no_signatures: bool = False) -> FastAPI:
    """The webhooks and probes (`webhook_app`), with the staff API (api/staff) and the web
    console (api/web) on the same app: staff routes and pages always need a signed-in user,
    whatever the webhooks' mode."""
    from api.staff.app import add_staff_routes
    from api.web.app import add_console

    app = webhook_app(o, insecure_dev_no_signatures)
    add_staff_routes(app, o.staff, now=o.clock.now)
    add_console(app, o.staff)  # the staff web console, /console (api/web)
    return app


def webhook_app(o: Outreach, insecure_dev_no_signatures: bool = False) -> FastAPI:
    """The app `outreach serve` runs. Refuses (ValueError, one line naming the setting to
    give) to serve without what signatures need: the auth token and OUTREACH_PUBLIC_URL.
    The development mode without checks is allowed only with the simulator gateway: with
    any Twilio credential set, real numbers could be opted out by anyone."""
    s = o.settings
    # Ready when the database answers: webhooks need nothing else. `serve` neither
    # publishes to the broker nor runs the relay (the workers' /readyz cover those), and
    # taking it out of a load balancer while Kafka is away would only drop inbound STOPs
    # and receipts that it can store meanwhile.
    health = Health(now=o.clock.now)
    health.add_check(database_check(o.db))
    metrics = Metrics.for_process()
    insecure = insecure_dev_no_signatures or s.insecure_dev_no_signatures
    if insecure:
        configured = [name for name, value in (
            ("TWILIO_ACCOUNT_SID", s.twilio_account_sid),
            ("TWILIO_AUTH_TOKEN", s.twilio_auth_token),
            ("TWILIO_MESSAGING_SERVICE_SID", s.twilio_messaging_service_sid)) if value]
        if configured:
            raise ValueError(f"{INSECURE_FLAG} is for the simulator gateway only, but "
                             f"{', '.join(configured)} is set: unset it or drop the flag")
        log.warning("INSECURE: webhook signatures are NOT verified (%s). Anyone who can "
                    "reach this server can opt numbers out and forge delivery receipts. "
                    "Local development with the simulator only.", INSECURE_FLAG)
        return create_app(o.inbound, None, s.public_url, now=o.clock.now,
                          insecure_dev_no_signatures=True, health=health, metrics=metrics,
                          email=email_webhooks(o), voice=o.voice)
    twilio_configured = any((s.twilio_account_sid, s.twilio_auth_token,
                             s.twilio_messaging_service_sid))
    if s.uses_ses and not twilio_configured:
        # Email only: SES's notifications (always signature-checked) and unsubscribe links.
        return create_app(o.inbound, None, s.public_url, now=o.clock.now, health=health,
                          metrics=metrics, email=email_webhooks(o), twilio=False)
    if not s.twilio_auth_token:
        raise ValueError("webhooks need TWILIO_AUTH_TOKEN and OUTREACH_PUBLIC_URL to verify "
                         "Twilio's signatures (local development with the simulator only: "
                         f"{INSECURE_FLAG})")
    if not s.public_url:
        raise ValueError("checking Twilio's signatures needs OUTREACH_PUBLIC_URL, the https "
                         "base URL Twilio calls")
    return create_app(o.inbound, s.twilio_auth_token, s.public_url, now=o.clock.now,
                      health=health, metrics=metrics, email=email_webhooks(o), voice=o.voice)


def email_webhooks(o: Outreach) -> EmailWebhooks:
    """SES's notifications are accepted only from the configured SNS topics, whatever the
    mode: their signatures are always checked (there is no insecure mode for them).
    OUTREACH_SNS_CERTIFICATE_FILE (tests, air-gapped sites) only changes where the signing
    certificate's bytes come from: its URL is still checked first (gateways.sns.verify)."""
    path = o.settings.sns_certificate_file
    if path is None:
        return EmailWebhooks(service=o.email, topic_arns=o.settings.ses_topics,
                             organisation=o.settings.organisation)
    return EmailWebhooks(service=o.email, topic_arns=o.settings.ses_topics,
                         organisation=o.settings.organisation,
                         fetch_certificate=certificate_from_file(path))


def certificate_from_file(path: Path) -> Callable[[str], bytes]:
    """A certificate fetcher answering every (already checked) SNS certificate URL with the
    PEM in `path`. Read per fetch: gateways.sns caches the key per URL anyway."""

    def fetch(url: str) -> bytes:
        with path.open("rb") as file:
            return file.read(sns.MAX_CERT_BYTES + 1)

    return fetch
