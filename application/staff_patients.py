"""Patients, lists, saved views, imports and opt-outs for a signed-in user: the role check,
the groups scope and the audit record around application.patients.PatientService and
application.opt_outs.OptOutService.

Groups (domain.access): a user in "All Subscribers" may use any list scope and read any
patient; anyone else sees the patients related (PCP, appointment or billing) to the active
providers of their groups, the same relation a list scoped to those groups uses
(projections.patient_queries). A list asked for "All Subscribers" by a restricted user is
narrowed to their groups; naming a group or provider outside them is refused; a user in no
group sees no patient.
"""

from __future__ import annotations

import builtins
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError

from application.attempts import AttemptRow, communication_attempts
from application.csv_safe import SafeCsvWriter
from application.opt_outs import OptOutRecord, OptOutService
from application.patients import ListResult, PatientService, SavedView, SearchResult
from application.patients_audience import AudienceCheck
from application.patients_import import ImportFileError, ImportSummary
from application.staff_base import AuditSink, Guarded
from domain.access import Actor, Permission
from domain.channels import Channel
from domain.errors import DomainError, NotFound
from domain.lists import FIELDS_BY_KEY, Focus, ListError, ListQuery, Scope, build_query
from domain.patients_fields import fold
from domain.preferences import ContactKeys, PhoneOptOut
from projections.patient_queries import Compiler, resolve_scope
from projections.patient_search import PatientSummary, SearchTextError

PATIENT_ID = "patient_id"
CSV_PAGE = 1000  # rows per query while writing a list download
MAX_IN = 500  # patient ids per IN (...) when checking which ones a user may see


class UnusableSearch(DomainError):
    """Nothing to search on (too short, no digits or letters): unusable input."""


class ImportRefused(DomainError):
    """A file that cannot be imported at all (unreadable, wrong header)."""


@dataclass(frozen=True)
class ListOptions:
    """A list as staff ask for it (the `outreach list` options): a saved view, modified by
    filters ("field|action|value"), sort ("field:desc"), columns, focus and scope."""

    view: str | None = None
    filters: Sequence[str] = ()
    sort: Sequence[str] = ()
    columns: Sequence[str] = ()
    focus: str | None = None
    providers: Sequence[str] = ()
    groups: Sequence[str] = ()
    page: int = 1
    page_size: int | None = None


@dataclass(frozen=True)
class ImportOutcome:
    summary: ImportSummary
    rejects_id: str | None  # for the rejects download, when rows were rejected


class PatientsFacade(Guarded):
    def __init__(self, audit: AuditSink, patients: PatientService, opt_outs: OptOutService,
                 imports_dir: Path, contact_keys: ContactKeys | None = None) -> None:
        super().__init__(audit)
        self.patients = patients
        self.opt_outs = opt_outs
        self.imports_dir = Path(imports_dir)
        self.contact_keys = contact_keys  # to tell whether a mobile number texted STOP

    def _with_text_status(self, card: PatientSummary) -> PatientSummary:
        """A STOP from the patient's mobile blocks the number, not the patient's record: the
        summary says so, as the dispatcher reads it (the keyed record, else the legacy one)."""
        if self.contact_keys is None or not card.mobile:
            return card
        for phone_id in self.contact_keys.opt_out_ids(card.mobile):
            try:
                phone: PhoneOptOut = self.patients.store.repository.get(phone_id)
            except AggregateNotFoundError:
                continue
            if not phone.stopped:
                return card
            when = phone.changed_at.astimezone(self.patients.zone).date().isoformat() \
                if phone.changed_at else "earlier"
            return replace(card, text_status=f"No texts: the mobile number replied STOP "
                                             f"({when}); a START from it restarts them")
        return card

    # -- groups ------------------------------------------------------------------------------

    def visible(self, actor: Actor, patient_ids: Sequence[str]) -> set[str]:
        """Which of these patients the user may see (only those that exist)."""
        ids = sorted(set(patient_ids))
        if not ids or not (actor.sees_all or actor.groups):
            return set()
        db = self.patients.db
        seen: set[str] = set()
        with db.transaction() as tx:
            providers = None if actor.sees_all else resolve_scope(
                tx, ListQuery(scope=Scope(groups=tuple(actor.groups))))
            scope = Compiler(db.dialect, self.patients.today()).scope(ListQuery(), providers) \
                if providers is not None else None
            for start in range(0, len(ids), MAX_IN):
                chunk = ids[start:start + MAX_IN]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT p.patient_id FROM patients p WHERE p.patient_id IN ({marks})"
                params: list[object] = list(chunk)
                if scope is not None:
                    sql += f" AND {scope.text}"
                    params += list(scope.params)
                seen.update(str(r[0]) for r in tx.fetchall(sql, params))
        return seen

    def _require_patient(self, actor: Actor, action: str, patient_id: str) -> None:
        if patient_id in self.visible(actor, [patient_id]):
            return
        if actor.sees_all:
            raise NotFound(f"no patient with id {patient_id!r}")
        # Outside the user's groups, or unknown: one answer, so ids cannot be probed.
        raise self.deny(actor, action, "this patient is outside your groups", patient_id)

    def scoped(self, actor: Actor, query: ListQuery, action: str) -> ListQuery | None:
        """The query as this user may run it; None: they see no patient at all."""
        if actor.sees_all:
            return query
        if not actor.groups:
            return None
        mine = {fold(g.strip()) for g in actor.groups}
        scope = query.scope
        if scope.all_subscribers:
            return replace(query, scope=Scope(groups=tuple(actor.groups)))
        outside = [g for g in scope.groups if fold(g.strip()) not in mine]
        if scope.providers:
            marks = ",".join("?" * len(mine))
            allowed = {str(r[0]) for r in self.patients.db.fetchall(
                f"SELECT provider_id FROM provider_groups WHERE group_f IN ({marks})",
                sorted(mine))}
            outside += [p for p in scope.providers if p not in allowed]
        if outside:
            raise self.deny(actor, action, "the list names groups or providers outside "
                            f"your groups: {', '.join(outside)}")
        return query

    # -- search and summary ------------------------------------------------------------------

    def search(self, actor: Actor, text: str) -> SearchResult:
        with self.audited(actor, Permission.PATIENTS_READ, "patients.search") as note:
            try:
                found = self.patients.search(text)
            except SearchTextError as exc:
                raise UnusableSearch(str(exc)) from None
            seen = self.visible(actor, [h.patient_id for h in found.hits])
            hits = [h for h in found.hits if h.patient_id in seen]
            single = found.summary if len(hits) == 1 and found.summary is not None and \
                found.summary.patient_id == hits[0].patient_id else None
            if len(hits) == 1 and single is None:
                single = self.patients.summary(hits[0].patient_id)
            if single is not None:
                single = self._with_text_status(single)
            note.patient_ids = [h.patient_id for h in hits]
            note.detail = f"{len(hits)} shown"
        return SearchResult(hits, found.more, single)

    def summary(self, actor: Actor, patient_id: str) -> PatientSummary:
        with self.audited(actor, Permission.PATIENTS_READ, "patients.summary",
                          target=patient_id, patient_ids=(patient_id,)):
            self._require_patient(actor, "patients.summary", patient_id)
            return self._with_text_status(self.patients.summary(patient_id))

    # -- lists and views ---------------------------------------------------------------------

    def query(self, actor: Actor, options: ListOptions) -> ListQuery:
        """A saved view modified by the options, or a new definition from them (as
        `outreach list` builds it)."""
        base = self.patients.find_view(actor.username, options.view).query \
            if options.view else ListQuery()
        focus = Focus(options.focus) if options.focus else base.focus
        if options.focus and options.view and focus != base.focus:
            raise ListError("a view's focus cannot be changed: build a new list instead")
        extra = build_query(focus=focus, filters=options.filters, sort=options.sort,
                            columns=_split(options.columns), providers=options.providers,
                            groups=options.groups)
        return ListQuery(
            focus=focus,
            scope=extra.scope if (options.providers or options.groups) else base.scope,
            filters=base.filters + extra.filters, sort=extra.sort or base.sort,
            columns=extra.columns or base.columns, page=options.page,
            page_size=options.page_size or base.page_size)

    def list(self, actor: Actor, options: ListOptions) -> ListResult:
        with self.audited(actor, Permission.LISTS_READ, "lists.run",
                          target=options.view or "") as note:
            query = self.query(actor, options)
            result = self._run(actor, query, "lists.run")
            note.patient_ids = _patients_of(result)
        return result

    def _run(self, actor: Actor, query: ListQuery, action: str) -> ListResult:
        scoped = self.scoped(actor, query, action)
        if scoped is None:
            return ListResult([], 0, query.page, query.page_size, query.focus,
                              query.shown_columns, "no groups")
        return self.patients.list(scoped)

    def list_csv(self, actor: Actor, options: ListOptions) -> str:
        """The whole list (every page) as formula-safe CSV, the patient id first."""
        with self.audited(actor, Permission.LISTS_READ, "lists.download",
                          target=options.view or "") as note:
            query = self.query(actor, options).with_page(1, CSV_PAGE)
            first = self._run(actor, query, "lists.download")
            keys = first.columns if PATIENT_ID in first.columns else (PATIENT_ID,
                                                                      *first.columns)
            out = io.StringIO()
            writer = SafeCsvWriter(out)
            writer.writerow([FIELDS_BY_KEY[c].label for c in keys])
            shown: builtins.list[str] = []
            result = first
            while True:
                writer.writerows([[_cell(r.get(c)) for c in keys] for r in result.rows])
                shown += _patients_of(result)
                if result.page >= result.pages or not result.rows:
                    break
                result = self._run(actor, query.with_page(result.page + 1), "lists.download")
            note.patient_ids = sorted(set(shown))
            note.detail = f"{first.total} rows"
        return out.getvalue()

    def views(self, actor: Actor) -> builtins.list[SavedView]:
        with self.audited(actor, Permission.LISTS_READ, "views.list"):
            return self.patients.views(actor.username)

    def view(self, actor: Actor, ref: str) -> SavedView:
        with self.audited(actor, Permission.LISTS_READ, "views.show", target=ref):
            return self.patients.find_view(actor.username, ref)

    def save_view(self, actor: Actor, name: str, options: ListOptions) -> SavedView:
        with self.audited(actor, Permission.LISTS_READ, "views.save", target=name) as note:
            query = self.query(actor, options)
            self.scoped(actor, query, "views.save")  # a view may not name others' groups
            saved = self.patients.save_view(actor.username, name, query)
            note.target = saved.view_id
        return saved

    def update_view(self, actor: Actor, ref: str, options: ListOptions | None,
                    rename: str | None = None, *, whole: bool = False) -> SavedView:
        """`options` change what they give (a PATCH: no filters given keeps the view's); with
        `whole`, they are the view's entire new definition (the console's form: every
        filter row removed means no filters)."""
        with self.audited(actor, Permission.LISTS_READ, "views.update", target=ref):
            query = None
            if options is not None:
                current = self.patients.find_view(actor.username, ref).query
                given = self.query(actor, replace(options, view=None,
                                                  focus=current.focus.value))
                query = ListQuery(
                    focus=current.focus,
                    scope=given.scope if (options.providers or options.groups)
                    else current.scope,
                    filters=given.filters if options.filters or whole else current.filters,
                    sort=given.sort or current.sort, columns=given.columns or current.columns,
                    page_size=current.page_size)
                self.scoped(actor, query, "views.update")
            return self.patients.update_view(actor.username, ref, query, rename)

    def delete_view(self, actor: Actor, ref: str) -> None:
        with self.audited(actor, Permission.LISTS_READ, "views.delete", target=ref):
            self.patients.delete_view(actor.username, ref)

    def share_view(self, actor: Actor, ref: str, users: Sequence[str]) -> SavedView:
        with self.audited(actor, Permission.VIEWS_SHARE, "views.share", target=ref,
                          ) as note:
            note.detail = f"with {', '.join(users)}"
            return self.patients.share_view(actor.username, ref, users)

    def unshare_view(self, actor: Actor, ref: str, users: Sequence[str]) -> SavedView:
        with self.audited(actor, Permission.VIEWS_SHARE, "views.unshare", target=ref) as note:
            note.detail = f"with {', '.join(users)}"
            return self.patients.unshare_view(actor.username, ref, users)

    def audience(self, actor: Actor, options: ListOptions, channel: str,
                 patient_ids: Sequence[str] | None = None, *, keep_inactive: bool = False,
                 keep_reminders_only: bool = False) -> AudienceCheck:
        """Check a whole list, or patients chosen from it, as a campaign audience."""
        with self.audited(actor, Permission.LISTS_READ, "lists.audience") as note:
            try:
                chosen_channel = Channel(channel)
            except ValueError:
                raise DomainError(f"unknown channel {channel!r}: use text, phone, email or "
                                  "letter") from None
            query = self.scoped(actor, self.query(actor, options), "lists.audience")
            if query is None:  # no groups: nothing to check against
                query = ListQuery(scope=Scope(groups=("\x00no group",)))
            check = self.patients.audience_from(
                query if patient_ids is None else list(patient_ids), chosen_channel,
                remove_inactive=not keep_inactive,
                remove_appointment_reminders_only=not keep_reminders_only,
                within=None if patient_ids is None else query)
            note.patient_ids = check.patient_ids
        return check

    # -- imports -----------------------------------------------------------------------------

    def import_file(self, actor: Actor, kind: str, path: Path, *, encoding: str = "auto",
                    delimiter: str = "auto") -> ImportOutcome:
        """Import one uploaded file; its rejected rows (if any) are kept in `imports_dir`
        under the returned id, for `rejects_file`."""
        with self.audited(actor, Permission.IMPORTS_RUN, "imports.run", target=kind) as note:
            self.imports_dir.mkdir(parents=True, exist_ok=True)
            try:
                summary = self.patients.import_file(kind, path, self.imports_dir,
                                                    encoding=encoding, delimiter=delimiter,
                                                    by=actor.username)
            except (ImportFileError, ValueError) as exc:
                raise ImportRefused(str(exc)) from None
            rejects_id = None
            if summary.rejects_file is not None:
                rejects_id = str(summary.import_id or uuid4())
                kept = self.imports_dir / f"{rejects_id}.rejects.csv"
                Path(summary.rejects_file).replace(kept)
                summary.rejects_file = kept
            note.target = str(summary.import_id or kind)
            note.detail = (f"{kind}: {summary.rows} rows, {summary.accepted} accepted, "
                           f"{summary.rejected} rejected")
        return ImportOutcome(summary, rejects_id)

    def rejects_file(self, actor: Actor, rejects_id: str) -> Path:
        with self.audited(actor, Permission.IMPORTS_RUN, "imports.rejects",
                          target=rejects_id):
            try:
                canonical = str(UUID(rejects_id))
            except ValueError:
                raise NotFound(f"no rejected rows for import {rejects_id!r}") from None
            path = self.imports_dir / f"{canonical}.rejects.csv"
            if not path.is_file():
                raise NotFound(f"no rejected rows for import {rejects_id!r}")
            return path

    def history_attempts(self, actor: Actor, summary: PatientSummary
                         ) -> dict[str, builtins.list[AttemptRow]]:
        """Each communication of a summary the user was shown, expanded to its attempts
        (type, time, outcome). Part of reading that summary (audited there): checked again
        for the user's groups, not recorded twice."""
        self.check(actor, Permission.PATIENTS_READ, "patients.history", summary.patient_id)
        self._require_patient(actor, "patients.history", summary.patient_id)
        return communication_attempts(self.patients.store, summary.patient_id,
                                      [c.communication_id for c in summary.communications])

    # -- opt-outs ----------------------------------------------------------------------------

    def opt_outs_of(self, actor: Actor, patient_id: str) -> builtins.list[OptOutRecord]:
        with self.audited(actor, Permission.PATIENTS_READ, "opt_outs.list",
                          target=patient_id, patient_ids=(patient_id,)):
            self._require_patient(actor, "opt_outs.list", patient_id)
            return self.opt_outs.current(patient_id)

    def opt_out_add(self, actor: Actor, patient_id: str, kind: str, reason: str, *,
                    until: date | None = None, days: int | None = None, comment: str = "",
                    protocol: str = "") -> builtins.list[OptOutRecord]:
        with self.audited(actor, Permission.OPT_OUTS_MANAGE, "opt_outs.add",
                          target=patient_id, patient_ids=(patient_id,)) as note:
            self._require_patient(actor, "opt_outs.add", patient_id)
            note.detail = kind
            self.opt_outs.add(patient_id, kind, reason, by=actor.username, until=until,
                              days=days, comment=comment, protocol=protocol)
            return self.opt_outs.current(patient_id)

    def opt_out_remove(self, actor: Actor, patient_id: str,
                       types: Sequence[str]) -> builtins.list[OptOutRecord]:
        with self.audited(actor, Permission.OPT_OUTS_MANAGE, "opt_outs.remove",
                          target=patient_id, patient_ids=(patient_id,)) as note:
            self._require_patient(actor, "opt_outs.remove", patient_id)
            note.detail = ", ".join(types)
            self.opt_outs.remove(patient_id, types, by=actor.username)
            return self.opt_outs.current(patient_id)


def _patients_of(result: ListResult) -> list[str]:
    return list(dict.fromkeys(str(r[PATIENT_ID]) for r in result.rows if r.get(PATIENT_ID)))


def _split(columns: Sequence[str]) -> list[str]:
    return [c.strip() for text in columns for c in text.split(",") if c.strip()]


def _cell(value: object) -> str:
    return "" if value is None else str(value)
