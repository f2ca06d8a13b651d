"""SMS bodies: GSM-7 / UCS-2 segment arithmetic and the two-segment limit with the footer.

Where a boundary falls (escape pairs, surrogate pairs, clusters): test_sms_segments.py."""

from __future__ import annotations

import math
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidContent
from domain.sms import (
    DEFAULT_FOOTER,
    GSM7_BASIC,
    GSM7_EXTENSION,
    MAX_SEGMENTS,
    check_body,
    compose,
    segment,
)

# Characters every GSM-7 handset has (a sample typed here, not read from the module).
PLAIN_GSM = string.ascii_letters + string.digits + " .,:;!?'\"()-+/%&@£$¥èéÄÖÑÜäöñüà_"
EXTENSION = "^{}\\[~]|€"
# Common characters that are NOT GSM-7: pasted curly quotes, accents, emoji, CJK.
NOT_GSM = ["’", "“", "á", "í", "ó", "ú", "ç", "`", "😀", "中", "—", "…"]

gsm_text = st.text(alphabet=PLAIN_GSM, max_size=800)


def gsm_of_units(n: int) -> str:
    return ("Flu shots are due now. " * 40)[:n]


# -- GSM-7 --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("units", "segments"),
    [(0, 0), (1, 1), (159, 1), (160, 1), (161, 2), (200, 2), (306, 2), (307, 3), (459, 3),
     (460, 4)],
)
def test_gsm7_text_fits_160_in_one_segment_and_153_per_part_when_split(
    units: int, segments: int
) -> None:
    seg = segment(gsm_of_units(units))
    assert (seg.encoding, seg.units, seg.segments) == ("GSM-7", units, segments)


@given(text=gsm_text)
def test_plain_gsm7_text_counts_one_unit_per_character(text: str) -> None:
    # Given plain GSM-7 text
    seg = segment(text)
    # Then it travels as GSM-7, one septet per character
    assert seg.encoding == "GSM-7" and seg.units == len(text)
    # And it takes one segment up to 160, else ceil(units / 153)
    if seg.units == 0:
        assert seg.segments == 0
    elif seg.units <= 160:
        assert seg.segments == 1 and seg.remaining == 160 - seg.units
    else:
        assert seg.segments == math.ceil(seg.units / 153)
        assert seg.remaining == seg.segments * 153 - seg.units
    assert seg.remaining >= 0


@given(plain=gsm_text, extended=st.text(alphabet=EXTENSION, max_size=200))
def test_gsm7_extension_characters_cost_two_units(plain: str, extended: str) -> None:
    # Given GSM-7 text with some extension characters (€ [ ] { } ^ ~ | \)
    seg = segment(plain + extended)
    # Then it stays GSM-7, each extension character costing two septets
    assert seg.encoding == "GSM-7"
    assert seg.units == len(plain) + 2 * len(extended)
    if seg.units <= 160:
        assert seg.segments == (1 if seg.units else 0)
    else:  # an escape pair is never split: a boundary may leave one septet unused
        assert seg.segments >= math.ceil(seg.units / 153)


def test_eighty_euro_signs_fill_one_segment_and_one_more_character_splits_it() -> None:
    assert segment("€" * 80).segments == 1
    assert segment("€" * 80 + "a").segments == 2


# -- UCS-2 --------------------------------------------------------------------------------

@given(text=gsm_text, odd=st.sampled_from(NOT_GSM), where=st.integers(min_value=0))
def test_one_non_gsm_character_switches_the_whole_message_to_ucs2(
    text: str, odd: str, where: int
) -> None:
    # Given GSM-7 text with one non-GSM character anywhere in it
    i = where % (len(text) + 1)
    body = text[:i] + odd + text[i:]
    seg = segment(body)
    # Then the whole message is UCS-2, counted in UTF-16 code units (an emoji counts 2)
    assert seg.encoding == "UCS-2"
    assert seg.units == len(text) + (2 if ord(odd) > 0xFFFF else 1)
    # And it takes one segment up to 70 units, else at least ceil(units / 67) (an emoji's
    # surrogate pair is never split: see test_sms_segments.py)
    if seg.units <= 70:
        assert seg.segments == 1 and seg.remaining == 70 - seg.units
    else:
        assert seg.segments >= math.ceil(seg.units / 67)


@pytest.mark.parametrize(("units", "segments"), [(70, 1), (71, 2), (134, 2), (135, 3)])
def test_ucs2_fits_70_in_one_segment_and_67_per_part(units: int, segments: int) -> None:
    seg = segment("’" + "a" * (units - 1))
    assert (seg.encoding, seg.units, seg.segments) == ("UCS-2", units, segments)


def test_the_gsm7_alphabet_is_the_full_basic_table_plus_the_extension_table() -> None:
    # GSM 03.38: 128 basic positions, one of which is the escape to the extension table;
    # the extension table adds form feed and ^ { } \ [ ~ ] | €
    assert len(GSM7_BASIC) == 127
    assert set(EXTENSION) | {"\f"} == GSM7_EXTENSION
    assert set(PLAIN_GSM) <= GSM7_BASIC
    assert not set("".join(NOT_GSM)) & (GSM7_BASIC | GSM7_EXTENSION)


# -- the two-segment limit, with the footer -----------------------------------------------

FOOTER_COST = len("\n" + DEFAULT_FOOTER)  # the footer goes on its own line


def test_the_footer_is_added_on_its_own_line_after_the_trimmed_body() -> None:
    assert compose("  Flu shots today.  ") == f"Flu shots today.\n{DEFAULT_FOOTER}"
    assert compose("Flu shots today.", footer="") == "Flu shots today."


def test_a_body_that_fills_two_segments_with_the_footer_is_accepted() -> None:
    # Given a body that with its footer makes exactly 306 GSM-7 units (2 × 153)
    body = "Flu shots today. " + "x" * (2 * 153 - FOOTER_COST - len("Flu shots today. "))
    # Then it is accepted, in two segments, with nothing left in the counter
    seg = check_body(body)
    assert (seg.segments, seg.units, seg.remaining) == (2, 306, 0)


def test_one_character_more_than_two_segments_is_refused_naming_the_counts() -> None:
    # Given a body that with its footer makes 307 units
    body = "x" * (2 * 153 - FOOTER_COST + 1)
    # Then it is refused, and the message says how many segments, units, and the limit
    with pytest.raises(InvalidContent) as refused:
        check_body(body)
    message = str(refused.value)
    assert "3 segments" in message and "307" in message and "GSM-7" in message
    assert f"at most {MAX_SEGMENTS}" in message and "footer" in message


@given(body=st.text(alphabet=PLAIN_GSM + "€’😀", min_size=1, max_size=500))
def test_check_body_accepts_exactly_the_bodies_that_fit_in_two_segments_with_the_footer(
    body: str,
) -> None:
    # Given any non-empty body
    fits = 0 < segment(compose(body)).segments <= MAX_SEGMENTS
    if not body.strip():
        # Then a blank body is refused as empty
        with pytest.raises(InvalidContent, match="empty"):
            check_body(body)
    elif fits:
        # Then one that fits in two segments with its footer is accepted
        assert check_body(body).segments <= MAX_SEGMENTS
    else:
        # Then one that does not is refused, naming its segment count
        with pytest.raises(InvalidContent, match=f"needs {segment(compose(body)).segments} "):
            check_body(body)


@pytest.mark.parametrize("blank", ["", " ", "\n\t  "])
def test_an_empty_body_is_refused(blank: str) -> None:
    with pytest.raises(InvalidContent, match="empty"):
        check_body(blank)


def test_a_curly_apostrophe_pasted_from_word_halves_the_room() -> None:
    # Given a body that fits two GSM-7 segments with the footer
    body = "x" * 200
    assert check_body(body).encoding == "GSM-7"
    # When a curly apostrophe sneaks in, then it needs UCS-2 and no longer fits
    with pytest.raises(InvalidContent, match="UCS-2"):
        check_body(body + "’")
