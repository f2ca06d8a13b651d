"""A realistic, deterministic (seeded) practice data set for demos, tests and benchmarks.

Every file is written row by row, so a million patients never sit in memory. Phone
numbers are fictional: NANP 555-01xx numbers (reserved for fiction) and, for a small share,
Twilio's magic test numbers (+1 500 555 xxxx). Emails use the reserved example domains.
About 0.5% of patient rows are deliberately broken to show the rejects report.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy "
    "Matthew Betty Anthony Margaret Mark Sandra Donald Ashley Steven Kimberly Paul Emily "
    "Andrew Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Dorothy George Melissa "
    "Timothy Deborah Ronald Stephanie Jason Rebecca Edward Sharon Jeffrey Laura Ryan Cynthia "
    "Jacob Kathleen Gary Amy Nicholas Angela Eric Shirley Jonathan Anna Stephen Brenda Larry "
    "Pamela Justin Emma Scott Nicole Brandon Helen Benjamin Samantha Samuel Katherine Gregory "
    "Christine Alexander Debra Frank Rachel Patrick Carolyn Raymond Janet Jack Catherine "
    "José María Juan Guadalupe Luis Rosa Nguyễn Zoë Renée François Chloé"
)
LAST_NAMES = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
    "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
    "White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott "
    "Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter "
    "Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart "
    "Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed "
    "Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray "
    "Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster O'Brien "
    "O'Neil Núñez Muñoz Peña Smith-Jones"
)
PAYORS = ("Medicare", "Medicare Advantage", "Medicaid", "Anthem", "Aetna", "Cigna",
          "UnitedHealthcare", "Humana", "Blue Cross Blue Shield", "Self-pay")
LANGUAGES = ("English",) * 16 + ("Spanish",) * 3 + ("Vietnamese", "Chinese")
GROUPS = ("Diabetes Class", "Staff", "Pregnancy Program", "Heart Health")
CARE_MANAGERS = ("Kim Lee", "Ana Ortiz", "Sam Patel", "Joe Black")
PROVIDER_GROUPS = ("North Clinic", "South Clinic", "Pediatrics", "Women's Health",
                   "Internal Medicine")
FACILITIES = ("Main Street Clinic", "Northside Office", "Southside Office", "Downtown Center")
APPOINTMENT_TYPES = ("Office Visit", "Annual Physical", "Follow-up", "Lab", "Telehealth",
                     "Flu Shot", "Well Child")
MEASURES = ("Imm: Missing Influenza Vaccination", "Imm: Missing Pneumococcal Vaccination",
            "Diabetes: HbA1c Overdue", "Diabetes: Eye Exam Overdue",
            "Screening: Mammogram Overdue", "Screening: Colorectal Cancer Overdue",
            "BP: Last Reading Above Target", "Wellness: Annual Visit Overdue")
CONDITIONS = ("Diabetes Type 2", "Hypertension", "Asthma", "COPD", "Hyperlipidemia",
              "Depression", "Chronic Kidney Disease", "Obesity")
STREETS = ("Main St", "Oak Ave", "Pine Rd", "Maple Dr", "Cedar Ln", "Elm St", "Lakeview Blvd")
CITIES = (("Austin", "TX", "787"), ("Dallas", "TX", "752"), ("Chicago", "IL", "606"),
          ("Springfield", "IL", "627"), ("Madison", "WI", "537"))
# Area codes that phonenumbers accepts with the 555 exchange.
AREA_CODES = ("512", "214", "312", "217", "608", "773", "469", "737", "415", "646", "206",
              "303", "404", "617", "702")
APPOINTMENT_STATUSES = (("Scheduled", 40), ("Confirmed", 30), ("Canceled", 8),
                        ("Rescheduled", 5), ("No-Show", 4), ("Checked-In", 13))

PATIENT_HEADER = ["Patient ID", "First Name", "Middle Name", "Last Name", "Date of Birth",
                  "Mobile Phone", "Home Phone", "Email", "Status", "PCP Provider ID", "Payor",
                  "Care Manager", "Language", "Groups", "Appointment Reminders Only",
                  "Address Line 1", "Address Line 2", "City", "State", "Postal Code"]


def _patient_id(n: int) -> str:
    return f"P{n:07d}"


def _phone(rng: random.Random) -> str:
    if rng.random() < 0.02:
        return f"+1 500 555 {rng.randrange(10000):04d}"  # Twilio magic test numbers
    area = rng.choice(AREA_CODES)
    style = rng.randrange(3)
    last = f"01{rng.randrange(100):02d}"
    if style == 0:
        return f"({area}) 555-{last}"
    if style == 1:
        return f"{area}-555-{last}"
    return f"{area}555{last}"


def _birth_date(rng: random.Random, today: date) -> date:
    age_days = int(rng.triangular(0, 100 * 365.25, 45 * 365.25))
    return today - timedelta(days=age_days + 1)


def _patient_rows(count: int, providers: int, rng: random.Random, today: date
                  ) -> Iterator[list[str]]:
    for n in range(1, count + 1):
        first = rng.choice(FIRST_NAMES)
        last = rng.choice(LAST_NAMES)
        middle = rng.choice("ABCDEFGHJKLMNPRSTW") if rng.random() < 0.4 else ""
        born = _birth_date(rng, today)
        dob = born.isoformat() if rng.random() < 0.7 else born.strftime("%m/%d/%Y")
        mobile = _phone(rng) if rng.random() < 0.8 else ""
        home = _phone(rng) if rng.random() < 0.35 else ""
        email = (f"{first.lower()}.{last.lower()}{n}@example.{rng.choice(['com', 'org'])}"
                 .encode("ascii", "ignore").decode().replace("'", "")
                 if rng.random() < 0.6 else "")
        city, state, zip3 = rng.choice(CITIES)
        has_address = rng.random() < 0.85
        row = [
            _patient_id(n), first, middle, last, dob, mobile, home, email,
            "Inactive" if rng.random() < 0.08 else "Active",
            f"D{rng.randrange(1, providers + 1):04d}", rng.choice(PAYORS),
            rng.choice(CARE_MANAGERS) if rng.random() < 0.2 else "", rng.choice(LANGUAGES),
            ";".join(rng.sample(GROUPS, rng.randrange(1, 3))) if rng.random() < 0.1 else "",
            "Yes" if rng.random() < 0.05 else "No",
            f"{rng.randrange(1, 9999)} {rng.choice(STREETS)}" if has_address else "",
            f"Apt {rng.randrange(1, 300)}" if has_address and rng.random() < 0.2 else "",
            city if has_address else "", state if has_address else "",
            f"{zip3}{rng.randrange(100):02d}" if has_address else "",
        ]
        broken = rng.random()
        if broken < 0.0015:
            row[5] = "555-0000"  # too short to be a phone number
        elif broken < 0.003:
            row[7] = "someone@"
        elif broken < 0.004:
            row[4] = (today + timedelta(days=30)).isoformat()
        elif broken < 0.005:
            row[3] = ""
        yield row


def write_dataset(folder: Path, patients: int, seed: int, today: date) -> dict[str, Path]:
    """Write providers, patients, appointments, care gaps, conditions and billing CSVs.
    Same arguments, same bytes. Returns the import kind → file path."""
    folder.mkdir(parents=True, exist_ok=True)
    providers = max(5, patients // 500)
    paths = {kind: folder / f"{kind.replace('-', '_')}.csv" for kind in
             ("providers", "patients", "appointments", "care-gaps", "conditions", "billing")}
    rng = random.Random(seed)
    with _writer(paths["providers"]) as out:
        out.writerow(["Provider ID", "Name", "Group", "Active"])
        for n in range(1, providers + 1):
            group = ";".join(rng.sample(PROVIDER_GROUPS, rng.randrange(1, 3)))
            out.writerow([f"D{n:04d}", f"Dr. {rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                          group, "No" if rng.random() < 0.1 else "Yes"])
    with _writer(paths["patients"]) as out:
        out.writerow(PATIENT_HEADER)
        out.writerows(_patient_rows(patients, providers, random.Random(seed + 1), today))
    _write_related(paths, patients, providers, random.Random(seed + 2), today)
    return paths


def _write_related(paths: dict[str, Path], patients: int, providers: int, rng: random.Random,
                   today: date) -> None:
    statuses = [s for s, weight in APPOINTMENT_STATUSES for _ in range(weight)]
    with _writer(paths["appointments"]) as appointments, \
            _writer(paths["care-gaps"]) as gaps, _writer(paths["conditions"]) as conditions, \
            _writer(paths["billing"]) as billing:
        appointments.writerow(["Appointment ID", "Patient ID", "Date/Time", "Provider",
                               "Facility", "Type", "Status", "Notes"])
        gaps.writerow(["Patient ID", "Measure Name", "Opened", "Closed"])
        conditions.writerow(["Patient ID", "Condition"])
        billing.writerow(["Patient ID", "Provider ID"])
        appointment_number = 0
        for n in range(1, patients + 1):
            pid = _patient_id(n)
            for _ in range(rng.choices((0, 1, 2, 3), (30, 35, 25, 10))[0]):
                appointment_number += 1
                day = today + timedelta(days=rng.randrange(-700, 60))
                at = f"{day.isoformat()} {rng.randrange(8, 17):02d}:{rng.choice(('00', '30'))}"
                status = rng.choice(statuses)
                if day >= today and status in ("No-Show", "Checked-In"):
                    status = "Scheduled"
                appointments.writerow([
                    f"A{appointment_number:08d}", pid, at,
                    f"D{rng.randrange(1, providers + 1):04d}", rng.choice(FACILITIES),
                    rng.choice(APPOINTMENT_TYPES), status,
                    "Bring insurance card" if rng.random() < 0.1 else ""])
            for measure in rng.sample(MEASURES, rng.choices((0, 1, 2, 3), (45, 30, 15, 10))[0]):
                opened = today - timedelta(days=rng.randrange(10, 900))
                closed = (opened + timedelta(days=rng.randrange(1, 200))) \
                    if rng.random() < 0.3 else None
                gaps.writerow([pid, measure, opened.isoformat(),
                               closed.isoformat() if closed and closed <= today else ""])
            for condition in rng.sample(CONDITIONS, rng.choices((0, 1, 2), (55, 30, 15))[0]):
                conditions.writerow([pid, condition])
            if rng.random() < 0.5:
                billing.writerow([pid, f"D{rng.randrange(1, providers + 1):04d}"])


class _writer:
    """A csv writer on a new UTF-8 file, closed on exit.

    Deliberately the plain csv.writer, not the formula-safe one (application/csv_safe.py):
    these files are practice INPUT for `outreach import`, not a report for staff to open,
    and every value is generated here (nothing untrusted flows in). Neutralising would put a
    `'` in front of the `+1 500 555 …` test numbers and change the data the demo imports."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115

    def __enter__(self) -> Any:
        return csv.writer(self.file)

    def __exit__(self, *exc: object) -> None:
        self.file.close()
