"""The replies inbox in a real browser (CareMessage "Review responses"): an unexpected reply
is flagged, found with the filter, answered with a follow-up text (its character count
updating as the user types) that then appears in the conversation, and marked handled; the
inbox and a conversation have no serious accessibility violations."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import Console, assert_accessible
from tests.browser.console_app import QUESTION

ANSWER = "Yes, Friday works. See you at 10."


def test_an_unexpected_reply_is_flagged_filtered_answered_and_handled(
        page: Page, console: Console) -> None:
    console.sign_in(page, "campaigns", "/console/replies")
    question = page.get_by_role("row").filter(has_text=QUESTION)
    stop = page.get_by_role("row").filter(has_text="STOP")
    expect(question).to_contain_text("Unexpected")  # a badge with words, not a colour
    expect(stop).to_be_visible()
    expect(stop).not_to_contain_text("Unexpected")

    page.get_by_label("Show").select_option(label="Unexpected only")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"show=unexpected"))
    expect(question).to_be_visible()
    expect(stop).to_have_count(0)

    question.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Conversation")
    expect(page.locator("#conversation")).to_contain_text(QUESTION)
    console.advance(1)  # the answer comes a minute after the question
    box = page.get_by_label("Message")
    box.press_sequentially(ANSWER, delay=5)
    expect(page.locator("#follow-up-count")).to_contain_text(f"{len(ANSWER)} characters")
    page.get_by_role("button", name="Send follow-up").click()
    conversation = page.locator("#conversation")
    expect(conversation).to_contain_text(ANSWER)
    expect(page.locator("#follow-up-message")).to_contain_text("Your text is planned")
    expect(page.get_by_label("Message")).to_have_value("")  # a fresh form
    text = conversation.inner_text()
    assert text.index(QUESTION) < text.index(ANSWER)  # in time order

    page.get_by_role("link", name="← Replies").click()
    question = page.get_by_role("row").filter(has_text=QUESTION)
    question.get_by_role("button", name=re.compile("Mark handled")).click()
    expect(question).to_contain_text(f"Handled by {console.email('campaigns')}")
    expect(question.get_by_role("button")).to_have_count(0)
    page.get_by_label("Status").select_option(label="New only")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("row").filter(has_text=QUESTION)).to_have_count(0)


def test_a_refused_follow_up_shows_the_reason_and_keeps_the_text(
        page: Page, console: Console) -> None:
    console.sign_in(page, "campaigns", f"/console/replies/thread/{console.seeded.question_from}")
    long = "Please call us back. " * 20
    page.get_by_label("Message").fill(long)
    expect(page.locator("#follow-up-count")).to_contain_text("too long")
    page.get_by_role("button", name="Send follow-up").click()
    expect(page.locator("#follow-up-message").get_by_role("alert")).to_contain_text(
        "at most 2 are allowed")
    expect(page.get_by_label("Message")).to_have_value(long)


def test_the_inbox_and_a_conversation_have_no_serious_accessibility_violations(
        page: Page, console: Console) -> None:
    console.sign_in(page, "campaigns", "/console/replies")
    expect(page.get_by_role("row").filter(has_text=QUESTION)).to_be_visible()
    assert_accessible(page)
    page.get_by_role("row").filter(has_text=QUESTION).get_by_role("link").click()
    expect(page.locator("#conversation")).to_contain_text(QUESTION)
    assert_accessible(page)
