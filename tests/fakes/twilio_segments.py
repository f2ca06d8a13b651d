"""The fake Twilio's own segment count, written from the SMS standard, not from domain.sms.

Tests compare what our code records with what this says, so it must not share our code:
it works as Twilio's public segment calculator describes it, in bits. A segment is 140
octets (1120 bits); once a message needs more than one, every segment carries a 6-octet
concatenation header (48 bits). GSM-7 characters take 7 bits (escape-table ones 14: the
escape and the character); any other character makes the whole message UCS-2, 16 bits per
UTF-16 code unit. Graphemes are placed whole: one that does not fit in what is left of a
segment goes to the next (CR LF counts as two characters; a grapheme bigger than a
segment is placed code point by code point).
"""

from __future__ import annotations

import regex

SEGMENT_BITS = 140 * 8
HEADER_BITS = 6 * 8

# GSM 03.38, typed from the standard's table: the 127 printable basic characters…
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
# …and the extension table, reached through the escape character.
GSM_ESCAPED = frozenset("\f^{}\\[~]|€")


def _graphemes(body: str) -> list[str]:
    found: list[str] = []
    for grapheme in regex.findall(r"\X", body):
        found.extend(grapheme if grapheme == "\r\n" else [grapheme])
    return found


def num_segments(body: str) -> int:
    gsm = all(c in GSM_BASIC or c in GSM_ESCAPED for c in body)

    def bits(piece: str) -> int:
        if gsm:
            return sum(14 if c in GSM_ESCAPED else 7 for c in piece)
        return 16 * (len(piece.encode("utf-16-le")) // 2)

    if bits(body) <= SEGMENT_BITS:
        return 1 if body else 0
    room = SEGMENT_BITS - HEADER_BITS
    pieces: list[str] = []
    for grapheme in _graphemes(body):
        pieces.extend(list(grapheme) if bits(grapheme) > room else [grapheme])
    count, used = 1, 0
    for piece in pieces:
        if used + bits(piece) > room:
            count, used = count + 1, 0
        used += bits(piece)
    return count
