"""The four ways we reach a patient."""

from enum import StrEnum


class Channel(StrEnum):
    TEXT = "text"
    PHONE = "phone"
    EMAIL = "email"
    LETTER = "letter"
