"""The campaign editor in a real browser (guide: "Create Campaign"): a text campaign written
with the segment counter following the typing, previewed for a patient, tested (saved
inactive) and then saved as active; the Sunday start said as the date is picked; an active
campaign's edit refused once midnight before its start day has passed, in the rule's own
words with the form kept; the editor and the library at tablet width; no serious
accessibility violations."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from playwright.sync_api import Page, expect

from domain.access import SETUP_ACTOR
from tests.browser.conftest import Console, assert_accessible
from tests.browser.console_app import BODY, HELP

TEST_NUMBER = "+13125550199"
FITS = "document.documentElement.scrollWidth <= window.innerWidth"


def saved_campaign_id(page: Page) -> str:
    page.wait_for_url(re.compile(r"/console/campaigns/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[-1]


def test_a_campaigns_user_writes_a_text_watching_the_counter_previews_tests_then_activates(
        page: Page, console: Console) -> None:
    console.sign_in(page, "campaigns", "/console/campaigns")
    page.get_by_role("link", name="New campaign").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New text message campaign")
    assert_accessible(page)

    page.get_by_label("Name").fill("Flu shots for the over 65s")
    message = page.get_by_label("Message", exact=True)
    counter = page.locator("#text-count")
    message.fill("Flu shots are here.")
    expect(counter).to_contain_text("1 of 2 segments")
    message.press_sequentially(" Call us to book a visit this week, any weekday." * 3)
    # 19 + 147 characters with the 23 of the footer: past 160, so two segments.
    expect(counter).to_contain_text("GSM-7 · 2 of 2 segments")
    message.press_sequentially(" More." * 30)
    expect(counter).to_contain_text("Too long")
    message.fill(BODY)
    expect(counter).to_contain_text("1 of 2 segments")
    expect(counter).not_to_contain_text("Too long")

    start = page.get_by_label("Start date")
    start.fill("2026-11-29")
    expect(page.locator("#start-note")).to_have_text(
        "Sunday 2026-11-29 is not a sending day: the campaign will start Monday 2026-11-30.")

    page.get_by_label("Patient ID").fill("P1")
    page.get_by_role("button", name="Preview for this patient").click()
    preview = page.locator("#preview")
    expect(preview).to_contain_text("Ann Lee (P1)")
    expect(preview).to_contain_text(f"{BODY} Reply STOP to opt out.")

    page.get_by_label("Test mobile number").fill(TEST_NUMBER)
    page.get_by_role("button", name="Save & Send Test").click()
    campaign_id = saved_campaign_id(page)
    detail = console.o.staff.campaigns.get(SETUP_ACTOR, campaign_id)
    assert (detail.status, detail.test_sends) == ("Inactive", 1)
    assert (detail.requested_start, detail.start_date) == ("2026-11-29", "2026-11-30")
    assert detail.content["body"] == BODY

    page.goto(f"/console/campaigns/{campaign_id}/edit")
    expect(page.get_by_label("Name")).to_have_value("Flu shots for the over 65s")
    expect(page.locator("#start-note")).to_contain_text("will start Monday 2026-11-30")
    page.get_by_role("button", name="Save as Active").click()
    assert saved_campaign_id(page) == campaign_id
    assert console.o.staff.campaigns.get(SETUP_ACTOR, campaign_id).status == "Pending"


def test_an_active_campaigns_edit_is_refused_after_midnight_before_its_start_day(
        page: Page, console: Console) -> None:
    tomorrow = (console.clock.now() + timedelta(days=1)).date()
    made = console.o.staff.campaigns.create(
        SETUP_ACTOR, name="Wednesday reminder", body=BODY, help_number=HELP, start=tomorrow,
        patients=["P1", "P2"], active=True)
    # 00:30 on Wednesday in the clinic (US Central): the start day has begun.
    console.clock.advance_to(datetime.fromisoformat(f"{tomorrow.isoformat()}T06:30:00+00:00"))
    console.sign_in(page, "campaigns", "/console/campaigns")
    page.get_by_role("button", name="Edit Wednesday reminder").click()
    name = page.get_by_label("Name")
    expect(name).to_have_value("Wednesday reminder")
    name.fill("Wednesday reminder, reworded")
    page.get_by_label("Message", exact=True).fill("A new wording that is not saved.")
    page.get_by_role("button", name="Save as Active").click()

    refused = page.locator("#editor-message")
    expect(refused).to_contain_text(
        "an active campaign can be changed only until midnight before its start day")
    expect(name).to_have_value("Wednesday reminder, reworded")
    expect(page.get_by_label("Message", exact=True)).to_have_value(
        "A new wording that is not saved.")
    detail = console.o.staff.campaigns.get(SETUP_ACTOR, made.campaign_id)
    assert (detail.name, detail.content["body"]) == ("Wednesday reminder", BODY)
    assert_accessible(page)


def test_the_library_and_the_editor_work_at_tablet_width(
        tablet_page: Page, console: Console) -> None:
    page = tablet_page
    console.sign_in(page, "campaigns", "/console/campaigns/library")
    email = page.get_by_role("region", name="Email")
    expect(email).to_contain_text("Prepopulated: cannot be edited")
    assert page.evaluate(FITS), "the library scrolls sideways at 768 px"
    assert_accessible(page)
    email.get_by_role("link", name="Use Mammogram reminder").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New email campaign")
    expect(page.get_by_label("Template")).to_have_value("Mammogram reminder")
    expect(page.get_by_label("Subject")).to_have_attribute("readonly", "")
    assert page.evaluate(FITS), "the editor scrolls sideways at 768 px"
    page.get_by_label("Patient ID").fill("P1")
    page.get_by_role("button", name="Preview for this patient").click()
    expect(page.locator("#preview")).to_contain_text("Subject: A reminder from Total Healthcare")
    # The email as Ann would see it: the layout, her name merged in.
    expect(page.frame_locator("#preview iframe").locator("body")).to_contain_text("Hello Ann,")
    assert_accessible(page)
