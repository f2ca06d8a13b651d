"""One-click unsubscribe links (RFC 8058): a signed token naming one communication.

A token is "<communication id hex>.<HMAC-SHA256 of it, 16 bytes, base64url, no padding>",
keyed by a purpose key derived from the deployment's contact-key secret, so the secret is
never used raw for two purposes. It carries no PHI (a random-looking id only), and without
the secret nobody can make one for another communication: guessing ids gets nowhere.
Test sends sign the campaign id the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from uuid import UUID

from domain.errors import DomainError
from domain.preferences import MIN_SECRET_BYTES  # the same secret: the same floor

PURPOSE = b"outreach:unsubscribe:v1"
MAC_BYTES = 16
# 32 hex digits, a dot, 22 base64url characters: anything else is refused before any work.
_TOKEN = re.compile(r"[0-9a-f]{32}\.[A-Za-z0-9_-]{22}")
TOKEN_LENGTH = 55


class InvalidToken(DomainError):
    """An unsubscribe link that is malformed, altered or not ours."""


class UnsubscribeTokens:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the unsubscribe secret needs at least {MIN_SECRET_BYTES} bytes")
        self._key = hmac.new(secret, PURPOSE, hashlib.sha256).digest()

    def _mac(self, hex_id: str) -> str:
        digest = hmac.new(self._key, hex_id.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:MAC_BYTES]).rstrip(b"=").decode("ascii")

    def issue(self, communication_id: UUID) -> str:
        hex_id = communication_id.hex
        return f"{hex_id}.{self._mac(hex_id)}"

    def read(self, token: str) -> UUID:
        """The communication id the token was issued for; InvalidToken otherwise."""
        # Length first: a huge input is refused without a regex pass over it.
        if (not isinstance(token, str) or len(token) != TOKEN_LENGTH
                or not _TOKEN.fullmatch(token)):
            raise InvalidToken("this unsubscribe link is not valid")
        hex_id, mac = token.split(".")
        # Compared as text, not decoded bytes: the last base64 character has spare bits,
        # and a variant that decodes to the same bytes must still be refused.
        if not hmac.compare_digest(mac.encode("ascii"), self._mac(hex_id).encode("ascii")):
            raise InvalidToken("this unsubscribe link is not valid")
        return UUID(hex=hex_id)

    def url(self, public_url: str, communication_id: UUID) -> str:
        return f"{public_url.rstrip('/')}/unsubscribe/{self.issue(communication_id)}"
