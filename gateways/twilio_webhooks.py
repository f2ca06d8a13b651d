"""Twilio webhooks → domain objects: signature check and parsing, no web framework.

Reasons in WebhookError go into HTTP answers and logs, so they name fields, never values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import phonenumbers
from twilio.request_validator import RequestValidator

from domain.inbound import DeliveryReceipt, InboundText
from domain.keywords import Keyword
from gateways import twilio_errors

FormPairs = Sequence[tuple[str, str]]
Form = Mapping[str, str] | Iterable[tuple[str, str]]

DEFAULT_REGION = "US"
MAX_REFERENCE_LENGTH = 200


class WebhookError(ValueError):
    """A payload we cannot accept; `reason` is safe to show and log (no PHI)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _MultiParams(dict[str, list[str]]):
    """Form fields that may repeat. RequestValidator reads `getlist` (Django's QueryDict
    shape) and signs every value of a repeated field; a plain dict would lose all but one."""

    def getlist(self, name: str) -> list[str]:
        return self[name]


def _multi(pairs: Iterable[tuple[str, str]]) -> _MultiParams:
    params = _MultiParams()
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    return params


def signed_url(public_url: str, path: str, query: str = "") -> str:
    """The URL Twilio signed: our public base (what Twilio was configured with, not the
    host a proxy forwarded to) + the request path + the raw query string."""
    url = public_url.rstrip("/") + path
    return f"{url}?{query}" if query else url


def verify_signature(
    auth_token: str, public_url: str, form_pairs: FormPairs, signature: str | None
) -> bool:
    """`public_url` is the full URL Twilio called (see signed_url)."""
    if not signature:
        return False
    return bool(RequestValidator(auth_token).validate(public_url, _multi(form_pairs), signature))


def parse_inbound(form: Form, now: datetime) -> InboundText:
    fields = _fields(form, required=("MessageSid", "From", "To", "Body"), non_empty=(
        "MessageSid", "From", "To"))
    return InboundText(
        message_ref=fields["MessageSid"],
        from_number=_e164(fields["From"], "From"),
        # Our own number (or a short code): keep it when it is not a phone number.
        to_number=_e164_or_same(fields["To"]),
        body=fields["Body"],
        received_at=now,
        provider_keyword=_opt_out_type(fields.get("OptOutType", "")),
    )


def _opt_out_type(value: str) -> Keyword | None:
    """Twilio's OptOutType (Advanced Opt-Out): STOP, START or HELP when Twilio classified
    the message, by its own keyword lists in every configured language. Absent, or a value
    Twilio may add one day that we do not know: our own classification of the body."""
    try:
        return Keyword(value.strip().upper()) if value.strip() else None
    except ValueError:
        return None


def keyword_of(message: InboundText) -> Keyword | None:
    """STOP / START / HELP: Twilio's verdict when it sent one, else the domain's rules
    (whole-message keywords only)."""
    return message.keyword


def parse_status(form: Form, query_ref: str | None, now: datetime) -> DeliveryReceipt:
    """A status callback. The reference comes from our callback URL's `ref` parameter."""
    if not query_ref or not query_ref.strip():
        raise WebhookError("missing ref query parameter")
    if len(query_ref) > MAX_REFERENCE_LENGTH:
        raise WebhookError("ref query parameter too long")
    raw = _fields(form, required=(), non_empty=())
    # Twilio sends both the current names and the legacy Sms* ones; accept either.
    sid = raw.get("MessageSid") or raw.get("SmsSid") or ""
    status = raw.get("MessageStatus") or raw.get("SmsStatus") or ""
    if not sid:
        raise WebhookError("missing field MessageSid")
    if not status:
        raise WebhookError("missing field MessageStatus")
    error_code = (raw.get("ErrorCode") or "").strip()
    verdict = twilio_errors.classify(error_code or None)
    return DeliveryReceipt(
        provider_ref=sid,
        reference=query_ref.strip(),
        status=status.strip().lower(),
        error_code=error_code,
        received_at=now,
        kind=verdict.kind,
        reason=verdict.reason,
    )


def _fields(form: Form, required: Sequence[str], non_empty: Sequence[str]) -> dict[str, str]:
    pairs = form.items() if isinstance(form, Mapping) else form
    values = _multi(pairs)
    for name in required:
        if name not in values:
            raise WebhookError(f"missing field {name}")
    for name in non_empty:
        if not values[name][0].strip():
            raise WebhookError(f"empty field {name}")
    for name, found in values.items():
        # Twilio never repeats these; two different values leave no safe choice.
        if len(set(found)) > 1 and name in _SINGLE_VALUED:
            raise WebhookError(f"field {name} repeated with different values")
    return {name: found[0] for name, found in values.items()}


_SINGLE_VALUED = frozenset({
    "MessageSid", "SmsSid", "SmsMessageSid", "From", "To", "Body", "MessageStatus",
    "SmsStatus", "ErrorCode", "AccountSid", "OptOutType",
})


def _e164(text: str, field: str) -> str:
    try:
        number = phonenumbers.parse(text.strip(), DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise WebhookError(f"field {field} is not a phone number") from None
    # "Possible", not "valid": refusing a STOP because a number block is new to the
    # phonenumbers metadata would ignore an opt-out.
    if not phonenumbers.is_possible_number(number):
        raise WebhookError(f"field {field} is not a phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _e164_or_same(text: str) -> str:
    try:
        return _e164(text, "To")
    except WebhookError:
        return text.strip()
