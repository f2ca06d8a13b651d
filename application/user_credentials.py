"""The two kinds of credential a signed-in user holds, apart from their password:

- API tokens (bearer): a JWT signed HS256 with a key derived from the deployment's secret,
  carrying the user's id and credential generation. Nothing is stored per token: a password
  change, a deactivation or a revocation bumps the generation and every earlier token fails.
- Browser sessions: a random id in an HttpOnly cookie, only its SHA-256 stored (a copy of the
  table gives nobody a session), with an idle timeout that slides on use (automatic logoff)
  and an absolute lifetime.

Token and session strings are secrets: never logged, never in an exception message.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import jwt

from domain.access import NotSignedIn
from projections.db import Database
from projections.timefmt import iso, parse_iso

TOKEN_KEY_LABEL = b"outreach-api-tokens"
ALGORITHM = "HS256"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenClaims:
    user_id: str
    generation: int
    token_id: str
    expires_at: datetime | None


class TokenSigner:
    def __init__(self, secret: bytes) -> None:
        # A key of its own: the secret's other uses (contact keys) never sign a token.
        self._key = hmac.new(secret, TOKEN_KEY_LABEL, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "TokenSigner(<key>)"

    def issue(self, user_id: str, generation: int, name: str, now: datetime,
              expires_at: datetime | None) -> str:
        claims: dict[str, Any] = {"sub": user_id, "gen": generation, "jti": uuid4().hex,
                                  "iat": int(now.timestamp()), "name": name[:60]}
        if expires_at is not None:
            claims["exp"] = int(expires_at.timestamp())
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def read(self, token: str, now: datetime) -> TokenClaims:
        """The claims of a token this deployment signed and that has not expired by `now`
        (our clock, not the machine's: PyJWT's own time checks are off)."""
        try:
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM], options={
                "verify_exp": False, "verify_iat": False, "verify_nbf": False,
                "require": ["sub", "gen", "jti", "iat"]})
        except jwt.InvalidTokenError:
            raise NotSignedIn("the token is not valid: sign in again") from None
        exp = claims.get("exp")
        expires_at = datetime.fromtimestamp(int(exp), UTC) if exp is not None else None
        if expires_at is not None and now >= expires_at:
            raise NotSignedIn("the token has expired: make a new one")
        if not isinstance(claims["gen"], int) or not isinstance(claims["sub"], str):
            raise NotSignedIn("the token is not valid: sign in again")
        return TokenClaims(claims["sub"], claims["gen"], str(claims["jti"]), expires_at)


@dataclass(frozen=True)
class Session:
    id: str = field(repr=False)
    csrf: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True)
class OpenSession:
    """A stored session: whose, of which generation, and its own expiry."""

    session: Session
    user_id: str
    generation: int


SESSION_ENDED = "your session has ended: sign in again"


class SessionStore:
    def __init__(self, db: Database, idle: timedelta, longest: timedelta) -> None:
        self.db = db
        self.idle = idle
        self.longest = longest

    def _expiry(self, created: datetime, now: datetime) -> datetime:
        return min(now + self.idle, created + self.longest)

    def open(self, user_id: str, generation: int, now: datetime) -> Session:
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32),
                          self._expiry(now, now))
        with self.db.transaction() as tx:
            # Ended sessions go as new ones come: the table holds the living only.
            tx.execute("DELETE FROM staff_sessions WHERE expires_at <= ?", (iso(now),))
            tx.execute(
                "INSERT INTO staff_sessions (id_sha256, user_id, csrf, generation, created_at,"
                " last_seen_at, expires_at) VALUES (?,?,?,?,?,?,?)",
                (sha256_hex(session.id), user_id, session.csrf, generation, iso(now),
                 iso(now), iso(session.expires_at)))
        return session

    def use(self, session_id: str, now: datetime, slide: bool = True) -> OpenSession:
        """The session, its idle time restarted (unless `slide` is False: a page refreshing
        itself in the background is not the user at work, and must not keep an idle
        session alive past the automatic logoff); NotSignedIn when unknown or ended."""
        key = sha256_hex(session_id)
        with self.db.transaction() as tx:
            row = tx.fetchone("SELECT user_id, csrf, generation, created_at, expires_at"
                              " FROM staff_sessions WHERE id_sha256 = ?", (key,))
            if row is None:
                raise NotSignedIn(SESSION_ENDED)
            created, expires = parse_iso(row[3]), parse_iso(row[4])
            assert created is not None and expires is not None
            if now >= expires:
                tx.execute("DELETE FROM staff_sessions WHERE id_sha256 = ?", (key,))
                ended = True
            elif not slide:
                ended = False
            else:
                ended = False
                expires = self._expiry(created, now)
                tx.execute("UPDATE staff_sessions SET last_seen_at = ?, expires_at = ?"
                           " WHERE id_sha256 = ?", (iso(now), iso(expires), key))
        if ended:
            raise NotSignedIn(SESSION_ENDED)
        return OpenSession(Session(session_id, str(row[1]), expires), str(row[0]), int(row[2]))

    def close(self, session_id: str) -> None:
        self.db.execute("DELETE FROM staff_sessions WHERE id_sha256 = ?",
                        (sha256_hex(session_id),))

    def close_all(self, user_id: str) -> None:
        self.db.execute("DELETE FROM staff_sessions WHERE user_id = ?", (user_id,))
