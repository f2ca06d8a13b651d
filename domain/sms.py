"""SMS bodies: GSM-7 vs UCS-2 segment arithmetic, the two-segment limit, the automatic footer."""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import InvalidContent

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("^{}\\[~]|€\f")  # each costs two septets (escape + char)

MAX_SEGMENTS = 2
DEFAULT_FOOTER = "Reply STOP to opt out."


@dataclass(frozen=True)
class Segmentation:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int
    remaining: int  # units left in the last segment: the staff's live counter


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def segment(text: str) -> Segmentation:
    """How a body travels: one segment holds 160 GSM-7 / 70 UCS-2 units; split messages
    spend part of each segment on the concatenation header (153 / 67 units)."""
    if is_gsm7(text):
        units = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    if units <= single:
        return Segmentation(encoding, units, 1 if units else 0, single - units)
    segments = -(-units // multi)
    return Segmentation(encoding, units, segments, segments * multi - units)


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
        raise InvalidContent(
            f"the text message needs {seg.segments} segments ({seg.units} {seg.encoding} "
            f"characters with the footer); at most {MAX_SEGMENTS} are allowed"
        )
    return seg
