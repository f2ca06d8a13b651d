"""The campaign lifecycle, rule by rule, as staff meet it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from application.settings import Settings
from domain.calendar import SendingCalendar
from domain.campaign import DEFAULT_SIZE_CAP, Campaign, CampaignStatus
from domain.channels import Channel
from domain.errors import CampaignRuleViolation, InvalidContent

CHICAGO = ZoneInfo("America/Chicago")
US = Settings(holidays="US", timezone="America/Chicago", sending_days="mon-sat").calendar
FOOTER = "Reply STOP to opt out."

# Wednesday 10 June 2026 is an ordinary sending day; Tuesday 9 June is the day before.
START = date(2026, 6, 10)


def central(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=CHICAGO).astimezone(UTC)


MONDAY_BEFORE = central(2026, 6, 8, 10)
LAST_SECOND_BEFORE_MIDNIGHT = central(2026, 6, 9, 23, 59, 59)
MIDNIGHT_BEFORE_START = central(2026, 6, 10)


def text_content(**overrides: str) -> dict[str, Any]:
    content = {"body": "Flu shots are in. Call us to book.", "help_number": "(555) 010-0100",
               "footer": FOOTER}
    content.update(overrides)
    return content


def draft(
    start: date = START,
    now: datetime = MONDAY_BEFORE,
    audience: list[str] | None = None,
    calendar: SendingCalendar = US,
    **kwargs: Any,
) -> Campaign:
    return Campaign.draft(
        name=kwargs.pop("name", "Flu shots, Dr. Chen, June"),
        description="Patients due a flu shot",
        channel=kwargs.pop("channel", Channel.TEXT),
        content=kwargs.pop("content", text_content()),
        start=start,
        audience=audience if audience is not None else ["p-1", "p-2", "p-3"],
        now=now,
        calendar=calendar,
        **kwargs,
    )


def active(start: date = START, now: datetime = MONDAY_BEFORE) -> Campaign:
    campaign = draft(start=start, now=now)
    campaign.activate(now=now, calendar=US)
    return campaign


def event_names(campaign: Campaign) -> list[str]:
    return [type(e).__name__ for e in campaign.collect_events()]


# -- saving and activating ----------------------------------------------------------------

def test_a_new_campaign_is_saved_inactive_and_never_sends_until_activated() -> None:
    # Given staff save a new campaign
    campaign = draft()
    # Then it is Inactive, not active, not final
    assert campaign.status == CampaignStatus.INACTIVE
    assert not campaign.is_active and not campaign.is_final
    assert event_names(campaign) == ["Created"]


def test_activating_an_inactive_campaign_makes_it_pending() -> None:
    campaign = draft()
    campaign.activate(now=MONDAY_BEFORE, calendar=US)
    assert campaign.status == CampaignStatus.PENDING and campaign.is_active
    assert campaign.activated_at == MONDAY_BEFORE


def test_a_campaign_activated_on_its_start_day_is_pending_at_once() -> None:
    # Given an inactive campaign starting today
    campaign = draft(start=START, now=central(2026, 6, 10, 9))
    # When activated on that day, then it is pending (it may go out immediately)
    campaign.activate(now=central(2026, 6, 10, 9, 30), calendar=US)
    assert campaign.is_active


def test_activating_an_active_campaign_again_is_refused() -> None:
    campaign = active()
    with pytest.raises(CampaignRuleViolation, match="already active"):
        campaign.activate(now=MONDAY_BEFORE, calendar=US)


def test_a_campaign_without_patients_cannot_be_activated() -> None:
    campaign = draft(audience=[])
    with pytest.raises(CampaignRuleViolation, match="no patients"):
        campaign.activate(now=MONDAY_BEFORE, calendar=US)


# -- changing an active campaign: only until midnight before its start day ----------------

def test_an_active_campaign_can_be_edited_until_the_last_second_before_midnight() -> None:
    # Given an active campaign starting Wednesday
    campaign = active()
    # When staff edit it at 23:59:59 Tuesday, Central time (already Wednesday in UTC)
    assert LAST_SECOND_BEFORE_MIDNIGHT.date() == START
    campaign.edit(now=LAST_SECOND_BEFORE_MIDNIGHT, calendar=US, name="Flu shots, updated")
    # Then the change is recorded
    assert campaign.name == "Flu shots, updated"


def test_an_active_campaign_cannot_be_edited_from_midnight_before_its_start_day() -> None:
    # Given an active campaign starting Wednesday
    campaign = active()
    # When staff edit it at 00:00 Wednesday, Central time
    with pytest.raises(CampaignRuleViolation) as refused:
        campaign.edit(now=MIDNIGHT_BEFORE_START, calendar=US, name="Too late")
    # Then it is refused, saying why and what to do instead
    message = str(refused.value)
    assert "midnight" in message and "2026-06-10" in message and "Stop" in message
    assert campaign.name == "Flu shots, Dr. Chen, June"


def test_an_active_campaign_can_be_inactivated_before_midnight_but_not_from_it() -> None:
    # Given two active campaigns starting Wednesday
    early, late = active(), active()
    # When one is inactivated at 23:59:59 Tuesday Central, then it is Inactive
    early.inactivate(now=LAST_SECOND_BEFORE_MIDNIGHT, calendar=US)
    assert early.status == CampaignStatus.INACTIVE
    # When the other is inactivated at midnight, then it is refused and stays Pending
    with pytest.raises(CampaignRuleViolation, match="midnight before its start day"):
        late.inactivate(now=MIDNIGHT_BEFORE_START, calendar=US)
    assert late.status == CampaignStatus.PENDING


@settings(max_examples=60, deadline=None)
@given(seconds=st.integers(min_value=-3 * 86_400, max_value=3 * 86_400))
def test_the_freeze_starts_exactly_at_midnight_in_the_organisation_time_zone(
    seconds: int,
) -> None:
    # Given an active campaign starting Wednesday, and any moment around the midnight before
    campaign = active()
    now = MIDNIGHT_BEFORE_START + timedelta(seconds=seconds)
    # When staff try to edit it
    # Then it is allowed exactly when it is still before 00:00 Wednesday, Central time
    if now.astimezone(CHICAGO).date() < START:
        campaign.edit(now=now, calendar=US, description="changed")
        assert campaign.description == "changed"
    else:
        with pytest.raises(CampaignRuleViolation, match="midnight"):
            campaign.edit(now=now, calendar=US, description="changed")


def test_midnight_is_the_organisations_not_utcs_nor_the_servers() -> None:
    # Given an organisation in Los Angeles and an active campaign starting Wednesday
    pacific = Settings(holidays="US", timezone="America/Los_Angeles").calendar
    campaign = Campaign.draft(
        name="Flu", description="", channel=Channel.TEXT, content=text_content(), start=START,
        audience=["p-1"], now=MONDAY_BEFORE, calendar=pacific,
    )
    campaign.activate(now=MONDAY_BEFORE, calendar=pacific)
    # When staff edit it at 00:30 Wednesday Chicago time (22:30 Tuesday in Los Angeles)
    campaign.edit(now=central(2026, 6, 10, 0, 30), calendar=pacific, description="ok")
    # Then it is allowed; at 00:00 Wednesday Los Angeles time it is not
    la_midnight = datetime(2026, 6, 10, tzinfo=ZoneInfo("America/Los_Angeles"))
    with pytest.raises(CampaignRuleViolation):
        campaign.edit(now=la_midnight.astimezone(UTC), calendar=pacific, description="late")


@pytest.mark.parametrize(
    "now",
    [MIDNIGHT_BEFORE_START, central(2026, 6, 10, 12), central(2026, 6, 20, 12)],
    ids=["at-midnight", "on-start-day", "after-start-day"],
)
def test_an_inactive_campaign_can_be_edited_at_any_time(now: datetime) -> None:
    # Given an inactive campaign starting Wednesday
    campaign = draft()
    # When staff edit it on or after its start day
    campaign.edit(now=now, calendar=US, name="Reviewed", content=text_content(body="Updated."))
    # Then the changes are recorded and it stays inactive
    assert (campaign.name, campaign.content["body"]) == ("Reviewed", "Updated.")
    assert campaign.status == CampaignStatus.INACTIVE


def test_only_the_editable_fields_can_be_edited() -> None:
    campaign = draft()
    with pytest.raises(CampaignRuleViolation, match="cannot edit channel"):
        campaign.edit(now=MONDAY_BEFORE, calendar=US, channel="phone")
    with pytest.raises(CampaignRuleViolation, match="nothing to change"):
        campaign.edit(now=MONDAY_BEFORE, calendar=US)


# -- stop: any time before completion, and final ------------------------------------------

@pytest.mark.parametrize(
    "now", [MONDAY_BEFORE, MIDNIGHT_BEFORE_START, central(2026, 6, 10, 15)],
    ids=["before", "at-midnight", "while-sending"],
)
def test_an_active_campaign_can_be_stopped_at_any_time_before_completion(now: datetime) -> None:
    campaign = active()
    campaign.stop(now=now, by="maya")
    assert campaign.status == CampaignStatus.STOPPED and campaign.is_final
    assert campaign.finished_at == now


def test_an_inactive_campaign_can_be_stopped() -> None:
    campaign = draft()
    campaign.stop(now=central(2026, 6, 10, 15))
    assert campaign.status == CampaignStatus.STOPPED


def test_a_stopped_campaign_is_final_nothing_can_change_it() -> None:
    # Given a stopped campaign
    campaign = active()
    campaign.stop(now=MONDAY_BEFORE)
    # Then it cannot be activated, edited, inactivated, stopped again, test-sent, or completed
    attempts = {
        "activate": lambda: campaign.activate(now=MONDAY_BEFORE, calendar=US),
        "edit": lambda: campaign.edit(now=MONDAY_BEFORE, calendar=US, name="again"),
        "inactivate": lambda: campaign.inactivate(now=MONDAY_BEFORE, calendar=US),
        "stop": lambda: campaign.stop(now=MONDAY_BEFORE),
        "send a test": lambda: campaign.record_test_send(
            now=MONDAY_BEFORE, channel_address_hint="0100", outcome="accepted"),
        "complete": lambda: campaign.complete(
            now=MONDAY_BEFORE, sent=0, delivered=0, unsuccessful=0),
    }
    for action, attempt in attempts.items():
        with pytest.raises(CampaignRuleViolation) as refused:
            attempt()
        assert "stopped" in str(refused.value).lower(), action
    # And staff are told to create a new one instead
    with pytest.raises(CampaignRuleViolation, match="final; create a new one"):
        campaign.activate(now=MONDAY_BEFORE, calendar=US)
    assert campaign.status == CampaignStatus.STOPPED


def test_a_completed_campaign_cannot_be_stopped() -> None:
    campaign = active()
    campaign.complete(now=central(2026, 6, 10, 15), sent=1, delivered=2, unsuccessful=0)
    assert campaign.status == CampaignStatus.COMPLETED
    with pytest.raises(CampaignRuleViolation, match="completed"):
        campaign.stop(now=central(2026, 6, 10, 16))


def test_only_an_active_campaign_completes() -> None:
    with pytest.raises(CampaignRuleViolation, match="only an active campaign"):
        draft().complete(now=MONDAY_BEFORE, sent=0, delivered=0, unsuccessful=0)


# -- start dates --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("requested", "moved_to"),
    [
        (date(2026, 6, 14), date(2026, 6, 15)),  # Sunday → Monday
        (date(2026, 11, 26), date(2026, 11, 27)),  # Thanksgiving → Friday
        (date(2026, 12, 25), date(2026, 12, 26)),  # Christmas (Friday) → Saturday
        (date(2026, 9, 6), date(2026, 9, 8)),  # Sunday before Labor Day → Tuesday
        (date(2026, 6, 13), date(2026, 6, 13)),  # Saturday is a sending day
    ],
)
def test_a_sunday_or_holiday_start_date_moves_to_the_next_sending_day(
    requested: date, moved_to: date
) -> None:
    # Given staff pick a start date
    campaign = draft(start=requested)
    # Then the campaign starts on the next sending day, and the request is kept for the record
    assert campaign.start == moved_to
    assert campaign.requested_start == requested.isoformat()


def test_editing_the_start_date_to_a_sunday_moves_it_too() -> None:
    campaign = draft()
    campaign.edit(now=MONDAY_BEFORE, calendar=US, start_date=date(2026, 6, 21))
    assert campaign.start == date(2026, 6, 22)


def test_a_start_date_in_the_past_is_refused_by_the_organisations_calendar() -> None:
    # Given it is 22:00 Tuesday in Chicago (already Wednesday in UTC)
    now = central(2026, 6, 9, 22)
    assert now.date() == date(2026, 6, 10)
    # Then a campaign for today (Tuesday) is accepted, and one for Monday is refused
    assert draft(start=date(2026, 6, 9), now=now).start == date(2026, 6, 9)
    with pytest.raises(CampaignRuleViolation, match="2026-06-08 is in the past"):
        draft(start=date(2026, 6, 8), now=now)
    # And an edit to a past date is refused as well
    with pytest.raises(CampaignRuleViolation, match="in the past"):
        draft(now=now).edit(now=now, calendar=US, start_date=date(2026, 6, 8))


# -- audience ---------------------------------------------------------------------------------

def test_an_audience_over_the_size_cap_is_refused_with_a_clear_message() -> None:
    # Given an audience one over the cap (4,000 by default)
    audience = [f"p-{i}" for i in range(DEFAULT_SIZE_CAP + 1)]
    # Then saving it is refused, saying how many and the cap, and what to do
    with pytest.raises(CampaignRuleViolation) as refused:
        draft(audience=audience)
    message = str(refused.value)
    assert "4001 patients" in message and "at most 4000" in message and "narrow" in message
    # And exactly the cap is accepted
    assert len(draft(audience=audience[:-1]).audience) == DEFAULT_SIZE_CAP


def test_the_size_cap_is_an_organisation_setting_applied_on_edit_too() -> None:
    campaign = draft(size_cap=2000)
    with pytest.raises(CampaignRuleViolation, match="at most 2000"):
        campaign.edit(now=MONDAY_BEFORE, calendar=US, size_cap=2000,
                      audience=[f"p-{i}" for i in range(2001)])


def test_a_campaign_saved_under_a_higher_cap_is_refused_activation_after_it_was_lowered() -> None:
    # Given a campaign of 3 patients saved while the cap was 4,000
    campaign = draft(audience=["p-1", "p-2", "p-3"])
    # When the organisation lowers the cap to 2, activating it is refused with the cap's words
    with pytest.raises(CampaignRuleViolation, match="3 patients; a campaign may contact at most 2"):
        campaign.activate(now=MONDAY_BEFORE, calendar=US, size_cap=2)
    # And under a cap it fits, it activates
    campaign.activate(now=MONDAY_BEFORE, calendar=US, size_cap=3)
    assert campaign.is_active


def test_an_audience_listing_a_patient_twice_is_refused() -> None:
    with pytest.raises(CampaignRuleViolation, match="more than once"):
        draft(audience=["p-1", "p-2", "p-1"])
    with pytest.raises(CampaignRuleViolation, match="more than once"):
        draft().edit(now=MONDAY_BEFORE, calendar=US, audience=["p-9", "p-9"])


# -- test sends -------------------------------------------------------------------------------

@pytest.mark.parametrize("activate", [False, True], ids=["inactive", "active"])
def test_a_test_send_never_changes_the_status(activate: bool) -> None:
    # Given an inactive or an active campaign
    campaign = active() if activate else draft()
    before = campaign.status
    # When staff send themselves a test text (even on the start day)
    campaign.record_test_send(now=central(2026, 6, 10, 12), channel_address_hint="0100",
                              outcome="accepted")
    # Then the status is what it was, and the test is on record
    assert campaign.status == before
    assert campaign.test_sends == 1
    assert event_names(campaign)[-1] == "TestSent"


# -- text content -----------------------------------------------------------------------------

def test_a_text_body_over_two_segments_with_the_footer_is_refused() -> None:
    too_long = "x" * (306 - len(FOOTER))  # with "\n" + footer: 307 units, 3 segments
    with pytest.raises(InvalidContent, match="3 segments"):
        draft(content=text_content(body=too_long))
    with pytest.raises(InvalidContent, match="3 segments"):
        draft().edit(now=MONDAY_BEFORE, calendar=US, content=text_content(body=too_long))
    # One character less fits
    assert draft(content=text_content(body=too_long[:-1])).content["body"] == too_long[:-1]


@pytest.mark.parametrize("help_number", ["", "   "])
def test_a_text_campaign_without_a_help_number_is_refused(help_number: str) -> None:
    with pytest.raises(InvalidContent, match="help number"):
        draft(content=text_content(help_number=help_number))
    content = text_content()
    del content["help_number"]
    with pytest.raises(InvalidContent, match="help number"):
        draft(content=content)


def test_a_text_campaign_with_an_empty_body_is_refused() -> None:
    with pytest.raises(InvalidContent, match="empty"):
        draft(content=text_content(body="  "))


def test_a_campaign_needs_a_name() -> None:
    with pytest.raises(CampaignRuleViolation, match="needs a name"):
        draft(name="  ")


def test_every_lifecycle_command_records_the_signed_in_user_and_old_events_still_load() -> None:
    campaign = Campaign.draft(
        name="Flu", description="", channel=Channel.TEXT, content=text_content(),
        start=START, audience=["p1"], now=MONDAY_BEFORE, calendar=US,
        created_by="ana@clinic.example")
    campaign.edit(now=MONDAY_BEFORE, calendar=US, by="ana@clinic.example", name="Flu 2")
    campaign.activate(now=MONDAY_BEFORE, calendar=US, by="bo@clinic.example")
    campaign.inactivate(now=MONDAY_BEFORE, calendar=US, by="cy@clinic.example")
    events = campaign.collect_events()
    assert [getattr(e, "by", None) for e in events[1:]] == [
        "ana@clinic.example", "bo@clinic.example", "cy@clinic.example"]
    # An Activated stored before `by` existed (issue 12) has no such field: it still applies.
    older = Campaign.draft(
        name="Old", description="", channel=Channel.TEXT, content=text_content(),
        start=START, audience=["p1"], now=MONDAY_BEFORE, calendar=US)
    older.activate(now=MONDAY_BEFORE, calendar=US)
    created, activated = older.collect_events()
    del activated.__dict__["by"]
    replayed = None
    for e in (created, activated):
        replayed = e.mutate(replayed)
    assert replayed is not None and replayed.status == CampaignStatus.PENDING


def test_a_campaign_made_within_groups_is_seen_only_by_users_of_all_of_them() -> None:
    from domain.access import ALL_SUBSCRIBERS, Actor

    campaign = Campaign.draft(
        name="North", description="", channel=Channel.TEXT, content=text_content(),
        start=START, audience=["p1"], now=MONDAY_BEFORE, calendar=US,
        created_by="ana@clinic.example", groups=["North Clinic"])
    assert campaign.groups == ["North Clinic"]
    north = Actor("1", "n@x", groups=("north clinic",))
    both = Actor("2", "b@x", groups=("North Clinic", "South Clinic"))
    south = Actor("3", "s@x", groups=("South Clinic",))
    everyone = Actor("4", "a@x", groups=(ALL_SUBSCRIBERS,))
    assert north.sees_groups(campaign.groups) and both.sees_groups(campaign.groups)
    assert not south.sees_groups(campaign.groups)
    assert everyone.sees_groups([]) and not north.sees_groups([])
