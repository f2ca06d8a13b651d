"""Twilio error codes and HTTP statuses → retry or give up (domain.retry.FailureKind).

Twilio's own error messages often quote the 'To' number, so callers record the short
`reason` from here instead of the provider's words: it never carries PHI.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.retry import FailureKind


@dataclass(frozen=True)
class Classification:
    kind: FailureKind
    reason: str  # short, human, free of numbers and bodies


# Retrying later can help: the handset, the carrier or Twilio is momentarily unable.
TRANSIENT_CODES: dict[int, str] = {
    20429: "too many requests to the provider",
    30001: "provider queue overflow",
    30003: "handset unreachable",
    30008: "unknown delivery error",
    30017: "carrier network congestion",
    # Our credentials, not the patient: failing every communication for good because a
    # token was rotated would be wrong; a fixed configuration lets the retries succeed.
    20003: "provider rejected our credentials",
}

# Retrying the same message to the same number will never help.
PERMANENT_CODES: dict[int, str] = {
    21211: "invalid 'To' phone number",
    21408: "sending to this region is not enabled",
    21606: "the 'From' number cannot send this message",
    21610: "recipient replied STOP to this sender",
    21612: "the 'To' number cannot be reached from this sender",
    21614: "the 'To' number cannot receive SMS",
    21617: "message body too long",
    30004: "message blocked",
    30005: "unknown handset",
    30006: "landline or unreachable carrier",
    30007: "message filtered by the carrier",
}

TIMEOUT = Classification(
    FailureKind.TRANSIENT, "provider did not answer in time (the message may have been taken)")
CONNECTION = Classification(FailureKind.TRANSIENT, "could not reach the provider")
UNREADABLE = Classification(
    FailureKind.TRANSIENT, "provider answer could not be read (the message may have been taken)")


def _as_int(value: int | str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def classify(code: int | str | None, http_status: int | None = None) -> Classification:
    """A Twilio error code (from an API error or a status callback's ErrorCode) and/or the
    HTTP status it came with. Known codes decide first, then the status; an unknown code
    without a telling status is transient: a bounded number of retries is cheaper than
    abandoning a patient on an error we have never seen."""
    number = _as_int(code)
    if number in PERMANENT_CODES:
        return Classification(FailureKind.PERMANENT, PERMANENT_CODES[number])
    if number in TRANSIENT_CODES:
        return Classification(FailureKind.TRANSIENT, TRANSIENT_CODES[number])
    # The SDK fills `code` with the HTTP status when the body had no Twilio code.
    status = http_status if http_status is not None else (
        number if number is not None and 100 <= number <= 599 else None)
    if status is not None:
        return _classify_status(status, number)
    suffix = f" {number}" if number is not None else ""
    return Classification(FailureKind.TRANSIENT, f"unknown provider error{suffix}")


def _classify_status(status: int, code: int | None) -> Classification:
    detail = f" (error {code})" if code is not None and code != status else ""
    transient, permanent = FailureKind.TRANSIENT, FailureKind.PERMANENT
    if status == 429:
        return Classification(transient, f"provider rate limit (HTTP 429){detail}")
    if status == 408:
        return Classification(transient, f"provider request timeout (HTTP 408){detail}")
    if status == 401:
        return Classification(transient, TRANSIENT_CODES[20003])
    if status >= 500:
        return Classification(transient, f"provider server error (HTTP {status}){detail}")
    if 400 <= status < 500:
        # The request itself is wrong: sending it again unchanged gets the same answer.
        return Classification(permanent, f"provider refused the request (HTTP {status}){detail}")
    return Classification(transient, f"unexpected provider answer (HTTP {status}){detail}")
