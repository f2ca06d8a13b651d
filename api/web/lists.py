"""The console's Patient Management page (the Phytel guide's "Build a List of Patients"): open
a saved page view or build a list (scope, filter rows, sorting, columns), run it, page
through it, save / update / delete / share the view, download it as CSV, select patients
and Send Campaign: the audience check, then a POST to the campaign editor.

The page's state lives in its URL (GET /console/lists?...), so a list is bookmarkable and
Back works; htmx swaps the page body in place and pushes the canonical URL. `view=ID` alone
runs the saved view as it is (views always run on current data); with `defined=1` the URL
carries the whole definition (the form, filled from the view and then edited).

Every read and change goes through `page.staff.patients` (application.staff_patients) with
the signed-in user: role, groups (a restricted user's "All Subscribers" is narrowed to their
groups; naming another group is refused) and audit are the facade's. One facade list call
per render: the rows come with every shown column, nothing is fetched per row.

The hand-over to the campaign editor (another module) is this form, POSTed to
/console/campaigns/new: csrf_token, channel (text|phone|email|letter), patients (the
cleaned audience's ids joined by ","), audience_note (one short human line).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, QueryParams

from api.staff.problems import status_of
from api.web.patients import show_phone
from api.web.session import CSRF_FIELD, Page, checked_page, is_htmx, page_of, refusal
from application.patients import ListResult, SavedView
from application.patients_audience import AudienceCheck
from application.staff_patients import ListOptions, PatientsFacade
from domain.access import AccessDenied, NotSignedIn, Permission
from domain.errors import DomainError
from domain.lists import DEFAULT_PAGE_SIZE, FIELDS_BY_KEY, Action, Focus, ListQuery, fields_for

router = APIRouter(prefix="/console")

BODY_TARGET = "list-page"  # the id of the swapped page body (lists_body.html)
MESSAGE_TARGET = "#lists-message"
EDITOR = "/console/campaigns/new"  # the campaign editor: the contract in the docstring
CHANNELS = (("text", "Text message"), ("phone", "Phone call"), ("email", "Email"),
            ("letter", "Letter"))
MAX_FILTERS = 20
MAX_SORT = 4
MAX_BLANK = 5
MAX_VALUE = 500
MAX_PICKS = 1000  # a page has at most this many rows (domain.lists.MAX_PAGE_SIZE)
MAX_PAGE = 1_000_000
PAGE_SIZES = (10, 25, 50, 100, 250)
ViewId = Annotated[str, PathParam(min_length=1, max_length=100)]


class BadInput(DomainError):
    """A form or URL the console cannot read (too long, too many rows): said in one line."""


@dataclass(frozen=True)
class FilterRow:
    field: str
    action: str
    value: str = ""


@dataclass(frozen=True)
class SortRow:
    field: str
    direction: str = "asc"


@dataclass
class ListState:
    """What the URL (or a POSTed copy of it) says about the list on the page."""

    view: str = ""
    defined: bool = False  # the definition below is the list (else: the view's own)
    focus: str = Focus.PATIENT.value
    groups: list[str] = field(default_factory=list)
    providers: str = ""  # provider ids, comma-separated
    filters: list[FilterRow] = field(default_factory=list)
    sort: list[SortRow] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    page: int = 1
    size: int = 0  # rows per page; 0: the view's (or the default)
    blank: int = 1  # empty filter rows offered ("Add a filter row" adds one)

    def options(self, page: int | None = None) -> ListOptions:
        number = page or self.page
        if self.view and not self.defined:
            return ListOptions(view=self.view, page=number, page_size=self.size or None)
        return ListOptions(
            focus=self.focus,
            filters=[f"{r.field}|{r.action}|{r.value}" for r in self.filters],
            sort=[f"{s.field}:{s.direction}" for s in self.sort],
            columns=self._columns(), groups=list(self.groups),
            providers=[p.strip() for p in self.providers.split(",") if p.strip()],
            page=number, page_size=self.size or None)

    def _columns(self) -> list[str]:
        # Columns are a display choice: after switching a new list to patients, the
        # appointment columns still ticked are dropped, not an error.
        usable = {f.key for f in fields_for(Focus(self.focus))}
        return [c for c in self.columns if c in usable or c not in FIELDS_BY_KEY]

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        """The canonical query of this state (bookmarkable; no one-off buttons)."""
        state = replace(self, **changes)
        out: list[tuple[str, str]] = []
        if state.view:
            out.append(("view", state.view))
        if state.defined or not state.view:
            out += [("defined", "1"), ("focus", state.focus)]
            out += [("group", g) for g in state.groups]
            if state.providers:
                out.append(("providers", state.providers))
            for r in state.filters:
                out += [("f_field", r.field), ("f_action", r.action), ("f_value", r.value)]
            for s in state.sort:
                out += [("s_field", s.field), ("s_dir", s.direction)]
            out += [("col", c) for c in state.columns]
        if state.size:
            out.append(("size", str(state.size)))
        if state.page > 1:
            out.append(("page", str(state.page)))
        if state.blank > 1:
            out.append(("blank", str(state.blank)))
        return out

    def url(self, **changes: Any) -> str:
        query = urlencode(self.params(**changes))
        return f"/console/lists?{query}" if query else "/console/lists"

    def from_view(self, view: SavedView) -> ListState:
        """The form filled in from a view's definition (what "modify it" starts from)."""
        q = view.query
        return replace(
            self, focus=q.focus.value, groups=list(q.scope.groups),
            providers=", ".join(q.scope.providers),
            filters=[FilterRow(c.field, c.action.value, c.value) for c in q.filters],
            sort=[SortRow(s.field, "desc" if s.descending else "asc") for s in q.sort],
            columns=list(q.columns), size=self.size or (
                q.page_size if q.page_size != DEFAULT_PAGE_SIZE else 0))


def _one(data: QueryParams | FormData, name: str, limit: int = 200) -> str:
    value = data.get(name)
    text = value if isinstance(value, str) else ""
    if len(text) > limit:
        raise BadInput(f"the field {name!r} has at most {limit} characters")
    return text.strip()


def _many(data: QueryParams | FormData, name: str, limit: int = 200) -> list[str]:
    values = [v if isinstance(v, str) else "" for v in data.getlist(name)]
    if any(len(v) > limit for v in values):
        raise BadInput(f"a value of {name!r} has at most {limit} characters")
    return [v.strip() for v in values]


def _number(text: str, default: int, high: int) -> int:
    # A page number is navigation, not data: garbage means the first page, not an error.
    try:
        return min(max(int(text), 1), high)
    except ValueError:
        return default


def read_state(data: QueryParams | FormData) -> tuple[ListState, int | None]:
    """The state, and the filter row a "Remove" button asked to drop (if any)."""
    fields = _many(data, "f_field")
    actions = _many(data, "f_action")
    values = _many(data, "f_value", MAX_VALUE)
    if len(fields) > MAX_FILTERS:
        raise BadInput(f"a list has at most {MAX_FILTERS} filter rows")
    rows = []
    for i, name in enumerate(fields):
        action = actions[i] if i < len(actions) else ""
        value = values[i] if i < len(values) else ""
        if name or value:  # an untouched blank row is not a filter
            rows.append(FilterRow(name, action, value))
    sort_fields, directions = _many(data, "s_field"), _many(data, "s_dir")
    sort = [SortRow(name, "desc" if i < len(directions) and directions[i] == "desc" else "asc")
            for i, name in enumerate(sort_fields[:MAX_SORT * 4]) if name][:MAX_SORT]
    focus = _one(data, "focus")
    remove = _one(data, "remove")
    state = ListState(
        view=_one(data, "view", 100), defined=_one(data, "defined") == "1",
        focus=focus if focus in (f.value for f in Focus) else Focus.PATIENT.value,
        groups=[g for g in _many(data, "group") if g][:50],
        providers=_one(data, "providers", 1000), filters=rows, sort=sort,
        columns=list(dict.fromkeys(c for c in _many(data, "col") if c))[:60],
        page=_number(_one(data, "page"), 1, MAX_PAGE),
        size=_number(_one(data, "size"), 0, MAX_PICKS) if _one(data, "size") else 0,
        blank=_number(_one(data, "blank"), 1, MAX_BLANK))
    if _one(data, "add"):
        state.blank = min(state.blank + 1, MAX_BLANK)
    return state, _number(remove, 0, MAX_FILTERS) - 1 if remove else None


def _facade(page: Page) -> PatientsFacade:
    found: PatientsFacade = page.staff.patients
    return found


def _htmx(page: Page) -> bool:
    # A history restore (Back after hx-push-url) wants the whole page.
    return is_htmx(page.request) and not page.request.headers.get("HX-History-Restore-Request")


def _private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "HX-Request"
    return response


def _group_choices(page: Page, chosen: Iterable[str]) -> list[str]:
    """Groups a user may scope a list to: their own when restricted, else the clinic's."""
    if page.actor.sees_all:
        users = getattr(page.staff, "users", None)
        known = [g for g in users.groups(page.actor)[1:]] if users is not None else []
    else:
        known = list(page.actor.groups)
    return list(dict.fromkeys([*known, *chosen]))


@dataclass
class Shown:
    """One render's facts: the views, the chosen one, the list (or why it did not run)."""

    state: ListState
    views: list[SavedView]
    chosen: SavedView | None = None
    result: ListResult | None = None
    message: str = ""
    status: int = 200


def _show(page: Page, state: ListState, run: bool = True) -> Shown:
    """The views and one list call (in the thread pool)."""
    facade = _facade(page)
    views = facade.views(page.actor)
    chosen = next((v for v in views if state.view in (v.view_id, v.name)), None) \
        if state.view else None
    if chosen is not None and not state.defined:
        state = state.from_view(chosen)
    shown = Shown(state, views, chosen)
    if state.view and chosen is None:
        shown.message, shown.status = f"no view {state.view!r}: choose one of the list", 404
        return shown
    if run:
        try:
            shown.result = facade.list(page.actor, state.options())
        except DomainError as exc:
            if isinstance(exc, AccessDenied | NotSignedIn) and not page.can(
                    Permission.LISTS_READ):
                raise
            shown.message, shown.status = " ".join(str(exc).split()), status_of(exc)
    return shown


def _context(page: Page, shown: Shown, **extra: Any) -> dict[str, Any]:
    state = shown.state
    focus = Focus(state.focus)
    catalogue = fields_for(focus)
    result = shown.result
    shown_columns = list(result.columns) if result else list(
        state.columns or ListQuery(focus=focus).shown_columns)
    ordered = [*shown_columns, *(f.key for f in catalogue if f.key not in shown_columns)]
    labels = {f.key: f.label for f in catalogue}
    own = shown.chosen is not None and not shown.chosen.built_in \
        and shown.chosen.owner == page.actor.username
    return {
        "section": "lists", "state": state, "views": shown.views, "chosen": shown.chosen,
        "own_view": own, "result": result, "message": shown.message,
        "filter_fields": [f for f in catalogue if f.valid_actions],
        "sort_fields": [f for f in catalogue if f.sortable],
        "column_keys": [k for k in ordered if k in labels], "labels": labels,
        "actions": [a.value for a in Action], "shown_columns": shown_columns,
        "sort_rows": [*state.sort, *[SortRow("")] * max(0, min(MAX_SORT, len(state.sort) + 1)
                                                      - len(state.sort))],
        "group_choices": _group_choices(page, state.groups), "channels": CHANNELS,
        # The POST forms carry the list as run, its definition spelled out.
        "hidden": state.params(page=1, blank=1, defined=True), "picked": set(),
        "all_picked": False,
        "audience": None, "csrf_field": CSRF_FIELD, "editor": EDITOR,
        "cell": _cell, "sizes": PAGE_SIZES, **extra}


PHONE_COLUMNS = frozenset(k for k, f in FIELDS_BY_KEY.items() if f.phone)


def _cell(value: object, key: str = "") -> str:
    """A cell as staff read it: numbers as they type them (512-555-0101)."""
    if value is None:
        return ""
    return show_phone(str(value)) if key in PHONE_COLUMNS else str(value)


# -- the page ----------------------------------------------------------------------------------

@router.get("/lists", response_class=HTMLResponse)
async def lists_page(page: Annotated[Page, Depends(page_of)]) -> Response:
    try:
        state, remove = read_state(page.request.query_params)
    except BadInput as exc:
        shown = await run_in_threadpool(_show, page, ListState(), False)
        shown.message, shown.status = str(exc), 400
        return _render(page, shown)
    if remove is not None or page.request.query_params.get("add"):
        if remove is not None and 0 <= remove < len(state.filters):
            del state.filters[remove]
        state.page = 1
        if not _htmx(page):  # the address keeps the list, not the button pressed
            return _private(RedirectResponse(state.url(), status_code=303))
    shown = await run_in_threadpool(_show, page, state)
    answer = _render(page, shown)
    if _htmx(page):
        answer.headers["HX-Push-Url"] = state.url()
    return answer


def _render(page: Page, shown: Shown, **extra: Any) -> Response:
    context = _context(page, shown, **extra)
    if _htmx(page) and page.request.headers.get("HX-Target") == BODY_TARGET:
        # htmx swaps no 4xx: the message comes in the fragment with a 200.
        return _private(page.render("lists_body.html", **context))
    return _private(page.render("lists_page.html", status_code=shown.status, **context))


@router.get("/lists.csv", response_class=Response)
async def lists_csv(page: Annotated[Page, Depends(page_of)]) -> Response:
    state, _ = read_state(page.request.query_params)
    text = await run_in_threadpool(_facade(page).list_csv, page.actor, state.options(1))
    return Response(text, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="patient-list.csv"',
        "Cache-Control": "no-store"})


# -- Send Campaign: the audience check -----------------------------------------------------------

@router.post("/lists/audience", response_class=HTMLResponse)
async def audience(page: Annotated[Page, Depends(checked_page)]) -> Response:
    form = await page.request.form()
    try:
        state, _ = read_state(form)
        picks = [p for p in _many(form, "pick", 100) if p]
        if len(picks) > MAX_PICKS:
            raise BadInput(f"choose at most {MAX_PICKS:,} patients, or select all on the list")
        whole = _one(form, "all") == "1"
        channel = _one(form, "channel") or "text"
        keep_inactive = _one(form, "keep_inactive") == "1"
        keep_reminders = _one(form, "keep_reminders_only") == "1"
        if not whole and not picks:
            raise BadInput("choose patients on the list, or select all on this list")
    except BadInput as exc:
        return _audience_refused(page, exc)

    def check() -> tuple[AudienceCheck, str]:
        facade = _facade(page)
        found = facade.audience(page.actor, state.options(1), channel,
                                None if whole else picks, keep_inactive=keep_inactive,
                                keep_reminders_only=keep_reminders)
        title = facade.view(page.actor, state.view).name if state.view else "Patient list"
        return found, title

    try:
        found, title = await run_in_threadpool(check)
    except DomainError as exc:
        if isinstance(exc, AccessDenied | NotSignedIn) and not page.can(Permission.LISTS_READ):
            raise
        return _audience_refused(page, exc)
    chosen = "" if whole else " (chosen from the list)"
    note = f"{title}: {found.size:,} patient{'' if found.size == 1 else 's'}{chosen}"
    extra: dict[str, Any] = {"audience": found, "audience_note": note, "channel": channel,
             "channel_label": dict(CHANNELS).get(channel, channel),
             "keep_inactive": keep_inactive, "keep_reminders_only": keep_reminders,
             "ids": ",".join(found.patient_ids), "picked": set(picks), "all_picked": whole,
             "editor": EDITOR, "csrf_field": CSRF_FIELD}
    if is_htmx(page.request):
        return _private(page.render("lists_audience.html", **extra))
    # A plain form: the whole page again, the selection kept, the check under the list.
    shown = await run_in_threadpool(_show, page, state)
    return _render(page, shown, **extra)


def _audience_refused(page: Page, exc: DomainError) -> Response:
    if is_htmx(page.request):
        return _private(page.render("_message.html", message=" ".join(str(exc).split()),
                                    kind="error"))
    raise exc


# -- saved page views ----------------------------------------------------------------------------

async def _view_change(page: Page, change: Callable[[ListState], str]) -> Response:
    """Run a view change; go to the URL it returns (htmx: a full load of it)."""
    form = await page.request.form()
    try:
        state, _ = read_state(form)
        target = await run_in_threadpool(change, replace(state, page=1))
    except DomainError as exc:
        if isinstance(exc, AccessDenied | NotSignedIn) and not page.can(Permission.LISTS_READ):
            raise
        return refusal(page, exc, MESSAGE_TARGET)
    if is_htmx(page.request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _definition(state: ListState) -> ListOptions:
    """A view's definition from the form (never "the view plus the form")."""
    if state.view and not state.defined:
        raise BadInput("run the list before saving it")
    return replace(state.options(1), view=None)


@router.post("/lists/views", response_model=None)
async def save_view(page: Annotated[Page, Depends(checked_page)]) -> Response:
    form = await page.request.form()
    name = _one(form, "name", 200)

    def change(state: ListState) -> str:
        saved = _facade(page).save_view(page.actor, name, _definition(state))
        return ListState(view=saved.view_id).url()

    return await _view_change(page, change)


@router.post("/lists/views/{view_id}/update", response_model=None)
async def update_view(page: Annotated[Page, Depends(checked_page)],
                      view_id: ViewId) -> Response:
    form = await page.request.form()
    name = _one(form, "name", 200)

    def change(state: ListState) -> str:
        options = _definition(state) if state.defined else None
        saved = _facade(page).update_view(page.actor, view_id, options, name or None,
                                          whole=True)
        return ListState(view=saved.view_id).url()

    return await _view_change(page, change)


@router.post("/lists/views/{view_id}/delete", response_model=None)
async def delete_view(page: Annotated[Page, Depends(checked_page)],
                      view_id: ViewId) -> Response:
    def change(state: ListState) -> str:
        _facade(page).delete_view(page.actor, view_id)
        return "/console/lists"

    return await _view_change(page, change)


@router.post("/lists/views/{view_id}/share", response_model=None)
async def share_view(page: Annotated[Page, Depends(checked_page)],
                     view_id: ViewId) -> Response:
    form = await page.request.form()
    users = [u.strip() for u in _one(form, "users", 2000).replace(";", ",").split(",")
             if u.strip()]
    stop = _one(form, "do") == "unshare"

    def change(state: ListState) -> str:
        facade = _facade(page)
        if stop:
            saved = facade.unshare_view(page.actor, view_id, users)
        else:
            saved = facade.share_view(page.actor, view_id, users)
        return ListState(view=saved.view_id).url()

    return await _view_change(page, change)
