"""structlog set-up. Logs never carry PHI: a processor drops known PHI keys and masks
anything that looks like a phone number or an email address in the remaining values.

Tracebacks never show local variables: one frame's locals hold the Settings (Twilio auth
token, cipher key) and patients' rows, and structlog's default console formatter (rich)
prints them all. Exceptions are rendered before redaction, so their messages are masked too.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

PHI_KEYS = frozenset({
    "name", "first_name", "middle_name", "last_name", "patient_name", "phone", "mobile",
    "home_phone", "to", "from", "from_number", "to_number", "email", "address", "body",
    "message", "dob", "date_of_birth", "content",
})
# International (+ then digits with spaces, dots, dashes or brackets), US style
# (555) 010-0100 / (555)010-0100 / 555-010-0100 / 555.010.0100, local 555-0100, and bare
# runs of 10-11 digits (numbers typed without formatting).
_PHONE = re.compile(
    r"\+\d[\d\s().-]{6,}\d"
    r"|\(?\b\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}\b"
    r"|\b\d{3}[.-]\d{4}\b"
    r"|(?<![\w-])\d{10,11}(?![\w-])"
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


def _mask(text: str) -> str:
    return _EMAIL.sub("[email]", _PHONE.sub("[phone]", text))


def _mask_all(value: Any) -> Any:
    """Every string inside a rendered exception (text, or JSON-ready frames), masked."""
    if isinstance(value, str):
        return _mask(value)
    if isinstance(value, list):
        return [_mask_all(item) for item in value]
    if isinstance(value, dict):
        return {key: _mask_all(item) for key, item in value.items()}
    return value


def redact_phi(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key in ("timestamp", "level", "event_id"):
            continue
        if key == "exception":
            # A rendered traceback: frame names such as `name` are not PHI keys here, but
            # the exception's message may quote a value (a driver error with a row's data).
            event_dict[key] = _mask_all(event_dict[key])
        elif key.lower() in PHI_KEYS:
            event_dict[key] = "[redacted]"
        elif isinstance(event_dict[key], str):
            event_dict[key] = _mask(event_dict[key])
    return event_dict


# exc_info → an `exception` field before redact_phi runs, without locals: plain text for the
# console, structured frames for JSON (structlog's dict_tracebacks shows locals by default).
_PLAIN_EXCEPTION = structlog.processors.format_exc_info
_JSON_EXCEPTION = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False))


class _CurrentStderr:
    """Whatever sys.stderr is when a line is written, not when logging was configured: a
    stream replaced since (a test harness's capture, a daemon's redirect) may be closed."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    renderer: Any
    if fmt == "json":
        exceptions, renderer = _JSON_EXCEPTION, structlog.processors.JSONRenderer()
    else:
        # The `exception` text arrives formatted; the plain formatter is named anyway, so a
        # stray exc_info could never fall back to rich's locals.
        exceptions = _PLAIN_EXCEPTION
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback)
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO),
                        format="%(message)s")
    # Third-party chatter (kafka, twilio's HTTP debug lines) can carry numbers: keep it quiet.
    for noisy in ("kafka", "twilio", "urllib3", "apscheduler", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            exceptions,
            redact_phi,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
