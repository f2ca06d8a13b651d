"""Saved page views: a named list definition that always runs on current data.

Each view is a `PageView` aggregate (its events are the audit trail of who changed or
shared what). Built-in views are code, not events: everyone sees them, nobody edits them;
"modify and save under a new name" makes a user's own copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import DomainError
from domain.lists import (
    Action,
    Condition,
    Focus,
    ListQuery,
    SortKey,
)

SYSTEM_OWNER = "system"
MAX_NAME_LENGTH = 100


class ViewError(DomainError):
    """A view command the rules refuse (not the owner, a built-in, a taken name…)."""


def check_view_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ViewError("a view needs a name")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ViewError(f"a view name has at most {MAX_NAME_LENGTH} characters")
    return cleaned


def check_users(users: Sequence[str]) -> list[str]:
    cleaned = sorted({u.strip() for u in users if u.strip()})
    if not cleaned:
        raise ViewError("name at least one user to share with")
    return cleaned


class PageView(Aggregate):
    """A user's saved view. `definition` is `ListQuery.definition()` (JSON-friendly)."""

    @event("Saved")
    def __init__(self, name: str, owner: str, definition: dict[str, Any], at: datetime) -> None:
        self.name = name
        self.owner = owner
        self.definition = definition
        self.shared_with: list[str] = []
        self.deleted = False

    def check_owner(self, user: str) -> None:
        if self.deleted:
            raise ViewError(f"the view {self.name!r} was deleted")
        if user != self.owner:
            raise ViewError(f"only {self.owner} can change the view {self.name!r}")

    def update(self, user: str, name: str, definition: dict[str, Any], at: datetime) -> None:
        self.check_owner(user)
        self._updated(check_view_name(name), definition, at)

    @event("Updated")
    def _updated(self, name: str, definition: dict[str, Any], at: datetime) -> None:
        self.name = name
        self.definition = definition

    def share(self, user: str, with_users: Sequence[str], at: datetime) -> None:
        self.check_owner(user)
        users = [u for u in check_users(with_users) if u != self.owner]
        added = sorted(set(users) - set(self.shared_with))
        if added:
            self._shared(added, at)

    @event("Shared")
    def _shared(self, users: list[str], at: datetime) -> None:
        self.shared_with = sorted({*self.shared_with, *users})

    def unshare(self, user: str, with_users: Sequence[str], at: datetime) -> None:
        self.check_owner(user)
        removed = sorted(set(check_users(with_users)) & set(self.shared_with))
        if removed:
            self._unshared(removed, at)

    @event("Unshared")
    def _unshared(self, users: list[str], at: datetime) -> None:
        self.shared_with = sorted(set(self.shared_with) - set(users))

    def delete(self, user: str, at: datetime) -> None:
        self.check_owner(user)
        self._deleted(at)

    @event("Deleted")
    def _deleted(self, at: datetime) -> None:
        self.deleted = True


@dataclass(frozen=True)
class BuiltInView:
    view_id: UUID
    name: str
    query: ListQuery


def _builtin_id(name: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"outreach:page-view:builtin:{name}")


BUILT_IN_VIEWS: tuple[BuiltInView, ...] = (
    BuiltInView(
        _builtin_id("ages-65-plus"),
        "Patients Ages 65+",
        ListQuery(
            focus=Focus.PATIENT,
            filters=(Condition("age", Action.GREATER, "64"),),
            columns=("name", "age", "date_of_birth", "phone", "email", "pcp", "payor"),
        ),
    ),
    BuiltInView(
        _builtin_id("appointments-in-1-week"),
        "Pts w/ Appts in 1 week",
        ListQuery(
            focus=Focus.APPOINTMENT,
            filters=(
                Condition("appt_datetime", Action.IN_NEXT_DAYS, "7"),
                Condition("appt_status", Action.NOT_EQUALS, "Canceled"),
                Condition("appt_status", Action.NOT_EQUALS, "Rescheduled"),
            ),
            sort=(SortKey("appt_provider"), SortKey("appt_datetime")),
            columns=("appt_datetime", "name", "age", "date_of_birth", "appt_type",
                     "appt_status", "phone", "email", "payor", "pcp", "appt_provider"),
        ),
    ),
)
