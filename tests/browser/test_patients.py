"""Patient search and summary in a real browser: a partial phone (dashes optional) finds the
patient and opens the summary; the history opens to each attempt; an opt-out manager opts a
patient out (the list shows it, the audit has it) and is told the domain's rule when one
refuses; a campaigns-only user sees no opt-out form and a forged POST gets 403; the North user
cannot open a South patient; axe finds no serious violation on the search and summary pages.

The seeded clinic (tests/browser/console_app.py): P1-P3 North, P4-P6 South, mobiles
512-555-0101 … 0106; "Lee" is Ann (P1), Bob (P2) and Finn (P6).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import DESKTOP, TIMEOUT_MS, Console, assert_accessible
from tests.fixtures_app import TUESDAY_9AM
from workers.runner import EmbeddedRunner


@pytest.fixture
def page_without_js(browser: Browser, console: Console) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP,  # type: ignore[arg-type]
                                  base_url=console.url, java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def search(page: Page, typed: str) -> None:
    page.get_by_label("Phone number or name").fill(typed)
    page.get_by_role("button", name="Search").click()


def mark_document(page: Page) -> None:
    """A mark on this document: still there later proves htmx swapped, no page loaded."""
    page.evaluate("window.__stillHere = true")


def same_document(page: Page) -> bool:
    return bool(page.evaluate("window.__stillHere === true"))


def results(page: Page) -> list[str]:
    return page.locator("#results tbody th[scope=row]").all_inner_texts()


def test_a_partial_phone_finds_the_patients_and_one_opens_the_summary(
        page: Page, console: Console) -> None:
    console.sign_in(page, "admin", "/console/patients")
    mark_document(page)
    search(page, "555-010")  # dashes, part of the number
    expect(page.locator("#results tbody tr")).to_have_count(6)
    assert same_document(page)  # the results were swapped in, the page stayed
    expect(page).to_have_url(re.compile(r"/console/patients\?q=555-010$"))  # bookmarkable
    box = page.get_by_label("Phone number or name")
    box.fill("512555010")  # no dashes; Enter from the box, as staff type it
    box.press("Enter")
    expect(page).to_have_url(re.compile(r"\?q=512555010$"))
    expect(page.locator("#results tbody tr")).to_have_count(6)
    assert results(page)[:3] == ["Diaz, Cara", "Lee, Ann", "Lee, Bob"]
    # htmx keeps no copy of patient data in the browser's storage for its history
    assert "Lee" not in str(page.evaluate("JSON.stringify(sessionStorage)"))
    page.go_back()  # the earlier search, asked again from the server
    expect(page).to_have_url(re.compile(r"\?q=555-010$"))
    expect(page.locator("#results tbody tr")).to_have_count(6)
    page.get_by_role("link", name="Lee, Ann").click()
    expect(page).to_have_url(re.compile(r"/console/patients/P1$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Lee, Ann")
    expect(page.locator("dl.facts")).to_contain_text("512-555-0101")
    # One hit opens its summary at once
    page.get_by_role("link", name="Find another patient").click()
    search(page, "5125550104")
    expect(page).to_have_url(re.compile(r"/console/patients/P4$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Moss, Dan")


def test_a_search_works_without_javascript_too(page_without_js: Page,
                                              console: Console) -> None:
    page = page_without_js
    console.sign_in(page, "admin", "/console/patients")
    search(page, "lee")
    expect(page).to_have_url(re.compile(r"\?q=lee$"))
    assert results(page) == ["Lee, Ann", "Lee, Bob", "Lee, Finn"]


def test_the_history_opens_to_each_attempts_type_time_and_outcome(
        page: Page, console: Console) -> None:
    # The seeded "Check-up reminder" (P2, P3, P5, P6) sends during the afternoon.
    EmbeddedRunner(console.o).run_simulated(TUESDAY_9AM + timedelta(hours=10))
    console.catch_up()
    console.sign_in(page, "admin", "/console/patients/P2")
    entry = page.locator("section[aria-labelledby=history] details")
    expect(entry).to_have_count(1)
    expect(entry.locator("summary")).to_contain_text("Check-up reminder")
    attempts = entry.locator("tbody tr")
    expect(attempts).not_to_be_visible()
    entry.locator("summary").focus()  # a <details>: it opens from the keyboard
    page.keyboard.press("Enter")
    expect(attempts).to_have_count(1)
    expect(attempts.first).to_contain_text("Text")
    expect(attempts.first.locator("td").nth(3)).to_have_text(re.compile(r"accepted|delivered"))
    expect(attempts.first.locator("td").nth(2)).to_contain_text("2026-11-24")


def test_an_opt_out_manager_opts_a_patient_out_and_the_audit_has_it(
        page: Page, console: Console) -> None:
    console.sign_in(page, "optouts", "/console/patients/P2")
    mark_document(page)
    section = page.locator("#opt-outs")
    expect(section).to_contain_text("No current opt-outs.")
    # A rule the domain refuses is told in its words, the form kept as typed
    section.get_by_label("Opt-out type").select_option("Global")
    section.get_by_label("Reason").fill("Asked by phone")
    section.get_by_label("or for days").fill("30")
    section.get_by_role("button", name="Add opt-out").click()
    expect(section.get_by_role("alert")).to_have_text(
        "a Global opt-out is always permanent (no date or days)")
    expect(section.get_by_label("Reason")).to_have_value("Asked by phone")
    # Accepted: the list shows it, in place
    section.get_by_label("Opt-out type").select_option("All Text")
    section.get_by_role("button", name="Add opt-out").click()
    expect(section.get_by_role("status")).to_have_text("Opted out: All Text.")
    row = section.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("All Text")
    expect(row).to_contain_text("2026-12-23")  # 30 days, today included
    assert same_document(page)
    entries = console.o.audit.query(user=console.email("optouts"), action="opt_outs.add")
    assert [(e.outcome, e.target, e.detail, e.patient_ids) for e in entries.rows] == [
        ("allowed", "P2", "All Text", ("P2",)),  # newest first
        ("failed", "P2", "a Global opt-out is always permanent (no date or days)", ("P2",))]
    # And it stays after a reload; removing it restores communications
    page.reload()
    page.get_by_role("button", name="Remove the All Text opt-out").click()
    expect(section.get_by_role("status")).to_contain_text("Removed: All Text.")
    expect(section).to_contain_text("No current opt-outs.")


def test_a_campaigns_only_user_sees_no_opt_out_form_and_a_forged_post_is_refused(
        page: Page, console: Console) -> None:
    console.sign_in(page, "campaigns", "/console/patients/P1")
    expect(page.get_by_role("heading", name="Opt-outs")).to_be_visible()
    expect(page.get_by_role("heading", name="Add an opt-out")).to_have_count(0)
    expect(page.get_by_role("button", name="Add opt-out")).to_have_count(0)
    # The session's own CSRF token: only the role stands in the way
    token = json.loads(page.locator("body").get_attribute("hx-headers") or "{}")[
        "X-CSRF-Token"]
    forged = page.request.post("/console/patients/P1/opt-outs", headers={
        "X-CSRF-Token": token}, form={"type": "Global", "reason": "forged"})
    assert forged.status == 403
    assert "Opt-out management" in forged.text()
    denied = console.o.audit.query(user=console.email("campaigns"), action="opt_outs.add")
    assert [e.outcome for e in denied.rows] == ["denied"]


def test_the_north_user_cannot_open_a_south_patient(page: Page, console: Console) -> None:
    console.sign_in(page, "north", "/console/patients")
    search(page, "Lee")
    expect(page.locator("#results tbody tr")).to_have_count(2)  # not Finn (South)
    answer = page.goto("/console/patients/P6")
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("alert")).to_have_text("this patient is outside your groups")
    expect(page.get_by_text("Finn")).to_have_count(0)


def test_the_search_and_summary_pages_are_accessible_on_a_desktop_and_a_tablet(
        page: Page, tablet_page: Page, console: Console) -> None:
    for each in (page, tablet_page):
        console.sign_in(each, "admin", "/console/patients")
        search(each, "lee")
        expect(each.locator("#results tbody tr")).to_have_count(3)
        assert_accessible(each)
        each.goto("/console/patients/P1")
        expect(each.get_by_role("heading", name="Add an opt-out")).to_be_visible()
        assert_accessible(each)
