"""Logs never carry PHI: PHI keys are dropped and phone numbers / emails masked everywhere else,
while the timestamps and ids that make logs useful survive untouched."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from application.logging import PHI_KEYS, configure_logging, redact_phi


def redact(**event: Any) -> dict[str, Any]:
    return dict(redact_phi(None, "info", dict(event)))


# Ten-digit North American numbers in the shapes staff and providers write them.
SHAPES = [
    "+1{a}{b}{c}", "({a}) {b}-{c}", "{a}-{b}-{c}", "{a}.{b}.{c}", "{a} {b} {c}", "1-{a}-{b}-{c}",
]
digits = st.text(alphabet=string.digits, min_size=1, max_size=1)
national_numbers = st.tuples(
    st.text(alphabet=string.digits, min_size=3, max_size=3),
    st.text(alphabet=string.digits, min_size=3, max_size=3),
    st.text(alphabet=string.digits, min_size=4, max_size=4),
)
international = st.text(alphabet=string.digits, min_size=10, max_size=15).map(lambda d: "+" + d)
# Text around the PHI: words and punctuation, no digits (so any digit left came from PHI).
words = st.text(alphabet=string.ascii_letters + " ,;:!?'\"", max_size=30)
# Numbers are delimited as in prose or key=value text. Not covered (redact_phi does not mask
# them today): a number glued to letters ("+15550100100x"), "(555)010-0100" without a space,
# bare digit runs ("5550100100") and spaced international forms ("+44 20 7946 0958").
before_sep = st.sampled_from([" ", ": ", "=", "\n", " (", "tel:"])
after_sep = st.sampled_from([" ", ".", ",", ")", "\n", "; ", "&"])

local_parts = st.from_regex(r"[a-z][a-z0-9._+-]{0,15}[a-z0-9]", fullmatch=True)
domains = st.from_regex(r"[a-z0-9][a-z0-9-]{0,10}\.(com|org|net|health|co\.uk)", fullmatch=True)


@given(number=national_numbers, shape=st.sampled_from(SHAPES), head=words, tail=words,
       pre=before_sep, post=after_sep)
def test_no_us_phone_number_survives_in_a_log_value(
    number: tuple[str, str, str], shape: str, head: str, tail: str, pre: str, post: str
) -> None:
    # Given a log line whose text quotes a phone number in some usual shape
    a, b, c = number
    phone = shape.format(a=a, b=b, c=c)
    line = redact(event="sms failed", detail=f"{head}{pre}{phone}{post}{tail}")
    # Then the number is masked: its ten digits do not appear, even split by punctuation
    left = re.sub(r"\D", "", line["detail"])
    assert a + b + c not in left and b + c not in left
    assert "[phone]" in line["detail"]


@given(phone=international, head=words, tail=words, pre=before_sep, post=after_sep)
def test_no_e164_number_survives_in_a_log_value(
    phone: str, head: str, tail: str, pre: str, post: str
) -> None:
    line = redact(event=f"{head}{pre}{phone}{post}{tail}")
    assert phone not in line["event"] and phone[1:] not in line["event"]
    assert "[phone]" in line["event"]


@given(local=local_parts, domain=domains, head=words, tail=words, pre=before_sep,
       post=after_sep)
def test_no_email_address_survives_in_a_log_value(
    local: str, domain: str, head: str, tail: str, pre: str, post: str
) -> None:
    # Given a log line quoting an email address
    email = f"{local}@{domain}"
    line = redact(event="intro email bounced", detail=f"{head}{pre}{email}{post}{tail}")
    # Then the whole address is masked: no part of it is left before or at the mask
    assert email not in line["detail"] and "@" not in line["detail"]
    assert line["detail"].startswith(f"{head}{pre}[email]")


@given(key=st.sampled_from(sorted(PHI_KEYS)), upper=st.booleans(),
       value=st.one_of(st.text(max_size=20), st.integers(), st.none(),
                       st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)))
def test_a_value_under_a_phi_key_is_redacted_whatever_it_holds(
    key: str, upper: bool, value: Any
) -> None:
    # Given a log entry with a PHI key (in any case), holding any value
    name = key.upper() if upper else key
    line = redact(event="patient.updated", **{name: value})
    # Then the value is replaced
    assert line[name] == "[redacted]"


def test_the_usual_phi_keys_are_all_covered() -> None:
    for key in ("first_name", "last_name", "patient_name", "phone", "mobile", "email",
                "address", "dob", "body", "to", "from"):
        assert key in PHI_KEYS


@given(at=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                       timezones=st.just(UTC)),
       ident=st.uuids())
def test_timestamps_and_uuids_are_left_untouched(at: datetime, ident: UUID) -> None:
    # Given a log entry with the timestamp, an event id, and ids and instants in other fields
    stamp = at.isoformat().replace("+00:00", "Z")
    fixed_width = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    entry = {
        "timestamp": stamp, "level": "info", "event_id": str(ident),
        "event": f"sent communication {ident} at {fixed_width}",
        "communication": str(ident), "due_at": fixed_width, "attempt": 3, "when": at,
    }
    # Then nothing is changed
    assert redact(**entry) == entry


@pytest.mark.parametrize(
    "value", ["30003", "21211", "count=1000", "per_hour=1000 window 11:00-20:00",
              "campaign 2026-06-10", "SM0123456789abcdef0123456789abcdef", "2026-06-10T16:00:00Z"]
)
def test_codes_counts_dates_and_provider_refs_are_left_untouched(value: str) -> None:
    assert redact(event="x", detail=value)["detail"] == value


def test_the_event_message_itself_is_masked_too() -> None:
    line = redact(event="reply from +15550100100 to maya@clinic.org")
    assert line["event"] == "reply from [phone] to [email]"


@pytest.mark.parametrize("text", ["(555)010-0100", "+44 20 7946 0958", "555-0100",
                                  "5550100100", "+1 555 010 0100"])
def test_less_usual_phone_formats_are_masked_too(text: str) -> None:
    # Given a number written the way staff or patients sometimes type it
    # When it passes through the log processor
    masked = redact_phi(None, "info", {"event": f"callback {text} please"})["event"]
    # Then no digit of it survives
    assert masked == "callback [phone] please"


# -- tracebacks ----------------------------------------------------------------------------
@pytest.fixture
def configured() -> Iterator[Callable[[str], None]]:
    """configure_logging as the app does it; structlog's defaults are restored after."""
    yield lambda fmt: configure_logging(fmt, "INFO")
    structlog.reset_defaults()


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_logged_traceback_shows_no_local_variables_and_masks_its_message(
    fmt: str, configured: Callable[[str], None], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given logging as configured for the app, and a failure in a frame holding a secret
    configured(fmt)

    def send(auth_token: str = "tok-5ecret-in-a-local", patient: str = "Zebulon") -> None:
        raise RuntimeError("provider refused +13125550187")

    # When it is logged with its traceback
    try:
        send()
    except RuntimeError:
        structlog.get_logger("test").exception("step_failed")
    output = capsys.readouterr().err
    # Then where it failed is there, the locals are not, and the number is masked
    assert "step_failed" in output and "RuntimeError" in output and "send" in output
    assert "tok-5ecret-in-a-local" not in output and "Zebulon" not in output
    assert "+13125550187" not in output and "[phone]" in output
    if fmt == "json":
        assert json.loads(output)["exception"][0]["exc_type"] == "RuntimeError"
