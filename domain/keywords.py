"""Reply keywords carriers and Twilio honour: STOP, START, HELP and their usual synonyms."""

from __future__ import annotations

from enum import StrEnum


class Keyword(StrEnum):
    STOP = "STOP"
    START = "START"
    HELP = "HELP"


SYNONYMS: dict[str, Keyword] = {
    **{w: Keyword.STOP for w in
       ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "OPT-OUT",
        "REVOKE", "STOP ALL")},
    **{w: Keyword.START for w in ("START", "YES", "UNSTOP", "OPTIN", "OPT-IN", "SUBSCRIBE")},
    **{w: Keyword.HELP for w in ("HELP", "INFO")},
}


def classify(body: str) -> Keyword | None:
    """A reply is a keyword only when it is the whole message (ignoring case, spaces, '.!')."""
    word = " ".join(body.strip().strip(".!").upper().split())
    return SYNONYMS.get(word)
