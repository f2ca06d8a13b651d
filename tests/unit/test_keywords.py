"""Reply keywords: a reply is STOP / START / HELP only when it is the whole message."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.keywords import SYNONYMS, Keyword, classify, keyword_for


@pytest.mark.parametrize(
    ("reply", "keyword"),
    [
        ("STOP", Keyword.STOP), ("stop", Keyword.STOP), ("Stop.", Keyword.STOP),
        ("  stop!  ", Keyword.STOP), ("STOP ALL", Keyword.STOP), ("stop   all", Keyword.STOP),
        ("Unsubscribe", Keyword.STOP), ("cancel", Keyword.STOP), ("end", Keyword.STOP),
        ("quit", Keyword.STOP), ("opt-out", Keyword.STOP), ("stopall", Keyword.STOP),
        ("START", Keyword.START), ("start", Keyword.START), ("Yes", Keyword.START),
        ("unstop", Keyword.START),
        ("HELP", Keyword.HELP), ("help!", Keyword.HELP), ("info", Keyword.HELP),
    ],
)
def test_a_whole_message_keyword_is_recognised_whatever_its_case_and_padding(
    reply: str, keyword: Keyword
) -> None:
    assert classify(reply) == keyword


@pytest.mark.parametrize(
    "reply",
    ["Please stop texting me", "stop it", "I can't start until Monday", "help me with my appt",
     "Can I get the flu shot?", "S T O P", "stopp", "", "   ", "yes please", "HELP?", "No",
     "ok", "Thanks!", "Sure", "Stopping by later"],
)
def test_a_reply_that_is_more_than_a_keyword_is_a_reply_for_staff(reply: str) -> None:
    # Given a reply that only mentions a keyword, then it is not a keyword (staff read it)
    assert classify(reply) is None


@given(
    word=st.sampled_from(sorted(SYNONYMS)),
    cases=st.lists(st.booleans(), min_size=12, max_size=12),
    left=st.text(alphabet=" \t\n", max_size=3),
    right=st.text(alphabet=" \t\n", max_size=3),
    trail=st.text(alphabet=".!", max_size=2),
)
def test_every_synonym_is_recognised_in_any_case_with_spaces_and_final_punctuation(
    word: str, cases: list[bool], left: str, right: str, trail: str
) -> None:
    # Given a synonym typed in any mix of case, padded with spaces, ending in . or !
    typed = "".join(c.lower() if lower else c for c, lower in zip(word, cases, strict=False))
    typed += word[len(cases):]
    # Then it means its keyword
    assert classify(left + typed + trail + right) == SYNONYMS[word]


@given(
    word=st.sampled_from(sorted(SYNONYMS)),
    extra=st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=10),
)
def test_a_keyword_followed_by_more_words_is_not_a_keyword(word: str, extra: str) -> None:
    reply = f"{word} {extra}"
    if " ".join(reply.upper().split()) in SYNONYMS:  # e.g. "STOP" + "all" is "STOP ALL"
        return
    assert classify(reply) is None


def test_the_carrier_keywords_are_all_known() -> None:
    # The words carriers and Twilio honour must all be recognised, or a patient's STOP
    # would be handled by the carrier but not recorded by us.
    for word in ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"):
        assert SYNONYMS[word] == Keyword.STOP
    for word in ("START", "YES", "UNSTOP"):
        assert SYNONYMS[word] == Keyword.START
    for word in ("HELP", "INFO"):
        assert SYNONYMS[word] == Keyword.HELP


# -- what Twilio honours (issue 9) ------------------------------------------------------------

@pytest.mark.parametrize("word", ["OPTIN", "OPT-IN", "opt in", "SUBSCRIBE", "Resume"])
def test_an_opt_in_word_twilio_ignores_is_an_ordinary_reply(word: str) -> None:
    # Twilio keeps blocking the number after these: treating them as START would make us
    # believe a number reachable that Twilio still refuses (21610 on every send)
    assert classify(word) is None


def test_the_opt_in_words_are_exactly_twilios() -> None:
    assert {w for w, k in SYNONYMS.items() if k is Keyword.START} == {"START", "YES", "UNSTOP"}


def test_twilios_newer_opt_out_words_are_known() -> None:
    for word in ("REVOKE", "OPTOUT"):
        assert SYNONYMS[word] == Keyword.STOP


@pytest.mark.parametrize(
    ("body", "verdict", "keyword"),
    [("ARRET", Keyword.STOP, Keyword.STOP), ("PARAR", Keyword.STOP, Keyword.STOP),
     ("SI", Keyword.START, Keyword.START), ("AIDE", Keyword.HELP, Keyword.HELP),
     ("STOP", Keyword.START, Keyword.START),  # the provider's reading wins over ours
     ("ARRET", None, None), ("STOP", None, Keyword.STOP), ("Running late", None, None)],
)
def test_the_providers_verdict_decides_when_given_else_our_words(
    body: str, verdict: Keyword | None, keyword: Keyword | None
) -> None:
    assert keyword_for(body, verdict) is keyword
