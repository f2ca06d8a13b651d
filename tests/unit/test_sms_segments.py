"""SMS segments as Twilio cuts them: a character's code units never straddle two segments.

An escape pair (€ and the other GSM-7 extension characters), a surrogate pair (an emoji) and
a grapheme cluster (a flag, a thumbs-up with a skin tone, a family joined by ZWJ) that does
not fit in what is left of a segment starts the next one; the carrier bills what results.
"""

from __future__ import annotations

import math

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidContent
from domain.sms import DEFAULT_FOOTER, check_body, compose, is_gsm7, segment
from tests.fakes.twilio_segments import num_segments

# Typed here, not read from the module: the escape table of GSM 03.38.
ESCAPED = "^{}\\[~]|€\f"


def units(text: str, gsm: bool) -> int:
    """What a piece of a message costs in the message's encoding, measured on its text."""
    if gsm:
        return sum(2 if c in ESCAPED else 1 for c in text)
    return len(text.encode("utf-16-le")) // 2


def reference_split(text: str) -> list[str]:
    """The plain greedy packer: add whole characters (GSM-7) or whole grapheme clusters
    (UCS-2) to the current segment while its encoded size stays within the limit."""
    gsm = is_gsm7(text)
    single, part = (160, 153) if gsm else (70, 67)
    if not text:
        return []
    if units(text, gsm) <= single:
        return [text]
    if gsm:
        atoms = list(text)
    else:
        atoms = []
        for cluster in regex.findall(r"\X", text):
            if cluster == "\r\n" or len(cluster.encode("utf-16-le")) // 2 > part:
                atoms.extend(cluster)  # no whole place for it: cut between code points
            else:
                atoms.append(cluster)
    segments = [""]
    for atom in atoms:
        candidate = segments[-1] + atom
        if units(candidate, gsm) > part:
            segments.append(atom)
        else:
            segments[-1] = candidate
    return segments


GSM_TEXT = "abcdefghij ABC 0123456789.,!?@£$&%'\n"
ALPHABETS = [
    GSM_TEXT + ESCAPED,  # GSM-7 with escape pairs
    GSM_TEXT + "’é€😀中",  # UCS-2 with surrogate pairs
    GSM_TEXT + "’😀👍🏽🇫🇷🇩🇪\u200d\u0301\r",  # clusters, ZWJ, combining accents, CR
]
random_texts = st.sampled_from(ALPHABETS).flatmap(lambda a: st.text(alphabet=a, max_size=500))
# Wide pieces placed right at a boundary, where random text rarely puts them.
near_a_boundary = st.builds(
    lambda lead, wide, rest: lead + wide + rest,
    st.sampled_from(["a" * n for n in (150, 151, 152, 153, 303, 304, 305)]
                    + ["’" + "a" * n for n in (63, 64, 65, 66, 130, 131, 132)]),
    st.sampled_from(["€", "{", "😀", "👍🏽", "🇫🇷", "e\u0301"]),
    st.text(alphabet=ALPHABETS[2], max_size=200),
)
texts = st.one_of(random_texts, near_a_boundary)


# -- the example from the issue ------------------------------------------------------------

def test_a_euro_sign_that_would_straddle_the_first_boundary_makes_the_body_three_segments(
) -> None:
    # Given 152 'a', a euro sign, 129 'a': with the footer, 306 septets (2 × 153)
    body = "a" * 152 + "€" + "a" * 129
    seg = segment(compose(body))
    assert (seg.encoding, seg.units) == ("GSM-7", 306)
    # Then the euro's two septets do not fit the one left in segment 1: Twilio sends 3
    assert seg.segments == 3
    # And creating a campaign with it is refused as over two segments, saying why
    with pytest.raises(InvalidContent, match="needs 3 segments .*never split"):
        check_body(body)


def test_the_same_body_with_the_euro_sign_one_place_earlier_fits_two_segments() -> None:
    body = "a" * 151 + "€" + "a" * 130
    seg = check_body(body)
    assert (seg.units, seg.segments, seg.remaining) == (306, 2, 0)


# -- UCS-2: surrogate pairs and clusters at a boundary -------------------------------------

def test_an_emoji_that_would_straddle_a_boundary_opens_the_next_segment() -> None:
    # Given UCS-2 text with 66 units, then an emoji (a surrogate pair), then 66 more
    text = "’" + "a" * 65 + "😀" + "a" * 66
    seg = segment(text)
    # Then 134 units (2 × 67), but the emoji cannot be cut after unit 67: three segments
    assert (seg.encoding, seg.units, seg.segments) == ("UCS-2", 134, 3)
    assert [len(s.encode("utf-16-le")) // 2 for s in reference_split(text)] == [66, 67, 1]


def test_a_flag_is_never_cut_between_its_two_regional_indicators() -> None:
    # Given 65 units, then a flag (two regional indicators, 4 units), then 65 more
    text = "’" + "a" * 64 + "🇫🇷" + "a" * 65
    # Then its first half would fit in segment 1, but the flag moves whole: three segments
    assert segment(text).segments == 3
    assert reference_split(text)[1].startswith("🇫🇷")


@pytest.mark.parametrize("cluster", ["👍🏽", "👨\u200d👩\u200d👧", "e\u0301", "🇩🇪"])
def test_a_cluster_that_fits_exactly_at_the_end_of_a_segment_stays_there(cluster: str) -> None:
    size = len(cluster.encode("utf-16-le")) // 2
    text = "’" + "a" * (66 - size) + cluster + "b" * 10
    seg = segment(text)
    assert seg.segments == 2 and seg.remaining == 67 - 10


def test_a_cluster_longer_than_a_segment_is_cut_between_code_points() -> None:
    # Given a letter with 80 stacked accents (one cluster of 81 units: no segment holds it)
    text = "e" + "\u0301" * 80
    # Then it is cut where it must be: 67 + 14 units, two segments
    seg = segment(text)
    assert (seg.units, seg.segments, seg.remaining) == (81, 2, 67 - 14)


# -- the live counter ----------------------------------------------------------------------

def test_the_counter_shows_what_is_left_in_the_last_segment_not_the_wasted_unit() -> None:
    # Given the body: segment 1 ends with one unused septet
    seg = segment(compose("a" * 152 + "€" + "a" * 129))
    # Then the counter shows the room in segment 3 (one '.' used), not 2 × 153 − 306 = 0
    assert seg.remaining == 152


# -- properties -----------------------------------------------------------------------------

@given(text=texts)
def test_segments_are_what_the_plain_greedy_packer_makes(text: str) -> None:
    parts = reference_split(text)
    seg = segment(text)
    # Then the count agrees with a packer that measures each segment's text
    assert seg.segments == len(parts)
    # And the packer's segments are the text, cut only between whole characters
    assert "".join(parts) == text
    if len(parts) > 1:
        gsm, part = seg.encoding == "GSM-7", 153 if seg.encoding == "GSM-7" else 67
        assert all(units(p, gsm) <= part for p in parts)
        # And the counter is the room left in the last of them
        assert seg.remaining == part - units(parts[-1], gsm)


@given(text=texts, more=texts)
def test_appending_text_never_lowers_the_segment_count(text: str, more: str) -> None:
    assert segment(text + more).segments >= segment(text).segments


@given(text=texts)
def test_never_fewer_segments_than_the_units_need(text: str) -> None:
    seg = segment(text)
    single, part = (160, 153) if seg.encoding == "GSM-7" else (70, 67)
    if seg.units > single:
        assert seg.segments >= math.ceil(seg.units / part)
    else:
        assert seg.segments == (1 if seg.units else 0)
    assert seg.remaining >= 0


@given(body=texts.filter(lambda b: bool(b.strip())))
def test_campaign_bodies_are_refused_exactly_when_the_packer_needs_more_than_two(
    body: str,
) -> None:
    needed = len(reference_split(compose(body, DEFAULT_FOOTER)))
    if needed <= 2:
        assert check_body(body).segments == needed
    else:
        with pytest.raises(InvalidContent, match=f"needs {needed} segments"):
            check_body(body)


@given(text=texts)
def test_our_count_agrees_with_the_fake_twilios_own_count(text: str) -> None:
    # Two implementations written apart (the fake's works in bits, as Twilio's calculator
    # describes it): the integration tests compare what we record with what the fake says
    assert segment(text).segments == num_segments(text)
