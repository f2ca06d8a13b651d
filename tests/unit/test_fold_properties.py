"""Matching ignores case and accents: one fold in Python, used for the stored `*_f` columns
and for what staff type, so SQLite, PostgreSQL and the Python reference agree."""

from __future__ import annotations

import unicodedata

from hypothesis import example, given
from hypothesis import strategies as st

from domain.patients_fields import fold

# Names as clinics have them: letters with and without accents, spaces, hyphens, apostrophes.
names = st.text(st.characters(categories=("L", "M", "Zs", "Pd"), include_characters="'"),
                max_size=30)


def without_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text)
                   if not unicodedata.combining(c))


@given(names)
@example("García")
@example("İstanbul")
@example("ℌ")
def test_folding_twice_is_folding_once(text: str) -> None:
    assert fold(fold(text)) == fold(text)


@given(names)
@example("Zoë Núñez")
def test_a_name_folds_the_same_with_or_without_its_accents(text: str) -> None:
    assert fold(without_accents(text)) == fold(text)
    assert not any(unicodedata.combining(c) for c in fold(text))


@given(names)
def test_a_typed_part_of_a_name_is_found_in_the_folded_name(text: str) -> None:
    # what search does: every typed word is looked for in the folded stored name
    for word in text.split():
        if word.isascii():
            assert fold(word) in fold(text)


def test_accented_and_plain_spellings_meet_both_ways() -> None:
    for accented, plain in (("García", "Garcia"), ("Zoë", "ZOE"), ("Núñez", "nunez"),
                            ("François", "FRANCOIS"), ("Straße", "strasse")):
        assert fold(accented) == fold(plain)
        assert fold(accented.upper()) == fold(plain.lower())
