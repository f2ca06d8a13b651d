"""Whether a phone number can be dialled or texted: E.164 and valid for its country."""

from __future__ import annotations

import phonenumbers


def valid_number(number: str | None, region: str = "US") -> bool:
    if not number:
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, region))
    except phonenumbers.NumberParseException:
        return False
