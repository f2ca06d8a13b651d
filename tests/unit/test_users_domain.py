"""The User aggregate's rules: one email is one user, lockout with back-off, the password
history, and the credential generation that revokes tokens and sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.passwords import HISTORY
from domain.users import (
    InvalidUser,
    LockoutPolicy,
    ResetRefused,
    User,
    normalize_email,
    user_id_for,
)

AT = datetime(2026, 11, 24, 15, tzinfo=UTC)
POLICY = LockoutPolicy()


def a_user(email: str = "pat@example.org") -> User:
    user = User(email=email, name="Pat", roles=["campaigns"], groups=["North"],
                kind="person", by="admin@example.org", at=AT)
    user.set_password("hash-0", "admin@example.org", AT)
    return user


def test_one_email_is_one_user_whatever_its_case() -> None:
    assert a_user("Pat@Example.org").id == a_user("pat@example.org").id
    assert user_id_for(" PAT@example.ORG ") == user_id_for("pat@example.org")


def test_emails_are_validated_and_their_domain_lower_cased() -> None:
    assert normalize_email(" pat@EXAMPLE.org ") == "pat@example.org"
    with pytest.raises(InvalidUser, match="email"):
        normalize_email("not an email")


# -- lockout arithmetic ------------------------------------------------------------------------
@given(st.integers(min_value=0, max_value=10_000))
def test_each_lockout_doubles_from_15_minutes_up_to_24_hours(lockouts: int) -> None:
    lock = POLICY.lock_for(lockouts)
    assert lock == min(timedelta(minutes=15) * 2 ** min(lockouts, 16), timedelta(hours=24))
    assert timedelta(minutes=15) <= lock <= timedelta(hours=24)
    assert POLICY.lock_for(lockouts + 1) >= lock


@given(st.integers(min_value=0, max_value=20), st.integers(min_value=0, max_value=5))
def test_fewer_than_five_failures_never_lock(failures: int, lockouts: int) -> None:
    locked = POLICY.after_failure(failures, lockouts)
    assert (locked is None) == (failures < 5)


@given(st.integers(min_value=1, max_value=4))
def test_five_consecutive_failures_lock_and_a_success_in_between_resets_the_count(
        before_success: int) -> None:
    user = a_user()
    t = AT
    for _ in range(before_success):
        user.record_failure(t, "1.2.3.4", POLICY)
    user.record_success(t, "1.2.3.4")
    for _ in range(4):
        user.record_failure(t, "1.2.3.4", POLICY)
    assert not user.is_locked(t)
    user.record_failure(t, "1.2.3.4", POLICY)
    assert user.is_locked(t)
    assert user.locked_until == t + timedelta(minutes=15)
    assert not user.is_locked(t + timedelta(minutes=15))


def test_a_locked_account_records_nothing_more_and_the_next_lockout_doubles() -> None:
    user = a_user()
    for _ in range(5):
        user.record_failure(AT, "x", POLICY)
    version = user.version
    user.record_failure(AT + timedelta(minutes=1), "x", POLICY)
    assert user.version == version  # refused before any check: the stream does not grow
    later = AT + timedelta(minutes=16)
    for _ in range(5):
        user.record_failure(later, "x", POLICY)
    assert user.locked_until == later + timedelta(minutes=30)


# -- passwords and credentials ------------------------------------------------------------------
def test_the_history_keeps_the_last_five_hashes() -> None:
    user = a_user()
    for n in range(1, 8):
        user.set_password(f"hash-{n}", "pat@example.org", AT)
    assert user.password_hashes == [f"hash-{n}" for n in range(8 - HISTORY, 8)]
    assert user.password_hash == "hash-7"


def test_a_password_change_deactivation_or_revocation_bumps_the_generation() -> None:
    user = a_user()
    start = user.generation
    user.set_password("hash-new", "x", AT)
    user.revoke_tokens("x", AT)
    user.deactivate("x", AT)
    assert user.generation == start + 3
    user.reactivate("x", AT)
    assert user.generation == start + 3  # reactivating revives nothing issued before


def test_a_rehash_keeps_every_credential() -> None:
    user = a_user()
    generation = user.generation
    user.record_success(AT, "x", rehashed="hash-0-stronger")
    assert user.password_hash == "hash-0-stronger" and user.generation == generation


def test_a_reset_token_works_once_and_not_after_it_expires() -> None:
    user = a_user()
    user.issue_reset("digest", AT + timedelta(hours=24), "admin", AT)
    with pytest.raises(ResetRefused):
        user.check_reset("other", AT)
    with pytest.raises(ResetRefused):
        user.check_reset("digest", AT + timedelta(hours=24))
    user.use_reset("digest", AT + timedelta(hours=1))
    with pytest.raises(ResetRefused):
        user.use_reset("digest", AT + timedelta(hours=2))


def test_a_service_account_has_no_password() -> None:
    svc = User(email="svc-export@service.local", name="export", roles=[], groups=[],
               kind="service", by="admin", at=AT)
    with pytest.raises(InvalidUser):
        svc.set_password("hash", "admin", AT)
