"""The patient summary card of `outreach patients show` and a single-hit search."""

from __future__ import annotations

from api.console import ScriptConsole
from projections.patient_search import PatientSummary


def print_summary_card(out: ScriptConsole, s: PatientSummary) -> None:
    """A patient's summary as `outreach patients show` prints it, one line per fact."""
    lines = [
        f"{s.name}  (id {s.patient_id})  born {s.date_of_birth or '?'}  age "
        f"{s.age if s.age is not None else '?'}  {s.status}",
        f"mobile {s.mobile or '-'}  home {s.home_phone or '-'}  email {s.email or '-'}"
        f"{f'  ({s.email_status})' if s.email_status else ''}"
        f"{f'  ({s.text_status})' if s.text_status else ''}",
        f"address {s.address or '-'}",
        f"PCP {s.pcp or '-'}  payor {s.payor or '-'}  care manager {s.care_manager or '-'}"
        f"  language {s.language or '-'}"
        + ("  (appointment reminders only)" if s.appointment_reminders_only else ""),
        f"groups: {', '.join(s.groups) or '-'}   conditions: {', '.join(s.conditions) or '-'}",
        "upcoming appointments:",
        *[f"  {a.starts_at}  {a.type or ''}  {a.provider or ''}  {a.facility or ''}  "
          f"{a.status}" for a in s.upcoming_appointments],
        "open care gaps (A&R):",
        *[f"  {g.measure} (since {g.opened_on or '?'})" for g in s.open_care_gaps],
        "opt-outs:",
        *[f"  {o.type} until {o.last_day or 'permanent'} — {o.reason}" for o in s.opt_outs],
        "communications (last 90 days):",
        *[f"  {c.date or ''}  {c.status}  {c.reason}  {c.description}  "
          f"{c.provider or ''}  attempts {c.attempts}" for c in s.communications],
    ]
    for line in lines:
        out.print(line, markup=False, highlight=False)
