"""Who the command line acts as: a named user, never a free-text name.

- `OUTREACH_TOKEN` (a service account's token, for scripts and cron), else
- the token `outreach login` saved (OUTREACH_TOKEN_FILE, default
  ~/.config/outreach/token, readable by its owner only), else
- before the first user exists only (a fresh install; the demo's first step): the setup
  actor, with every role, recorded as such in the audit trail. `outreach users
  create-admin` ends that mode.
The token is checked like the API's bearer tokens (application.users.UserService): expired,
revoked or changed-password tokens are refused with one line.
"""

from __future__ import annotations

import os
from pathlib import Path

from domain.access import SETUP_ACTOR, Actor, NotSignedIn

TOKEN_ENV = "OUTREACH_TOKEN"
TOKEN_FILE_ENV = "OUTREACH_TOKEN_FILE"


def token_file() -> Path:
    given = os.environ.get(TOKEN_FILE_ENV)
    if given:
        return Path(given)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "outreach" / "token"


def saved_token() -> str | None:
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    path = token_file()
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise NotSignedIn(f"cannot read the saved sign-in {path}: {exc.strerror}") from None


def save_token(token: str) -> Path:
    path = token_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created owner-only before the token is written: never world-readable, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    os.chmod(path, 0o600)
    return path


def forget_token() -> bool:
    try:
        token_file().unlink()
        return True
    except FileNotFoundError:
        return False


def cli_actor(o: object) -> Actor:
    """The acting user of this command (see the module's docstring)."""
    users = o.users  # type: ignore[attr-defined]
    token = saved_token()
    if token:
        actor: Actor = users.actor_for_token(token, "cli")
        return actor
    if not users.any_users():
        return SETUP_ACTOR
    raise NotSignedIn("sign in first: `outreach login` (or set OUTREACH_TOKEN to a service "
                      "account's token)")
