"""The email port on Amazon SES (boto3's `sesv2` client).

Messages go as Raw MIME: SES's Simple content cannot carry our own headers through every
path (moto drops them), and RFC 8058 needs `List-Unsubscribe` + `List-Unsubscribe-Post`.
Every provider or network failure becomes a SendResult; nothing here logs an address, a
subject or a body, and error messages are fixed words per code (SES's own messages can
quote the address).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from typing import Any
from uuid import UUID

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    HTTPClientError,
    ParamValidationError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.parsers import ResponseParserError

from domain.retry import FailureKind
from gateways.email import EmailGateway, OutboundEmail, ProviderLookupPending, SendResult

log = logging.getLogger(__name__)

REFERENCE_TAG = "outreach-ref"
REFERENCE_HEADER = "X-Outreach-Reference"
_TAG_SUFFIX = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_TAG = re.compile(r"^(?P<hex>[0-9a-f]{32})-(?P<suffix>[A-Za-z0-9_]{1,64})$")
_HEADER_URL = re.compile(r"^https?://[\x21-\x3b\x3d\x3f-\x7e]{1,900}$")  # no <, >, spaces
# "none": raw headers (set_raw) go out exactly as given; header objects still fold.
_POLICY = SMTP.clone(refold_source="none")
#: after a failed quota read, ask again only this much later (not on every dispatch)
QUOTA_RETRY = timedelta(minutes=5)

# Retrying later can help. Throttling and quotas are about our sending pace; a paused or
# suspended account is ours to fix (a reputation review, a support case), not the
# patient's: ending every communication for good over it would be wrong, and the
# five-attempt rule still bounds the retries. Credentials likewise (rotation mistakes).
TRANSIENT_CODES: dict[str, str] = {
    "TooManyRequestsException": "too many requests to the email provider",
    "Throttling": "too many requests to the email provider",
    "ThrottlingException": "too many requests to the email provider",
    "LimitExceededException": "email provider sending quota reached",
    "SendingPausedException": "sending is paused on the email provider account",
    "AccountSuspendedException": "the email provider account is suspended",
    "InternalFailure": "email provider internal error",
    "InternalServiceErrorException": "email provider internal error",
    "ServiceUnavailable": "email provider unavailable",
    "ServiceUnavailableException": "email provider unavailable",
    "RequestTimeout": "email provider timed out",
    "AccessDeniedException": "email provider refused our credentials",
    "UnrecognizedClientException": "email provider refused our credentials",
    "InvalidClientTokenId": "email provider refused our credentials",
    "SignatureDoesNotMatch": "email provider refused our credentials",
    "ExpiredTokenException": "email provider refused our credentials",
}
# Sending the same message again will never help.
PERMANENT_CODES: dict[str, str] = {
    "MessageRejected": "email provider rejected the message",
    "MailFromDomainNotVerifiedException": "sender domain is not verified",
    "NotFoundException": "email provider configuration not found",
    "BadRequestException": "email provider refused the request as invalid",
    "InvalidParameterValue": "email provider refused the request as invalid",
}


def classify(code: str, http_status: int | None) -> tuple[FailureKind, str]:
    """An SES error code (or, for codes we do not know, the HTTP status) → kind, words."""
    if code in TRANSIENT_CODES:
        return FailureKind.TRANSIENT, TRANSIENT_CODES[code]
    if code in PERMANENT_CODES:
        return FailureKind.PERMANENT, PERMANENT_CODES[code]
    if http_status is not None and (http_status >= 500 or http_status in (408, 429)):
        return FailureKind.TRANSIENT, "email provider unavailable"
    return FailureKind.PERMANENT, "email provider refused the message"


def reference_to_tag(reference: str) -> str:
    """"<uuid>:<attempt>" → "<uuid hex>-<attempt>": SES tag values allow only letters,
    digits, "_" and "-". ValueError for a reference of another shape."""
    head, sep, suffix = reference.partition(":")
    if not sep or not _TAG_SUFFIX.match(suffix):
        raise ValueError("reference is not '<uuid>:<attempt>'")
    try:
        return f"{UUID(head).hex}-{suffix}"
    except ValueError:
        raise ValueError("reference is not '<uuid>:<attempt>'") from None


def tag_to_reference(tag: str) -> str:
    """The inverse of reference_to_tag; "" for anything that is not one of ours."""
    found = _TAG.match(tag.strip()) if isinstance(tag, str) else None
    if found is None:
        return ""
    return f"{UUID(hex=found['hex'])}:{found['suffix']}"


def build_mime(message: OutboundEmail, date: datetime | None = None) -> bytes:
    """multipart/alternative (text, then HTML), UTF-8, with the one-click unsubscribe
    headers. ValueError when an address or header cannot be encoded."""
    if not _HEADER_URL.match(message.unsubscribe_url):
        raise ValueError("unsubscribe URL is not a plain https/http URL")
    mime = EmailMessage(policy=_POLICY)
    mime["From"] = Address(display_name=message.from_name, addr_spec=_ascii_address(
        message.from_address))
    mime["To"] = Address(addr_spec=_ascii_address(message.to))
    mime["Subject"] = message.subject
    if date is not None:
        mime["Date"] = format_datetime(date if date.tzinfo else date.replace(tzinfo=UTC))
    # set_raw: a long URL must stay one unencoded line; the normal header path would turn
    # it into RFC 2047 encoded-words, which mail clients do not decode in this header.
    mime.set_raw("List-Unsubscribe", f"<{message.unsubscribe_url}>")
    mime.set_raw("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    mime[REFERENCE_HEADER] = message.reference
    # quoted-printable keeps every line short and 7-bit whatever the HTML pasted from Word
    mime.set_content(message.text, charset="utf-8", cte="quoted-printable")
    mime.add_alternative(message.html, subtype="html", charset="utf-8",
                         cte="quoted-printable")
    return mime.as_bytes()


def _ascii_address(address: str) -> str:
    """SES wants the domain in ASCII (punycode); a non-ASCII local part cannot go."""
    local, sep, domain = address.strip().rpartition("@")
    if not sep or not local or not domain:
        raise ValueError("not an email address")
    ascii_domain = domain.encode("idna").decode("ascii")
    if not local.isascii():
        raise ValueError("non-ASCII local part")
    return f"{local}@{ascii_domain}"


class SesEmailGateway(EmailGateway):
    def __init__(
        self,
        *,
        region: str,
        configuration_set: str | None,
        now: Callable[[], datetime],
        endpoint_url: str | None = None,
        max_send_rate: float | None = None,
        events_grace: timedelta = timedelta(minutes=15),
        timeout: float = 10.0,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        """`endpoint_url` points boto3 at another server (moto) instead of SES.
        `events_grace`: how long an unknown outcome waits for SES's Send event."""
        self._region = region
        self._configuration_set = configuration_set
        self._now = now
        self._endpoint_url = endpoint_url
        self._setting_rate = max_send_rate
        self._events_grace = events_grace
        self._timeout = timeout
        self._keys = (access_key_id, secret_access_key)
        self._lock = threading.Lock()
        # Built on first use: resolving the credential chain can touch the network
        # (instance metadata), which must not happen when the wiring builds adapters.
        self._clients: dict[str, Any] = {}
        self._account_rate: float | None = None
        self._rate_failed_at: datetime | None = None

    def _client(self, service: str = "sesv2") -> Any:
        with self._lock:
            if service not in self._clients:
                session = boto3.session.Session(
                    aws_access_key_id=self._keys[0], aws_secret_access_key=self._keys[1],
                    region_name=self._region)
                self._clients[service] = session.client(
                    service, endpoint_url=self._endpoint_url, config=Config(
                        connect_timeout=self._timeout, read_timeout=self._timeout,
                        # We retry ourselves, per policy: a hidden SDK retry after a
                        # read timeout could send the email twice. total_max_attempts
                        # counts the first request; botocore's `max_attempts` does not
                        # (max_attempts=1 would still retry once).
                        retries={"total_max_attempts": 1, "mode": "standard"}))
            return self._clients[service]

    # -- sending -----------------------------------------------------------------------
    def send(self, message: OutboundEmail) -> SendResult:
        ref = message.reference
        try:
            raw = build_mime(message, self._now())
            to = _ascii_address(message.to)
            # RFC 2047-encoded display name: SES refuses raw non-ASCII in this field.
            sender = formataddr((message.from_name, _ascii_address(message.from_address)),
                                charset="utf-8")
        except (ValueError, TypeError, UnicodeError):
            log.info("email not composed ref=%s", ref)
            return SendResult.failed("compose", "the email could not be composed (address "
                                     "or header not encodable)", FailureKind.PERMANENT)
        request: dict[str, Any] = {
            "FromEmailAddress": sender,
            "Destination": {"ToAddresses": [to]},
            "Content": {"Raw": {"Data": raw}},
        }
        if self._configuration_set:
            request["ConfigurationSetName"] = self._configuration_set
        # A reference of another shape goes untagged: X-Outreach-Reference still carries it.
        with contextlib.suppress(ValueError):
            request["EmailTags"] = [{"Name": REFERENCE_TAG, "Value": reference_to_tag(ref)}]
        try:
            answer = self._client().send_email(**request)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            kind, words = classify(code, status)
            log.info("email refused ref=%s code=%s status=%s kind=%s", ref, code, status, kind)
            return SendResult.failed(code or str(status or "error"), words, kind)
        except (HTTPClientError, ResponseParserError) as exc:
            # ReadTimeoutError, ConnectionClosedError, an unreadable answer: the request
            # was written, SES may have taken the message. Sending again could duplicate.
            code = ("connection-lost" if isinstance(exc, ConnectionClosedError)
                    else "unreadable" if isinstance(exc, ResponseParserError) else "timeout")
            log.warning("email send outcome unknown ref=%s code=%s", ref, code)
            return SendResult.outcome_unknown(
                code, "no answer from the email provider; it may have taken the message")
        except BotoConnectionError:
            # EndpointConnectionError, ConnectTimeoutError, SSL/proxy failures: nothing left.
            log.warning("email send trouble ref=%s code=connection", ref)
            return SendResult.failed("connection", "could not reach the email provider",
                                     FailureKind.TRANSIENT)
        except ParamValidationError:
            log.info("email not accepted by the client ref=%s", ref)
            return SendResult.failed("invalid-request", "the email request is invalid",
                                     FailureKind.PERMANENT)
        except BotoCoreError as exc:  # no credentials, and other client-side trouble
            log.warning("email send trouble ref=%s code=%s", ref, type(exc).__name__)
            return SendResult.failed("client", "the email provider client failed before "
                                     "sending", FailureKind.TRANSIENT)
        message_id = str(answer.get("MessageId") or "")
        if not message_id:
            log.warning("email send outcome unknown ref=%s code=no-message-id", ref)
            return SendResult.outcome_unknown(
                "unreadable", "the email provider's answer named no message")
        log.info("email accepted ref=%s message_id=%s", ref, message_id)
        return SendResult.ok(message_id, "sent")

    def find_sent(self, reference: str, since: datetime) -> SendResult | None:
        """SES cannot be asked. Its Send event (via SNS) settles an unknown outcome; until
        it had time to arrive we cannot tell, and afterwards its absence means no."""
        now = self._now()
        if (now.tzinfo is None) != (since.tzinfo is None):
            now, since = _utc(now), _utc(since)
        if now - since < self._events_grace:
            raise ProviderLookupPending("waiting for the email provider's events")
        return None

    # -- quota -----------------------------------------------------------------------
    def max_send_rate(self) -> float | None:
        if self._setting_rate is not None:
            return self._setting_rate
        if self._account_rate is not None:
            return self._account_rate
        now = _utc(self._now())
        if self._rate_failed_at is not None and now - self._rate_failed_at < QUOTA_RETRY:
            return None
        rate = self._read_account_rate()
        if rate is None:
            self._rate_failed_at = now
            log.warning("email provider sending rate could not be read; no provider cap")
        else:
            self._account_rate = rate
        return rate

    def _read_account_rate(self) -> float | None:
        # sesv2 GetAccount first; SES v1 GetSendQuota reads the same account quota (and is
        # what moto implements).
        readers: list[tuple[str, str, Callable[[Any], Any]]] = [
            ("sesv2", "get_account", lambda a: a["SendQuota"]["MaxSendRate"]),
            ("ses", "get_send_quota", lambda a: a["MaxSendRate"]),
        ]
        for service, operation, pick in readers:
            try:
                rate = float(pick(getattr(self._client(service), operation)()))
            except (ClientError, BotoCoreError, ResponseParserError, KeyError, TypeError,
                    ValueError):
                continue
            if rate > 0:
                return rate
        return None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
