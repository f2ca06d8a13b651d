"""Reply keywords: the words Twilio acts on (STOP, START, HELP), and who decides.

Twilio blocks a number on an opt-out word and unblocks it only on START, YES or UNSTOP.
We must never believe a number reachable while Twilio still blocks it, so the opt-in words
are exactly Twilio's: OPTIN, OPT-IN or SUBSCRIBE are ordinary replies (Twilio ignores them).
Opt-out goes the other way: besides Twilio's words we honour STOP ALL and OPT-OUT, because
stopping texts a patient asked to stop is always safe.

With Advanced Opt-Out (a Messaging Service), Twilio classifies each message itself, also in
other languages ("ARRET", "PARAR") and by the service's custom words, and says so in the
webhook's OptOutType: then its verdict decides, not our list (see `keyword_for`).
"""

from __future__ import annotations

from enum import StrEnum


class Keyword(StrEnum):
    STOP = "STOP"
    START = "START"
    HELP = "HELP"


#: Twilio's default opt-out words (REVOKE and OPTOUT were added in later years)
TWILIO_STOP_WORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE",
                     "OPTOUT")
TWILIO_START_WORDS = ("START", "YES", "UNSTOP")
TWILIO_HELP_WORDS = ("HELP", "INFO")
#: more ways of saying stop that Twilio does not act on: we stop anyway (safe direction)
EXTRA_STOP_WORDS = ("STOP ALL", "OPT-OUT")

SYNONYMS: dict[str, Keyword] = {
    **{w: Keyword.STOP for w in (*TWILIO_STOP_WORDS, *EXTRA_STOP_WORDS)},
    **{w: Keyword.START for w in TWILIO_START_WORDS},
    **{w: Keyword.HELP for w in TWILIO_HELP_WORDS},
}


def classify(body: str) -> Keyword | None:
    """A reply is a keyword only when it is the whole message (ignoring case, spaces, '.!')."""
    word = " ".join(body.strip().strip(".!").upper().split())
    return SYNONYMS.get(word)


def keyword_for(body: str, provider_verdict: Keyword | None) -> Keyword | None:
    """The keyword a message means: the provider's verdict when it gave one (it is what the
    provider acted on: blocked, unblocked or answered), else our own reading of the body."""
    return provider_verdict if provider_verdict is not None else classify(body)
