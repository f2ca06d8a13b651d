"""Email content: the sanitiser, the text alternative, merge fields, the content gate and
what a patient receives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from application.email_content import (
    MergeValues,
    check_email_content,
    check_merge_fields,
    html_to_text,
    introduction_email,
    render,
    render_email,
    sanitise_html,
    valid_recipient,
)
from application.templates import template
from domain.errors import InvalidContent

WORD_PASTE = (Path(__file__).parent.parent / "fixtures" / "word_paste.html").read_text()
UNSUBSCRIBE = "https://outreach.example.org/unsubscribe/abc.def"
VALUES = MergeValues(first_name="Ann", last_name="Lee", provider="Dr. Rivera",
                     help_number="(555) 010-0100", organisation="Lakeside Clinic")


def content(**changes: Any) -> dict[str, Any]:
    base = {"template": "Ad hoc email", "logo": "", "subject": "Hello {{ first_name }}",
            "body": "<p>Call {{ help_number }}.</p>", "from_address": "donotreply@example.org",
            "from_name": "Your Doctor", "help_number": "(555) 010-0100"}
    return {**base, **changes}


def refusal(**changes: Any) -> str:
    with pytest.raises(InvalidContent) as caught:
        check_email_content(content(**changes))
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# -- the sanitiser -------------------------------------------------------------------------

def test_a_word_paste_keeps_its_words_bold_list_and_link_and_nothing_of_word():
    cleaned = sanitise_html(WORD_PASTE)
    assert "<b>Flu\nshots are now available</b>" in cleaned
    assert "<ul><li>Walk in Monday to Saturday</li><li>Bring your insurance card</li></ul>" \
        in cleaned
    assert ('<a href="https://www.cdc.gov/flu/prevent/index.html" rel="noopener noreferrer">'
            "the flu vaccine</a>") in cleaned
    for word_only in ("o:p", "MsoNormal", "mso-", "supportLists", "<!--", "[if", "endif",
                      "xml", "style", "font-family", "Cambria", "Front Desk", "Flu reminder",
                      "DocumentProperties", "onclick", "·", "\u00b7", "class="):
        assert word_only not in cleaned, word_only


def test_a_word_paste_reads_as_plain_text_paragraphs_a_list_and_a_spelled_out_link():
    assert html_to_text(sanitise_html(WORD_PASTE)) == (
        "Hello {{ first_name }},\n\n"
        "Flu season is here. Flu shots are now available at our clinic, and the visit takes "
        "about fifteen minutes.\n\n"
        "- Walk in Monday to Saturday\n- Bring your insurance card\n\n"
        "Read more about the flu vaccine (https://www.cdc.gov/flu/prevent/index.html) or call "
        "us at {{ help_number }} & we will help.")


@pytest.mark.parametrize("dangerous, kept", [
    ("<p>Hi<script>alert('x')</script></p>", "<p>Hi</p>"),
    ('<p onclick="steal()" onmouseover="x()">Hi</p>', "<p>Hi</p>"),
    ('<a href="javascript:alert(1)">Hi</a>', '<a rel="noopener noreferrer">Hi</a>'),
    ('<a href="data:text/html,hi">Hi</a>', '<a rel="noopener noreferrer">Hi</a>'),
    ('<img src="x" onerror="alert(1)">Hi', "Hi"),
    ('<iframe src="https://evil.example">frame</iframe>Hi', "Hi"),
    ('<p style="color:red;mso-bidi:x" class="MsoNormal">Hi</p>', "<p>Hi</p>"),
    ("<style>p { color: red }</style><p>Hi</p>", "<p>Hi</p>"),
    ('<a href="mailto:desk@example.org" target="_blank">Hi</a>',
     '<a href="mailto:desk@example.org" rel="noopener noreferrer">Hi</a>'),
])
def test_scripts_handlers_styles_and_non_web_links_are_removed(dangerous, kept):
    assert sanitise_html(dangerous) == kept


def test_the_text_alternative_decodes_entities_and_collapses_whitespace():
    html = ("<h2>Clinic   news</h2><p>Tom &amp; Jerry&nbsp;&nbsp;say\n  hi<br>again</p>"
            '<ol><li>one</li><li>two</li></ol><p><a href="https://a.example">https://a.example'
            "</a></p>")
    assert html_to_text(html) == ("Clinic news\n\nTom & Jerry say hi\nagain\n\n- one\n- two"
                                  "\n\nhttps://a.example")


# -- merge fields ---------------------------------------------------------------------------

def test_known_merge_fields_are_accepted_and_rendered():
    check_merge_fields("{{ first_name }} {{last_name}}, {{ provider }} at {{ organisation }}: "
                       "{{ help_number }}", "subject")
    assert render("Hi {{ first_name }}", VALUES.as_dict(), html=False) == "Hi Ann"


def test_an_unknown_merge_field_is_named_with_the_known_ones():
    with pytest.raises(InvalidContent) as caught:
        check_merge_fields("Hi {{ shoe_size }}", "subject")
    assert str(caught.value) == ("unknown merge field {{ shoe_size }} in the subject; use: "
                                 "first_name, last_name, provider, help_number, organisation")


@pytest.mark.parametrize("code", [
    "{% for x in range(9) %}x{% endfor %}", "{{ first_name|upper }}",
    "{{ first_name.__class__ }}", "{{ first_name['x'] }}", "{{ provider() }}",
    "{{ 7 * 7 }}", "{% set first_name = 'x' %}",
])
def test_statements_filters_lookups_and_calls_are_refused(code):
    with pytest.raises(InvalidContent, match="only plain merge fields"):
        check_merge_fields(code, "body")


def test_a_syntax_error_is_one_line_with_its_line_number():
    with pytest.raises(InvalidContent) as caught:
        check_merge_fields("Hello\nthere {{ first_name ", "body")
    message = str(caught.value)
    assert "line 2" in message and "\n" not in message


def test_values_are_escaped_in_html_and_kept_as_written_in_text():
    name = {"first_name": "<b>O'Brien & Co</b>"}
    assert render("<p>{{ first_name }}</p>", name, html=True) == (
        "<p>&lt;b&gt;O&#39;Brien &amp; Co&lt;/b&gt;</p>")
    assert render("Dear {{ first_name }}", name, html=False) == "Dear <b>O'Brien & Co</b>"


def test_an_empty_provider_falls_back_to_the_organisation():
    values = MergeValues("Ann", "Lee", " ", "555", "Lakeside Clinic")
    assert values.as_dict()["provider"] == "Lakeside Clinic"


# -- the content gate -----------------------------------------------------------------------

def test_good_content_comes_back_normalised():
    checked = check_email_content(content(template="ad HOC email",
                                          from_address="DoNotReply@Example.ORG",
                                          body='<p class="MsoNormal">Call {{ help_number }}.'
                                               "<o:p></o:p></p>"))
    assert checked == content(from_address="DoNotReply@example.org")


@pytest.mark.parametrize("changes, words", [
    ({"subject": ""}, "the subject is required"),
    ({"subject": "a\nBcc: x@example.org"}, "the subject must be one line"),
    ({"subject": "x" * 201}, "at most 200"),
    ({"body": "<script>alert(1)</script>"}, "the body is required"),
    ({"body": "  "}, "the body is required"),
    ({"from_address": "not-an-address"}, "the from address is not a valid email address"),
    ({"from_name": ""}, "the from name is required"),
    ({"from_name": "Clinic\r\nBcc: x"}, "the from name must be one line"),
    ({"help_number": ""}, "the help number is required"),
    ({"subject": "Hi {{ shoe_size }}"}, "unknown merge field {{ shoe_size }} in the subject"),
    ({"body": "<p>{% if 1 %}x{% endif %}</p>"}, "only plain merge fields"),
    ({"template": "Birthday cards"}, "no template named 'Birthday cards'"),
    ({"template": "Ad hoc text"}, "is for text campaigns, not email"),
    ({"template": "Email with logo"}, "shows a logo: choose one"),
    ({"logo": "Main logo"}, "has no logo"),
])
def test_content_errors_are_one_plain_line(changes, words):
    assert words in refusal(**changes)


def test_a_prepopulated_template_supplies_its_own_subject_and_body():
    flu = template("Flu vaccination")
    checked = check_email_content(content(template="flu vaccination", subject="", body=""))
    assert (checked["template"], checked["subject"], checked["body"]) == (
        "Flu vaccination", flu.subject, flu.body)


def test_a_prepopulated_template_cannot_be_reworded():
    flu = template("Flu vaccination")
    assert "cannot be edited: keep its subject" in refusal(
        template="Flu vaccination", subject="Flu shots!", body=flu.body)
    assert "cannot be edited: keep its body" in refusal(
        template="Flu vaccination", subject=flu.subject, body=flu.body + "<p>More</p>")


def test_recipient_addresses_are_checked_for_format_only():
    assert valid_recipient("Ann.Lee@Example.ORG") == "Ann.Lee@example.org"
    for bad in ("", "ann", "ann@", "ann@@example.org", "ann lee@example.org"):
        assert valid_recipient(bad) is None


# -- what a patient receives ----------------------------------------------------------------

def test_a_rendered_email_has_the_body_the_footer_and_the_unsubscribe_link():
    checked = check_email_content(content(template="Email with logo", logo="Main",
                                          subject="For {{ first_name }}"))
    mail = render_email(checked, VALUES, unsubscribe_url=UNSUBSCRIBE,
                        logo_url="https://cdn.example.org/logo.png")
    assert mail.subject == "For Ann"
    assert '<img src="https://cdn.example.org/logo.png" alt="Lakeside Clinic"' in mail.html
    assert "<p>Call (555) 010-0100.</p>" in mail.html
    assert f'<a href="{UNSUBSCRIBE}"' in mail.html
    assert mail.text.startswith("Call (555) 010-0100.")
    assert mail.text.endswith(f"Unsubscribe from health reminder emails ({UNSUBSCRIBE})")
    assert "Lakeside Clinic\nQuestions? Call (555) 010-0100." in mail.text


def test_a_subject_never_spans_lines_whatever_the_values():
    values = MergeValues("Ann\r\nBcc: x@example.org", "Lee", "", "555", "Clinic")
    mail = render_email(content(), values, unsubscribe_url=UNSUBSCRIBE, logo_url=None)
    assert "\n" not in mail.subject and "\r" not in mail.subject


def test_the_introductory_email_carries_the_opt_out_link_in_html_and_text():
    mail = introduction_email(VALUES, unsubscribe_url=UNSUBSCRIBE, logo_url=None)
    assert "Lakeside Clinic" in mail.subject and "<img" not in mail.html
    assert "Lakeside Clinic will send you health reminders by email" in mail.text
    assert f"If you do not want them, unsubscribe: {UNSUBSCRIBE}." in mail.text
    assert mail.html.count(f'href="{UNSUBSCRIBE}"') == 2  # in the body and the footer
