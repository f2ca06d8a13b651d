"""Patient data and lists: imports, lists and saved views, search, summary, audiences.

`PatientService(store, db, clock, settings)` is what the CLI, the HTTP app and the campaign
service call. Imported facts and saved views are events in the one event store; the read
model tables are built by `PatientsProjection` and `PageViewsProjection` (both in
`self.projections`), which this service catches up itself after every change it records.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import structlog

from application.import_projector import ProjectorProcess, store_settings
from application.import_rows import PROCESS_MIN_BYTES
from application.import_source import SourceError, parse_delimiter, parse_encoding
from application.patients_audience import AudienceCheck, check_ids, check_list
from application.patients_directory import SqlPatientDirectory
from application.patients_import import FileImport, ImportFileError, ImportSummary
from application.ports import PatientDirectory
from application.settings import Settings
from domain.channels import Channel
from domain.clock import Clock
from domain.email import BOUNCED_REASON
from domain.errors import NotFound
from domain.lists import FIELDS_BY_KEY, Focus, ListQuery
from domain.lists_views import (
    BUILT_IN_VIEWS,
    SYSTEM_OWNER,
    PageView,
    ViewError,
    check_view_name,
)
from domain.patients import ImportKind
from domain.patients_fields import fold
from domain.preferences import ContactKeys
from projections.base import Projection
from projections.db import Database, Tx
from projections.patient_queries import compiler_for, fetch_page, resolve_scope
from projections.patient_search import PatientHit, PatientSummary, search, summary
from projections.patients import PatientsProjection
from projections.patients_views import PageViewsProjection
from projections.runner import catch_up, prepare

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ListResult:
    rows: list[dict[str, Any]]  # keyed by field key; always patient_id (+ appointment_id)
    total: int  # rows on all pages (appointment lists: appointments)
    page: int
    page_size: int
    focus: Focus
    columns: tuple[str, ...]  # field keys, in display order
    scope: str  # "All Subscribers" or the chosen providers/groups
    group_by: str | None = None  # appointment lists are grouped by appointment provider

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(FIELDS_BY_KEY[c].label for c in self.columns)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


@dataclass(frozen=True)
class SavedView:
    view_id: str
    name: str
    owner: str
    built_in: bool
    shared_with: tuple[str, ...]
    query: ListQuery


@dataclass(frozen=True)
class SearchResult:
    hits: list[PatientHit]  # at most 100, by last, first, middle name
    more: bool  # more patients matched than shown: search by phone instead
    summary: PatientSummary | None  # exactly one hit: its summary


class PatientService:
    def __init__(self, store: Any, db: Database, clock: Clock, settings: Settings) -> None:
        self.store = store
        self.db = db
        self.clock = clock
        self.settings = settings
        self._keys: ContactKeys | None = None  # loaded when a summary first needs them
        self.patients_projection = PatientsProjection()
        self.views_projection = PageViewsProjection()
        self.projections: builtins.list[Projection] = [
            self.patients_projection, self.views_projection]
        prepare(db, self.projections)

    @property
    def zone(self) -> ZoneInfo:
        # Read each time: the time zone is an organisation setting an administrator may
        # change while this process runs (application/organisation.py).
        return ZoneInfo(self.settings.timezone)

    # -- housekeeping ------------------------------------------------------------------------

    def catch_up(self) -> int:
        return catch_up(self.store, self.db, self.projections)

    def today(self) -> date:
        """The organisation's calendar day (relative dates in filters count from it)."""
        return self.clock.now().astimezone(self.zone).date()

    @contextmanager
    def _reading(self) -> Iterator[Tx]:
        """A transaction for list, search and summary queries. On PostgreSQL, JIT is off:
        compiling these plans costs more (~80 ms a query) than it ever saves them."""
        with self.db.transaction() as tx:
            if self.db.dialect == "postgres":
                tx.execute("SET LOCAL jit = off")
            yield tx

    def directory(self) -> PatientDirectory:
        return SqlPatientDirectory(self.db)

    # -- imports -----------------------------------------------------------------------------

    def import_file(self, kind: str | ImportKind, path: Path,
                    rejects_dir: Path | None = None, *,
                    check_in_process: bool | None = None,
                    project_in_process: bool | None = None,
                    encoding: str = "auto", delimiter: str = "auto",
                    by: str = "") -> ImportSummary:
        """Import one CSV file. Raises ImportFileError when the file cannot be read at all
        (or not in `encoding`: utf-8, cp1252 or auto) or its header does not fit `kind`;
        bad rows are reported, never fatal. `delimiter`: `,` `;` `tab` or auto (see
        application/import_source.py). Rows are checked in a child process for large files
        (`check_in_process` None: by size), and on PostgreSQL projected in another
        (`project_in_process` None: by size)."""
        import_kind = kind if isinstance(kind, ImportKind) else ImportKind.parse(kind)
        try:
            chosen_encoding, chosen_delimiter = parse_encoding(encoding), \
                parse_delimiter(delimiter)
        except SourceError as exc:
            raise ImportFileError(str(exc)) from None
        path = Path(path)
        return FileImport(
            self.store, self.db, lambda: catch_up(self.store, self.db, [self.patients_projection]),
            import_kind, path, rejects_dir, self.today(), self.clock.now(),
            check_in_process, self._projector_process(path, project_in_process),
            chosen_encoding, chosen_delimiter, by,
        ).run()

    def _projector_process(self, path: Path, wanted: bool | None
                           ) -> Callable[[], ProjectorProcess] | None:
        """A child process projects the windows of a large file when the event store and
        the read model are PostgreSQL (`wanted` None: by file size, like the row checks)."""
        env = store_settings(self.store)
        url = getattr(self.db, "url", None)
        if env is None or url is None or wanted is False:
            return None
        if wanted is None and (not path.exists() or path.stat().st_size < PROCESS_MIN_BYTES):
            return None
        return lambda: ProjectorProcess(env, url)

    # -- lists -------------------------------------------------------------------------------

    def list(self, query: ListQuery) -> ListResult:
        today = self.today()
        with self._reading() as tx:
            page = fetch_page(tx, self.db.dialect, query, today)
        log.info("patients.list", focus=query.focus.value, filters=len(query.filters),
                 total=page.total, page=query.page)
        return ListResult(
            rows=page.rows, total=page.total, page=query.page, page_size=query.page_size,
            focus=query.focus, columns=query.shown_columns, scope=query.scope.describe(),
            group_by="appt_provider" if query.focus == Focus.APPOINTMENT else None)

    def run_view(self, user: str, ref: str, page: int = 1,
                 page_size: int | None = None) -> ListResult:
        return self.list(self.find_view(user, ref).query.with_page(page, page_size))

    # -- saved views -------------------------------------------------------------------------

    def views(self, user: str) -> builtins.list[SavedView]:
        """Built-ins, then the user's own views, then views shared with them (by name)."""
        self.catch_up()
        built_in = [SavedView(str(v.view_id), v.name, SYSTEM_OWNER, True, (), v.query)
                    for v in BUILT_IN_VIEWS]
        rows = self.db.fetchall(
            "SELECT v.view_id, v.name, v.owner, v.definition FROM page_views v"
            " WHERE v.owner = ? OR v.view_id IN"
            " (SELECT s.view_id FROM page_view_shares s WHERE s.user_name = ?)"
            " ORDER BY CASE WHEN v.owner = ? THEN 0 ELSE 1 END, v.name_f, v.view_id",
            (user, user, user))
        shares: dict[str, list[str]] = {}
        for view_id, shared_user in self.db.fetchall(
                "SELECT s.view_id, s.user_name FROM page_view_shares s JOIN page_views v"
                " ON v.view_id = s.view_id WHERE v.owner = ? ORDER BY s.user_name", (user,)):
            shares.setdefault(str(view_id), []).append(str(shared_user))
        saved = [SavedView(str(r[0]), str(r[1]), str(r[2]), False,
                           tuple(shares.get(str(r[0]), ())),
                           ListQuery.from_definition(json.loads(str(r[3]))))
                 for r in rows]
        return built_in + saved

    def find_view(self, user: str, ref: str) -> SavedView:
        """By id, or by name (the user's own first, then built-ins, then shared ones)."""
        visible = self.views(user)
        for view in visible:
            if view.view_id == ref:
                return view
        named = [v for v in visible if fold(v.name) == fold(" ".join(ref.split()))]
        own = [v for v in named if v.owner == user]
        candidates = own or [v for v in named if v.built_in] or named
        if not candidates:
            names = ", ".join(repr(v.name) for v in visible)
            raise NotFound(f"no view {ref!r}; your views: {names}")
        if len(candidates) > 1:
            owners = ", ".join(sorted(v.owner for v in candidates))
            raise ViewError(f"several views are called {ref!r} (shared by {owners}): use its id")
        return candidates[0]

    def save_view(self, user: str, name: str, query: ListQuery) -> SavedView:
        """Save a definition under a new name (how staff make a view from another one)."""
        name = check_view_name(name)
        self._check_name_free(user, name)
        view = PageView(name, user, query.definition(), self.clock.now())
        self.store.save(view)
        log.info("patients.view.saved", filters=len(query.filters))
        return self.find_view(user, str(view.id))

    def update_view(self, user: str, ref: str, query: ListQuery | None = None,
                    name: str | None = None) -> SavedView:
        current = self.find_view(user, ref)
        if current.built_in:
            raise ViewError(f"{current.name!r} is built in and cannot be changed: save it under "
                            "a new name instead")
        new_name = check_view_name(name) if name else current.name
        if fold(new_name) != fold(current.name):
            self._check_name_free(user, new_name)
        view = self._load(current)
        view.update(user, new_name, (query or current.query).definition(), self.clock.now())
        self.store.save(view)
        return self.find_view(user, current.view_id)

    def delete_view(self, user: str, ref: str) -> None:
        current = self.find_view(user, ref)
        if current.built_in:
            raise ViewError(f"{current.name!r} is built in and cannot be deleted")
        view = self._load(current)
        view.delete(user, self.clock.now())
        self.store.save(view)
        self.catch_up()

    def share_view(self, user: str, ref: str, with_users: Sequence[str]) -> SavedView:
        current = self.find_view(user, ref)
        if current.built_in:
            raise ViewError(f"{current.name!r} is built in: everyone already sees it")
        view = self._load(current)
        view.share(user, with_users, self.clock.now())
        self.store.save(view)
        return self.find_view(user, current.view_id)

    def unshare_view(self, user: str, ref: str, with_users: Sequence[str]) -> SavedView:
        current = self.find_view(user, ref)
        view = self._load(current)
        view.unshare(user, with_users, self.clock.now())
        self.store.save(view)
        return self.find_view(user, current.view_id)

    def _load(self, saved: SavedView) -> PageView:
        view: PageView = self.store.repository.get(UUID(saved.view_id))
        return view

    def _check_name_free(self, user: str, name: str) -> None:
        taken = [v for v in self.views(user)
                 if fold(v.name) == fold(name) and (v.built_in or v.owner == user)]
        if taken:
            raise ViewError(f"you already have a view called {taken[0].name!r}: pick another "
                            "name, or update that view")

    # -- search and summary ------------------------------------------------------------------

    def search(self, text: str) -> SearchResult:
        """By 10-digit phone (partial allowed) or name; see projections/patient_search.py."""
        now = self.clock.now()
        today = self.today()
        with self._reading() as tx:
            hits, more = search(tx, self.db.dialect, text, now, today)
            single = summary(tx, hits[0].patient_id, now, today) if len(hits) == 1 else None
            if single is not None:
                single = self._with_email_status(tx, single)
        log.info("patients.search", hits=len(hits), more=more)
        return SearchResult(hits, more, single)

    def summary(self, patient_id: str) -> PatientSummary:
        with self._reading() as tx:
            found = summary(tx, patient_id, self.clock.now(), self.today())
            if found is not None:
                found = self._with_email_status(tx, found)
        if found is None:
            raise NotFound(f"no patient with id {patient_id!r}")
        return found

    def _with_email_status(self, tx: Tx, found: PatientSummary) -> PatientSummary:
        """"No Communication: Email Bounced" when the patient's current address is the one
        that bounced for good (compared by keyed hash: the read model holds no address)."""
        row = tx.fetchone("SELECT bounced_key FROM email_states WHERE patient_id = ?",
                          (found.patient_id,))
        if not row or not row[0] or not found.email:
            return found
        if self._keys is None:
            from application.contact_keys import contact_keys

            self._keys = contact_keys(self.settings)
        if self._keys.email_key(found.email) != row[0]:
            return found  # a new address since: a new chance
        return dataclasses.replace(found, email_status=f"No Communication: {BOUNCED_REASON}")

    # -- from a list to a campaign -----------------------------------------------------------

    def audience_from(
        self, selection: ListQuery | Sequence[str], channel: Channel | str, *,
        remove_inactive: bool = True, remove_appointment_reminders_only: bool = True,
        within: ListQuery | None = None,
    ) -> AudienceCheck:
        """Check a selection (a whole list, or chosen patient ids) for a campaign. Chosen
        ids are checked against the list they were chosen from (`within`) when given."""
        chosen_channel = Channel(channel)
        cap = self.settings.campaign_size_cap
        with self._reading() as tx:
            if isinstance(selection, ListQuery):
                check = check_list(tx, self.db.dialect, selection, self.today(), chosen_channel,
                                   cap, remove_inactive, remove_appointment_reminders_only)
            else:
                members = None if within is None else compiler_for(
                    tx, self.db.dialect, within, self.today()).members(
                        within, resolve_scope(tx, within))
                check = check_ids(tx, list(selection), chosen_channel, cap, remove_inactive,
                                  remove_appointment_reminders_only, members)
        log.info("patients.audience", channel=chosen_channel.value, selected=check.selected,
                 size=check.size, over_cap=check.over_cap)
        return check
