"""Which patient replies need a person: the inbox flags the unexpected ones.

A reply is EXPECTED when it is a keyword the system already acts on (STOP, START, HELP and
their synonyms: domain.keywords, or the provider's verdict stored with the message), or one
of the short answers a reminder asks for (Y, N, YES, NO, OK, C, CONFIRM, THANKS, THANK YOU).
Anything else (a question, a sentence, a word we do not know, an empty text) is UNEXPECTED:
somebody has to read it. Case, spaces and punctuation do not change the verdict ("ok!",
" Thank-you. " and "Y" are all expected), because patients type them every way.
"""

from __future__ import annotations

import re

from domain.keywords import classify

SHORT_ANSWERS = frozenset({"Y", "N", "YES", "NO", "OK", "C", "CONFIRM", "THANKS", "THANK YOU"})

# Anything that is not a letter or a digit separates words ("thank-you", "ok!!", "y.").
_NOT_A_WORD = re.compile(r"[\W_]+")


def normalise(body: str) -> str:
    """The words of a reply in capitals, single-spaced, without punctuation."""
    return " ".join(_NOT_A_WORD.sub(" ", body).upper().split())


def is_expected(body: str, keyword: str = "") -> bool:
    """Is this reply one the system understands without a person reading it?"""
    if keyword.strip() or classify(body) is not None:
        return True
    return normalise(body) in SHORT_ANSWERS


def is_unexpected(body: str, keyword: str = "") -> bool:
    return not is_expected(body, keyword)


def response_sort_key(body: str) -> str:
    """The reply folded for "sort by response": its words in capitals, so "yes", "Yes!" and
    "YES" sort together (an empty text sorts first)."""
    return normalise(body)
