"""structlog set-up. Logs never carry PHI: a processor drops known PHI keys and masks
anything that looks like a phone number or an email address in the remaining values.

Every line has one shape, whoever wrote it: our structlog loggers and the standard library's
(uvicorn's `uvicorn.error` and `uvicorn.access`, kafka-python's `kafka.*`, APScheduler,
Twilio's SDK) all end in one handler on the root logger whose formatter is structlog's
ProcessorFormatter, so a foreign line gets the same timestamp, level, logger name, PHI
redaction and renderer (JSON or console) as ours. `OUTREACH_LOG_FORMAT`: `json`, `console`,
or `auto` (json when stderr is not a terminal).

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


HANDLER_NAME = "outreach"


def resolve_format(fmt: str) -> str:
    """`auto` → json when stderr is not a terminal (a service, a pipe), else console."""
    if fmt == "auto":
        isatty = getattr(sys.stderr, "isatty", None)
        return "console" if isatty is not None and isatty() else "json"
    return fmt


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    fmt = resolve_format(fmt)
    numeric = getattr(logging, level.upper(), logging.INFO)
    renderer: Any
    if fmt == "json":
        exceptions, renderer = _JSON_EXCEPTION, structlog.processors.JSONRenderer()
    else:
        # The `exception` text arrives formatted; the plain formatter is named anyway, so a
        # stray exc_info could never fall back to rich's locals.
        exceptions = _PLAIN_EXCEPTION
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback)
    # Both kinds of record get these first: ours in structlog's chain, foreign ones
    # (logging.getLogger(...).warning(...)) in the formatter's pre-chain.
    stamp: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=stamp,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            exceptions,  # before redaction, so an exception's message is masked too
            redact_phi,
            renderer,
        ],
    )
    handler = logging.StreamHandler(_CurrentStderr())  # type: ignore[arg-type]
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    # Configured again (another command in the same process, a test): replace our handler,
    # leave anyone else's (a test harness's capture) alone.
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # Third-party chatter (kafka, twilio's HTTP debug lines) can carry numbers: keep it quiet.
    # Redaction covers what still gets through. uvicorn.error (start-up, bind failures)
    # follows the root level.
    for noisy in ("kafka", "twilio", "urllib3", "apscheduler", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # uvicorn started with its own log config (anything embedding it before us) gives its
    # loggers their own handlers and stops them propagating: those lines would skip our
    # shape and our redaction. Ours is the only way out.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        foreign = logging.getLogger(name)
        for old in list(foreign.handlers):
            foreign.removeHandler(old)
        foreign.propagate = True
        foreign.disabled = False  # a dictConfig's disable_existing_loggers
    # uvicorn.error follows the root level (an embedded uvicorn may have set its own).
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    structlog.configure(
        processors=[*stamp, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
