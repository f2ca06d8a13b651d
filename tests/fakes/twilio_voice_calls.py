"""The call records and wire helpers of the fake Twilio Calls API
(tests.fakes.twilio_voice_server): a call as Twilio shows it, the requests a call makes,
list filters as Twilio applies them."""

from __future__ import annotations

import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from tests.fakes.twilio_server import API_VERSION

FINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


@dataclass
class FakeCall:
    sid: str
    account_sid: str
    to: str
    from_: str
    url: str | None
    twiml: str | None
    status_callback: str | None
    status_callback_events: list[str]
    machine_detection: str | None
    async_amd: bool
    amd_callback: str | None
    ring_timeout: int | None
    date_created: datetime
    status: str = "queued"
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int | None = None
    answered_by: str | None = None
    #: TwiML sent later with an update (the voicemail script), newest last
    twiml_updates: list[str] = field(default_factory=list)
    #: the <Gather action> of the last TwiML we were served for this call
    gather_action: str | None = None

    def as_json(self) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}.json"
        stamp = (lambda d: format_datetime(d) if d else None)  # noqa: E731
        return {
            "account_sid": self.account_sid, "annotation": None,
            "answered_by": self.answered_by, "api_version": API_VERSION, "caller_name": None,
            "date_created": stamp(self.date_created),
            "date_updated": stamp(self.end_time or self.start_time or self.date_created),
            "direction": "outbound-api",
            "duration": str(self.duration) if self.duration is not None else None,
            "end_time": stamp(self.end_time), "forwarded_from": None, "from": self.from_,
            "from_formatted": self.from_, "group_sid": None, "parent_call_sid": None,
            "phone_number_sid": "PN" + "0" * 32, "price": None, "price_unit": "USD",
            "queue_time": "0", "sid": self.sid, "start_time": stamp(self.start_time),
            "status": self.status, "to": self.to, "to_formatted": self.to,
            "trunk_sid": None, "uri": uri,
            "subresource_uris": {"recordings": uri.replace(".json", "/Recordings.json")},
        }


@dataclass(frozen=True)
class Callback:
    """One request Twilio makes during a call. kind: "status" (with its CallStatus),
    "twiml" (the script fetch), "amd" (the verdict), "gather" (a key press)."""

    kind: str
    status: str | None = None
    sequence_number: int | None = None
    timestamp: datetime | None = None


@dataclass(frozen=True)
class Delivery:
    callback: Callback
    url: str  # the public URL Twilio signed
    params: dict[str, str]
    signature: str  # the X-Twilio-Signature sent
    http_status: int
    body: str


def matches(call: FakeCall, filters: dict[str, str]) -> bool:
    for key, value in (("To", call.to), ("From", call.from_), ("Status", call.status)):
        if key in filters and value != filters[key]:
            return False
    for key, keep in (("StartTime", lambda a, b: a == b), ("StartTime>", lambda a, b: a >= b),
                      ("StartTime<", lambda a, b: a <= b)):
        if key in filters:
            if call.start_time is None:  # not dialled yet: Twilio has no start time
                return False
            started, bound = comparable(call.start_time, filters[key])
            if not keep(started, bound):
                return False
    return True


def comparable(started: datetime, text: str) -> tuple[Any, Any]:
    """'YYYY-MM-DD' compares days; the SDK's 'YYYY-MM-DDTHH:MM:SSZ' compares seconds."""
    if len(text) == 10:
        return started.date(), date.fromisoformat(text)
    return started.replace(microsecond=0), datetime.fromisoformat(text.replace("Z", "+00:00"))


def gather_action(twiml: str) -> str | None:
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError:
        return None
    gather = root.find(".//Gather")
    return gather.get("action") if gather is not None else None


def error(status: int, code: int | None, message: str) -> tuple[int, Any]:
    return status, {"code": code, "message": message, "status": status,
                    "more_info": f"https://www.twilio.com/docs/errors/{code}"}


def rebase(url: str, base_url: str | None) -> str:
    if base_url is None:
        return url
    target, parts = urlsplit(base_url), urlsplit(url)
    return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, ""))


def post_form(url: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=urlencode(params).encode(), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as refused:
        return int(refused.code), refused.read().decode()
