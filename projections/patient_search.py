"""Finding a patient who calls back, and the summary staff read to them.

Search covers the patients who matter to a caller: contacted in the last 90 days, or with a
confirmed (or checked-in) appointment in the last two years or later. A phone search
matches the digits anywhere in the mobile or home number; a name search wants every word
to be part of the first, middle or last name, ignoring case and accents both ways (the typed
words and the stored `*_f` columns go through the same domain.patients_fields.fold: no
database extension needed). At most 100 results, by last, first, middle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from domain.lists import age_on, years_before
from domain.patients import CONFIRMED_STATUSES, UPCOMING_STATUSES, display_name
from domain.patients_fields import fold, phone_digits
from projections.db import Tx

SEARCH_LIMIT = 100
CONTACT_DAYS = 90
APPOINTMENT_YEARS = 2
MIN_PHONE_DIGITS = 4
HISTORY_DAYS = 90


class SearchTextError(ValueError):
    """Nothing searchable was typed."""


@dataclass(frozen=True)
class SearchTerms:
    phone: str | None  # digits
    words: tuple[str, ...]  # folded name parts


def parse_search(text: str) -> SearchTerms:
    stripped = text.strip()
    compact = stripped.translate(str.maketrans("", "", " -().+"))
    if compact.isdigit() and compact.isascii():
        digits = phone_digits(compact)
        if len(digits) < MIN_PHONE_DIGITS:
            raise SearchTextError(f"type at least {MIN_PHONE_DIGITS} digits of the phone number")
        return SearchTerms(digits, ())
    words = tuple(w for w in fold(stripped.replace(",", " ")).split() if w)
    if not words:
        raise SearchTextError("type a 10-digit phone number or a name")
    return SearchTerms(None, words)


@dataclass(frozen=True)
class PatientHit:
    patient_id: str
    name: str
    date_of_birth: str | None
    mobile: str | None
    home_phone: str | None
    status: str


def _iso_instant(at: datetime) -> str:
    """The instant format the communication projections write (fixed width, UTC)."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def search(tx: Tx, dialect: str, text: str, now: datetime, today: date
           ) -> tuple[list[PatientHit], bool]:
    """Up to 100 hits in name order, and whether more matched."""
    terms = parse_search(text)
    find = "strpos" if dialect == "postgres" else "instr"
    clauses: list[str] = []
    params: list[Any] = []
    if terms.phone:
        clauses.append(f"({find}(p.mobile_n, ?) > 0 OR {find}(p.home_n, ?) > 0)")
        params += [terms.phone, terms.phone]
    for word in terms.words:
        clauses.append(f"({find}(p.first_f, ?) > 0 OR {find}(p.last_f, ?) > 0"
                       f" OR {find}(COALESCE(p.middle_f, ''), ?) > 0)")
        params += [word, word, word]
    contacted_since = _iso_instant(now - timedelta(days=CONTACT_DAYS))
    confirmed_since = years_before(today, APPOINTMENT_YEARS).isoformat()
    statuses = [fold(s) for s in CONFIRMED_STATUSES]
    clauses.append(
        "(EXISTS (SELECT 1 FROM patient_contacts c WHERE c.patient_id = p.patient_id"
        " AND c.last_contacted_at >= ?)"
        " OR EXISTS (SELECT 1 FROM appointments a WHERE a.patient_id = p.patient_id"
        f" AND a.starts_at >= ? AND a.status_f IN ({', '.join('?' * len(statuses))})))")
    params += [contacted_since, confirmed_since, *statuses]
    rows = tx.fetchall(
        "SELECT p.patient_id, p.first_name, p.middle_name, p.last_name, p.date_of_birth,"
        " p.mobile, p.home_phone, p.status FROM patients p WHERE " + " AND ".join(clauses)
        + " ORDER BY p.sort_name, p.patient_id LIMIT ?", [*params, SEARCH_LIMIT + 1])
    hits = [PatientHit(str(r[0]), display_name(r[1], r[2], r[3]), r[4], r[5], r[6], str(r[7]))
            for r in rows[:SEARCH_LIMIT]]
    return hits, len(rows) > SEARCH_LIMIT


# -- the patient summary ---------------------------------------------------------------------


@dataclass(frozen=True)
class AppointmentLine:
    appointment_id: str
    starts_at: str
    provider: str | None
    facility: str | None
    type: str | None
    status: str
    notes: str | None


@dataclass(frozen=True)
class CareGapLine:
    measure: str
    opened_on: str | None


@dataclass(frozen=True)
class OptOutLine:
    type: str
    last_day: str | None  # None: permanent
    reason: str


@dataclass(frozen=True)
class CommunicationLine:
    """One row of the Communications tab. The history table has no provider or facility:
    `provider` is the patient's PCP (whom a health reminder asks them to see)."""

    communication_id: str
    status: str
    date: str | None
    reason: str
    description: str
    campaign_name: str
    channel: str
    provider: str | None
    facility: str | None
    attempts: int


@dataclass(frozen=True)
class PatientSummary:
    patient_id: str
    name: str
    first_name: str
    middle_name: str | None
    last_name: str
    date_of_birth: str | None
    age: int | None
    status: str
    mobile: str | None
    home_phone: str | None
    email: str | None
    address: str | None
    pcp: str | None
    payor: str | None
    care_manager: str | None
    language: str | None
    appointment_reminders_only: bool
    groups: tuple[str, ...]
    conditions: tuple[str, ...]
    upcoming_appointments: tuple[AppointmentLine, ...]
    open_care_gaps: tuple[CareGapLine, ...]
    opt_outs: tuple[OptOutLine, ...]
    communications: tuple[CommunicationLine, ...]
    #: "No Communication: Email Bounced" when the patient's current address bounced for
    #: good (the guide shows it under the name), else None
    email_status: str | None = None
    #: When the patient's mobile number texted STOP (a block on the number, for every
    #: patient with it, until START): what the summary says about it, else None
    text_status: str | None = None


def summary(tx: Tx, patient_id: str, now: datetime, today: date) -> PatientSummary | None:
    row = tx.fetchone(
        "SELECT patient_id, first_name, middle_name, last_name, date_of_birth, status, mobile,"
        " home_phone, email, address_line1, address_line2, city, state, postal_code,"
        " COALESCE(pcp_name, pcp_id), payor, care_manager, language,"
        " appointment_reminders_only FROM patients WHERE patient_id = ?", (patient_id,))
    if row is None:
        return None
    (pid, first, middle, last, dob, status, mobile, home, email, line1, line2, city, state,
     postal, pcp, payor, care_manager, language, reminders_only) = row
    address = ", ".join(p for p in (line1, line2, city, f"{state or ''} {postal or ''}".strip())
                        if p) or None
    today_text = today.isoformat()
    appointments = tuple(
        AppointmentLine(str(r[0]), str(r[1]), r[2], r[3], r[4], str(r[5]), r[6])
        for r in tx.fetchall(
            "SELECT a.appointment_id, a.starts_at, COALESCE(pr.name, a.provider_id),"
            " a.facility, a.type, a.status, a.notes FROM appointments a"
            " LEFT JOIN providers pr ON pr.provider_id = a.provider_id"
            " WHERE a.patient_id = ? AND a.starts_at >= ?"
            f" AND a.status IN ({', '.join('?' * len(UPCOMING_STATUSES))})"
            " ORDER BY a.starts_at, a.appointment_id",
            (pid, today_text, *UPCOMING_STATUSES)))
    gaps = tuple(CareGapLine(str(r[0]), r[1]) for r in tx.fetchall(
        "SELECT measure, opened_on FROM care_gaps WHERE patient_id = ? AND closed_on IS NULL"
        " ORDER BY measure_f", (pid,)))
    opt_outs = tuple(OptOutLine(str(r[0]), r[1], str(r[2])) for r in tx.fetchall(
        "SELECT type, last_day, reason FROM patient_opt_outs WHERE patient_id = ?"
        " AND (last_day IS NULL OR last_day >= ?) ORDER BY type", (pid, today_text)))
    since = _iso_instant(now - timedelta(days=HISTORY_DAYS))
    communications = tuple(
        CommunicationLine(str(r[0]), str(r[1]), r[2], str(r[3]), str(r[4]), str(r[5]),
                          str(r[6]), pcp, None, int(r[7] or 0))
        for r in tx.fetchall(
            "SELECT communication_id, status, COALESCE(first_attempt_at, updated_at), reason,"
            " campaign_description, campaign_name, channel, attempts"
            " FROM communication_history WHERE patient_id = ?"
            " AND COALESCE(first_attempt_at, updated_at) >= ?"
            # The guide: the history shows the emails that went, never an unsuccessful
            # email attempt, a bounce or an invalid address (the bounce shows as the
            # patient's email status instead).
            " AND (channel <> 'email' OR status IN ('Sent', 'Delivered',"
            " 'Introductory email needed'))"
            " ORDER BY COALESCE(first_attempt_at, updated_at) DESC, communication_id",
            (pid, since)))
    groups = tuple(str(r[0]) for r in tx.fetchall(
        "SELECT group_name FROM patient_groups WHERE patient_id = ? ORDER BY group_f", (pid,)))
    conditions = tuple(str(r[0]) for r in tx.fetchall(
        "SELECT condition FROM conditions WHERE patient_id = ? ORDER BY condition_f", (pid,)))
    return PatientSummary(
        patient_id=str(pid), name=display_name(first, middle, last), first_name=str(first),
        middle_name=middle, last_name=str(last), date_of_birth=dob,
        age=age_on(date.fromisoformat(dob), today) if dob else None, status=str(status),
        mobile=mobile, home_phone=home, email=email, address=address, pcp=pcp, payor=payor,
        care_manager=care_manager, language=language,
        appointment_reminders_only=bool(reminders_only), groups=groups, conditions=conditions,
        upcoming_appointments=appointments, open_care_gaps=gaps, opt_outs=opt_outs,
        communications=communications,
    )
