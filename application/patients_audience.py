"""From a list to a campaign audience: who stays, who is removed, who cannot be reached.

Before sending, staff are offered to remove Inactive patients and those who chose
appointment reminders only; the channel needs its contact (mobile for text, email for
email, any phone for calls, a postal address for letters); a campaign has a size cap.
Counting happens in SQL, so "select all" on a list of a million patients costs one query;
ids are fetched only when the cleaned audience fits under the cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from application.patients_directory import CONTACT_PRESENT
from domain.channels import Channel
from domain.lists import ListQuery
from projections.db import Tx
from projections.patient_queries import Sql, compiler_for, resolve_scope, run_ids
from projections.patients import ID_BATCH, batches, placeholders

CONTACT_WORDS = {
    Channel.TEXT: ("a mobile phone", "a text"),
    Channel.EMAIL: ("an email address", "an email"),
    Channel.PHONE: ("a phone number", "a call"),
    Channel.LETTER: ("a postal address", "a letter"),
}


@dataclass(frozen=True)
class AudienceCheck:
    channel: Channel
    selected: int  # distinct patients selected
    unknown: int  # chosen ids not in the patient list (or not on the list chosen from)
    inactive: int  # of the selected, Inactive
    appointment_reminders_only: int  # of the selected, appointment-reminders-only
    removed_inactive: int
    removed_appointment_reminders_only: int  # not counting those already removed as Inactive
    lacking_contact: int  # left after removals but without the channel's contact (left out)
    patient_ids: tuple[str, ...]  # the cleaned audience, in list order (empty when over cap)
    size: int  # how many the cleaned audience holds
    cap: int
    messages: tuple[str, ...]

    @property
    def over_cap(self) -> bool:
        return self.size > self.cap

    @property
    def cap_message(self) -> str | None:
        if not self.over_cap:
            return None
        return (f"This list has {self.size:,} patients to contact; a campaign can contact at "
                f"most {self.cap:,}. Narrow the list (by provider, group or care gap) and try "
                "again.")


@dataclass(frozen=True)
class _Counts:
    selected: int
    inactive: int
    reminders_only: int
    reminders_only_active: int
    lacking: int
    reachable: int


def _kept(remove_inactive: bool, remove_reminders_only: bool) -> str:
    parts = ["1 = 1"]
    if remove_inactive:
        parts.append("p.status <> 'Inactive'")
    if remove_reminders_only:
        parts.append("p.appointment_reminders_only = 0")
    return " AND ".join(parts)


def _count_sql(channel: Channel, kept: str) -> str:
    contact = CONTACT_PRESENT[channel]
    return (
        "SELECT COUNT(*),"
        " COALESCE(SUM(CASE WHEN p.status = 'Inactive' THEN 1 ELSE 0 END), 0),"
        " COALESCE(SUM(CASE WHEN p.appointment_reminders_only = 1 THEN 1 ELSE 0 END), 0),"
        " COALESCE(SUM(CASE WHEN p.appointment_reminders_only = 1"
        "   AND p.status <> 'Inactive' THEN 1 ELSE 0 END), 0),"
        f" COALESCE(SUM(CASE WHEN {kept} AND NOT {contact} THEN 1 ELSE 0 END), 0),"
        f" COALESCE(SUM(CASE WHEN {kept} AND {contact} THEN 1 ELSE 0 END), 0)"
        " FROM patients p WHERE ")


def _add(totals: list[int], row: Sequence[object] | None) -> None:
    for i, value in enumerate(row or ()):
        totals[i] += int(value or 0)  # type: ignore[call-overload]


def check_list(tx: Tx, dialect: str, query: ListQuery, today: date, channel: Channel, cap: int,
               remove_inactive: bool, remove_reminders_only: bool) -> AudienceCheck:
    """Everyone on the list (all pages; an appointment list's patients once each)."""
    compiler = compiler_for(tx, dialect, query, today)
    providers = resolve_scope(tx, query)
    kept = _kept(remove_inactive, remove_reminders_only)
    members = compiler.members(query, providers)
    sql = Sql(_count_sql(channel, kept) + "p.patient_id IN (") + members + Sql(")")
    totals = [0] * 6
    _add(totals, tx.fetchone(sql.text, sql.params))
    counts = _Counts(*totals)
    ids: list[str] = []
    if counts.reachable <= cap:
        extra = Sql(f"{kept} AND {CONTACT_PRESENT[channel]}")
        ids = list(dict.fromkeys(k[0] for k in run_ids(tx, compiler, query, providers,
                                                       extra=extra)))
    return _result(channel, counts, 0, ids, cap, remove_inactive, remove_reminders_only)


def check_ids(tx: Tx, patient_ids: Sequence[str], channel: Channel, cap: int,
              remove_inactive: bool, remove_reminders_only: bool,
              within: Sql | None = None) -> AudienceCheck:
    """Patients chosen one by one (order kept, repeats ignored). With `within` (the SQL of a
    list's members), only the chosen patients on that list count: staff choose from a list,
    and an id from elsewhere (a typo, another provider's patient) must not slip in."""
    chosen = list(dict.fromkeys(patient_ids))
    kept = _kept(remove_inactive, remove_reminders_only)
    on_list = Sql("") if within is None else Sql(" AND p.patient_id IN (") + within + Sql(")")
    totals = [0] * 6
    reachable: set[str] = set()
    for chunk in batches(chosen, ID_BATCH):
        where = Sql(f"p.patient_id IN ({placeholders(len(chunk))})", list(chunk)) + on_list
        _add(totals, tx.fetchone(_count_sql(channel, kept) + where.text, where.params))
        reachable.update(str(r[0]) for r in tx.fetchall(
            f"SELECT p.patient_id FROM patients p WHERE {where.text} AND {kept}"
            f" AND {CONTACT_PRESENT[channel]}", where.params))
    counts = _Counts(*totals)
    ids = [pid for pid in chosen if pid in reachable] if counts.reachable <= cap else []
    return _result(channel, counts, len(chosen) - counts.selected, ids, cap, remove_inactive,
                   remove_reminders_only, on_a_list=within is not None)


def _result(channel: Channel, counts: _Counts, unknown: int, ids: list[str], cap: int,
            remove_inactive: bool, remove_reminders_only: bool,
            on_a_list: bool = False) -> AudienceCheck:
    removed_inactive = counts.inactive if remove_inactive else 0
    removed_reminders = 0
    if remove_reminders_only:
        removed_reminders = counts.reminders_only_active if remove_inactive \
            else counts.reminders_only
    messages: list[str] = []
    if unknown:
        where = "on this list" if on_a_list else "in the patient list"
        messages.append(f"{unknown:,} chosen patient ids are not {where}: left out.")
    if counts.inactive:
        messages.append(f"{counts.inactive:,} patients are Inactive: "
                        + ("removed." if remove_inactive else "kept, as you chose."))
    if counts.reminders_only:
        messages.append(f"{counts.reminders_only:,} patients chose appointment reminders only: "
                        + ("removed." if remove_reminders_only else "kept, as you chose."))
    if counts.lacking:
        needs, what = CONTACT_WORDS[channel]
        messages.append(f"{counts.lacking:,} patients have no {needs.split(' ', 1)[1]} and "
                        f"cannot get {what}: they are left out.")
    check = AudienceCheck(
        channel=channel, selected=counts.selected, unknown=unknown, inactive=counts.inactive,
        appointment_reminders_only=counts.reminders_only, removed_inactive=removed_inactive,
        removed_appointment_reminders_only=removed_reminders, lacking_contact=counts.lacking,
        patient_ids=tuple(ids), size=counts.reachable, cap=cap, messages=tuple(messages))
    if check.cap_message:
        return AudienceCheck(**{**check.__dict__, "messages": (*messages, check.cap_message)})
    return check
