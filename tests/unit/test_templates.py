"""The template library: what ships, how it is found, and what its templates may say."""

from __future__ import annotations

import re

import pytest

from application.email_content import check_email_content, html_to_text, sanitise_html
from application.email_merge import check_merge_fields
from application.templates import template, templates
from domain.errors import NotFound

# Words that would tell whoever glances at a locked phone what the patient is treated for.
REVEALING = re.compile(r"diabet|mammo|cancer|colorectal|colon|flu\b|influenza|covid|vaccin|"
                       r"medicare|lab|screen|diagnos|hiv|pregnan|blood|eye|breast",
                       re.IGNORECASE)
PREPOPULATED = [t for t in templates("email") if not t.editable]


def test_the_library_has_the_ad_hoc_templates_and_at_least_five_prepopulated_emails():
    names = {t.name: t for t in templates()}
    assert names["Ad hoc email"].editable and names["Ad hoc email"].logo == "none"
    assert names["Email with logo"].editable and names["Email with logo"].logo == "required"
    assert names["Ad hoc text"].channel == "text" and names["Ad hoc text"].editable
    assert len(PREPOPULATED) >= 5


def test_a_channel_lists_only_its_own_templates():
    assert {t.channel for t in templates("email")} == {"email"}
    assert [t.name for t in templates("TEXT")] == ["Ad hoc text"]
    assert templates("letter") == []
    assert {t.channel for t in templates("phone")} == {"phone"}
    assert len(templates()) == sum(len(templates(c)) for c in ("email", "text", "phone"))


def test_a_template_is_found_by_name_in_any_letter_case():
    assert template("  mammogram   REMINDER ").name == "Mammogram reminder"


def test_an_unknown_name_is_not_found_and_the_names_are_listed():
    with pytest.raises(NotFound) as caught:
        template("Birthday card")
    message = str(caught.value)
    assert "Birthday card" in message and "Ad hoc email" in message and "\n" not in message


@pytest.mark.parametrize("chosen", PREPOPULATED, ids=lambda t: t.name)
def test_prepopulated_subjects_reveal_no_condition(chosen):
    assert not REVEALING.search(chosen.subject), chosen.subject
    assert "{{ organisation }}" in chosen.subject


@pytest.mark.parametrize("chosen", PREPOPULATED, ids=lambda t: t.name)
def test_prepopulated_bodies_are_safe_merge_ready_and_accepted_as_they_are(chosen):
    assert sanitise_html(chosen.body) == chosen.body  # shipped already clean
    check_merge_fields(chosen.body, "body")
    for field in ("{{ first_name }}", "{{ provider }}", "{{ help_number }}"):
        assert field in chosen.body
    assert html_to_text(chosen.body).startswith("Hello {{ first_name }},")
    checked = check_email_content({"template": chosen.name, "logo": "", "subject": "",
                                   "body": "", "from_address": "donotreply@example.org",
                                   "from_name": "Your Doctor", "help_number": "555-0100"})
    assert checked["body"] == chosen.body
