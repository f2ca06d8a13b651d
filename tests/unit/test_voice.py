"""Phone-call rules: outcomes, late callbacks, the scripts' TwiML, the voicemail HIPAA check."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidContent
from domain.retry import FailureKind
from domain.voice import (
    FINAL_STATUSES,
    OPTED_OUT,
    PROMPT,
    CallOutcome,
    CallProgress,
    check_voicemail_script,
    classify,
    gather_reply_twiml,
    is_final_status,
    later_than,
    live_twiml,
    voicemail_twiml,
)

P, T = FailureKind.PERMANENT, FailureKind.TRANSIENT
ACTION = "https://outreach.example.org/webhooks/twilio/voice/gather?ref=c1%3A1&x=1"
VOICEMAIL = "This is Dr. Lee's office calling for Sam. Please call us back at 555-010-2030."


@pytest.mark.parametrize(("status", "answered_by", "code", "expected"), [
    ("completed", "human", None, (CallOutcome.LIVE_ANSWER, None)),
    ("completed", "machine_end_beep", None, (CallOutcome.MACHINE, None)),
    ("completed", "machine_end_silence", None, (CallOutcome.MACHINE, None)),
    ("completed", "machine_end_other", None, (CallOutcome.MACHINE, None)),
    ("completed", "fax", None, (CallOutcome.DIAL_ERROR, P)),
    ("completed", "unknown", None, (CallOutcome.MACHINE_UNKNOWN, T)),
    ("completed", None, None, (CallOutcome.MACHINE_UNKNOWN, T)),
    ("Completed", " HUMAN ", None, (CallOutcome.LIVE_ANSWER, None)),
    ("busy", None, None, (CallOutcome.BUSY, T)),
    ("no-answer", None, None, (CallOutcome.NO_ANSWER, T)),
    ("failed", None, "13224", (CallOutcome.DIAL_ERROR, P)),
    ("failed", None, 21211, (CallOutcome.DIAL_ERROR, P)),
    ("failed", None, "13223", (CallOutcome.DIAL_ERROR, P)),
    ("failed", None, "31005", (CallOutcome.FAILED, T)),
    ("failed", None, None, (CallOutcome.FAILED, T)),
    ("canceled", None, None, (CallOutcome.CANCELLED, P)),
])
def test_classify_gives_the_guides_outcome_and_whether_to_retry(status, answered_by, code,
                                                                 expected):
    assert classify(status, answered_by, code) == expected


def test_outcomes_read_as_the_guide_words_them():
    assert CallOutcome.MACHINE == "Answering Machine - Message Left"
    assert CallOutcome.MACHINE_UNKNOWN == "Unknown Answer"


@pytest.mark.parametrize("status", ["queued", "initiated", "ringing", "in-progress"])
def test_classify_refuses_a_call_still_going(status):
    assert not is_final_status(status)
    with pytest.raises(ValueError):
        classify(status, "human")


def test_a_final_status_is_later_than_any_progress_but_not_than_another_end():
    assert later_than("ringing", "initiated")
    assert later_than("completed", "in-progress")
    assert not later_than("ringing", "completed")
    assert not later_than("busy", "completed")
    assert not later_than("completed", "completed")


def test_a_late_ringing_after_completed_leaves_the_outcome():
    done = CallProgress().with_status("completed", "human")
    late = done.with_status("ringing").with_status("initiated")
    assert late.status == "completed"
    assert late.outcome() == (CallOutcome.LIVE_ANSWER, None)


def test_the_amd_verdict_after_the_end_still_counts_but_never_undoes_a_definite_one():
    progress = CallProgress().with_status("completed").with_answered_by("machine_end_beep")
    assert progress.outcome() == (CallOutcome.MACHINE, None)
    assert progress.with_answered_by("unknown").answered_by == "machine_end_beep"
    assert CallProgress().with_status("ringing").outcome() is None


_ANSWERERS = st.sampled_from(["human", "machine_end_beep", "fax", "unknown", None])


@st.composite
def _lifecycles(draw: st.DrawFn) -> tuple[str, str | None, str | None, list]:
    final = draw(st.sampled_from(sorted(FINAL_STATUSES)))
    answered_by = draw(_ANSWERERS) if final == "completed" else None
    code = draw(st.sampled_from([None, "13224", "31005"])) if final == "failed" else None
    steps: list[tuple[str, str | None, str | None]] = [
        ("status", s, None) for s in ["queued", "initiated", "ringing"]]
    if final == "completed":
        steps.append(("status", "in-progress", None))
        steps.append(("amd", None, answered_by))
    steps.append(("status", final, answered_by))
    # Twilio may send a callback twice (it retries when our answer is slow).
    steps += draw(st.lists(st.sampled_from(steps), max_size=3))
    return final, answered_by, code, draw(st.permutations(steps))


@given(_lifecycles())
def test_whatever_the_callback_order_the_outcome_is_that_of_the_final_status(lifecycle):
    final, answered_by, code, steps = lifecycle
    progress = CallProgress()
    for kind, status, who in steps:
        if kind == "amd":
            progress = progress.with_answered_by(who)
        else:
            progress = progress.with_status(status, who, code if status == final else None)
    assert progress.status == final
    assert progress.outcome() == classify(final, answered_by, code)


# -- TwiML -----------------------------------------------------------------------------------

def _parse(twiml: str) -> ET.Element:
    assert twiml.startswith('<?xml version="1.0" encoding="UTF-8"?><Response>')
    return ET.fromstring(twiml)


def test_live_twiml_says_the_script_inside_a_one_key_gather_then_hangs_up():
    root = _parse(live_twiml("Hello from the clinic.", "Polly.Joanna", "en-US", ACTION))
    gather = root.find("Gather")
    assert gather is not None
    assert gather.get("numDigits") == "1" and gather.get("action") == ACTION
    says = gather.findall("Say")
    assert [s.text for s in says] == ["Hello from the clinic.", PROMPT]
    assert all(s.get("voice") == "Polly.Joanna" and s.get("language") == "en-US" for s in says)
    assert [child.tag for child in root] == ["Gather", "Say", "Hangup"]


def test_live_twiml_escapes_what_staff_wrote():
    script = 'Dr. <b>Lee</b> & "Partners" </Say><Hangup/> it\'s time'
    twiml = live_twiml(script, "alice", "en-US", ACTION)
    assert "<b>" not in twiml and "</Say><Hangup/> it" not in twiml
    say = _parse(twiml).find("Gather/Say")
    assert say is not None and say.text == script
    assert "&amp;x=1" in twiml  # the action URL's & is escaped too


@pytest.mark.parametrize(("voice", "language"), [('alice" x="1', "en-US"), ("alice", "en US;")])
def test_a_voice_or_language_that_could_break_the_document_is_refused(voice, language):
    with pytest.raises(InvalidContent):
        live_twiml("Hello.", voice, language, ACTION)


def test_an_empty_script_is_refused():
    with pytest.raises(InvalidContent, match="empty"):
        live_twiml("   ", "alice", "en-US", ACTION)


def test_pressing_1_replays_the_message_with_the_keys():
    root = _parse(gather_reply_twiml("1", "Hello again.", "alice", "en-US", ACTION))
    gather = root.find("Gather")
    assert gather is not None
    assert [s.text for s in gather.findall("Say")] == ["Hello again.", PROMPT]


def test_pressing_9_confirms_the_opt_out_and_hangs_up():
    root = _parse(gather_reply_twiml("9", "Hello.", "alice", "en-US", ACTION))
    assert root.find("Gather") is None
    assert [child.tag for child in root] == ["Say", "Hangup"]
    say = root.find("Say")
    assert say is not None and say.text == OPTED_OUT
    assert (say.text or "").startswith("You will not receive these calls")


@pytest.mark.parametrize("digit", ["5", "#", "", None])
def test_another_key_repeats_the_prompt_not_the_message(digit):
    root = _parse(gather_reply_twiml(digit, "Secret script.", "alice", "en-US", ACTION))
    gather = root.find("Gather")
    assert gather is not None and gather.get("action") == ACTION
    texts = [s.text or "" for s in root.iter("Say")]
    assert any(PROMPT in t for t in texts)
    assert not any("Secret script." in t for t in texts)


def test_voicemail_twiml_says_the_script_then_hangs_up_without_keys():
    root = _parse(voicemail_twiml(VOICEMAIL, "alice", "en-US"))
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root.find("Say").text == VOICEMAIL  # type: ignore[union-attr]


# -- HIPAA -----------------------------------------------------------------------------------

@pytest.mark.parametrize("word", [
    "diagnosis", "results", "Test", "LAB", "medication", "diabetes", "cancer", "HIV",
    "pregnancy", "mammogram", "blood  pressure"])
def test_a_voicemail_naming_health_information_is_refused(word):
    with pytest.raises(InvalidContent, match="health information"):
        check_voicemail_script(f"Hi Sam, about your {word}. Call 555-010-2030.")


def test_health_words_match_whole_words_only():
    check_voicemail_script("The latest news from our contest: Labor Day hours. "
                           "Call (555) 010-2030.")


def test_a_voicemail_must_give_a_call_back_number():
    with pytest.raises(InvalidContent, match="number to call back"):
        check_voicemail_script("Hi Sam, this is your clinic. Please call us.")


@pytest.mark.parametrize("text", [
    "Please call us at +1 555 010 2030.", "Call 555.010.2030.", "Call us at {{ help_number }}."])
def test_a_call_back_number_may_be_written_or_a_merge_field(text):
    check_voicemail_script(text)


def test_voicemail_twiml_refuses_health_information():
    with pytest.raises(InvalidContent):
        voicemail_twiml("Your lab results are in. Call 555-010-2030.", "alice", "en-US")
