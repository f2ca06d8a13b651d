"""The password policy: long enough, upper and lower case, a number and a symbol, not the
user's name, not a recent password, not a common or breached one — each refusal in words."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.users import common_passwords
from domain.passwords import (
    MAX_LENGTH,
    WeakPassword,
    check_password,
    is_common,
    password_problems,
)

COMMON = common_passwords()
USER = "pat.jones@example.org"

uppers = st.sampled_from("ABCDEFGHJKLMNPQRSTUVWXYZ")
lowers = st.sampled_from("abcdefghijkmnpqrstuvwxyz")
digits = st.sampled_from("23456789")
symbols = st.sampled_from("!#$%&*+-=?@^_~")
# Random enough never to be a common word or contain the user's name.
filler = st.text(alphabet="bcdfghkmnqrvwxz", min_size=4, max_size=20)


@st.composite
def good_passwords(draw: st.DrawFn) -> str:
    parts = [draw(uppers), draw(lowers), draw(digits), draw(symbols), draw(filler)]
    return "".join(draw(st.permutations(parts)))


@given(good_passwords())
def test_a_password_meeting_every_rule_passes(password: str) -> None:
    assert password_problems(password, USER, COMMON) == []
    check_password(password, USER, COMMON)


KINDS: list[tuple[Callable[[str], bool], str, str]] = [
    (str.isupper, "upper-case", "q"), (str.islower, "lower-case", "Q"),
    (str.isdigit, "number", "q"), (lambda c: not c.isalnum(), "symbol", "q")]


@pytest.mark.parametrize(("removed", "reason", "pad"), KINDS)
@given(password=good_passwords())
def test_removing_any_one_kind_of_character_fails_with_that_reason(
        removed: Callable[[str], bool], reason: str, pad: str, password: str) -> None:
    weakened = "".join(c for c in password if not removed(c))
    weakened += pad * max(0, 8 - len(weakened))  # still long enough: only the kind is gone
    problems = password_problems(weakened, USER, COMMON)
    assert any(reason in p for p in problems), problems
    with pytest.raises(WeakPassword, match=reason):
        check_password(weakened, USER, COMMON)


@given(good_passwords(), st.sampled_from(["pat.jones", "PAT.JONES", "Pat.Jones@Example.org"]))
def test_a_password_containing_the_user_name_or_its_email_local_part_fails(
        password: str, name: str) -> None:
    problems = password_problems(password[:3] + name + password[3:], USER, COMMON)
    assert problems == ["it may not contain the user name"]


def test_too_short_and_too_long_passwords_are_refused() -> None:
    assert "it needs at least 8 characters" in password_problems("Ab1!x", USER, COMMON)
    long = "Ab1!" + "q" * MAX_LENGTH
    assert f"it may have at most {MAX_LENGTH} characters" in password_problems(long, USER,
                                                                                 COMMON)


def test_a_recent_password_is_refused_when_the_caller_found_it_in_the_history() -> None:
    assert password_problems("Qz7!wvbnkq", USER, COMMON, previous_matches=True) == [
        "it may not be one of the last 5 passwords"]


@pytest.mark.parametrize("password", ["Password1!", "Letmein2024!!", "1Qwerty!",
                                      "DRAGON99$", "Monkey#123", "!!Sunshine"])
def test_common_passwords_are_refused_whatever_their_case_and_added_digits(
        password: str) -> None:
    assert is_common(password, COMMON)
    assert "it is a common or breached password" in password_problems(password, USER, COMMON)


def test_an_uncommon_word_with_digits_and_symbols_is_not_taken_for_a_common_one() -> None:
    assert not is_common("Qz7!wvbnkq", COMMON)


def test_the_packaged_list_has_about_ten_thousand_lower_case_entries() -> None:
    assert 9_000 <= len(COMMON) <= 10_000
    assert "password" in COMMON and "123456" in COMMON
    assert all(w == w.lower() for w in COMMON)


def test_every_reason_is_given_at_once_on_one_line() -> None:
    with pytest.raises(WeakPassword) as refused:
        check_password("password", USER, COMMON)
    message = str(refused.value)
    assert "\n" not in message
    for reason in ("upper-case", "number", "symbol", "common"):
        assert reason in message
