"""Administration in a real browser (the issue's story): an administrator adds a user with the
Campaigns role and All Subscribers; that user signs in in another browser, sees Campaigns,
and on a patient summary sees no opt-out form, and a forged opt-out POST gets 403. Also: a
weak password is refused with every reason; the last administrator cannot be deactivated
(the reason shown); a non-administrator gets the refusal page; axe finds no serious
violation on the list and the form at desktop and tablet width.

The seeded clinic (tests/browser/console_app.py): "admin" is the only administrator.
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import DESKTOP, TIMEOUT_MS, Console, assert_accessible

NEW_EMAIL = "pat.jones@clinic.example"
NEW_PASSWORD = "Harbor-Lights-42!"


def fill_new_user(page: Page, password: str, again: str | None = None) -> None:
    page.get_by_label("Email").fill(NEW_EMAIL)
    page.get_by_label("Name", exact=True).fill("Pat Jones")
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Confirm the password").fill(password if again is None else again)
    page.get_by_label("Campaigns", exact=True).check()
    page.get_by_label("All Subscribers").check()


def test_an_administrator_adds_a_campaigns_user_who_signs_in_without_opt_out_powers(
        page: Page, browser: Browser, console: Console) -> None:
    console.sign_in(page, "admin", "/console/patients")
    page.get_by_role("link", name="Administration").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Users")
    page.get_by_role("link", name="Create user").click()
    fill_new_user(page, NEW_PASSWORD)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("The user is created.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Pat Jones")
    page.get_by_role("link", name="← All users").click()
    row = page.locator("tbody tr", has_text=NEW_EMAIL)
    expect(row).to_contain_text("Campaigns")
    expect(row).to_contain_text("All Subscribers")

    # The new user, in a browser of their own
    context = browser.new_context(viewport=DESKTOP,  # type: ignore[arg-type]
                                  base_url=console.url)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        theirs = context.new_page()
        theirs.goto("/console/sign-in?next=%2Fconsole%2Fpatients%2FP1")
        theirs.get_by_label("Email").fill(NEW_EMAIL)
        theirs.get_by_label("Password").fill(NEW_PASSWORD)
        theirs.get_by_role("button", name="Sign in").click()
        expect(theirs).to_have_url(re.compile(r"/console/patients/P1$"))
        nav = theirs.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Campaigns")).to_be_visible()
        expect(nav.get_by_role("link", name="Administration")).to_have_count(0)
        expect(theirs.get_by_role("heading", name="Opt-outs")).to_be_visible()
        expect(theirs.get_by_role("button", name="Add opt-out")).to_have_count(0)
        token = json.loads(theirs.locator("body").get_attribute("hx-headers") or "{}")[
            "X-CSRF-Token"]
        forged = theirs.request.post("/console/patients/P1/opt-outs", headers={
            "X-CSRF-Token": token}, form={"type": "Global", "reason": "forged"})
        assert forged.status == 403
        assert "Opt-out management" in forged.text()
    finally:
        context.close()


def test_a_weak_password_is_refused_with_every_reason(page: Page, console: Console) -> None:
    console.sign_in(page, "admin", "/console/admin/users/new")
    fill_new_user(page, "pat")
    # The browser's own length check would stop the form first: the server's is the rule.
    page.get_by_label("Password", exact=True).evaluate("e => e.removeAttribute('minlength')")
    page.get_by_role("button", name="Save").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The password is refused:")
    for reason in ("it needs at least 8 characters", "it needs an upper-case letter",
                   "it needs a number", "it needs a symbol (not a letter or number)"):
        expect(alert.get_by_role("listitem").filter(has_text=reason)).to_have_count(1)
    expect(page.get_by_label("Email")).to_have_value(NEW_EMAIL)  # the form is kept
    expect(page.get_by_label("Campaigns", exact=True)).to_be_checked()


def test_the_last_administrator_cannot_be_deactivated(page: Page, console: Console) -> None:
    console.sign_in(page, "admin", "/console/admin/users")
    page.locator("tbody").get_by_role("link", name="Admin", exact=True).click()
    page.get_by_role("button", name="Deactivate").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "admin@clinic.example is the last active administrator: make another administrator "
        "first")
    expect(page.locator("dl.facts")).to_contain_text("Active")


def test_a_non_administrator_gets_the_refusal_page(page: Page, console: Console) -> None:
    console.sign_in(page, "optouts", "/console/patients")
    expect(page.get_by_role("link", name="Administration")).to_have_count(0)
    answer = page.goto("/console/admin/users")
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("alert")).to_contain_text("Administrator role")
    expect(page.get_by_text("admin@clinic.example")).to_have_count(0)


@pytest.mark.parametrize("width", ["desktop", "tablet"])
def test_the_list_and_the_forms_have_no_serious_accessibility_violation(
        page: Page, tablet_page: Page, console: Console, width: str) -> None:
    shown = page if width == "desktop" else tablet_page
    console.sign_in(shown, "admin", "/console/admin/users")
    assert_accessible(shown)
    shown.goto("/console/admin/users/new")
    assert_accessible(shown)
    shown.goto("/console/admin/users")
    shown.locator("tbody").get_by_role("link", name="Campaigns", exact=True).click()
    expect(shown.get_by_role("heading", name="Set a new password")).to_be_visible()
    assert_accessible(shown)
