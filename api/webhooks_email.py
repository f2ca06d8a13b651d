"""Email's HTTP faces on `outreach serve`: SES events through SNS, and the one-click
unsubscribe link every email carries (RFC 8058).

- POST /webhooks/ses: an SNS HTTP(S) subscription. Every message's signature is verified
  (gateways.sns: SignatureVersion 1 and 2, certificate URL on SNS's host, topic ARN one of
  OUTREACH_SES_SNS_TOPIC_ARNS) before anything else; a subscription confirmation is
  confirmed; a notification's SES event is applied (application.email_events). Duplicates
  change nothing.
- GET /unsubscribe/{token}: a confirmation page with one button (a GET never unsubscribes:
  mail scanners follow links). POST /unsubscribe/{token}: opts the patient out of Health
  Reminders - Email at once (mail clients POST `List-Unsubscribe=One-Click`; the page's
  button posts the same). The token is signed and carries no PHI.
Pages and logs name no patient and no address.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from html import escape

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from api.bodies import read_limited
from application.email_events import EmailEventService
from application.inbound_service import ReceiptConflictError
from application.unsubscribe import InvalidToken
from domain.errors import DomainError
from gateways import sns
from gateways.ses_events import SesEventError, parse_ses_event

log = logging.getLogger(__name__)

MAX_UNSUBSCRIBE_BODY = 4 * 1024  # "List-Unsubscribe=One-Click", or the page's form


@dataclass(frozen=True)
class EmailWebhooks:
    service: EmailEventService
    topic_arns: Collection[str]
    organisation: str
    #: injectable for tests (a test certificate); production fetches over https
    fetch_certificate: Callable[[str], bytes] = sns.default_fetch
    fetch_url: Callable[[str], bytes] = sns.default_fetch


def _page(title: str, message: str, form_action: str | None = None,
          status: int = 200) -> HTMLResponse:
    button = ""
    if form_action:
        button = (f'<form method="post" action="{escape(form_action)}">'
                  '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
                  '<button type="submit">Unsubscribe</button></form>')
    html = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title></head><body><main>"
            f"<h1>{escape(title)}</h1><p>{escape(message)}</p>{button}</main></body></html>")
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})




def add_email_routes(app: FastAPI, hooks: EmailWebhooks) -> None:
    org = hooks.organisation

    @app.post("/webhooks/ses")
    async def ses_notification(request: Request) -> Response:
        raw = await read_limited(request, sns.MAX_BODY_BYTES)
        if raw is None:
            return JSONResponse({"error": "body too large"}, status_code=413)
        try:
            message = sns.parse_body(raw)
            # Verifying may fetch the signing certificate (once per URL): off the loop.
            await run_in_threadpool(sns.verify, message,
                                    fetch_certificate=hooks.fetch_certificate,
                                    topic_arns=hooks.topic_arns)
        except sns.SnsError as exc:
            log.warning("sns message refused: %s", exc.reason)
            return JSONResponse({"error": exc.reason}, status_code=exc.status)
        kind = message.get("Type")
        if kind == sns.SUBSCRIPTION_CONFIRMATION:
            try:
                await run_in_threadpool(sns.confirm_subscription, message, hooks.fetch_url)
            except sns.SnsError as exc:
                return JSONResponse({"error": exc.reason}, status_code=exc.status)
            except OSError:
                # SNS sends the confirmation again; nothing is lost by answering 503.
                log.warning("sns subscription confirmation could not reach SNS")
                return JSONResponse({"error": "could not confirm, retry"}, status_code=503,
                                    headers={"Retry-After": "30"})
            log.info("sns subscription confirmed topic=%s", message.get("TopicArn"))
            return Response(status_code=200)
        if kind != sns.NOTIFICATION:
            return Response(status_code=200)  # UnsubscribeConfirmation: nothing to do
        try:
            events = parse_ses_event(str(message.get("MessageId", "")),
                                     message.get("Message", ""))
        except SesEventError as exc:
            log.warning("ses event unreadable: %s", exc)
            return JSONResponse({"error": "not an SES event"}, status_code=400)
        try:
            for event in events:
                await run_in_threadpool(hooks.service.on_email_event, event)
        except ReceiptConflictError:
            return JSONResponse({"error": "communication busy, retry"}, status_code=503,
                                headers={"Retry-After": "1"})
        return Response(status_code=200)

    @app.get("/unsubscribe/{token}")
    async def unsubscribe_page(token: str) -> HTMLResponse:
        try:
            hooks.service.tokens.read(token)
        except InvalidToken:
            return _page("Link not valid", "This unsubscribe link is not valid. Please "
                         f"contact {org} to stop health reminder emails.", status=404)
        return _page(f"Unsubscribe from {org} emails",
                     f"Stop health reminder emails from {org}? Press the button to "
                     "unsubscribe.",
                     form_action=f"/unsubscribe/{token}")

    @app.post("/unsubscribe/{token}")
    async def unsubscribe(token: str, request: Request) -> HTMLResponse:
        if await read_limited(request, MAX_UNSUBSCRIBE_BODY) is None:
            return _page("Request too large", "Please use the link in the email.", status=413)
        try:
            result = await run_in_threadpool(hooks.service.unsubscribe, token)
        except InvalidToken:
            return _page("Link not valid", "This unsubscribe link is not valid. Please "
                         f"contact {org} to stop health reminder emails.", status=404)
        except ReceiptConflictError:
            return _page("Please try again", "We could not record this just now.",
                         status=503)
        except DomainError as exc:
            return _page("Link not valid", str(exc), status=404)
        if result.test:
            return _page("Test email", "This was a test email: nobody was unsubscribed.")
        return _page("You are unsubscribed",
                     f"You will no longer receive health reminder emails from {org}.")
