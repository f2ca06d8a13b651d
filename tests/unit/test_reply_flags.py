"""Which replies the inbox flags for a person to read: keywords and short answers are
expected, anything else (a question, a sentence) is unexpected."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.keywords import SYNONYMS
from domain.reply_flags import SHORT_ANSWERS, is_expected, is_unexpected, response_sort_key

# Anything a patient may type around a word: case, spaces, punctuation.
decoration = st.text(alphabet=" .!?,-'\"\t", max_size=4)


def _in_any_case(draw: st.DrawFn, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.lower() if flip else c.upper() for c, flip in zip(word, flips, strict=True))


@pytest.mark.parametrize("body", ["Y", "n", "Yes", "NO", "ok", "Ok!", "c", "Confirm.",
                                  "thanks!!", "Thank you", "thank-you", " THANK  YOU. "])
def test_the_short_answers_a_reminder_asks_for_are_expected(body: str) -> None:
    assert is_expected(body)


@pytest.mark.parametrize("body", ["STOP", "stop.", "Unsubscribe", "HELP", "info", "START",
                                  "stop all"])
def test_keywords_are_expected(body: str) -> None:
    assert is_expected(body)


def test_a_keyword_the_provider_recognised_is_expected_whatever_the_words() -> None:
    # Twilio's Advanced Opt-Out read "ARRET" as STOP: the system acted, nobody need read it.
    assert is_expected("ARRET", keyword="STOP")
    assert is_unexpected("ARRET")


@pytest.mark.parametrize("body", ["Can I come at 3pm instead?", "Who is this?",
                                  "yes but I need a ride", "Okay", "no thanks", "", "   ",
                                  "I have a question about my bill"])
def test_questions_sentences_and_unknown_words_are_unexpected(body: str) -> None:
    assert is_unexpected(body)


@st.composite
def decorated_short_answer(draw: st.DrawFn) -> str:
    word = draw(st.sampled_from(sorted(SHORT_ANSWERS)))
    return draw(decoration) + _in_any_case(draw, word) + draw(decoration)


@st.composite
def decorated_keyword(draw: st.DrawFn) -> str:
    # The decoration domain.keywords.classify ignores (the provider's reading may differ).
    word = draw(st.sampled_from(sorted(SYNONYMS)))
    spaces, marks = st.text(alphabet=" ", max_size=2), st.text(alphabet=".!", max_size=3)
    return draw(spaces) + _in_any_case(draw, word) + draw(marks) + draw(spaces)


@given(decorated_keyword())
def test_a_keyword_in_any_case_is_expected(body: str) -> None:
    assert is_expected(body)


def test_a_keyword_asked_as_a_question_is_read_by_a_person() -> None:
    # "Cancel?" stopped nothing (not a keyword to us or Twilio): maybe the appointment is
    # meant. Somebody must read it, unless the provider did classify it as a keyword.
    assert is_unexpected("Cancel?")
    assert is_expected("Cancel?", keyword="STOP")


@given(decorated_short_answer())
def test_case_spaces_and_punctuation_never_change_an_expected_reply(body: str) -> None:
    assert is_expected(body)


@given(st.sampled_from(sorted(SHORT_ANSWERS)), st.text(alphabet="abcdefghijklmnopqrstuvwxyz",
                                                       min_size=2, max_size=12))
def test_a_short_answer_with_more_words_is_unexpected(answer: str, more: str) -> None:
    # "yes" is an answer; "yes tomorrow" is a sentence somebody must read (unless the extra
    # word happens to make a known phrase, like "thank you").
    body = f"{answer} {more}"
    if response_sort_key(body) not in SHORT_ANSWERS | set(SYNONYMS):
        assert is_unexpected(body)


@given(st.text(max_size=40))
def test_the_flag_is_exactly_not_expected(body: str) -> None:
    assert is_unexpected(body) is not is_expected(body)


@given(decorated_short_answer())
def test_the_sort_key_puts_the_same_answer_together(body: str) -> None:
    assert response_sort_key(body) == response_sort_key(body.upper().strip(" .!?,'\"\t"))
