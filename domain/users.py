"""Staff users: who may sign in, with which roles and subscriber groups, and the history of
their passwords and sign-ins.

One email is one user: the id is uuid5 of the folded email, so two administrators creating
the same person at once collide in the event store instead of making two accounts.

Lockout (the guide: "locked after 5 failed attempts"): after `max_failures` consecutive
failures the account is locked for `first` (15 minutes), doubling on each further lockout up
to `longest` (24 h), so guessing slows down without locking a person out for good. A success
resets both. A locked account refuses even the right password until the lock ends.

Credentials carry the user's `generation`: a password set, a deactivation or a revocation
bumps it, and every token and session issued before stops working.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import NAMESPACE_URL, UUID, uuid5

from email_validator import EmailNotValidError, validate_email
from eventsourcing.domain import Aggregate, event

from domain.errors import DomainError
from domain.passwords import HISTORY

USERS_NAMESPACE = uuid5(NAMESPACE_URL, "outreach:users")
MAX_EXPONENT = 16  # 15 min × 2^16 is far past any cap: no huge integers from a long siege


class InvalidUser(DomainError):
    """A user's email, name, roles or groups that cannot be used."""


class UserExists(DomainError):
    """A user with this email already exists (one email is one user)."""


class ResetRefused(DomainError):
    """A password-reset token that is unknown, used, replaced or expired."""


class UserKind(StrEnum):
    PERSON = "person"
    SERVICE = "service"  # a program with a long-lived token; never signs in with a password


def normalize_email(text: str) -> str:
    """The email as it is stored (domain lower-cased by the validator), or InvalidUser."""
    try:
        return validate_email(text.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidUser(f"not a usable email address: {exc}") from None


def fold_email(email: str) -> str:
    return email.strip().casefold()


def user_id_for(email: str) -> UUID:
    return uuid5(USERS_NAMESPACE, fold_email(email))


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 5
    first: timedelta = timedelta(minutes=15)
    longest: timedelta = timedelta(hours=24)

    def lock_for(self, lockouts_before: int) -> timedelta:
        """How long the next lockout lasts after `lockouts_before` earlier ones."""
        factor = 2 ** min(max(lockouts_before, 0), MAX_EXPONENT)
        return min(self.first * factor, self.longest)

    def after_failure(self, failures: int, lockouts_before: int) -> timedelta | None:
        """The lockout that `failures` consecutive failures earn (None: not yet)."""
        return self.lock_for(lockouts_before) if failures >= self.max_failures else None


class User(Aggregate):
    @staticmethod
    def create_id(email: str) -> UUID:  # type: ignore[override]
        return user_id_for(email)

    @event("Created")
    def __init__(self, email: str, name: str, roles: list[str], groups: list[str],
                 kind: str, by: str, at: datetime) -> None:
        self.email = email
        self.name = name
        self.roles = list(roles)
        self.groups = list(groups)
        self.kind = kind
        self.active = True
        self.generation = 0
        self.password_hashes: list[str] = []  # newest last, at most HISTORY
        self.failures = 0
        self.lockouts = 0
        self.locked_until: datetime | None = None
        self.last_login_at: datetime | None = None
        self.created_at = at
        self.reset_hash: str | None = None
        self.reset_expires_at: datetime | None = None

    # -- rules --------------------------------------------------------------------------
    @property
    def password_hash(self) -> str | None:
        return self.password_hashes[-1] if self.password_hashes else None

    def is_locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def check_reset(self, token_hash: str, now: datetime) -> None:
        valid = (self.reset_hash is not None and self.reset_expires_at is not None
                 and hmac.compare_digest(self.reset_hash, token_hash)
                 and now < self.reset_expires_at and self.active)
        if not valid:
            raise ResetRefused("this reset token is not valid: it was used, replaced or has "
                               "expired; ask an administrator for a new one")

    # -- commands -----------------------------------------------------------------------
    def update(self, *, name: str, roles: list[str], groups: list[str], by: str,
               at: datetime) -> bool:
        if (name, list(roles), list(groups)) == (self.name, self.roles, self.groups):
            return False
        self._updated(name=name, roles=list(roles), groups=list(groups), by=by, at=at)
        return True

    def deactivate(self, by: str, at: datetime) -> None:
        if self.active:
            self._deactivated(by=by, at=at)

    def reactivate(self, by: str, at: datetime) -> None:
        if not self.active:
            self._reactivated(by=by, at=at)

    def set_password(self, hash: str, by: str, at: datetime) -> None:  # noqa: A002
        if self.kind == UserKind.SERVICE:
            raise InvalidUser("a service account has no password: it uses its token")
        self._password_set(hash=hash, by=by, at=at)

    def record_failure(self, at: datetime, source: str, policy: LockoutPolicy) -> None:
        if self.is_locked(at):
            return  # refused before any check: nothing to learn, nothing to grow
        self._login_failed(at=at, source=source, failures=self.failures + 1)
        lock = policy.after_failure(self.failures, self.lockouts)
        if lock is not None:
            self._locked_out(at=at, until=at + lock, lockouts=self.lockouts + 1)

    def record_success(self, at: datetime, source: str, rehashed: str | None = None) -> None:
        self._login_succeeded(at=at, source=source)
        if rehashed:
            self._password_rehashed(hash=rehashed, at=at)

    def issue_reset(self, token_hash: str, expires_at: datetime, by: str,
                    at: datetime) -> None:
        self._reset_issued(token_hash=token_hash, expires_at=expires_at, by=by, at=at)

    def use_reset(self, token_hash: str, at: datetime) -> None:
        self.check_reset(token_hash, at)
        self._reset_used(at=at)

    def revoke_tokens(self, by: str, at: datetime) -> None:
        self._tokens_revoked(by=by, at=at)

    # -- events -------------------------------------------------------------------------
    @event("Updated")
    def _updated(self, name: str, roles: list[str], groups: list[str], by: str,
                 at: datetime) -> None:
        self.name, self.roles, self.groups = name, list(roles), list(groups)

    @event("Deactivated")
    def _deactivated(self, by: str, at: datetime) -> None:
        self.active = False
        self.generation += 1

    @event("Reactivated")
    def _reactivated(self, by: str, at: datetime) -> None:
        self.active = True

    @event("PasswordSet")
    def _password_set(self, hash: str, by: str, at: datetime) -> None:  # noqa: A002
        self.password_hashes = [*self.password_hashes, hash][-HISTORY:]
        self.generation += 1
        # A new password ends a lockout and any reset link (an administrator's reset is
        # how a locked-out person gets back in).
        self.failures = 0
        self.lockouts = 0
        self.locked_until = None
        self.reset_hash = None
        self.reset_expires_at = None

    @event("PasswordRehashed")
    def _password_rehashed(self, hash: str, at: datetime) -> None:  # noqa: A002
        # Same password, stronger hash parameters: no credential is revoked.
        self.password_hashes = [*self.password_hashes[:-1], hash]

    @event("LoginSucceeded")
    def _login_succeeded(self, at: datetime, source: str) -> None:
        self.failures = 0
        self.lockouts = 0
        self.locked_until = None
        self.last_login_at = at

    @event("LoginFailed")
    def _login_failed(self, at: datetime, source: str, failures: int) -> None:
        self.failures = failures

    @event("LockedOut")
    def _locked_out(self, at: datetime, until: datetime, lockouts: int) -> None:
        self.locked_until = until
        self.lockouts = lockouts
        self.failures = 0  # the next lockout needs max_failures more

    @event("ResetIssued")
    def _reset_issued(self, token_hash: str, expires_at: datetime, by: str,
                      at: datetime) -> None:
        self.reset_hash = token_hash
        self.reset_expires_at = expires_at

    @event("ResetUsed")
    def _reset_used(self, at: datetime) -> None:
        self.reset_hash = None
        self.reset_expires_at = None

    @event("TokensRevoked")
    def _tokens_revoked(self, by: str, at: datetime) -> None:
        self.generation += 1
