"""Opt-outs: which types stop which campaigns, for how long, and texted STOP / START."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.channels import Channel
from domain.errors import OptOutRuleViolation
from domain.keywords import Keyword
from domain.preferences import (
    ContactKeys,
    Duration,
    OptOutType,
    PatientPreferences,
    PhoneOptOut,
    check_duration,
)

AT = datetime(2026, 6, 9, 16, tzinfo=UTC)
KEYS = ContactKeys(b"a-contact-key-secret-for-unit-tests")
PERMANENT = Duration()

todays = st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31))
ordinary_types = st.sampled_from([t for t in OptOutType if t != OptOutType.PROTOCOL])


def preferences() -> PatientPreferences:
    return PatientPreferences(patient_id="p-1")


def event_names(aggregate: PatientPreferences | PhoneOptOut) -> list[str]:
    return [type(e).__name__ for e in aggregate.collect_events()]


# -- durations ------------------------------------------------------------------------------

@given(today=todays, days=st.integers(min_value=1, max_value=400),
       offset=st.integers(min_value=0, max_value=500))
def test_an_opt_out_for_n_days_blocks_today_and_the_next_n_minus_1_days(
    today: date, days: int, offset: int
) -> None:
    # Given a patient who opts out of health reminder texts today for N days
    prefs = preferences()
    prefs.opt_out(OptOutType.HEALTH_TEXT, Duration(days=days), today, AT, reason="asked")
    # When a text campaign goes out on day d (today or later)
    d = today + timedelta(days=offset)
    # Then it is blocked exactly when today <= d <= today + N - 1
    assert prefs.blocks_campaign(Channel.TEXT, d) == (d <= today + timedelta(days=days - 1))


@given(today=todays, until_offset=st.integers(min_value=0, max_value=400),
       offset=st.integers(min_value=0, max_value=500))
def test_an_opt_out_until_a_date_blocks_through_that_date_inclusive(
    today: date, until_offset: int, offset: int
) -> None:
    until = today + timedelta(days=until_offset)
    prefs = preferences()
    prefs.opt_out(OptOutType.HEALTH_EMAIL, Duration(until=until), today, AT, reason="asked")
    d = today + timedelta(days=offset)
    assert prefs.blocks_campaign(Channel.EMAIL, d) == (d <= until)


@given(today=todays, kind=st.sampled_from([OptOutType.GLOBAL, OptOutType.ALL_TEXT,
                                           OptOutType.HEALTH_TEXT]))
def test_a_permanent_opt_out_blocks_forever(today: date, kind: OptOutType) -> None:
    prefs = preferences()
    prefs.opt_out(kind, PERMANENT, today, AT, reason="asked")
    for d in (today, today + timedelta(days=3650), date(9999, 12, 31)):
        assert prefs.blocks_campaign(Channel.TEXT, d)


@given(today=todays)
def test_one_day_means_today_only(today: date) -> None:
    prefs = preferences()
    prefs.opt_out(OptOutType.ALL_TEXT, Duration(days=1), today, AT, reason="asked")
    assert prefs.blocks_campaign(Channel.TEXT, today)
    assert not prefs.blocks_campaign(Channel.TEXT, today + timedelta(days=1))


@given(today=todays, days_ago=st.integers(min_value=1, max_value=400))
def test_an_end_date_in_the_past_is_refused(today: date, days_ago: int) -> None:
    with pytest.raises(OptOutRuleViolation, match="in the past"):
        preferences().opt_out(OptOutType.HEALTH_TEXT,
                              Duration(until=today - timedelta(days=days_ago)), today, AT,
                              reason="asked")


@pytest.mark.parametrize("days", [0, -1])
def test_a_number_of_days_must_be_at_least_one(days: int) -> None:
    with pytest.raises(OptOutRuleViolation, match="at least 1 day"):
        Duration(days=days).last_day(date(2026, 6, 9))


def test_a_date_and_a_number_of_days_together_are_refused() -> None:
    with pytest.raises(OptOutRuleViolation, match="not both"):
        Duration(until=date(2026, 7, 1), days=3).last_day(date(2026, 6, 9))


# -- which durations each type allows -------------------------------------------------------

def test_a_health_reminders_phone_opt_out_cannot_be_permanent() -> None:
    prefs = preferences()
    with pytest.raises(OptOutRuleViolation, match="cannot be permanent"):
        prefs.opt_out(OptOutType.HEALTH_PHONE, PERMANENT, date(2026, 6, 9), AT, reason="asked")
    assert event_names(prefs) == ["Registered"]
    # But with a date or a number of days it is accepted
    prefs.opt_out(OptOutType.HEALTH_PHONE, Duration(days=30), date(2026, 6, 9), AT, reason="x")
    prefs.opt_out(OptOutType.HEALTH_PHONE, Duration(until=date(2026, 7, 1)), date(2026, 6, 9),
                  AT, reason="x")
    assert prefs.blocks_campaign(Channel.PHONE, date(2026, 7, 1))


@pytest.mark.parametrize("duration", [Duration(days=10), Duration(until=date(2026, 7, 1))],
                         ids=["days", "date"])
def test_a_global_opt_out_cannot_have_a_date_or_days(duration: Duration) -> None:
    prefs = preferences()
    with pytest.raises(OptOutRuleViolation, match="Global opt-out is always permanent"):
        prefs.opt_out(OptOutType.GLOBAL, duration, date(2026, 6, 9), AT, reason="asked")
    assert prefs.opt_outs == {}


@given(kind=ordinary_types, last_day=st.one_of(st.none(), todays))
def test_every_other_combination_of_type_and_duration_is_allowed(
    kind: OptOutType, last_day: date | None
) -> None:
    forbidden = (kind == OptOutType.HEALTH_PHONE and last_day is None) or (
        kind == OptOutType.GLOBAL and last_day is not None)
    if forbidden:
        with pytest.raises(OptOutRuleViolation):
            check_duration(kind, last_day)
    else:
        check_duration(kind, last_day)


def test_an_opt_out_needs_a_reason_and_a_protocol_opt_out_names_its_protocol() -> None:
    with pytest.raises(OptOutRuleViolation, match="reason"):
        preferences().opt_out(OptOutType.ALL_TEXT, PERMANENT, date(2026, 6, 9), AT, reason=" ")
    with pytest.raises(OptOutRuleViolation, match="protocol"):
        preferences().opt_out(OptOutType.PROTOCOL, PERMANENT, date(2026, 6, 9), AT,
                              reason="asked")


# -- which types block which campaign channel -----------------------------------------------

# From the Opt Out Settings guide: campaigns are health reminders (Coordinate campaigns).
EXPECTED_BLOCKS = {
    Channel.TEXT: {OptOutType.GLOBAL, OptOutType.HEALTH_TEXT, OptOutType.ALL_TEXT},
    Channel.PHONE: {OptOutType.GLOBAL, OptOutType.HEALTH_PHONE, OptOutType.APPT_PHONE},
    # Appt Conf - Email stops campaign emails too (issue 10: "no email from us" is honoured
    # the conservative way), while Appt Conf - Text/Phone concern appointment reminders only.
    Channel.EMAIL: {OptOutType.GLOBAL, OptOutType.HEALTH_EMAIL, OptOutType.APPT_EMAIL},
    Channel.LETTER: {OptOutType.GLOBAL},
}


@given(kind=st.sampled_from(list(OptOutType)), channel=st.sampled_from(list(Channel)))
def test_each_opt_out_type_blocks_exactly_the_campaign_channels_it_names(
    kind: OptOutType, channel: Channel
) -> None:
    # Given a patient with one opt-out of some type (a temporary one where permanent is not
    # allowed)
    today = date(2026, 6, 9)
    duration = Duration(days=30) if kind == OptOutType.HEALTH_PHONE else PERMANENT
    prefs = preferences()
    prefs.opt_out(kind, duration, today, AT, reason="asked",
                  protocol="Diabetes" if kind == OptOutType.PROTOCOL else "")
    # Then a campaign on a channel is blocked exactly when the type covers it
    assert prefs.blocks_campaign(channel, today) == (kind in EXPECTED_BLOCKS[channel])


@pytest.mark.parametrize("kind", [OptOutType.APPT_TEXT, OptOutType.PROTOCOL])
def test_appointment_and_protocol_opt_outs_do_not_block_a_campaign(kind: OptOutType) -> None:
    # Given a patient who opted out of appointment confirmations (or an Outreach protocol)
    prefs = preferences()
    prefs.opt_out(kind, PERMANENT, date(2026, 6, 9), AT, reason="asked", protocol="Asthma")
    # Then campaigns on every channel still reach them (a campaign of no protocol)
    assert not any(prefs.blocks_campaign(c, date(2026, 6, 9)) for c in Channel)


def test_a_protocol_opt_out_blocks_the_campaigns_of_that_protocol_on_every_channel() -> None:
    # Given a patient opted out of the Asthma protocol
    prefs = preferences()
    prefs.opt_out(OptOutType.PROTOCOL, PERMANENT, date(2026, 6, 9), AT, reason="asked",
                  protocol="Asthma")
    # Then an Asthma campaign does not reach them, a Diabetes one does
    day = date(2026, 6, 9)
    assert all(prefs.blocks_campaign(c, day, protocol="Asthma") for c in Channel)
    assert not any(prefs.blocks_campaign(c, day, protocol="Diabetes") for c in Channel)


# -- restore ---------------------------------------------------------------------------------

@given(kinds=st.sets(ordinary_types, min_size=1))
def test_restoring_the_opt_outs_removes_them(kinds: set[OptOutType]) -> None:
    # Given a patient with several opt-outs
    today = date(2026, 6, 9)
    prefs = preferences()
    for kind in kinds:
        duration = Duration(days=5) if kind == OptOutType.HEALTH_PHONE else PERMANENT
        prefs.opt_out(kind, duration, today, AT, reason="asked")
    # When staff restore all of them
    prefs.restore([str(k) for k in kinds], AT)
    # Then none is left, and no channel is blocked
    assert prefs.opt_outs == {} and prefs.active_on(today) == {}
    assert not any(prefs.blocks_campaign(c, today) for c in Channel)


def test_restoring_one_opt_out_leaves_the_others() -> None:
    prefs = preferences()
    prefs.opt_out(OptOutType.ALL_TEXT, PERMANENT, date(2026, 6, 9), AT, reason="asked")
    prefs.opt_out(OptOutType.HEALTH_EMAIL, PERMANENT, date(2026, 6, 9), AT, reason="asked")
    prefs.restore([str(OptOutType.ALL_TEXT)], AT)
    assert not prefs.blocks_campaign(Channel.TEXT, date(2026, 6, 9))
    assert prefs.blocks_campaign(Channel.EMAIL, date(2026, 6, 9))


def test_restoring_an_opt_out_the_patient_does_not_have_is_refused() -> None:
    prefs = preferences()
    with pytest.raises(OptOutRuleViolation, match="no current opt-out of type All Text"):
        prefs.restore([str(OptOutType.ALL_TEXT)], AT)


# -- STOP and START texted from a phone ------------------------------------------------------

def test_stop_then_stop_again_records_one_event() -> None:
    # Given a phone number
    phone = PhoneOptOut.for_number("+15550100100", KEYS)
    # When STOP is texted twice
    first, second = phone.keyword(Keyword.STOP, AT), phone.keyword(Keyword.STOP, AT)
    # Then only the first changes anything
    assert (first, second) == (True, False)
    assert phone.stopped
    assert event_names(phone) == ["Registered", "TextsStopped"]


def test_start_after_stop_restores_texts_to_the_number() -> None:
    phone = PhoneOptOut.for_number("+15550100100", KEYS)
    phone.keyword(Keyword.STOP, AT)
    assert phone.keyword(Keyword.START, AT + timedelta(days=1)) is True
    assert not phone.stopped and phone.changed_at == AT + timedelta(days=1)


@given(words=st.lists(st.sampled_from(list(Keyword)), max_size=20))
def test_any_sequence_of_keywords_records_only_real_changes(words: list[Keyword]) -> None:
    # Given a phone number and any sequence of STOP / START / HELP texts
    phone = PhoneOptOut.for_number("+15550100100", KEYS)
    event_names(phone)
    state, changes = False, list[str]()
    for word in words:
        phone.keyword(word, AT)
        if word == Keyword.STOP and not state:
            state = True
            changes.append("TextsStopped")
        elif word == Keyword.START and state:
            state = False
            changes.append("TextsRestarted")
    # Then the number is stopped iff the last STOP/START was STOP, and only flips are recorded
    assert phone.stopped == state
    assert event_names(phone) == changes


def test_the_phone_opt_out_id_does_not_reveal_the_number() -> None:
    # Ids stay readable even when event state is encrypted: they must not carry the number
    number = "+15550100100"
    phone = PhoneOptOut.for_number(number, KEYS)
    assert phone.id == KEYS.phone_opt_out_id(number)
    assert "5550100100" not in str(phone.id) and "5550100100" not in phone.key
    assert KEYS.phone_opt_out_id(number) != KEYS.phone_opt_out_id("+15550100101")
