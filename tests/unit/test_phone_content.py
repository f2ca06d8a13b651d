"""A phone campaign's content, checked when it is created: the template's script (not
editable where the template says so), the care manager named once for the campaign, a
voicemail that carries no health information."""

from __future__ import annotations

import pytest

from application.campaign_content import phone_content
from application.settings import Settings
from domain.errors import InvalidContent

SETTINGS = Settings(database_url="sqlite:///:memory:")


def test_the_care_manager_is_spoken_as_the_campaign_names_them() -> None:
    content = phone_content(SETTINGS, {
        "script": "Hello {{ first_name }}. {{care_manager}} will call you about your visit.",
        "care_manager": "Maya Ortiz", "callback_number": "(555) 010-0100"})
    assert content["script"] == "Hello {{ first_name }}. Maya Ortiz will call you about " \
                                "your visit."
    with pytest.raises(InvalidContent, match="give --care-manager"):
        phone_content(SETTINGS, {"script": "{{ care_manager }} calls.",
                                 "callback_number": "(555) 010-0100"})


def test_a_prepopulated_script_cannot_be_changed() -> None:
    with pytest.raises(InvalidContent, match="cannot be edited"):
        phone_content(SETTINGS, {"template": "Flu vaccine call", "script": "Something else.",
                                 "callback_number": "(555) 010-0100"})
    kept = phone_content(SETTINGS, {"template": "Flu vaccine call",
                                    "callback_number": "(555) 010-0100"})
    assert "Flu vaccines are now available" in kept["script"]


def test_an_unknown_merge_field_or_a_voicemail_with_health_words_is_refused() -> None:
    with pytest.raises(InvalidContent, match="unknown merge field"):
        phone_content(SETTINGS, {"script": "Hi {{ shoe_size }}", "callback_number": "1"})
    with pytest.raises(InvalidContent, match="health information"):
        phone_content(SETTINGS, {"script": "Hi.", "callback_number": "1",
                                 "voicemail": "Your lab results: call {{ help_number }}."})
