"""Automated phone calls: outcomes in the guide's words, call-status ordering, and the
scripts (TwiML) a call plays.

Pure: no I/O, no clock. The provider's words (CallStatus, AnsweredBy, error codes) are
Twilio Programmable Voice's; the gateway hands them over as strings.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from enum import StrEnum

from domain.errors import InvalidContent
from domain.retry import FailureKind


class CallOutcome(StrEnum):
    LIVE_ANSWER = "Live Answer"
    MACHINE = "Answering Machine - Message Left"
    BUSY = "Busy"
    NO_ANSWER = "No Answer"
    DIAL_ERROR = "Dial Error"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    MACHINE_UNKNOWN = "Unknown Answer"


#: outcomes where the patient (or their voicemail) heard the message
SUCCESSFUL_OUTCOMES = frozenset({CallOutcome.LIVE_ANSWER, CallOutcome.MACHINE})

FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
# Twilio's lifecycle; every final status shares the last rank (the first one heard wins).
_RANK = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3, "answered": 3}
_FINAL_RANK = 4

#: Twilio error codes meaning the number itself cannot be dialled: a retry cannot help.
INVALID_NUMBER_CODES = frozenset({13223, 13224, 21211, 21217})


def _norm(value: str | None) -> str:
    return (value or "").strip().lower()


def is_final_status(status: str) -> bool:
    return _norm(status) in FINAL_STATUSES


def _rank(status: str) -> int:
    text = _norm(status)
    if text in FINAL_STATUSES:
        return _FINAL_RANK
    if text not in _RANK:
        raise ValueError("unknown call status")
    return _RANK[text]


def later_than(a: str, b: str) -> bool:
    """Is status `a` strictly further along than `b`? Two final statuses are never later
    than each other: once a call has an end, a second, late end cannot replace it."""
    return _rank(a) > _rank(b)


def classify(
    call_status: str, answered_by: str | None, error_code: int | str | None = None
) -> tuple[CallOutcome, FailureKind | None]:
    """The outcome of a finished call and, unless it succeeded, whether trying again can
    help. `answered_by` is Twilio's AnsweredBy (answering-machine detection), None when it
    did not say. Raises ValueError for a status that is not final."""
    status, who = _norm(call_status), _norm(answered_by)
    if status == "completed":
        if who == "human":
            return CallOutcome.LIVE_ANSWER, None
        # machine_start only comes with MachineDetection=Enable; our TwiML plays either way.
        if who.startswith("machine_"):
            return CallOutcome.MACHINE, None
        if who == "fax":
            return CallOutcome.DIAL_ERROR, FailureKind.PERMANENT
        # "unknown", or no verdict at all (hung up before detection ended): connected, but
        # nobody can say the message was heard.
        return CallOutcome.MACHINE_UNKNOWN, FailureKind.TRANSIENT
    if status == "busy":
        return CallOutcome.BUSY, FailureKind.TRANSIENT
    if status == "no-answer":
        return CallOutcome.NO_ANSWER, FailureKind.TRANSIENT
    if status == "failed":
        if _as_int(error_code) in INVALID_NUMBER_CODES:
            return CallOutcome.DIAL_ERROR, FailureKind.PERMANENT
        return CallOutcome.FAILED, FailureKind.TRANSIENT
    if status == "canceled":
        # We cancelled it (campaign stopped, patient opted out): ended, never retried.
        return CallOutcome.CANCELLED, FailureKind.PERMANENT
    raise ValueError("call status is not final")


def _as_int(value: int | str | None) -> int | None:
    try:
        return int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None


@dataclass(frozen=True)
class CallProgress:
    """What is known of one call, folded from callbacks in whatever order they arrive."""

    status: str = "queued"
    answered_by: str | None = None
    error_code: str | None = None

    def with_status(self, status: str, answered_by: str | None = None,
                    error_code: str | None = None) -> CallProgress:
        """A status callback. An earlier or second final status changes nothing of the
        status; an AnsweredBy it carries is still kept (see with_answered_by)."""
        current = self.with_answered_by(answered_by)
        if not later_than(status, self.status):
            return current
        return replace(current, status=_norm(status), error_code=error_code or None)

    def with_answered_by(self, answered_by: str | None) -> CallProgress:
        """The AMD verdict may come before or after the final status; a definite verdict
        replaces none or "unknown", never the other way round."""
        who = _norm(answered_by)
        if not who or (self.answered_by not in (None, "unknown")):
            return self
        return replace(self, answered_by=who)

    @property
    def final(self) -> bool:
        return is_final_status(self.status)

    def outcome(self) -> tuple[CallOutcome, FailureKind | None] | None:
        """None while the call is still going."""
        if not self.final:
            return None
        return classify(self.status, self.answered_by, self.error_code)


# -- scripts ---------------------------------------------------------------------------------

#: Twilio's <Say> reads at most 4,096 characters.
MAX_SAY_CHARS = 4096
PROMPT = "Press 1 to hear this message again. Press 9 to stop these calls."
CLOSING = "Thank you. Goodbye."
OPTED_OUT = ("You will not receive these calls any more. "
             "If this was a mistake, please call your care team. Goodbye.")
NOT_AN_OPTION = "Sorry, that is not an option."
REPLAY_DIGIT, OPT_OUT_DIGIT = "1", "9"
GATHER_TIMEOUT_SECONDS = 5

_VOICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # alice, man, Polly.Joanna-Neural
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$")  # en-US, es-MX


def check_script(text: str, where: str = "phone script") -> None:
    if not text.strip():
        raise InvalidContent(f"the {where} is empty")
    if len(text) > MAX_SAY_CHARS:
        raise InvalidContent(f"the {where} is longer than {MAX_SAY_CHARS} characters")


def _check_speech(voice: str, language: str) -> None:
    if not _VOICE.match(voice):
        raise InvalidContent("the call voice name is not one the phone service knows")
    if not _LANGUAGE.match(language):
        raise InvalidContent("the call language must look like en-US")


def _say(parent: ET.Element, text: str, voice: str, language: str) -> None:
    say = ET.SubElement(parent, "Say", {"voice": voice, "language": language})
    say.text = text


def _document(response: ET.Element) -> str:
    # ElementTree escapes text and attribute values (&, <, >, quotes, newlines).
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(response, encoding="unicode")


def _gather(response: ET.Element, gather_action: str) -> ET.Element:
    return ET.SubElement(response, "Gather", {
        "numDigits": "1", "action": gather_action, "method": "POST",
        "timeout": str(GATHER_TIMEOUT_SECONDS)})


def _ending(response: ET.Element, voice: str, language: str, text: str = CLOSING) -> str:
    _say(response, text, voice, language)
    ET.SubElement(response, "Hangup")
    return _document(response)


def live_twiml(script: str, voice: str, language: str, gather_action: str) -> str:
    """What a person hears: the script, then the keys; no key → a goodbye and hang up
    (Twilio moves past a <Gather> that timed out without posting to its action)."""
    check_script(script)
    _check_speech(voice, language)
    response = ET.Element("Response")
    gather = _gather(response, gather_action)
    _say(gather, script, voice, language)
    _say(gather, PROMPT, voice, language)
    return _ending(response, voice, language)


def gather_reply_twiml(digit: str | None, script: str, voice: str, language: str,
                       gather_action: str) -> str:
    """The answer to a key press: 1 replays, 9 confirms the opt-out (the caller records
    it), anything else repeats the keys."""
    key = (digit or "").strip()
    if key == REPLAY_DIGIT:
        return live_twiml(script, voice, language, gather_action)
    _check_speech(voice, language)
    response = ET.Element("Response")
    if key == OPT_OUT_DIGIT:
        return _ending(response, voice, language, OPTED_OUT)
    gather = _gather(response, gather_action)
    _say(gather, f"{NOT_AN_OPTION} {PROMPT}", voice, language)
    return _ending(response, voice, language)


def voicemail_twiml(voicemail_script: str, voice: str, language: str) -> str:
    """What a machine records. With MachineDetection=DetectMessageEnd the verdict comes
    after the greeting's beep, so the <Say> lands in the recording whole."""
    check_voicemail_script(voicemail_script)
    _check_speech(voice, language)
    response = ET.Element("Response")
    _say(response, voicemail_script, voice, language)
    ET.SubElement(response, "Hangup")
    return _document(response)


# -- HIPAA: what a voicemail may say ---------------------------------------------------------

#: words that tell a listener something of the patient's health; a voicemail may carry a
#: name, a call-back number and what confirms an appointment, nothing more.
HEALTH_TERMS = (
    "diagnosis", "diagnoses", "diagnosed", "result", "results", "test", "tests", "tested",
    "testing", "lab", "labs", "laboratory", "medication", "medications", "medicine",
    "prescription", "prescriptions", "refill", "diabetes", "diabetic", "cancer", "HIV",
    "AIDS", "pregnancy", "pregnant", "mammogram", "colonoscopy", "screening", "biopsy",
    "A1C", "cholesterol", "blood pressure", "hypertension", "asthma", "depression",
    "condition", "conditions", "care gap", "care gaps", "vaccine", "vaccination",
    "immunization", "STD", "hepatitis", "chemotherapy", "dialysis", "therapy",
)
_HEALTH = re.compile(
    r"\b(?:" + "|".join(re.escape(t).replace(r"\ ", r"\s+") for t in HEALTH_TERMS) + r")\b",
    re.IGNORECASE)
# A North American number as people write it, or the merge field that becomes one.
_CALLBACK = re.compile(
    r"(?:\+?1[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}\b|\{\{\s*help_number\s*\}\}")


def check_voicemail_script(text: str) -> None:
    """InvalidContent when the voicemail script names anything about health, or gives no
    number to call back. Run it on the template and again on each rendered script: a merge
    value (a provider's practice name) can bring a health word in."""
    check_script(text, "voicemail script")
    found = _HEALTH.search(text)
    if found:
        word = " ".join(found.group(0).split()).lower()
        raise InvalidContent(
            f"the voicemail script must not mention health information (found '{word}')")
    if not _CALLBACK.search(text):
        raise InvalidContent("the voicemail script must give a number to call back")
