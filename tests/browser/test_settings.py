"""Organisation settings in a real browser (issue 13): an administrator reaches them from the
administration pages, changes the campaign size cap and the text footer (each section its
own form), sees them kept after a reload with who changed them, and the application uses
them at once; a bad window is refused in one line with what was typed kept; a campaigns
user gets the refusal page; axe finds no serious violation at desktop and tablet width.

The seeded clinic (tests/browser/console_app.py): "admin" is the only administrator.
"""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import Console, assert_accessible

SETTINGS = "/console/admin/settings"


def test_an_administrator_changes_the_size_cap_and_footer_and_they_are_used_at_once(
        page: Page, console: Console) -> None:
    console.sign_in(page, "admin", "/console/admin/users")
    page.get_by_role("link", name="Organisation settings").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Organisation settings")
    assert_accessible(page)

    page.get_by_role("spinbutton", name="Patients per campaign").fill("250")
    page.get_by_role("button", name="Save caps").click()
    expect(page.get_by_role("status")).to_contain_text("The settings are saved")
    page.get_by_role("textbox", name="Text footer").fill("Text END to stop these reminders.")
    page.get_by_role("button", name="Save texts").click()
    expect(page.get_by_role("status")).to_contain_text("The settings are saved")

    page.reload()
    expect(page.get_by_role("spinbutton", name="Patients per campaign")).to_have_value("250")
    footer = page.get_by_role("textbox", name="Text footer")
    expect(footer).to_have_value("Text END to stop these reminders.")
    admin = console.email("admin")
    expect(page.locator("#set-campaign_size_cap-source")).to_contain_text(f"Changed by {admin}")
    expect(page.locator("#set-text_footer-source")).to_contain_text(f"Changed by {admin}")
    expect(page.locator("#set-help_number-source")).to_contain_text("environment's default")
    # The running application uses them, no restart
    assert console.o.settings.campaign_size_cap == 250
    assert console.o.settings.text_footer == "Text END to stop these reminders."


def test_a_bad_window_is_refused_in_one_line_and_what_was_typed_is_kept(
        page: Page, console: Console) -> None:
    console.sign_in(page, "admin", SETTINGS)
    page.get_by_role("textbox", name="Texts", exact=True).fill("25:00-26:00")
    page.get_by_role("textbox", name="Emails", exact=True).fill("08:00-21:00")
    page.get_by_role("button", name="Save sending windows and days").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("text_window: window '25:00-26:00' is not HH:MM-HH:MM")
    texts = page.get_by_role("textbox", name="Texts", exact=True)
    expect(texts).to_have_value("25:00-26:00")
    expect(texts).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("textbox", name="Emails", exact=True)).to_have_value("08:00-21:00")
    assert console.o.settings.text_window == "11:00-20:00"
    assert console.o.settings.email_window == "09:00-22:45"  # refused whole
    assert_accessible(page)


def test_a_campaigns_user_gets_the_refusal_page(page: Page, console: Console) -> None:
    console.sign_in(page, "campaigns", "/console/patients")
    answer = page.goto(SETTINGS)
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("alert")).to_contain_text("needs the Administrator role")


def test_the_settings_page_works_at_tablet_width_by_keyboard(tablet_page: Page,
                                                             console: Console) -> None:
    page = tablet_page
    console.sign_in(page, "admin", SETTINGS)
    field = page.get_by_role("textbox", name="Closed dates")
    field.focus()
    field.fill("2026-12-24,2026-12-31")
    page.keyboard.press("Enter")  # submits its own section's form
    expect(page.get_by_role("status")).to_contain_text("The settings are saved")
    expect(page.get_by_role("textbox", name="Closed dates")).to_have_value("2026-12-24,2026-12-31")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 768, f"the page scrolls sideways at tablet width ({width}px)"
    assert_accessible(page)
