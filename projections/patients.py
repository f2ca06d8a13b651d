"""The patient read model: imported facts → indexed tables that lists, search and sending read.

Built only from `PatientImport.RowsImported` events, so `reset` + replay gives the same
tables. Besides the imported columns, rows carry what queries need precomputed:

- `*_f` columns: the value folded in Python (domain.patients_fields.fold: case and accents),
  so matching is identical on SQLite, PostgreSQL and in the Python reference evaluator, and
  needs no database extension (PostgreSQL's `unaccent` may be missing);
- `mobile_n`/`home_n`: national digits of the phones (what staff type);
- `sort_name`: last, first, middle as one index-friendly sort key;
- `pcp_name`/`pcp_f`, `ar_count`/`ar_f` (open care gaps), `conditions_f` and `subscribed`
  (related to an active subscriber: PCP, an appointment or billing history), computed when
  a patient is written and refreshed for the touched patients whenever an appointment, care
  gap, condition, billing row or provider changes. Only facts in events feed them, never
  the clock, so a replay gives the same values.

Columns that filters, scope and sorting read come first: PostgreSQL and SQLite decode a
row's columns left to right up to the last one a query needs, so a scan over a million
patients that tests status, payor and mobile never walks the names, addresses and hashes.

The multi-valued fields (open A&R measures, conditions, groups) are also kept on the row,
folded, sorted and each between unit separators, U+001F (`joined_items`): a filter on
them is a substring test on one column rather than a join with a table of a million
items. Values never hold
control characters (import checks) and neither do filter values, so a term cannot match
across two items.

Indexes are few on purpose: each one costs every imported row a B-tree insert. Those
there serve the lists on a million patients: name order and A&R-count order (first pages
walk them), age ranges counted from the index alone (date of birth + scope), the scope as a
narrow partial index (semi-joins with appointments read it instead of the wide table),
appointment predicates answered from covering indexes (a patient's appointments by day,
with their status: "next appointment" and "last visit" never read the table). Mobile serves STOP.

PostgreSQL only (index kinds SQLite lacks): GIN indexes on the items of A&R, conditions
and groups, and payor + status covering subscribed and the contacts (what "which Medicare
patients can we text" reads: counted from the index alone). A filter's terms are first
resolved to the distinct values they match (projections/patient_queries.py, `list_items`):
a few percent of the patients are then read instead of all of them.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from eventsourcing.utils import get_topic

from domain.patients import (
    SPECS,
    ImportKind,
    PatientImport,
    Record,
    row_hash,
    sort_name,
)
from domain.patients import display_name as _display_name
from domain.patients_fields import fold, national_digits, split_names
from projections.base import Projection
from projections.campaigns import HISTORY_DDL
from projections.db import POSTGRES_ONLY, Tx
from projections.preferences import EMAIL_STATES_DDL, OPT_OUTS_DDL


def item_array(column: str) -> str:
    """PostgreSQL: a joined-items column as a text array of its items. The GIN indexes are
    built on this expression; a query uses them only when it spells it the same way."""
    return f"string_to_array(btrim({column}, chr(31)), chr(31))"


OWN_DDL = f"""
CREATE TABLE IF NOT EXISTS patients (
    patient_id TEXT PRIMARY KEY,
    subscribed INTEGER NOT NULL DEFAULT 0, ar_count INTEGER NOT NULL DEFAULT 0,
    ar_f TEXT, conditions_f TEXT, groups_f TEXT,
    date_of_birth TEXT, status_f TEXT NOT NULL, payor_f TEXT, pcp_f TEXT, mobile_n TEXT,
    email_f TEXT, home_n TEXT, language_f TEXT, care_manager_f TEXT, pcp_id TEXT,
    appointment_reminders_only INTEGER NOT NULL DEFAULT 0, has_address INTEGER NOT NULL DEFAULT 0,
    sort_name TEXT NOT NULL,
    first_name TEXT NOT NULL, middle_name TEXT, last_name TEXT NOT NULL,
    mobile TEXT, home_phone TEXT, email TEXT, status TEXT NOT NULL,
    payor TEXT, care_manager TEXT, language TEXT,
    address_line1 TEXT, address_line2 TEXT, city TEXT, state TEXT, postal_code TEXT,
    groups TEXT, row_hash TEXT NOT NULL,
    patient_id_f TEXT NOT NULL, name_f TEXT NOT NULL,
    first_f TEXT NOT NULL, middle_f TEXT, last_f TEXT NOT NULL,
    city_f TEXT, state_f TEXT, postal_code_f TEXT, pcp_id_f TEXT, pcp_name TEXT
);
CREATE INDEX IF NOT EXISTS patients_sort ON patients (sort_name, patient_id);
CREATE INDEX IF NOT EXISTS patients_mobile ON patients (mobile);
DROP INDEX IF EXISTS patients_dob;
DROP INDEX IF EXISTS patients_pcp;
CREATE INDEX IF NOT EXISTS patients_dob_scope ON patients (date_of_birth, subscribed);
CREATE INDEX IF NOT EXISTS patients_in_scope ON patients (patient_id) WHERE subscribed = 1;
CREATE INDEX IF NOT EXISTS patients_ar_order ON patients (ar_count DESC, sort_name, patient_id);
CREATE TABLE IF NOT EXISTS patient_groups (
    patient_id TEXT NOT NULL, group_name TEXT NOT NULL, group_f TEXT NOT NULL,
    PRIMARY KEY (patient_id, group_f)
);
CREATE INDEX IF NOT EXISTS patient_groups_group ON patient_groups (group_f);
CREATE TABLE IF NOT EXISTS appointments (
    appointment_id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, starts_at TEXT NOT NULL,
    provider_id TEXT NOT NULL, facility TEXT, type TEXT, status TEXT NOT NULL, notes TEXT,
    row_hash TEXT NOT NULL, provider_id_f TEXT NOT NULL, facility_f TEXT, type_f TEXT,
    status_f TEXT NOT NULL, notes_f TEXT
);
DROP INDEX IF EXISTS appointments_patient;
CREATE INDEX IF NOT EXISTS appointments_patient_when
    ON appointments (patient_id, starts_at, status_f);
DROP INDEX IF EXISTS appointments_starts;
CREATE INDEX IF NOT EXISTS appointments_when ON appointments (starts_at, status_f, patient_id);
CREATE INDEX IF NOT EXISTS appointments_provider ON appointments (provider_id);
CREATE TABLE IF NOT EXISTS providers (
    provider_id TEXT PRIMARY KEY, name TEXT NOT NULL, name_f TEXT NOT NULL, groups TEXT,
    active INTEGER NOT NULL, row_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS provider_groups (
    provider_id TEXT NOT NULL, group_name TEXT NOT NULL, group_f TEXT NOT NULL,
    PRIMARY KEY (provider_id, group_f)
);
CREATE INDEX IF NOT EXISTS provider_groups_group ON provider_groups (group_f);
CREATE TABLE IF NOT EXISTS care_gaps (
    patient_id TEXT NOT NULL, measure TEXT NOT NULL, measure_f TEXT NOT NULL,
    opened_on TEXT, closed_on TEXT, row_hash TEXT NOT NULL,
    PRIMARY KEY (patient_id, measure_f)
);
DROP INDEX IF EXISTS care_gaps_measure;
CREATE INDEX IF NOT EXISTS care_gaps_open ON care_gaps (measure_f, closed_on, patient_id);
CREATE TABLE IF NOT EXISTS conditions (
    patient_id TEXT NOT NULL, condition TEXT NOT NULL, condition_f TEXT NOT NULL,
    row_hash TEXT NOT NULL, PRIMARY KEY (patient_id, condition_f)
);

CREATE TABLE IF NOT EXISTS billing (
    patient_id TEXT NOT NULL, provider_id TEXT NOT NULL, row_hash TEXT NOT NULL,
    PRIMARY KEY (patient_id, provider_id)
);
CREATE INDEX IF NOT EXISTS billing_provider ON billing (provider_id);
CREATE INDEX IF NOT EXISTS conditions_condition ON conditions (condition_f);
{POSTGRES_ONLY} CREATE INDEX IF NOT EXISTS patients_ar_items ON patients
    USING gin (({item_array("ar_f")}));
{POSTGRES_ONLY} CREATE INDEX IF NOT EXISTS patients_conditions_items ON patients
    USING gin (({item_array("conditions_f")}));
{POSTGRES_ONLY} CREATE INDEX IF NOT EXISTS patients_groups_items ON patients
    USING gin (({item_array("groups_f")}));
{POSTGRES_ONLY} CREATE INDEX IF NOT EXISTS patients_payor ON patients (payor_f, status_f)
    INCLUDE (subscribed, mobile_n, home_n, email_f)
"""
# With the tables it reads but others fill, so it also works on its own.
DDL = ";".join((OWN_DDL, HISTORY_DDL, OPT_OUTS_DDL, EMAIL_STATES_DDL))

# Tables this projection owns (reset empties them). patient_contacts, communication_history
# and patient_opt_outs are only created here if missing: other projections fill them.
OWN_TABLES = ("patients", "patient_groups", "appointments", "providers", "provider_groups",
              "care_gaps", "conditions", "billing")

PATIENT_TABLE_COLUMNS = (
    "patient_id", "first_name", "middle_name", "last_name", "date_of_birth", "mobile",
    "home_phone", "email", "status", "pcp_id", "payor", "care_manager", "language",
    "appointment_reminders_only", "address_line1", "address_line2", "city", "state",
    "postal_code", "groups", "row_hash", "patient_id_f", "name_f", "sort_name", "first_f",
    "middle_f", "last_f", "email_f", "status_f", "payor_f", "care_manager_f", "language_f",
    "city_f", "state_f", "postal_code_f", "pcp_id_f", "mobile_n", "home_n", "has_address",
    "groups_f",
)
DERIVED_COLUMNS = ("pcp_name", "pcp_f", "ar_count", "ar_f", "conditions_f", "subscribed")
ITEM_SEPARATOR = "\x1f"
APPOINTMENT_TABLE_COLUMNS = (
    "appointment_id", "patient_id", "starts_at", "provider_id", "facility", "type", "status",
    "notes", "row_hash", "provider_id_f", "facility_f", "type_f", "status_f", "notes_f",
)

# IN lists of ids: one statement per this many.
ID_BATCH = 900


def _f(value: str | None) -> str | None:
    return None if value is None else fold(value)


def joined_items(folded: Iterable[str]) -> str | None:
    """Folded items of a multi-valued field as one column: sorted, distinct, each between
    unit separators (U+001F, before the first and after each); None when there are none."""
    items = sorted(set(folded))
    if not items:
        return None
    return ITEM_SEPARATOR + ITEM_SEPARATOR.join(items) + ITEM_SEPARATOR


def batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def placeholders(count: int) -> str:
    return ", ".join("?" * count)


def member(tx: Tx, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """`column` is one of `values`: placeholders on SQLite. On PostgreSQL one parameter
    (a 1,000-placeholder IN list costs more to parse and plan than to run): the values
    joined by U+001F and split by the server, which is far cheaper than having the driver
    encode a list of 1,000 strings as an array (identifiers never hold control characters;
    other values go as an array)."""
    if _postgres_connection(tx) is not None:
        texts = [str(v) for v in values]
        if all(isinstance(v, str) and ITEM_SEPARATOR not in v for v in values):
            return f"{column} = ANY(string_to_array(?, chr(31)))", \
                [ITEM_SEPARATOR.join(texts)]
        return f"{column} = ANY(?)", [list(values)]
    return f"{column} IN ({placeholders(len(values))})", list(values)


def _postgres_connection(tx: Tx) -> Any | None:
    """The psycopg connection behind a PostgreSQL transaction (for COPY), else None."""
    conn = getattr(tx, "conn", None)
    return None if conn is None or isinstance(conn, sqlite3.Connection) else conn


def existing_keys(tx: Tx, table: str, column: str, values: Sequence[Any]) -> set[Any]:
    """Which of `values` the table already holds in `column` (its one-column key)."""
    found: set[Any] = set()
    for chunk in batches(values, ID_BATCH):
        where, params = member(tx, column, chunk)
        found.update(r[0] for r in tx.fetchall(f"SELECT {column} FROM {table} WHERE {where}",
                                               params))
    return found


def upsert(
    tx: Tx, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
    key: Sequence[str], update: bool = True, existing: set[Any] | None = None,
) -> None:
    """INSERT … ON CONFLICT for many rows. SQLite: one prepared statement run per row.
    PostgreSQL: new keys (one-column keys) by COPY straight into the table; the rest by COPY
    into a session-local staging table, then one INSERT … SELECT (several times faster than
    a statement per row or a giant VALUES list, which takes long to plan).
    Rows must have distinct keys (PostgreSQL refuses to upsert a row twice in a statement).
    `existing`: the keys already in the table, when the caller knows them."""
    if not rows:
        return
    names = ", ".join(columns)
    if update:
        sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
        conflict = f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
    else:
        conflict = f" ON CONFLICT ({', '.join(key)}) DO NOTHING"
    conn = _postgres_connection(tx)
    if conn is None:
        tx.executemany(
            f"INSERT INTO {table} ({names}) VALUES ({placeholders(len(columns))}){conflict}", rows)
        return
    if len(key) == 1:
        # Rows whose key the table does not hold yet go straight in with COPY (the bulk of a
        # first import); only the others take the staging table and ON CONFLICT.
        position = list(columns).index(key[0])
        found = existing if existing is not None else existing_keys(
            tx, table, key[0], [row[position] for row in rows])
        fresh = [row for row in rows if row[position] not in found]
        if fresh:
            with conn.cursor() as cursor, \
                    cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in fresh:
                    copy.write_row(row)
        rows = [row for row in rows if row[position] in found]
        if not rows or not update:
            return
    stage = f"stage_{table}"
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table}) ON COMMIT DELETE ROWS")
    with conn.cursor() as cursor, cursor.copy(f"COPY {stage} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage}{conflict}")
    conn.execute(f"DELETE FROM {stage}")  # the same transaction may stage again


def update_rows(tx: Tx, table: str, key: str, columns: Sequence[str],
                rows: Sequence[Sequence[Any]]) -> None:
    """UPDATE `columns` of many rows found by `key`; each row is (*values, key value).
    SQLite: one prepared statement run per row. PostgreSQL: COPY into a staging table,
    then one UPDATE … FROM (a statement per row costs a round trip and a plan each)."""
    if not rows:
        return
    conn = _postgres_connection(tx)
    if conn is None:
        sets = ", ".join(f"{c} = ?" for c in columns)
        tx.executemany(f"UPDATE {table} SET {sets} WHERE {key} = ?", rows)
        return
    names = ", ".join((*columns, key))
    stage = f"stage_update_{table}_{zlib.crc32(names.encode()):08x}"  # one per column set
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} AS SELECT {names} FROM {table}"
                 " WITH NO DATA")
    with conn.cursor() as cursor, cursor.copy(f"COPY {stage} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    sets = ", ".join(f"{c} = s.{c}" for c in columns)
    conn.execute(f"UPDATE {table} t SET {sets} FROM {stage} s WHERE t.{key} = s.{key}")
    conn.execute(f"DELETE FROM {stage}")


def _unique_last(rows: Iterable[tuple[tuple[Any, ...], Sequence[Any]]]) -> list[Sequence[Any]]:
    """Keep the last row per key: PostgreSQL refuses an upsert touching a row twice."""
    by_key: dict[tuple[Any, ...], Sequence[Any]] = {}
    for key, row in rows:
        by_key.pop(key, None)
        by_key[key] = row
    return list(by_key.values())


# -- derived columns -----------------------------------------------------------------------

# The exact value of each derived column for patient row `patients`, from the other tables
# (used when a provider changes, which may touch every patient at once).
DERIVED_SQL = {
    "pcp_name": "(SELECT pr.name FROM providers pr WHERE pr.provider_id = patients.pcp_id)",
    "pcp_f": "COALESCE((SELECT pr.name_f FROM providers pr"
             " WHERE pr.provider_id = patients.pcp_id), patients.pcp_id_f)",
    "subscribed": (
        "CASE WHEN EXISTS (SELECT 1 FROM providers pr"
        " WHERE pr.provider_id = patients.pcp_id AND pr.active = 1)"
        " OR EXISTS (SELECT 1 FROM appointments a WHERE a.patient_id = patients.patient_id"
        " AND a.provider_id IN (SELECT pr.provider_id FROM providers pr WHERE pr.active = 1))"
        " OR EXISTS (SELECT 1 FROM billing b WHERE b.patient_id = patients.patient_id"
        " AND b.provider_id IN (SELECT pr.provider_id FROM providers pr WHERE pr.active = 1))"
        " THEN 1 ELSE 0 END"),
}


def refresh_patients_of_providers(tx: Tx, provider_ids: Sequence[str]) -> None:
    """A provider is new, renamed, or (in)activated: recompute its patients in SQL."""
    sets = ", ".join(f"{c} = {expression}" for c, expression in DERIVED_SQL.items())
    for chunk in batches(sorted(set(provider_ids)), ID_BATCH):
        marks = placeholders(len(chunk))
        tx.execute(
            f"UPDATE patients SET {sets} WHERE pcp_id IN ({marks})"
            f" OR patient_id IN (SELECT a.patient_id FROM appointments a"
            f" WHERE a.provider_id IN ({marks}))"
            f" OR patient_id IN (SELECT b.patient_id FROM billing b"
            f" WHERE b.provider_id IN ({marks}))",
            [*chunk, *chunk, *chunk])


def _providers(tx: Tx, provider_ids: Sequence[str]) -> dict[str, tuple[str, str, int]]:
    """Name, folded name and active flag of these providers. Subscribers number hundreds,
    maybe thousands: past a few dozen ids, reading them all is cheaper than matching an
    id list against each row."""
    if len(provider_ids) > 50:
        rows = tx.fetchall("SELECT provider_id, name, name_f, active FROM providers")
    else:
        where, params = member(tx, "provider_id", provider_ids)
        rows = tx.fetchall(f"SELECT provider_id, name, name_f, active FROM providers"
                           f" WHERE {where}", params) if provider_ids else []
    return {str(pid): (name, name_f, int(active)) for pid, name, name_f, active in rows}


def derive(tx: Tx, patients: Sequence[tuple[str, str | None]]) -> dict[str, tuple[Any, ...]]:
    """The DERIVED_COLUMNS of each (patient id, pcp id), computed from
    indexed lookups (one query per table per chunk) rather than correlated subqueries,
    whose plans go wrong while a bulk load leaves the planner's statistics stale."""
    ids = [pid for pid, _ in patients]
    related: dict[str, set[str]] = {pid: {pcp} if pcp else set() for pid, pcp in patients}
    gaps: dict[str, list[str]] = {}
    conditions: dict[str, list[str]] = {}
    for chunk in batches(ids, ID_BATCH):
        where, params = member(tx, "patient_id", chunk)
        for pid, measure in tx.fetchall(
                f"SELECT patient_id, measure_f FROM care_gaps WHERE {where}"
                " AND closed_on IS NULL", params):
            gaps.setdefault(str(pid), []).append(str(measure))
        for pid, condition in tx.fetchall(
                f"SELECT patient_id, condition_f FROM conditions WHERE {where}", params):
            conditions.setdefault(str(pid), []).append(str(condition))
        for table in ("appointments", "billing"):
            for pid, provider in tx.fetchall(
                    f"SELECT DISTINCT patient_id, provider_id FROM {table} WHERE {where}",
                    params):
                related[str(pid)].add(str(provider))
    providers = _providers(tx, sorted(set().union(*related.values())))
    derived: dict[str, tuple[Any, ...]] = {}
    for pid, pcp in patients:
        pcp_provider = providers.get(pcp) if pcp else None
        subscribed = any(providers.get(p, ("", "", 0))[2] for p in related[pid])
        open_gaps = gaps.get(pid, ())
        derived[pid] = (pcp_provider[0] if pcp_provider else None,
                        pcp_provider[1] if pcp_provider else _f(pcp),
                        len(open_gaps), joined_items(open_gaps),
                        joined_items(conditions.get(pid, ())), int(subscribed))
    return derived


def refresh_patients(tx: Tx, patient_ids: Iterable[str]) -> None:
    """Recompute the derived columns of these patients; rewrite only the rows that changed
    (reading is cheap, rewriting a row and its indexes is not)."""
    for chunk in batches(sorted(set(patient_ids)), ID_BATCH):
        where, params = member(tx, "patient_id", chunk)
        current = {
            str(r[0]): (str(r[0]), r[1], tuple(r[2:]))
            for r in tx.fetchall(
                f"SELECT patient_id, pcp_id, {', '.join(DERIVED_COLUMNS)} FROM patients"
                f" WHERE {where}", params)
        }
        fresh = derive(tx, [(pid, pcp) for pid, pcp, _ in current.values()])
        changed = [(*fresh[pid], pid) for pid, (_, _, now) in current.items()
                   if tuple(fresh[pid]) != now]
        update_rows(tx, "patients", "patient_id", DERIVED_COLUMNS, changed)


# -- one writer per kind of file -----------------------------------------------------------


def _records(kind: ImportKind, columns: Sequence[str], rows: Sequence[Sequence[Any]]
             ) -> list[Record]:
    """Event rows → records in the spec's column order (events name their columns, so a
    column added later reads as empty from old events)."""
    names = SPECS[kind].column_names
    if tuple(columns) == names:
        return [tuple(r) for r in rows]
    index = {c: i for i, c in enumerate(columns)}
    return [tuple(r[index[n]] if n in index else None for n in names) for r in rows]


def _patient_row(record: Record) -> tuple[Any, ...]:
    (pid, first, middle, last, dob, mobile, home, email, status, pcp_id, payor, care_manager,
     language, reminders_only, line1, line2, city, state, postal, groups) = record
    has_address = int(bool(line1 and city and state and postal))
    return (
        pid, first, middle, last, dob, mobile, home, email, status, pcp_id, payor, care_manager,
        language, int(reminders_only == "1"), line1, line2, city, state, postal, groups,
        row_hash(record), fold(str(pid)), fold(_display_name(first, middle, last)),
        sort_name(first, middle, last), fold(str(first)), _f(middle), fold(str(last)), _f(email),
        fold(str(status)), _f(payor), _f(care_manager), _f(language), _f(city), _f(state),
        _f(postal), _f(pcp_id), national_digits(mobile), national_digits(home), has_address,
        joined_items(fold(g) for g in split_names(groups, "group")),
    )


def write_patients(tx: Tx, records: Sequence[Record]) -> dict[str, int]:
    rows = _unique_last(((r[0],), _patient_row(r)) for r in records)
    ids = [str(row[0]) for row in rows]
    known = existing_keys(tx, "patients", "patient_id", ids)
    derived = derive(tx, [(str(r[0]), r[9]) for r in rows])
    upsert(tx, "patients", PATIENT_TABLE_COLUMNS + DERIVED_COLUMNS,
           [(*row, *derived[str(row[0])]) for row in rows], ("patient_id",), existing=known)
    # A new patient has no groups to replace.
    for chunk in batches(sorted(known), ID_BATCH):
        where, params = member(tx, "patient_id", chunk)
        tx.execute(f"DELETE FROM patient_groups WHERE {where}", params)
    group_rows = [(pid, name, fold(name)) for pid, groups in ((r[0], r[19]) for r in rows)
                  for name in split_names(groups, "group")]
    upsert(tx, "patient_groups", ("patient_id", "group_name", "group_f"), group_rows,
           ("patient_id", "group_f"))
    return {"patients": len(rows), "patient_groups": len(group_rows)}


def write_appointments(tx: Tx, records: Sequence[Record]) -> dict[str, int]:
    rows = _unique_last(
        ((r[0],), (*r, row_hash(r), fold(str(r[3])), _f(r[4]), _f(r[5]), fold(str(r[6])),
                   _f(r[7])))
        for r in records)
    ids = [str(row[0]) for row in rows]
    # An appointment moved to another patient changes both patients' derived values.
    touched = {str(row[1]) for row in rows}
    known: set[Any] = set()
    for chunk in batches(ids, ID_BATCH):
        where, params = member(tx, "appointment_id", chunk)
        for appointment_id, patient_id in tx.fetchall(
                f"SELECT appointment_id, patient_id FROM appointments WHERE {where}", params):
            known.add(appointment_id)
            touched.add(str(patient_id))
    upsert(tx, "appointments", APPOINTMENT_TABLE_COLUMNS, rows, ("appointment_id",),
           existing=known)
    refresh_patients(tx, touched)
    return {"appointments": len(rows)}


def write_providers(tx: Tx, records: Sequence[Record]) -> dict[str, int]:
    rows = _unique_last(((r[0],), r) for r in records)
    ids = [str(r[0]) for r in rows]
    before: dict[str, tuple[Any, Any]] = {}
    for chunk in batches(ids, ID_BATCH):
        where, params = member(tx, "provider_id", chunk)
        for pid, name, active in tx.fetchall(
                f"SELECT provider_id, name, active FROM providers WHERE {where}", params):
            before[str(pid)] = (name, int(active))
    upsert(tx, "providers", ("provider_id", "name", "name_f", "groups", "active", "row_hash"),
           [(r[0], r[1], fold(str(r[1])), r[2], int(r[3] == "1"), row_hash(r)) for r in rows],
           ("provider_id",), existing=set(before))
    for chunk in batches(sorted(before), ID_BATCH):  # a new provider has no groups yet
        where, params = member(tx, "provider_id", chunk)
        tx.execute(f"DELETE FROM provider_groups WHERE {where}", params)
    upsert(tx, "provider_groups", ("provider_id", "group_name", "group_f"),
           [(r[0], g, fold(g)) for r in rows for g in split_names(r[2], "provider group")],
           ("provider_id", "group_f"))
    # Only a new provider, a renamed one or a change of active changes patients' rows.
    changed = [str(r[0]) for r in rows if before.get(str(r[0])) != (r[1], int(r[3] == "1"))]
    refresh_patients_of_providers(tx, changed)
    return {"providers": len(rows)}


def write_care_gaps(tx: Tx, records: Sequence[Record]) -> dict[str, int]:
    rows = _unique_last(((r[0], fold(str(r[1]))), (r[0], r[1], fold(str(r[1])), r[2], r[3],
                                                    row_hash(r))) for r in records)
    upsert(tx, "care_gaps", ("patient_id", "measure", "measure_f", "opened_on", "closed_on",
                             "row_hash"), rows, ("patient_id", "measure_f"))
    refresh_patients(tx, (str(r[0]) for r in rows))
    return {"care_gaps": len(rows)}


def write_conditions(tx: Tx, records: Sequence[Record]) -> dict[str, int]:
    rows = _unique_last(((r[0], fold(str(r[1]))), (r[0], r[1], fold(str(r[1])), row_hash(r)))
                        for r in records)
    upsert(tx, "conditions", ("patient_id", "condition", "condition_f", "row_hash"), rows,
           ("patient_id", "condition_f"))
    refresh_patients(tx, (str(r[0]) for r in rows))
    return {"conditions": len(rows)}


def write_billing(tx: Tx, records: Sequence[Record]) -> dict[str, int]:
    rows = _unique_last(((r[0], r[1]), (r[0], r[1], row_hash(r))) for r in records)
    upsert(tx, "billing", ("patient_id", "provider_id", "row_hash"), rows,
           ("patient_id", "provider_id"))
    refresh_patients(tx, (str(r[0]) for r in rows))
    return {"billing": len(rows)}


WRITERS = {
    ImportKind.PATIENTS: write_patients,
    ImportKind.APPOINTMENTS: write_appointments,
    ImportKind.PROVIDERS: write_providers,
    ImportKind.CARE_GAPS: write_care_gaps,
    ImportKind.CONDITIONS: write_conditions,
    ImportKind.BILLING: write_billing,
}


# How the import finds what the read model already holds: lookup column, key columns.
KEY_QUERIES = {
    ImportKind.PATIENTS: ("SELECT patient_id, row_hash FROM patients", "patient_id"),
    ImportKind.APPOINTMENTS: ("SELECT appointment_id, row_hash FROM appointments",
                              "appointment_id"),
    ImportKind.PROVIDERS: ("SELECT provider_id, row_hash FROM providers", "provider_id"),
    ImportKind.CARE_GAPS: ("SELECT patient_id, measure_f, row_hash FROM care_gaps",
                           "patient_id"),
    ImportKind.CONDITIONS: ("SELECT patient_id, condition_f, row_hash FROM conditions",
                            "patient_id"),
    ImportKind.BILLING: ("SELECT patient_id, provider_id, row_hash FROM billing", "patient_id"),
}


def existing_hashes(tx: Tx, kind: ImportKind, lookup_values: Iterable[str]
                    ) -> dict[tuple[str, ...], str]:
    """Row hashes the read model holds, by record key (see ImportSpec.key)."""
    select, column = KEY_QUERIES[kind]
    found: dict[tuple[str, ...], str] = {}
    for chunk in batches(sorted(set(lookup_values)), ID_BATCH):
        where, params = member(tx, column, chunk)
        for row in tx.fetchall(f"{select} WHERE {where}", params):
            found[tuple(str(v) for v in row[:-1])] = str(row[-1])
    return found


class PatientsProjection(Projection):
    name = "patients"
    # 2: filtered columns first, A&R/conditions/groups items on the row (2026-11-23).
    # 3: `*_f` columns fold accents too (García = Garcia): rebuilt from the history.
    schema_version = 3
    own_tables = OWN_TABLES
    topics = (get_topic(PatientImport.RowsImported),)
    batch_size = 20  # each event carries up to 1,000 rows: keep a transaction's memory small

    # PostgreSQL only: without fresh statistics the planner guesses that a 1,000-id IN list
    # matches the whole table and scans it, so lookups slow down as a bulk load grows the
    # table (autovacuum analyses late, and some servers run without it). We ANALYZE a table
    # once it has grown by half since we last did (at least ANALYZE_ROWS rows): a handful of
    # sampling passes over a million-row load. Only plans depend on it, never data.
    ANALYZE_ROWS = 5_000
    # Only the columns the import's lookups filter on: sampling them is far cheaper than
    # the whole wide row, and list queries get full statistics from autovacuum.
    ANALYZE_COLUMNS = {"patients": "patient_id", "patient_groups": "patient_id",
                       "appointments": "appointment_id, patient_id", "care_gaps": "patient_id",
                       "conditions": "patient_id", "billing": "patient_id",
                       "providers": "provider_id"}

    def __init__(self) -> None:
        self._grown: dict[str, int] = {}
        self._analyzed_at: dict[str, int] = {}

    def ddl(self) -> str:
        return DDL

    def _keep_statistics_fresh(self, tx: Tx, table: str, rows: int) -> None:
        if _postgres_connection(tx) is None:
            return
        if table not in self._analyzed_at:
            self._analyzed_at[table] = self._known_rows(tx, table)
        self._grown[table] = self._grown.get(table, 0) + rows
        if self._grown[table] >= max(self.ANALYZE_ROWS, self._analyzed_at[table] // 2):
            columns = self.ANALYZE_COLUMNS.get(table)
            tx.execute(f"ANALYZE {table} ({columns})" if columns else f"ANALYZE {table}")
            self._analyzed_at[table] = self._known_rows(tx, table)
            self._grown[table] = 0

    @staticmethod
    def _known_rows(tx: Tx, table: str) -> int:
        """The planner's idea of the table's size (-1 or 0: never analysed)."""
        row = tx.fetchone("SELECT reltuples FROM pg_class WHERE relname = ?", (table,))
        return max(0, int(row[0])) if row else 0

    def reset(self, tx: Tx) -> None:
        for table in OWN_TABLES:
            tx.execute(f"DELETE FROM {table}")

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        if isinstance(event, PatientImport.RowsImported):
            kind = ImportKind(event.kind)
            written = WRITERS[kind](tx, _records(kind, event.columns, event.rows))
            for table, rows in written.items():
                self._keep_statistics_fresh(tx, table, rows)

    def write(self, tx: Tx, kind: ImportKind, records: Sequence[Record]) -> None:
        """Write canonical records directly (tests and tools that bypass the event log)."""
        WRITERS[kind](tx, list(records))
