"""Users and sign-in on SQLite and PostgreSQL: passwords with lockout and history, API tokens
revoked by a password change, browser sessions that end when idle, one-time reset tokens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from application.bootstrap import Outreach
from application.clock import SimulatedClock
from application.users import WRONG, UserService
from domain.access import ALL_SUBSCRIBERS, NotSignedIn, Role
from domain.errors import DomainError
from domain.passwords import WeakPassword
from domain.users import ResetRefused, UserExists

SECRET = b"a-test-secret-for-api-tokens-0123456789"
ADMIN = "admin@example.org"
PAT = "pat.jones@example.org"
GOOD = "Blue-Heron-42!"


class CountingHash(PasswordHash):
    """Argon2 with cheap parameters (tests), counting the verifications it does."""

    def __init__(self, time_cost: int = 1) -> None:
        super().__init__((Argon2Hasher(time_cost=time_cost, memory_cost=1024, parallelism=1),))
        self.verified = 0

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:  # noqa: A002
        self.verified += 1
        return super().verify(password, hash)

    def verify_and_update(self, password: str | bytes,
                          hash: str | bytes) -> tuple[bool, str | None]:  # noqa: A002
        self.verified += 1
        return super().verify_and_update(password, hash)


Setup = tuple[UserService, SimulatedClock, Outreach]


@pytest.fixture
def users(make_outreach: Callable[..., Outreach]) -> Setup:
    o = make_outreach()
    assert isinstance(o.clock, SimulatedClock)
    service = UserService(o.store, o.db, o.clock, o.settings, SECRET, hasher=CountingHash())
    service.create_admin(ADMIN, "Ada Admin", "Root-Cellar-77#")
    service.create(PAT, "Pat Jones", GOOD, [Role.CAMPAIGNS], ["North Clinic"], ADMIN)
    return service, o.clock, o


def later(clock: SimulatedClock, **delta: Any) -> None:
    clock.advance_to(clock.now() + timedelta(**delta))


def test_a_user_signs_in_with_their_password_and_acts_with_their_roles_and_groups(
        users: Setup) -> None:
    service, clock, _ = users
    actor = service.authenticate("Pat.Jones@example.org", GOOD, "10.0.0.7")
    assert actor.username == PAT and actor.roles == frozenset({Role.CAMPAIGNS})
    assert actor.groups == ("North Clinic",) and actor.via == "password"
    assert actor.source == "10.0.0.7"
    assert service.get(PAT).last_login_at == clock.now()
    admin = service.get(ADMIN)
    assert set(admin.roles) == {r.value for r in Role} and admin.groups == (ALL_SUBSCRIBERS,)
    assert service.any_users() and [v.email for v in service.list()] == [ADMIN, PAT]


def test_one_email_is_one_user(users: Setup) -> None:
    service, _, _ = users
    with pytest.raises(UserExists):
        service.create("PAT.JONES@example.org", "Pat Again", GOOD, [], [], ADMIN)


def test_an_unknown_email_is_refused_like_a_wrong_password_after_the_same_hashing_work(
        users: Setup) -> None:
    service, _, _ = users
    hasher = service.hasher
    assert isinstance(hasher, CountingHash)
    with pytest.raises(NotSignedIn) as wrong:
        service.authenticate(PAT, "Not-The-One-1!", "x")
    before = hasher.verified
    with pytest.raises(NotSignedIn) as unknown:
        service.authenticate("nobody@example.org", "Not-The-One-1!", "x")
    assert str(unknown.value) == str(wrong.value) == WRONG
    assert hasher.verified == before + 1  # an Argon2 verification all the same


def test_five_failures_lock_the_account_even_against_the_right_password_then_back_off(
        users: Setup) -> None:
    service, clock, _ = users
    for _ in range(4):
        with pytest.raises(NotSignedIn, match=WRONG):
            service.authenticate(PAT, "Wrong-Guess-1!", "x")
    with pytest.raises(NotSignedIn, match="locked"):
        service.authenticate(PAT, "Wrong-Guess-1!", "x")
    with pytest.raises(NotSignedIn, match="try again after"):
        service.authenticate(PAT, GOOD, "x")
    assert service.get(PAT).locked_until == clock.now() + timedelta(minutes=15)
    later(clock, minutes=15)
    for _ in range(5):
        with pytest.raises(NotSignedIn):
            service.authenticate(PAT, "Wrong-Guess-1!", "x")
    assert service.get(PAT).locked_until == clock.now() + timedelta(minutes=30)
    later(clock, minutes=30)
    assert service.authenticate(PAT, GOOD, "x").username == PAT
    assert service.get(PAT).locked_until is None


def test_the_last_five_passwords_are_refused_and_the_sixth_back_is_allowed(
        users: Setup) -> None:
    service, _, _ = users
    passwords = [GOOD] + [f"Fresh-Pass-{n}{n}!" for n in range(1, 6)]
    for new in passwords[1:]:
        service.set_password(PAT, new, ADMIN)
    with pytest.raises(WeakPassword, match="last 5"):
        service.set_password(PAT, passwords[1], ADMIN)
    service.set_password(PAT, GOOD, ADMIN)  # the sixth back
    assert service.authenticate(PAT, GOOD, "x").username == PAT


def test_a_weak_password_is_refused_with_every_reason(users: Setup) -> None:
    service, _, _ = users
    with pytest.raises(WeakPassword, match="common or breached"):
        service.set_password(PAT, "Password1!", ADMIN)
    with pytest.raises(WeakPassword, match="user name"):
        service.change_password(PAT, GOOD, "Pat.Jones-2026!")


def test_a_token_stops_working_when_the_password_changes(users: Setup) -> None:
    service, _, _ = users
    token = service.issue_token(PAT, "laptop", days=30)
    assert service.actor_for_token(token, "x").via == "token"
    service.change_password(PAT, GOOD, "Other-Heron-43!")
    with pytest.raises(NotSignedIn, match="revoked"):
        service.actor_for_token(token, "x")
    fresh = service.issue_token(PAT, "laptop", days=30)
    assert service.actor_for_token(fresh, "x").username == PAT


def test_revoking_tokens_and_deactivating_end_every_credential(users: Setup) -> None:
    service, _, _ = users
    token = service.issue_token(PAT)
    service.revoke_tokens(PAT, ADMIN)
    with pytest.raises(NotSignedIn):
        service.actor_for_token(token, "x")
    token = service.issue_token(PAT)
    service.update(PAT, active=False, by=ADMIN)
    with pytest.raises(NotSignedIn):
        service.actor_for_token(token, "x")
    with pytest.raises(NotSignedIn, match="deactivated"):
        service.authenticate(PAT, GOOD, "x")


def test_an_expired_or_forged_token_is_refused(users: Setup) -> None:
    service, clock, o = users
    token = service.issue_token(PAT, days=1)
    later(clock, hours=23)
    assert service.actor_for_token(token, "x").username == PAT
    later(clock, hours=1)
    with pytest.raises(NotSignedIn, match="expired"):
        service.actor_for_token(token, "x")
    other = UserService(o.store, o.db, o.clock, o.settings, b"another-secret-entirely-0123456",
                        hasher=CountingHash())
    with pytest.raises(NotSignedIn, match="not valid"):
        service.actor_for_token(other.issue_token(PAT), "x")
    with pytest.raises(NotSignedIn):
        service.actor_for_token(service.issue_token(PAT)[:-2] + "xx", "x")


def test_a_service_account_token_lasts_until_revoked(users: Setup) -> None:
    service, clock, _ = users
    view, token = service.create_service_account("Nightly Export", [Role.CAMPAIGNS],
                                                 ["North Clinic"], ADMIN)
    assert view.email == "svc-nightly-export@service.local" and view.kind == "service"
    later(clock, days=3650)
    assert service.actor_for_token(token, "x").username == view.email
    with pytest.raises(NotSignedIn):
        service.authenticate(view.email, "Anything-1!", "x")  # no password sign-in
    service.revoke_tokens(view.user_id, ADMIN)
    with pytest.raises(NotSignedIn):
        service.actor_for_token(token, "x")


def test_a_session_ends_after_15_idle_minutes_and_slides_while_used(users: Setup) -> None:
    service, clock, _ = users
    session = service.open_session(service.authenticate(PAT, GOOD, "x"))
    assert session.expires_at == clock.now() + timedelta(minutes=15)
    for _ in range(3):
        later(clock, minutes=14)
        actor, seen = service.actor_for_session(session.id, "x")
        assert actor.via == "session" and seen.csrf == session.csrf
    later(clock, minutes=15)
    with pytest.raises(NotSignedIn, match="session has ended"):
        service.actor_for_session(session.id, "x")


def test_background_refreshes_do_not_keep_an_idle_session_alive(users: Setup) -> None:
    service, clock, _ = users
    session = service.open_session(service.authenticate(PAT, GOOD, "x"))
    for _ in range(2):
        later(clock, minutes=7)
        service.actor_for_session(session.id, "x", slide=False)  # a page polling progress
    later(clock, minutes=1, seconds=1)  # 15 minutes since the user last did anything
    with pytest.raises(NotSignedIn, match="session has ended"):
        service.actor_for_session(session.id, "x", slide=False)


def test_a_session_ends_12_hours_after_sign_in_however_busy(users: Setup) -> None:
    service, clock, _ = users
    session = service.open_session(service.authenticate(PAT, GOOD, "x"))
    for _ in range(12 * 6 - 1):
        later(clock, minutes=10)
        service.actor_for_session(session.id, "x")
    later(clock, minutes=10)
    with pytest.raises(NotSignedIn):
        service.actor_for_session(session.id, "x")


def test_a_session_ends_with_a_password_change_and_on_sign_out(users: Setup) -> None:
    service, _, _ = users
    first = service.open_session(service.authenticate(PAT, GOOD, "x"))
    service.set_password(PAT, "Other-Heron-43!", ADMIN)
    with pytest.raises(NotSignedIn):
        service.actor_for_session(first.id, "x")
    second = service.open_session(service.authenticate(PAT, "Other-Heron-43!", "x"))
    service.close_session(second.id)
    with pytest.raises(NotSignedIn):
        service.actor_for_session(second.id, "x")


def test_a_reset_token_works_once_and_expires_after_24_hours(users: Setup) -> None:
    service, clock, _ = users
    token = service.issue_reset(PAT, ADMIN)
    with pytest.raises(WeakPassword):
        service.reset_password(token, "weak")  # a refused password does not use it up
    service.reset_password(token, "Reset-Heron-44!")
    assert service.authenticate(PAT, "Reset-Heron-44!", "x").username == PAT
    with pytest.raises(ResetRefused, match="not valid"):
        service.reset_password(token, "Again-Heron-45!")
    expiring = service.issue_reset(PAT, ADMIN)
    later(clock, hours=24)
    with pytest.raises(ResetRefused):
        service.reset_password(expiring, "Late-Heron-46!")
    with pytest.raises(ResetRefused):
        service.reset_password("not-a-token", "Late-Heron-46!")


def test_the_last_active_administrator_cannot_be_demoted_or_deactivated(
        users: Setup) -> None:
    service, _, _ = users
    with pytest.raises(DomainError, match="last active administrator"):
        service.update(ADMIN, roles=[Role.CAMPAIGNS], by=ADMIN)
    with pytest.raises(DomainError, match="last active administrator"):
        service.update(ADMIN, active=False, by=ADMIN)
    service.update(PAT, roles=[Role.ADMIN], by=ADMIN)
    assert service.update(ADMIN, roles=[Role.CAMPAIGNS], by=ADMIN).roles == ("campaigns",)


def test_a_stronger_hashing_setting_rehashes_at_sign_in_without_revoking(
        users: Setup) -> None:
    service, _, o = users
    token = service.issue_token(PAT)
    stronger = UserService(o.store, o.db, o.clock, o.settings, SECRET,
                           hasher=CountingHash(time_cost=2))
    stronger.authenticate(PAT, GOOD, "x")
    user: Any = o.store.repository.get(UUID(stronger.get(PAT).user_id))
    assert "t=2" in user.password_hash
    assert stronger.actor_for_token(token, "x").username == PAT


def test_no_export_shows_a_password_or_reset_token_hash(users: Setup) -> None:
    import io

    from application.event_export import EventExport, EventFilter

    service, _clock, o = users
    service.issue_reset(PAT, ADMIN)
    out = io.BytesIO()
    EventExport(o.store, o.contact_keys, internal=True,
                flt=EventFilter(types=("User.*",))).write(out, "jsonl")
    text = out.getvalue().decode()
    assert "User.PasswordSet" in text and "User.ResetIssued" in text
    assert "$argon2" not in text and '"token_hash":"[withheld' in text.replace(" ", "")
    stored = [vars(e) for e in o.store.events.get(UUID(service.get(PAT).user_id))]
    hashes = [str(e["hash"]) for e in stored if "hash" in e]
    assert hashes and all(h not in text for h in hashes)
