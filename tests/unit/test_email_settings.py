"""Email settings that cannot work together are refused when the process starts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from application.settings import Settings


def test_a_grace_for_ses_events_shorter_than_the_first_reconciliation_is_refused() -> None:
    # A dead dispatcher's attempt is reconciled once stale (60 s); an SES grace ending
    # before that would re-send at once emails that went.
    with pytest.raises(ValidationError, match="OUTREACH_EMAIL_EVENTS_GRACE_SECONDS"):
        Settings(stale_attempt_seconds=60, email_events_grace_seconds=60)
    assert Settings(stale_attempt_seconds=60, email_events_grace_seconds=66)


def test_logos_and_topics_are_read_from_their_lists() -> None:
    settings = Settings(email_logos="main=https://x.example/a.png, north = https://x.example/n.png",
                        ses_sns_topic_arns="arn:aws:sns:us-east-1:1:a, arn:aws:sns:us-east-1:1:b")
    assert settings.logos == {"main": "https://x.example/a.png",
                              "north": "https://x.example/n.png"}
    assert settings.ses_topics == ["arn:aws:sns:us-east-1:1:a", "arn:aws:sns:us-east-1:1:b"]
