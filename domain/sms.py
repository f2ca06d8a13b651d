"""SMS bodies: how Twilio cuts a text into segments, the two-segment limit, the footer.

A segment carries 140 octets: 160 GSM-7 septets or 70 UTF-16 code units alone; once a text
needs more than one, each segment spends 6 octets on the concatenation header, leaving 153
septets / 67 units. The carrier bills segments, and a segment boundary never cuts what the
handset must show whole: a GSM-7 escape pair (€ [ ] { } ^ ~ | \\ and form feed, escape +
character), a UTF-16 surrogate pair (a character outside the BMP), or a grapheme cluster (a
flag, an emoji with a skin tone or joined by ZWJ, a letter and its accents). Such a piece
that does not fit in what is left of a segment starts the next one, so a text can need one
more segment than units / 153 says (Twilio's segment calculator packs the same way).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import regex

from domain.errors import InvalidContent

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("^{}\\[~]|€\f")  # each costs two septets (escape + char)

GSM7 = "GSM-7"
UCS2 = "UCS-2"
#: units in a text sent alone / in each part of a split text (6 octets go to the header)
SINGLE_SEGMENT_UNITS = {GSM7: 160, UCS2: 70}
MULTIPART_SEGMENT_UNITS = {GSM7: 153, UCS2: 67}

MAX_SEGMENTS = 2
DEFAULT_FOOTER = "Reply STOP to opt out."

_GRAPHEME = regex.compile(r"\X")


@dataclass(frozen=True)
class Segmentation:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int
    #: units still free in the last segment: the staff's live counter. A piece of two units
    #: (€, an emoji) does not fit when 1 is left: it opens a new segment.
    remaining: int


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def pieces(text: str, encoding: str) -> list[int]:
    """The sizes, in units, of the pieces of `text` a segment boundary may not cut, in order."""
    if encoding == GSM7:
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    multipart = MULTIPART_SEGMENT_UNITS[UCS2]
    sizes: list[int] = []
    for cluster in _GRAPHEME.findall(text):
        units = _utf16_units(cluster)
        if cluster == "\r\n" or units > multipart:
            # CR LF is two characters to Twilio's calculator, not one cluster. A cluster
            # longer than a whole segment (a long ZWJ chain, stacked accents) must be cut
            # somewhere: between code points, never inside a surrogate pair.
            sizes.extend(_utf16_units(c) for c in cluster)
        else:
            sizes.append(units)
    return sizes


def pack(sizes: list[int], capacity: int) -> list[int]:
    """Fill segments of `capacity` units in order; a piece that does not fit in what is left
    starts the next segment. Returns each segment's load."""
    loads = [0]
    for size in sizes:
        if loads[-1] + size > capacity:
            loads.append(0)
        loads[-1] += size
    return loads


# Cached: a campaign sends the same body (merged fields aside) to thousands of patients, and
# the grapheme walk costs tens of microseconds a text on the dispatcher's hot path.
@lru_cache(maxsize=4096)
def segment(text: str) -> Segmentation:
    """How a body travels: its encoding, its units and the segments the carrier bills."""
    encoding = GSM7 if is_gsm7(text) else UCS2
    sizes = pieces(text, encoding)
    units = sum(sizes)
    single = SINGLE_SEGMENT_UNITS[encoding]
    if units <= single:
        return Segmentation(encoding, units, 1 if units else 0, single - units)
    multipart = MULTIPART_SEGMENT_UNITS[encoding]
    loads = pack(sizes, multipart)
    return Segmentation(encoding, units, len(loads), multipart - loads[-1])


def compose(body: str, footer: str = DEFAULT_FOOTER) -> str:
    """The text a patient receives: the staff's body then the automatic footer."""
    body = body.strip()
    return f"{body}\n{footer}" if footer else body


def check_body(body: str, footer: str = DEFAULT_FOOTER) -> Segmentation:
    """Refuse an empty body or one that, with its footer, needs more than two segments."""
    if not body.strip():
        raise InvalidContent("the text message body is empty")
    seg = segment(compose(body, footer))
    if seg.segments > MAX_SEGMENTS:
        # When the units alone would fit, the reason is a character that cannot be cut.
        uncut = (
            "; a character is never split between segments"
            if seg.units <= MAX_SEGMENTS * MULTIPART_SEGMENT_UNITS[seg.encoding] else "")
        raise InvalidContent(
            f"the text message needs {seg.segments} segments ({seg.units} {seg.encoding} "
            f"characters with the footer{uncut}); at most {MAX_SEGMENTS} are allowed"
        )
    return seg
