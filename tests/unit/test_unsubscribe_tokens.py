"""Unsubscribe tokens: a round trip for any id; nothing altered, foreign or random passes."""

from __future__ import annotations

from uuid import UUID

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from application.unsubscribe import InvalidToken, UnsubscribeTokens

SECRET = b"a-contact-key-secret-for-unit-tests-0123456789"
TOKENS = UnsubscribeTokens(SECRET)
ALPHABET = "0123456789abcdefABCDEF-_.=+/ xyz"
uuids = st.uuids()


@given(uuids)
def test_any_issued_token_reads_back_as_its_id(communication_id):
    token = TOKENS.issue(communication_id)
    assert TOKENS.read(token) == communication_id
    assert len(token) <= 60 and token.isascii()


@given(uuids, st.data())
def test_changing_any_character_of_a_token_is_refused(communication_id, data):
    token = TOKENS.issue(communication_id)
    at = data.draw(st.integers(0, len(token) - 1))
    other = data.draw(st.sampled_from(ALPHABET).filter(lambda c: c != token[at]))
    with pytest.raises(InvalidToken):
        TOKENS.read(token[:at] + other + token[at + 1:])


@given(uuids, st.binary(min_size=32, max_size=64))
def test_a_token_made_with_another_secret_is_refused(communication_id, secret):
    assume(secret != SECRET)
    forged = UnsubscribeTokens(secret).issue(communication_id)
    with pytest.raises(InvalidToken):
        TOKENS.read(forged)


@given(st.text(max_size=200))
def test_random_strings_are_refused(text):
    with pytest.raises(InvalidToken):
        TOKENS.read(text)


@given(uuids)
def test_a_token_names_only_the_id_and_its_link_ends_in_it(communication_id):
    url = TOKENS.url("https://outreach.example.org/", communication_id)
    prefix = "https://outreach.example.org/unsubscribe/"
    assert url.startswith(prefix) and url[len(prefix):].split(".")[0] == communication_id.hex


def test_the_refusal_says_nothing_of_the_token():
    with pytest.raises(InvalidToken) as caught:
        TOKENS.read("0" * 32 + "." + "A" * 22)
    assert str(caught.value) == "this unsubscribe link is not valid"


def test_huge_input_is_refused():
    with pytest.raises(InvalidToken):
        TOKENS.read(TOKENS.issue(UUID(int=7)) + "x" * 1_000_000)


def test_a_short_secret_is_refused():
    with pytest.raises(ValueError):
        UnsubscribeTokens(b"short")
