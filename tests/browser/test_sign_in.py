"""Signing in and out of the console in a real browser: the landing page, wrong passwords
and the lockout, signing out (and what the back button then shows), the automatic logoff
after 15 idle minutes, the CSRF check on changes, a password reset link, and the sign-in
page's accessibility on a desktop and a tablet."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import Console, assert_accessible

NEW_PASSWORD = "Fresh-Start-2027?"


def submit_sign_in(page: Page, email: str, password: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def test_signing_in_lands_on_the_patients_page_with_the_user_in_the_banner(
        page: Page, console: Console) -> None:
    page.goto("/console/")
    expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))  # no session yet
    console.sign_in(page, "admin")
    expect(page).to_have_url(re.compile(r"/console/patients$"))
    expect(page.locator("header.banner .who")).to_have_text(console.email("admin"))
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_a_wrong_password_shows_the_reason_and_keeps_the_email(
        page: Page, console: Console) -> None:
    page.goto("/console/sign-in")
    submit_sign_in(page, console.email("campaigns"), "Not-The-Password-1!")
    expect(page.get_by_role("alert")).to_have_text("wrong email or password")
    expect(page.get_by_label("Email")).to_have_value(console.email("campaigns"))
    expect(page.get_by_label("Password")).to_have_value("")  # never sent back
    expect(page.locator("header.banner .who")).to_have_count(0)


def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(
        page: Page, console: Console) -> None:
    page.goto("/console/sign-in")
    email = console.email("optouts")
    for _ in range(4):
        submit_sign_in(page, email, "Not-The-Password-1!")
        expect(page.get_by_role("alert")).to_have_text("wrong email or password")
    submit_sign_in(page, email, "Not-The-Password-1!")
    locked = page.get_by_role("alert")
    expect(locked).to_contain_text("too many failed sign-ins: the account is locked")
    submit_sign_in(page, email, console.password)
    expect(locked).to_contain_text("the account is locked; try again after")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    expect(page.locator("header.banner .who")).to_have_count(0)


def test_signing_out_ends_the_session_and_back_shows_no_patient_data(
        page: Page, console: Console) -> None:
    console.sign_in(page, "admin", "/console/patients/P1")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Ann")  # patient data
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    page.go_back()
    expect(page.get_by_text("Ann")).to_have_count(0)  # not even from the browser's cache
    page.reload()
    expect(page).to_have_url(re.compile(r"/console/sign-in\?next=%2Fconsole%2Fpatients%2FP1"))
    expect(page.get_by_text("Ann")).to_have_count(0)
    expect(page.locator("header.banner .who")).to_have_count(0)


def test_fifteen_idle_minutes_sign_the_user_out_with_the_reason(
        page: Page, console: Console) -> None:
    console.sign_in(page, "campaigns")
    console.advance(minutes=14)
    page.goto("/console/patients")  # activity: the idle time starts again
    expect(page.locator("header.banner .who")).to_have_text(console.email("campaigns"))
    console.advance(minutes=16)
    page.goto("/console/patients")
    expect(page).to_have_url(re.compile(r"/console/sign-in\?next=.*&expired=1"))
    expect(page.get_by_role("status")).to_have_text(
        "You were signed out after a time without activity. Sign in again.")


def test_a_change_without_the_csrf_token_is_refused(page: Page, console: Console) -> None:
    console.sign_in(page, "admin")
    # The session cookie goes with it (same browser context), the token does not.
    refused = page.request.post("/console/sign-out", form={"other": "x"},
                                max_redirects=0)
    assert refused.status == 403
    assert "this form is out of date or was not sent by the console" in refused.text()
    page.goto("/console/patients")  # still signed in: the forged sign-out did nothing
    expect(page.locator("header.banner .who")).to_have_text(console.email("admin"))


def test_a_reset_link_sets_a_new_password_after_refusing_a_weak_one(
        page: Page, console: Console) -> None:
    email = console.email("north")
    token = console.o.users.issue_reset(email, by="admin@clinic.example")
    page.goto(f"/console/reset?token={token}")
    page.get_by_label("New password", exact=True).fill("password")
    page.get_by_label("New password again").fill("password")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("alert")).to_contain_text("the password is refused")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("status")).to_have_text("Your password is set: sign in with it.")
    submit_sign_in(page, email, console.password)  # the old one no longer works
    expect(page.get_by_role("alert")).to_have_text("wrong email or password")
    submit_sign_in(page, email, NEW_PASSWORD)
    expect(page.locator("header.banner .who")).to_have_text(email)


def test_the_sign_in_page_is_accessible_on_a_desktop_and_a_tablet(
        page: Page, tablet_page: Page, console: Console) -> None:
    for shown in (page, tablet_page):
        shown.goto("/console/sign-in")
        assert_accessible(shown)
        submit_sign_in(shown, console.email("admin"), "Not-The-Password-1!")
        expect(shown.get_by_role("alert")).to_be_visible()
        assert_accessible(shown)  # with the error message shown
    tablet_page.goto("/console/reset?token=x")
    assert_accessible(tablet_page)
