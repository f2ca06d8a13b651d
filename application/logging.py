"""structlog set-up. Logs never carry PHI: a processor drops known PHI keys and masks
anything that looks like a phone number or an email address in the remaining values."""

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


def redact_phi(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key in ("timestamp", "level", "event_id"):
            continue
        if key.lower() in PHI_KEYS:
            event_dict[key] = "[redacted]"
        elif isinstance(event_dict[key], str):
            event_dict[key] = _EMAIL.sub("[email]", _PHONE.sub("[phone]", event_dict[key]))
    return event_dict


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
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
            redact_phi,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
