"""The password policy (the guide's: "at least 8 characters, with upper and lower case
letters, a number and a symbol; not your user name; not one of your last 5"), plus a list of
common and breached passwords and a maximum length so hashing cannot be made expensive.

Pure: the caller hashes and compares with the history (`previous_matches`), and loads the
common-password list (application/common_passwords.txt).
"""

from __future__ import annotations

from collections.abc import Container

from domain.errors import DomainError

MIN_LENGTH = 8
# Argon2 hashes any length in the same memory, but a megabyte password still costs time and
# bandwidth at every sign-in; 256 is far beyond any passphrase a person types.
MAX_LENGTH = 256
HISTORY = 5  # "not one of your last 5"
# A username part this short ("al") would refuse too many good passwords for no gain.
MIN_NAME_PART = 3


class WeakPassword(DomainError):
    """A new password the policy refuses; the message lists every reason on one line."""


def _strip_non_letters(text: str) -> str:
    start, end = 0, len(text)
    while start < end and not text[start].isalpha():
        start += 1
    while end > start and not text[end - 1].isalpha():
        end -= 1
    return text[start:end]


def is_common(password: str, common: Container[str]) -> bool:
    """In the list as it is, or once the digits and symbols people add around a common word
    are stripped ("Password1!" is "password"); case does not matter."""
    folded = password.casefold()
    core = _strip_non_letters(folded)
    return folded in common or bool(core) and core in common


def name_parts(username: str) -> list[str]:
    """The username and, for an email, its local part (folded), long enough to matter."""
    folded = username.strip().casefold()
    parts = [folded, folded.split("@", 1)[0]]
    return [p for p in dict.fromkeys(parts) if len(p) >= MIN_NAME_PART]


def password_problems(password: str, username: str, common: Container[str],
                      previous_matches: bool = False, *,
                      min_length: int = MIN_LENGTH) -> list[str]:
    """Every reason the policy refuses `password`, each a short sentence for staff
    (empty: acceptable)."""
    problems: list[str] = []
    if len(password) < min_length:
        problems.append(f"it needs at least {min_length} characters")
    if len(password) > MAX_LENGTH:
        problems.append(f"it may have at most {MAX_LENGTH} characters")
    if not any(c.isupper() for c in password):
        problems.append("it needs an upper-case letter")
    if not any(c.islower() for c in password):
        problems.append("it needs a lower-case letter")
    if not any(c.isdigit() for c in password):
        problems.append("it needs a number")
    if all(c.isalnum() for c in password):
        problems.append("it needs a symbol (not a letter or number)")
    folded = password.casefold()
    if any(part in folded for part in name_parts(username)):
        problems.append("it may not contain the user name")
    if previous_matches:
        problems.append(f"it may not be one of the last {HISTORY} passwords")
    if len(password) <= MAX_LENGTH and is_common(password, common):
        problems.append("it is a common or breached password")
    return problems


def check_password(password: str, username: str, common: Container[str],
                   previous_matches: bool = False, *, min_length: int = MIN_LENGTH) -> None:
    problems = password_problems(password, username, common, previous_matches,
                                 min_length=min_length)
    if problems:
        raise WeakPassword("the password is refused: " + "; ".join(problems))
