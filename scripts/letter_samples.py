"""Synthetic letter content and patients for the letter preview and benchmark (no real
person: names and streets are drawn from short made-up lists)."""

from __future__ import annotations

from datetime import date
from io import BytesIO

from PIL import Image, ImageDraw

from gateways.letters import LetterContent, LetterRecipient

FIRST = ("Ann", "Luis", "Mei", "Omar", "Grace", "Tomas", "Priya", "Jonah", "Rosa", "Dev")
LAST = ("Lee", "Garcia", "Chen", "Haddad", "Okafor", "Novak", "Shah", "Miller", "Diaz", "Park")
STREETS = ("Oak Avenue", "Maple Street", "Lakeview Drive", "Cedar Lane", "Hillside Road")
TOWNS = (("Springfield", "IL", "62704"), ("Madison", "WI", "53703"),
         ("Columbus", "OH", "43215"), ("Salem", "OR", "97301"))

BODY_HTML = (
    "<p>Our records show that you are due for your <b>annual wellness visit</b>. Regular "
    "check-ups help your care team find health problems early, when they are easier to "
    "treat, and keep your vaccinations and screenings up to date.</p>"
    "<p>At your visit, your provider will:</p>"
    "<ul><li>review your medications and allergies,</li>"
    "<li>check your blood pressure, weight and any screenings you are due for,</li>"
    "<li>answer your questions about staying healthy this year.</li></ul>"
    "<p>Please call us at <b>(555) 010-0100</b>, Monday to Friday from 8 a.m. to 5 p.m., to "
    "book a time that suits you. If you have already scheduled this visit, thank you: no "
    "action is needed. If you have moved or changed doctors, please let us know so we can "
    "update our records.</p>"
    "<p>We look forward to seeing you.</p>"
    "<p>Sincerely,<br/><i>The care team at Total Healthcare</i></p>")


def logo_png(width: int = 600, height: int = 180) -> bytes:
    """A made-up letterhead logo: a blue mark and a bar."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((10, 10, height - 10, height - 10), fill=(18, 92, 168))
    draw.rectangle((height - 40, 35, height - 20, height - 35), fill="white")
    draw.rectangle((height + 10, height // 2 - 20, width - 20, height // 2 + 20),
                   fill=(18, 92, 168))
    out = BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def sample_content(page_size: str = "Letter") -> LetterContent:
    return LetterContent(
        page_size=page_size,  # type: ignore[arg-type]
        greeting=True, body_html=BODY_HTML, logo=logo_png(),
        return_address=("100 Main Street, Suite 200", "Springfield, IL 62701",
                        "(555) 010-0100"),
        mail_date=date(2026, 12, 7), organisation="Total Healthcare")


def sample_patients(n: int) -> list[LetterRecipient]:
    people = []
    for i in range(n):
        town, state, zip_code = TOWNS[i % len(TOWNS)]
        people.append(LetterRecipient(
            patient_id=f"synthetic-{i}", first_name=FIRST[i % len(FIRST)],
            last_name=LAST[(i // len(FIRST)) % len(LAST)],
            address_lines=(f"{100 + i % 900} {STREETS[i % len(STREETS)]}",
                           f"{town}, {state} {zip_code}")))
    return people
