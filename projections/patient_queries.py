"""List definitions → parameterised SQL over the patient read model (SQLite and PostgreSQL).

Filter values only ever travel as parameters: quotes, `%`, `_` and any unicode match
literally. Text is matched on Python-folded columns with instr()/strpos() (a plain
substring test, no LIKE patterns to escape); multi-valued fields (A&R, conditions, groups)
on the patient row's joined items. The meaning of each predicate is the one in
domain/lists_facts.py; property tests compare the two.

A positive text filter on a field with few distinct values (ITEM_SOURCES: conditions, A&R,
groups, and payor on PostgreSQL) is first resolved, in Python, to the values it matches;
the SQL then asks "one of these values", which an index answers without testing every row
(see Compiler.resolved): PostgreSQL's GIN indexes on the patient row's items, SQLite's
value indexes on the items' own tables.

Derived dates avoid per-patient subqueries where an index can answer instead:
"next appointment in [lo, hi]" is "an upcoming appointment in [lo, hi] and none before lo",
"last visit in [lo, hi]" is "a visit in [lo, hi] and none after hi".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from domain.lists import (
    FIELDS_BY_KEY,
    Focus,
    InRange,
    ListQuery,
    Predicate,
    Presence,
    SortKey,
    TextMatch,
    ValueType,
    age_on,
    birth_dates_for_ages,
    resolve,
)
from domain.patients import NOT_A_VISIT_STATUSES, UPCOMING_STATUSES, display_name
from domain.patients_fields import fold
from projections.db import Row, Tx
from projections.patients import ITEM_SEPARATOR, item_array


@dataclass
class Sql:
    """A fragment of SQL and its parameters, in order."""

    text: str
    params: list[Any] = field(default_factory=list)

    def __add__(self, other: Sql) -> Sql:
        return Sql(self.text + other.text, self.params + other.params)


def join(fragments: Sequence[Sql], separator: str) -> Sql:
    return Sql(separator.join(f.text for f in fragments),
               [p for f in fragments for p in f.params])


# Scalar fields: (display expression, matching expression). Matching expressions are folded
# text (or national phone digits), computed by the projection in Python.
TEXT_FIELDS: dict[str, tuple[str, str]] = {
    "patient_id": ("p.patient_id", "p.patient_id_f"),
    "name": ("p.name_f", "p.name_f"),
    "first_name": ("p.first_name", "p.first_f"),
    "last_name": ("p.last_name", "p.last_f"),
    "status": ("p.status", "p.status_f"),
    "payor": ("p.payor", "p.payor_f"),
    "pcp": ("COALESCE(p.pcp_name, p.pcp_id)", "p.pcp_f"),
    "care_manager": ("p.care_manager", "p.care_manager_f"),
    "language": ("p.language", "p.language_f"),
    "email": ("p.email", "p.email_f"),
    "city": ("p.city", "p.city_f"),
    "state": ("p.state", "p.state_f"),
    "postal_code": ("p.postal_code", "p.postal_code_f"),
    "mobile": ("p.mobile", "p.mobile_n"),
    "home_phone": ("p.home_phone", "p.home_n"),
    "phone": ("COALESCE(p.mobile, p.home_phone)", "COALESCE(p.mobile_n, p.home_n)"),
    "appt_notes": ("a.notes", "a.notes_f"),
    "appt_provider": ("COALESCE(ap.name, a.provider_id)", "COALESCE(ap.name_f, a.provider_id_f)"),
    "appt_status": ("a.status", "a.status_f"),
    "appt_type": ("a.type", "a.type_f"),
    "appt_facility": ("a.facility", "a.facility_f"),
    "appt_response": ("NULL", "NULL"),
    "appointment_reminders_only": ("p.appointment_reminders_only", "NULL"),
}

# List fields: the patient row's column of folded items (projections/patients.py,
# joined_items), so a filter is a substring test on one row, not a join.
LIST_FIELDS: dict[str, str] = {
    "conditions": "p.conditions_f",
    "ar": "p.ar_f",
    "group": "p.groups_f",
}
# Fields whose distinct folded values can be read from the first column of an index, one
# probe per value (for list fields a superset of the items on patient rows: the A&R source
# holds closed gaps too). PostgreSQL resolves filter terms to these values (see
# Compiler.resolved); list fields then use the patients' GIN indexes, payor the payor index.
ITEM_SOURCES: dict[str, tuple[str, str]] = {
    "conditions": ("conditions", "condition_f"),
    "ar": ("care_gaps", "measure_f"),
    "group": ("patient_groups", "group_f"),
    "payor": ("patients", "payor_f"),
}
# The table holding each list field's items, one row per patient and item, with its value
# column and what else makes an item count (an A&R is an open care gap). SQLite answers a
# resolved list filter from these (value indexes: conditions_condition, care_gaps_open,
# patient_groups_group); the patient row's joined items are built from the same rows.
LIST_ITEMS_TABLES: dict[str, tuple[str, str, str]] = {
    "conditions": ("conditions", "condition_f", ""),
    "ar": ("care_gaps", "measure_f", " AND i.closed_on IS NULL"),
    "group": ("patient_groups", "group_f", ""),
}
# Past this many distinct values a field is not worth resolving terms through.
MAX_ITEMS = 1000
LIST_DISPLAY: dict[str, tuple[str, str, str]] = {
    "conditions": ("conditions", "condition", ""),
    "ar": ("care_gaps", "measure", " AND closed_on IS NULL"),
    "group": ("patient_groups", "group_name", ""),
}

# Sort keys whose SQL expression is never NULL.
NEVER_EMPTY = frozenset({"name", "patient_id", "first_name", "last_name", "status", "ar_count",
                         "appt_datetime", "appt_provider", "appt_status"})

UPCOMING = tuple(fold(s) for s in UPCOMING_STATUSES)
NOT_A_VISIT = tuple(fold(s) for s in NOT_A_VISIT_STATUSES)


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


class Compiler:
    """Compiles one list definition for one day (relative dates) and one SQL dialect."""

    def __init__(self, dialect: str, today: date,
                 items: Mapping[str, Sequence[str]] | None = None) -> None:
        self.dialect = dialect
        self.today = today
        self.today_text = today.isoformat()
        # The distinct folded values of the resolvable fields the list filters on
        # (list_items), so a positive text filter on one is answered by an index.
        self.items = items or {}
        # Compiling an ordered page (ids), not a count or a member set (see list_condition).
        self.ordered = False

    # -- helpers ---------------------------------------------------------------------------

    def contains(self, haystack: str, needle_count: int) -> str:
        function = "strpos" if self.dialect == "postgres" else "instr"
        return " OR ".join([f"{function}({haystack}, ?) > 0"] * needle_count)

    def text_match(self, expression: str, predicate: TextMatch) -> Sql:
        if predicate.exact:
            return Sql(f"{expression} = ?", [predicate.terms[0]])
        return Sql(f"({self.contains(expression, len(predicate.terms))})",
                   list(predicate.terms))

    def birth_date(self) -> str:
        """The birth-date column in a condition. On SQLite an ordered page tests it without
        its index: SQLite has no statistics on ranges, takes any age range for a narrow one
        and reads it through the birth-date index, then sorts, where walking the sort
        order's index stops after a page (an age range usually covers a large share)."""
        return "+p.date_of_birth" if self.ordered and self.dialect == "sqlite" \
            else "p.date_of_birth"

    def resolved(self, key: str, predicate: TextMatch) -> str | None:
        """A positive filter on a field whose distinct values are known
        (`items`): the values it matches, joined by U+001F, found in Python by the same test
        the SQL would make (substring or equality on folded text). "Holds one of these
        values" then means exactly the filter — the values come from a superset of the
        field's — and an index on the values answers it instead of a test on every row."""
        if key not in self.items or predicate.negate:
            return None
        terms = predicate.terms
        return ITEM_SEPARATOR.join(
            value for value in self.items[key]
            if (value == terms[0] if predicate.exact else any(t in value for t in terms)))

    @staticmethod
    def negatable(positive: Sql, negate: bool) -> Sql:
        # Positive forms are never NULL (they test IS NOT NULL first), so NOT is exact.
        return Sql(f"NOT ({positive.text})", positive.params) if negate else positive

    @staticmethod
    def day_range(column: str, low: date | None, high: date | None,
                  null_guard: bool = True) -> Sql:
        """A date range on a text column holding dates or 'YYYY-MM-DD HH:MM' times.

        `null_guard` adds `IS NOT NULL` even when a bound already excludes empty values: a
        form that is to be negated must never be NULL. Without a need for it, it is left
        out: SQLite's planner reads it as a second bound and then prefers the range's index
        to the sort order's, sorting thousands of rows for a first page of 50."""
        parts: list[Sql] = []
        if low is not None and low != date.min:
            parts.append(Sql(f"{column} >= ?", [low.isoformat()]))
        if high is not None and high != date.max:
            parts.append(Sql(f"{column} < ?", [(high + timedelta(days=1)).isoformat()]))
        if null_guard or not parts:
            parts.insert(0, Sql(f"{column} IS NOT NULL"))
        return join(parts, " AND ")

    # -- one condition ---------------------------------------------------------------------

    def condition(self, key: str, predicate: Predicate) -> Sql:
        field_ = FIELDS_BY_KEY[key]
        if field_.type == ValueType.MULTI:
            return self.list_condition(key, predicate)
        if key in ("next_appointment", "last_visit"):
            return self.appointment_aggregate(key, predicate)
        if key == "last_contacted":
            return self.last_contacted(predicate)
        if key == "appt_datetime":
            return self.scalar_range("a.starts_at", predicate, is_date=True)
        if key == "date_of_birth":
            return self.scalar_range(self.birth_date(), predicate, is_date=True)
        if key == "ar_count":
            return self.scalar_range("p.ar_count", predicate, is_date=False)
        if key == "age":
            if isinstance(predicate, InRange):
                earliest, latest = birth_dates_for_ages(predicate.low, predicate.high,
                                                        self.today)
                predicate = InRange(earliest, latest, predicate.negate)
            return self.scalar_range(self.birth_date(), predicate, is_date=True)
        _, expression = TEXT_FIELDS[key]
        if isinstance(predicate, Presence):
            return Sql(f"{expression} IS {'NOT ' if predicate.present else ''}NULL")
        assert isinstance(predicate, TextMatch)
        resolved = self.resolved(key, predicate)
        if resolved is not None:  # positive only: NOT never applies
            return Sql(f"{expression} = ANY (string_to_array(?, chr(31)))", [resolved])
        positive = Sql(f"({expression} IS NOT NULL AND ") + self.text_match(expression,
                                                                            predicate) + Sql(")")
        return self.negatable(positive, predicate.negate)

    def scalar_range(self, column: str, predicate: Predicate, is_date: bool) -> Sql:
        if isinstance(predicate, Presence):
            return Sql(f"{column} IS {'NOT ' if predicate.present else ''}NULL")
        assert isinstance(predicate, InRange)
        if is_date:
            positive = self.day_range(column, predicate.low, predicate.high,
                                      null_guard=predicate.negate)
        else:
            parts = [Sql(f"{column} IS NOT NULL")]
            if predicate.low is not None:
                parts.append(Sql(f"{column} >= ?", [predicate.low]))
            if predicate.high is not None:
                parts.append(Sql(f"{column} <= ?", [predicate.high]))
            positive = join(parts, " AND ")
        return self.negatable(Sql("(") + positive + Sql(")"), predicate.negate)

    def list_condition(self, key: str, predicate: Predicate) -> Sql:
        column = LIST_FIELDS[key]
        if isinstance(predicate, Presence):
            return Sql(f"{column} IS {'NOT ' if predicate.present else ''}NULL")
        assert isinstance(predicate, TextMatch)
        resolved = self.resolved(key, predicate)
        if resolved is not None and self.dialect == "postgres":  # positive only: no NOT
            return Sql(f"{item_array(column)} && string_to_array(?, chr(31))", [resolved])
        if resolved is not None:
            # SQLite: the patients with such an item, from the items' own table through
            # its value index (a few percent of the patients, fetched by id). An ordered
            # page keeps walking its sort order's index and only tests membership (`+`
            # stops SQLite from driving the query by the ids and sorting them all).
            table, value_column, extra = LIST_ITEMS_TABLES[key]
            values = resolved.split(ITEM_SEPARATOR) if resolved else []
            member = "+p.patient_id" if self.ordered else "p.patient_id"
            return Sql(f"{member} IN (SELECT i.patient_id FROM {table} i"
                       f" WHERE i.{value_column} IN ({_marks(values)}){extra})", values)
        if predicate.exact:  # one whole item: between separators
            match = Sql(f"{self.contains(column, 1)}",
                        [ITEM_SEPARATOR + predicate.terms[0] + ITEM_SEPARATOR])
        else:
            match = self.text_match(column, predicate)
        positive = Sql(f"({column} IS NOT NULL AND ") + match + Sql(")")
        return self.negatable(positive, predicate.negate)

    def _appointments(self, key: str) -> Sql:
        """The appointments a derived date is taken from (see domain/lists_facts.py)."""
        if key == "next_appointment":
            return Sql(f"a2.patient_id = p.patient_id AND a2.starts_at >= ?"
                       f" AND a2.status_f IN ({_marks(UPCOMING)})",
                       [self.today_text, *UPCOMING])
        return Sql(f"a2.patient_id = p.patient_id AND a2.starts_at < ?"
                   f" AND a2.status_f NOT IN ({_marks(NOT_A_VISIT)})",
                   [self.today_text, *NOT_A_VISIT])

    def appointment_aggregate(self, key: str, predicate: Predicate) -> Sql:
        pool = Sql("EXISTS (SELECT 1 FROM appointments a2 WHERE ") + self._appointments(key)
        if isinstance(predicate, Presence):
            sql = pool + Sql(")")
            return sql if predicate.present else Sql(f"NOT {sql.text}", sql.params)
        assert isinstance(predicate, InRange)
        low, high = predicate.low, predicate.high
        positive = pool + Sql(" AND ") + self.day_range("a2.starts_at", low, high) + Sql(")")
        if key == "next_appointment" and low is not None and low > self.today:
            # the earliest must not be before the range
            positive = positive + Sql(" AND NOT ") + pool + Sql(" AND a2.starts_at < ?)",
                                                                [low.isoformat()])
        if key == "last_visit" and high is not None and high < self.today - timedelta(days=1):
            # the latest must not be after the range
            positive = positive + Sql(" AND NOT ") + pool + Sql(
                " AND a2.starts_at >= ?)", [(high + timedelta(days=1)).isoformat()])
        return self.negatable(Sql("(") + positive + Sql(")"), predicate.negate)

    def last_contacted(self, predicate: Predicate) -> Sql:
        exists = "EXISTS (SELECT 1 FROM patient_contacts c WHERE c.patient_id = p.patient_id"
        if isinstance(predicate, Presence):
            sql = exists + ")"
            return Sql(sql if predicate.present else f"NOT {sql}")
        assert isinstance(predicate, InRange)
        positive = Sql(exists + " AND ") + self.day_range(
            "c.last_contacted_at", predicate.low, predicate.high) + Sql(")")
        return self.negatable(positive, predicate.negate)

    # -- whole lists -----------------------------------------------------------------------

    def scope(self, query: ListQuery, provider_ids: Sequence[str] | None) -> Sql:
        """All Subscribers: the precomputed flag. Chosen providers/groups: the active
        subscribers they resolve to (`provider_ids`), through PCP, appointments or billing."""
        if provider_ids is None:
            return Sql("p.subscribed = 1")
        if not provider_ids:
            return Sql("1 = 0")
        marks = _marks(provider_ids)
        ids = list(provider_ids)
        return Sql(
            f"(p.pcp_id IN ({marks})"
            f" OR EXISTS (SELECT 1 FROM appointments s WHERE s.patient_id = p.patient_id"
            f" AND s.provider_id IN ({marks}))"
            f" OR EXISTS (SELECT 1 FROM billing s WHERE s.patient_id = p.patient_id"
            f" AND s.provider_id IN ({marks})))", ids * 3)

    def source(self, focus: Focus) -> str:
        if focus == Focus.APPOINTMENT:
            return ("appointments a JOIN patients p ON p.patient_id = a.patient_id"
                    " LEFT JOIN providers ap ON ap.provider_id = a.provider_id")
        return "patients p"

    def where(self, query: ListQuery, provider_ids: Sequence[str] | None,
              extra: Sql | None = None) -> Sql:
        parts = [self.scope(query, provider_ids)]
        if extra is not None:
            parts.append(extra)
        if query.focus == Focus.APPOINTMENT:
            parts.append(Sql("a.starts_at >= ?", [self.today_text]))
        for condition in query.filters:
            parts.append(self.condition(condition.field, resolve(condition, self.today)))
        return join(parts, " AND ")

    def sort_expression(self, key: str) -> Sql:
        if key == "name":
            return Sql("p.sort_name")
        if key in ("age", "date_of_birth"):
            return Sql("p.date_of_birth")
        if key == "ar_count":
            return Sql("p.ar_count")
        if key == "appt_datetime":
            return Sql("a.starts_at")
        if key in ("next_appointment", "last_visit"):
            function = "MIN" if key == "next_appointment" else "MAX"
            return Sql(f"(SELECT {function}(a2.starts_at) FROM appointments a2 WHERE ") + \
                self._appointments(key) + Sql(")")
        if key == "last_contacted":
            return Sql("(SELECT c.last_contacted_at FROM patient_contacts c"
                       " WHERE c.patient_id = p.patient_id)")
        return Sql(TEXT_FIELDS[key][1])

    def order_by(self, keys: Sequence[SortKey], focus: Focus) -> Sql:
        parts: list[Sql] = []
        for key in keys:
            descending = key.descending != (key.field == "age")  # older = earlier birth
            # Empty values sort last; on keys that are never empty the clause is left out,
            # so an index in that order can serve the page (SQLite's indexes put NULLs
            # first, and would not be used with NULLS LAST).
            nulls = "" if key.field in NEVER_EMPTY else " NULLS LAST"
            parts.append(self.sort_expression(key.field)
                         + Sql(f" {'DESC' if descending else 'ASC'}{nulls}"))
        parts.append(Sql("p.patient_id ASC"))
        if focus == Focus.APPOINTMENT:
            parts.append(Sql("a.appointment_id ASC"))
        return join(parts, ", ")

    def members(self, query: ListQuery, provider_ids: Sequence[str] | None) -> Sql:
        """The patients on the list, unordered (for `p.patient_id IN (…)`)."""
        return Sql(f"SELECT p.patient_id FROM {self.source(query.focus)} WHERE ") + \
            self.where(query, provider_ids)

    def count(self, query: ListQuery, provider_ids: Sequence[str] | None) -> Sql:
        return Sql(f"SELECT COUNT(*) FROM {self.source(query.focus)} WHERE ") + \
            self.where(query, provider_ids)

    def ids(self, query: ListQuery, provider_ids: Sequence[str] | None,
            limit: int | None = None, offset: int = 0, extra: Sql | None = None) -> Sql:
        """Patient ids of the list in its order (appointment lists: one per appointment)."""
        select = "p.patient_id"
        if query.focus == Focus.APPOINTMENT:
            select += ", a.appointment_id"
        self.ordered = True
        try:
            sql = Sql(f"SELECT {select} FROM {self.source(query.focus)} WHERE ") + \
                self.where(query, provider_ids, extra) + Sql(" ORDER BY ") + \
                self.order_by(query.effective_sort, query.focus)
        finally:
            self.ordered = False
        if limit is not None:
            sql = sql + Sql(" LIMIT ? OFFSET ?", [limit, offset])
        return sql


# Columns every page row reads from patients (display values are built from them).
PAGE_PATIENT_COLUMNS = (
    "patient_id", "first_name", "middle_name", "last_name", "date_of_birth", "mobile",
    "home_phone", "email", "status", "payor", "care_manager", "language", "city", "state",
    "postal_code", "appointment_reminders_only", "ar_count", "pcp_id", "pcp_name",
)
PAGE_APPOINTMENT_COLUMNS = (
    "a.appointment_id", "a.starts_at", "a.notes", "COALESCE(ap.name, a.provider_id)",
    "a.status", "a.type", "a.facility",
)


# -- running a list --------------------------------------------------------------------------


@dataclass(frozen=True)
class ListPage:
    rows: list[dict[str, Any]]
    total: int


def resolve_scope(tx: Tx, query: ListQuery) -> list[str] | None:
    """None for All Subscribers; else the active subscribers the chosen providers and
    groups stand for (an inactive provider brings nobody in)."""
    scope = query.scope
    if scope.all_subscribers:
        return None
    clauses: list[Sql] = []
    if scope.providers:
        clauses.append(Sql(f"provider_id IN ({_marks(scope.providers)})", list(scope.providers)))
    if scope.groups:
        groups = [fold(g.strip()) for g in scope.groups]
        clauses.append(Sql(f"provider_id IN (SELECT provider_id FROM provider_groups"
                           f" WHERE group_f IN ({_marks(groups)}))", groups))
    sql = Sql("SELECT provider_id FROM providers WHERE active = 1 AND (") + \
        join(clauses, " OR ") + Sql(") ORDER BY provider_id")
    return [str(r[0]) for r in tx.fetchall(sql.text, sql.params)]


def list_items(tx: Tx, dialect: str, query: ListQuery) -> dict[str, list[str]]:
    """The distinct folded values of each field the query filters on that this database
    resolves (`resolvable_fields`), read by a loose index scan (one probe per distinct
    value). Fields with more than MAX_ITEMS values are left out (their filters test every
    row)."""
    sources = resolvable_fields(dialect)
    keys = sorted({c.field for c in query.filters if c.field in sources})
    found: dict[str, list[str]] = {}
    for key in keys:
        table, column = ITEM_SOURCES[key]
        rows = tx.fetchall(
            f"WITH RECURSIVE v(item) AS (SELECT MIN({column}) FROM {table} UNION ALL"
            f" SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > v.item) FROM v"
            f" WHERE v.item IS NOT NULL) SELECT item FROM v WHERE item IS NOT NULL LIMIT ?",
            [MAX_ITEMS + 1])
        if len(rows) <= MAX_ITEMS:
            found[key] = [str(r[0]) for r in rows]
    return found


def resolvable_fields(dialect: str) -> frozenset[str]:
    """PostgreSQL: every ITEM_SOURCES field (GIN and payor indexes). SQLite: the list
    fields, answered through their own tables' value indexes (it has no payor index)."""
    return frozenset(ITEM_SOURCES) if dialect == "postgres" else frozenset(LIST_ITEMS_TABLES)


def compiler_for(tx: Tx, dialect: str, query: ListQuery, today: date) -> Compiler:
    """A compiler for `query` with what this database can narrow it by (list_items)."""
    return Compiler(dialect, today, list_items(tx, dialect, query))


def count(tx: Tx, dialect: str, query: ListQuery, today: date) -> int:
    return run_count(tx, compiler_for(tx, dialect, query, today), query,
                     resolve_scope(tx, query))


def select_ids(tx: Tx, dialect: str, query: ListQuery, today: date, limit: int | None = None,
               offset: int = 0, extra: Sql | None = None) -> list[tuple[str, ...]]:
    return run_ids(tx, compiler_for(tx, dialect, query, today), query,
                   resolve_scope(tx, query), limit, offset, extra)


# With a compiler and scope already read (list_items, resolve_scope), for callers that run
# one list more than once: the count and a page, or the members and their ids.

def run_count(tx: Tx, compiler: Compiler, query: ListQuery,
              provider_ids: Sequence[str] | None) -> int:
    sql = compiler.count(query, provider_ids)
    row = tx.fetchone(sql.text, sql.params)
    return int(row[0]) if row else 0


def run_ids(tx: Tx, compiler: Compiler, query: ListQuery, provider_ids: Sequence[str] | None,
            limit: int | None = None, offset: int = 0,
            extra: Sql | None = None) -> list[tuple[str, ...]]:
    sql = compiler.ids(query, provider_ids, limit, offset, extra)
    return [tuple(str(v) for v in row) for row in tx.fetchall(sql.text, sql.params)]


def fetch_page(tx: Tx, dialect: str, query: ListQuery, today: date) -> ListPage:
    compiler, providers = compiler_for(tx, dialect, query, today), resolve_scope(tx, query)
    total = run_count(tx, compiler, query, providers)
    offset = (query.page - 1) * query.page_size
    keys = run_ids(tx, compiler, query, providers, query.page_size, offset) \
        if offset < total else []
    return ListPage(rows_for(tx, keys, query.focus, query.shown_columns, today), total)


def _in(tx: Tx, sql: str, ids: Sequence[str], params: Sequence[Any] = ()) -> list[Row]:
    """`sql` has `{ids}` where the id placeholders go, and its own parameters after them."""
    return tx.fetchall(sql.format(ids=_marks(ids)), [*ids, *params]) if ids else []


def rows_for(tx: Tx, keys: Sequence[tuple[str, ...]], focus: Focus, columns: Sequence[str],
             today: date) -> list[dict[str, Any]]:
    """Display rows for these (patient id[, appointment id]) keys, in the same order."""
    patient_ids = sorted({k[0] for k in keys})
    patients = {
        str(r[0]): dict(zip(PAGE_PATIENT_COLUMNS, r, strict=True))
        for r in _in(tx, f"SELECT {', '.join(PAGE_PATIENT_COLUMNS)} FROM patients"
                         " WHERE patient_id IN ({ids})", patient_ids)
    }
    appointments: dict[str, dict[str, Any]] = {}
    if focus == Focus.APPOINTMENT:
        names = ("appointment_id", "starts_at", "notes", "provider", "status", "type",
                 "facility")
        appointments = {
            str(r[0]): dict(zip(names, r, strict=True))
            for r in _in(tx, f"SELECT {', '.join(PAGE_APPOINTMENT_COLUMNS)} FROM appointments a"
                             " LEFT JOIN providers ap ON ap.provider_id = a.provider_id"
                             " WHERE a.appointment_id IN ({ids})", [k[1] for k in keys])
        }
    extra = _derived_columns(tx, patient_ids, columns, today)
    rows = []
    for key in keys:
        patient = patients.get(key[0])
        if patient is None:
            continue
        appointment = appointments.get(key[1]) if len(key) > 1 else None
        row: dict[str, Any] = {"patient_id": key[0]}
        if appointment is not None:
            row["appointment_id"] = appointment["appointment_id"]
        for column in columns:
            row[column] = display_value(column, patient, appointment, extra, today)
        rows.append(row)
    return rows


def _derived_columns(tx: Tx, ids: Sequence[str], columns: Sequence[str], today: date
                     ) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    today_text = today.isoformat()
    if "next_appointment" in columns:
        found["next_appointment"] = {str(r[0]): r[1] for r in _in(
            tx, "SELECT patient_id, MIN(starts_at) FROM appointments WHERE patient_id IN ({ids})"
            f" AND starts_at >= ? AND status_f IN ({_marks(UPCOMING)}) GROUP BY patient_id",
            ids, [today_text, *UPCOMING])}
    if "last_visit" in columns:
        found["last_visit"] = {str(r[0]): r[1] for r in _in(
            tx, "SELECT patient_id, MAX(starts_at) FROM appointments WHERE patient_id IN ({ids})"
            f" AND starts_at < ? AND status_f NOT IN ({_marks(NOT_A_VISIT)}) GROUP BY patient_id",
            ids, [today_text, *NOT_A_VISIT])}
    if "last_contacted" in columns:
        found["last_contacted"] = {str(r[0]): r[1] for r in _in(
            tx, "SELECT patient_id, last_contacted_at FROM patient_contacts"
            " WHERE patient_id IN ({ids})", ids)}
    for key, (table, column, extra) in LIST_DISPLAY.items():
        if key in columns:
            items: dict[str, list[str]] = {}
            for pid, value in _in(tx, f"SELECT patient_id, {column} FROM {table}"
                                      f" WHERE patient_id IN ({{ids}}){extra}"
                                      f" ORDER BY patient_id, {column}", ids):
                items.setdefault(str(pid), []).append(str(value))
            found[key] = {pid: "; ".join(values) for pid, values in items.items()}
    return found


def display_value(column: str, patient: dict[str, Any], appointment: dict[str, Any] | None,
                  extra: dict[str, dict[str, Any]], today: date) -> Any:
    pid = patient["patient_id"]
    if column in extra:
        return extra[column].get(pid)
    if column.startswith("appt_"):
        if appointment is None or column == "appt_response":
            return None  # responses come from appointment reminders (Remind), not imported
        return appointment[{"appt_datetime": "starts_at", "appt_notes": "notes",
                            "appt_provider": "provider", "appt_status": "status",
                            "appt_type": "type", "appt_facility": "facility"}[column]]
    if column == "name":
        return display_name(patient["first_name"], patient["middle_name"], patient["last_name"])
    if column == "age":
        born = patient["date_of_birth"]
        return age_on(date.fromisoformat(born), today) if born else None
    if column == "phone":
        return patient["mobile"] or patient["home_phone"]
    if column == "pcp":
        return patient["pcp_name"] or patient["pcp_id"]
    if column == "appointment_reminders_only":
        return "Yes" if patient["appointment_reminders_only"] else "No"
    return patient.get(column)
