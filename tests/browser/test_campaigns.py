"""The campaigns pages in a real browser (guide: "View Campaign Results"): the list's progress
updates by itself while the campaign sends; Stop asks to confirm, with the keyboard, then
stops; a refused Inactivate shows the rule in the domain's words; who may send sees the
buttons, an opt-out manager sees no Campaigns at all (and is refused the page); the list and
a report have no serious accessibility violations."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import Page, expect

from api.web.campaigns import POLL_SECONDS
from tests.browser.conftest import Console, assert_accessible
from workers.runner import EmbeddedRunner


def campaign_row(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=name))


def test_the_list_shows_progress_that_updates_while_the_campaign_sends(
        page: Page, console: Console) -> None:
    console.advance(121)  # 11:01 in the clinic: the text window is open
    console.sign_in(page, "campaigns", "/console/campaigns")
    running = campaign_row(page, "Check-up reminder")
    expect(running).to_contain_text("Active (pending)")
    progress = running.locator(f"#progress-{console.seeded.running}")
    expect(progress).to_have_text("0 completed of 4 to be contacted")
    # The campaign sends behind the open page: no reload, the poll brings the count.
    EmbeddedRunner(console.o).run_simulated(console.clock.now() + timedelta(minutes=5))
    expect(progress).to_have_text(re.compile(r"^[1-4] completed of 4 to be contacted$"),
                                  timeout=POLL_SECONDS * 2_000 + 2_000)
    expect(page).to_have_url(re.compile(r"/console/campaigns$"))


def test_stop_asks_to_confirm_then_stops_and_all_by_keyboard(
        page: Page, console: Console) -> None:
    console.sign_in(page, "campaigns", "/console/campaigns")
    upcoming = campaign_row(page, "Flu shots")
    expect(upcoming).to_contain_text("Inactive")
    upcoming.get_by_role("button", name="Stop Flu shots").focus()
    page.keyboard.press("Enter")
    confirm = upcoming.get_by_role("button", name="Yes, stop it")
    expect(upcoming).to_contain_text("Stop “Flu shots” for good?")
    expect(confirm).to_be_focused()  # the confirmation takes the focus
    # Not stopped yet: asking is not doing.
    console.catch_up()
    assert str(console.o.campaigns.get(
        console.o.campaigns.resolve(console.seeded.upcoming)).status) == "Inactive"
    upcoming.get_by_role("button", name="Keep it").click()
    expect(upcoming.get_by_role("button", name="Stop Flu shots")).to_be_focused()
    page.keyboard.press("Enter")
    expect(confirm).to_be_focused()
    page.keyboard.press("Enter")
    expect(upcoming).to_contain_text("Stopped")
    expect(page.locator("#campaigns-message")).to_contain_text("“Flu shots” is stopped")
    expect(upcoming.get_by_role("button")).to_have_count(0)  # final: nothing left to do
    assert str(console.o.campaigns.get(
        console.o.campaigns.resolve(console.seeded.upcoming)).status) == "Stopped"


def test_a_refused_inactivate_shows_the_rule_in_the_domains_words(
        page: Page, console: Console) -> None:
    console.sign_in(page, "campaigns", "/console/campaigns")
    running = campaign_row(page, "Check-up reminder")  # active; its start day is today
    running.get_by_role("button", name="Inactivate Check-up reminder").click()
    refusal = page.locator("#campaigns-message").get_by_role("alert")
    expect(refusal).to_contain_text("can be changed only until midnight before its start day")
    expect(running).to_contain_text("Active (pending)")


def test_a_campaigns_user_sees_the_actions_and_an_opt_out_manager_sees_no_campaigns(
        page: Page, console: Console) -> None:
    console.sign_in(page, "campaigns", "/console/campaigns")
    expect(page.get_by_role("button", name="Activate Flu shots")).to_be_visible()
    expect(page.get_by_role("button", name="Stop Check-up reminder")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    console.sign_in(page, "optouts")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Patient search")).to_be_visible()
    expect(nav.get_by_role("link", name="Campaigns")).to_have_count(0)
    answer = page.goto("/console/campaigns")
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("alert")).to_contain_text("needs the Campaigns role")
    expect(page.get_by_role("button", name=re.compile("Activate|Stop"))).to_have_count(0)


def test_the_list_and_a_report_have_no_serious_accessibility_violations(
        page: Page, console: Console) -> None:
    console.sign_in(page, "campaigns", "/console/campaigns")
    expect(campaign_row(page, "Flu shots")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("link", name="Check-up reminder").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check-up reminder")
    expect(page.get_by_role("link", name=re.compile("Report \\(CSV"))).to_be_visible()
    expect(page.get_by_role("table")).to_contain_text("P2")
    assert_accessible(page)
