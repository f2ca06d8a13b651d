"""The Patient Management page in a real browser: a campaigns user opens "Pts w/ Appts in 1
week", sees it grouped by appointment provider, adds a filter row, sorts on two keys, selects
some patients and Send Campaign (text) shows the audience check, then posts the contract's
form to the campaign editor (/console/campaigns/new), where the text is written and saved
active for exactly the chosen patients, in the list's order. The same at tablet width, and
axe on the page with the audience check open.

The shared seed (tests/browser/console_app.py) has only past appointments; this module adds
upcoming ones: P3 Cara Diaz (D1, Dr. Adams, tomorrow), P2 Bob Lee (D1, in two days), P1 Ann
Lee (D2, Dr. Brown, tomorrow), P4 Dan Moss (D2, in three days), P5 Eve Park (D1, in four).
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs
from uuid import UUID

from playwright.sync_api import Page, expect

from tests.browser.conftest import Console, assert_accessible
from tests.patient_data import APPOINTMENT_HEADER, write_csv

WEEK_VIEW = "Pts w/ Appts in 1 week"


def seed_upcoming(console: Console) -> None:
    now = console.clock.now()

    def at(days: int) -> str:
        return (now + timedelta(days=days)).strftime("%Y-%m-%d 10:00")

    rows = [["U3", "P3", at(1), "D1", "Main", "Office Visit", "Scheduled", ""],
            ["U2", "P2", at(2), "D1", "Main", "Office Visit", "Scheduled", ""],
            ["U1", "P1", at(1), "D2", "Main", "Flu Shot", "Scheduled", ""],
            ["U4", "P4", at(3), "D2", "Main", "Office Visit", "Scheduled", ""],
            ["U5", "P5", at(4), "D1", "Main", "Office Visit", "Scheduled", ""]]
    folder = console.o.settings.letters_dir.parent / "lists-seed"
    console.o.patients.import_file("appointments", write_csv(folder / "upcoming.csv",
                                                             APPOINTMENT_HEADER, rows))
    console.catch_up()


def shown_patients(page: Page) -> list[str]:
    return [box.get_attribute("value") or "" for box in
            page.locator("#send-form tbody input[name=pick]").all()]


def open_week_view(page: Page) -> None:
    page.get_by_label("Saved page view", exact=True).select_option(label=WEEK_VIEW)
    page.get_by_role("button", name="Open view").click()
    expect(page.locator("#results-heading")).to_have_text("5 appointments")


def test_a_campaigns_user_narrows_the_week_view_sorts_selects_and_sends_a_text_campaign(
        page: Page, console: Console) -> None:
    seed_upcoming(console)
    console.sign_in(page, "campaigns", "/console/lists")
    open_week_view(page)
    expect(page).to_have_url(re.compile(r"/console/lists\?view="))
    groups = page.locator("th[scope=rowgroup]")
    expect(groups).to_have_text(["Appt Provider: Dr. Adams", "Appt Provider: Dr. Brown"])
    assert shown_patients(page) == ["P3", "P2", "P5", "P1", "P4"]  # by provider, then time
    expect(page.locator("thead th").nth(1)).to_have_text("Appt Date/Time")

    # A filter row: Last Name contains Lee;Diaz (the semicolon is "or").
    page.locator("#f-field-4").select_option(label="Last Name")
    page.locator("#f-action-4").select_option(label="contains")
    page.locator("#f-value-4").fill("Lee;Diaz")
    # Sort: Age descending, then Patient Name ascending (inside each provider's group).
    page.get_by_label("Sort by").select_option(label="Age")
    page.get_by_label("Order 1").select_option(label="Descending")
    page.get_by_label("then by").first.select_option(label="Patient Name")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#results-heading")).to_have_text("3 appointments")
    expect(page).to_have_url(re.compile(r"defined=1.*f_value=Lee%3BDiaz"))
    assert shown_patients(page) == ["P2", "P3", "P1"]  # Adams: Bob 66, Cara 55; Brown: Ann
    expect(page.locator("#f-value-4")).to_have_value("Lee;Diaz")  # kept in the form

    # Select some: Bob and Ann; Send Campaign by text.
    page.get_by_label("Select Lee, Bob").check()
    page.get_by_label("Select Lee, Ann").check()
    page.get_by_label("Channel").select_option("text")
    page.get_by_role("button", name="Send Campaign").click()
    check = page.locator("#audience")
    expect(check).to_contain_text("Send Campaign (Text message)")
    expect(check.locator("dd").first).to_have_text("2")
    expect(check).to_contain_text(f"{WEEK_VIEW}: 2 patients (chosen from the list)")
    assert_accessible(page)

    with page.expect_request(lambda r: r.url.endswith("/console/campaigns/new")
                             and r.method == "POST") as sent:
        page.get_by_role("button", name="Continue to the campaign").click()
    form = {k: v[0] for k, v in parse_qs(sent.value.post_data or "").items()}
    assert form["patients"] == "P2,P1"
    assert form["channel"] == "text"
    assert form["audience_note"] == f"{WEEK_VIEW}: 2 patients (chosen from the list)"
    assert form["csrf_token"]

    # The editor opens with those two patients fixed: write the text, save it active.
    expect(page.get_by_role("heading", level=1)).to_have_text("New text message campaign")
    expect(page.get_by_text(f"{WEEK_VIEW}: 2 patients (chosen from the list)")).to_be_visible()
    page.get_by_label("Name").fill("Appointment week: bring your insurance card")
    page.get_by_label("Message", exact=True).fill(
        "Total Healthcare: please bring your insurance card to your visit this week.")
    page.get_by_role("button", name="Save as Active").click()
    page.wait_for_url(re.compile(r"/console/campaigns/[0-9a-f-]{36}$"))
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("Active (pending)")
    expect(facts).to_contain_text("0 completed of 2 to be contacted")
    expect(facts.locator("dt:has-text('Patients') + dd")).to_have_text("2")
    campaign_id = page.url.rsplit("/", 1)[-1]
    planned = console.o.campaigns.report(UUID(campaign_id))
    assert [r.patient_id for r in planned] == ["P2", "P1"]  # the list's order, as chosen


def test_at_tablet_width_the_whole_list_goes_to_the_audience_check(
        tablet_page: Page, console: Console) -> None:
    seed_upcoming(console)
    page = tablet_page
    console.sign_in(page, "campaigns", "/console/lists")
    open_week_view(page)
    # The page does not scroll sideways; only the wide table may, inside its box.
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    page.get_by_label("All 5").check()
    send = page.get_by_role("button", name="Send Campaign")
    send.focus()
    page.keyboard.press("Enter")
    check = page.locator("#audience")
    # P4 texted STOP in the shared seed, but the number stays on file: the list's check
    # counts contacts; the dispatcher skips opted-out numbers.
    expect(check).to_contain_text(f"{WEEK_VIEW}: 5 patients")
    expect(page.get_by_role("button", name="Continue to the campaign")).to_be_visible()
    assert_accessible(page)


def test_an_unusable_filter_is_said_in_place_and_the_list_page_stays_accessible(
        page: Page, console: Console) -> None:
    console.sign_in(page, "campaigns", "/console/lists")
    expect(page.locator("#results-heading")).to_have_text("6 patients")
    assert_accessible(page)
    page.locator("#f-field-1").select_option(label="Age")
    page.locator("#f-action-1").select_option(label="greater than")
    value = page.locator("#f-value-1")
    value.fill("old")
    value.press("Enter")  # Enter runs the list from any field
    expect(page.get_by_role("alert")).to_contain_text("the value for Age must be a whole number")
    expect(page.locator("#results-heading")).to_have_count(0)
    expect(value).to_have_value("old")
