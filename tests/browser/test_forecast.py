"""The forecast before activation in a real browser (issue 13): a campaign's page shows when
the first and last patient would be reached and who would not be, the lists open from the
keyboard, it reads at tablet width, and a campaign already in its start day says why there
is no forecast. No serious accessibility violations."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import Console, assert_accessible


def test_a_campaign_user_sees_the_forecast_and_who_is_excluded_on_the_campaigns_page(
        page: Page, console: Console) -> None:
    console.sign_in(page, "campaigns", f"/console/campaigns/{console.seeded.upcoming}")
    forecast = page.locator("#forecast-body")
    # "Flu shots" starts next Tuesday: P1, P2 texted from 11:00; P4's mobile texted STOP.
    expect(forecast.locator("[data-forecast=first]")).to_have_text("Tue 1 Dec 2026, 11:00 CST")
    expect(forecast.locator("[data-forecast=last]")).to_have_text("Tue 1 Dec 2026, 11:00 CST")
    expect(forecast.locator("[data-forecast=to-contact]")).to_have_text("2")
    expect(forecast.locator("[data-forecast=days]")).to_have_text("1")
    opted = forecast.locator("details[data-reason=opted_out]")
    expect(opted.locator("summary")).to_contain_text("Opted out: 1 patient")
    moss = opted.get_by_role("row").filter(has_text="Moss, Dan")
    expect(moss).to_be_hidden()  # closed until asked for
    opted.locator("summary").focus()
    page.keyboard.press("Enter")
    expect(moss).to_contain_text("P4")
    expect(moss).to_contain_text("STOP texted from +15125550104")
    assert_accessible(page)


def test_the_forecast_page_reads_at_tablet_width(tablet_page: Page, console: Console) -> None:
    page = tablet_page
    console.sign_in(page, "campaigns", f"/console/campaigns/{console.seeded.upcoming}/forecast")
    expect(page.get_by_role("heading", name="Forecast: Flu shots")).to_be_visible()
    expect(page.locator("[data-forecast=excluded]")).to_have_text("1")
    expect(page.get_by_role("button", name="Activate Flu shots as forecast")).to_be_visible()
    wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert not wide, "the forecast page scrolls sideways at 768 px"
    assert_accessible(page)


def test_a_campaign_already_in_its_start_day_says_why_there_is_no_forecast(
        page: Page, console: Console) -> None:
    console.sign_in(page, "campaigns", f"/console/campaigns/{console.seeded.running}")
    expect(page.locator("#forecast-body")).to_contain_text(
        "no forecast: the campaign is active and its start day")
    assert_accessible(page)
