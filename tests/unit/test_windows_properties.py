"""Communication windows: a channel sends only inside its daily window, on sending days.

Properties are checked for arbitrary instants over several years (including the instants
around America/Chicago's DST changes) and arbitrary windows and weekday sets.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from application.settings import Settings
from domain.calendar import SendingCalendar, Window
from domain.channels import Channel
from domain.pacing import plan_slots

CHICAGO = ZoneInfo("America/Chicago")
TEXT = Channel.TEXT


def us_calendar() -> SendingCalendar:
    """The default organisation: US Central, Monday-Saturday, US holidays, Phytel windows."""
    return Settings(
        holidays="US", timezone="America/Chicago", sending_days="mon-sat",
        text_window="11:00-20:00", phone_window="11:00-20:00", email_window="09:00-22:45",
    ).calendar


US = us_calendar()


def central(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=CHICAGO).astimezone(UTC)


# -- strategies ---------------------------------------------------------------------------

# DST changes in Chicago (spring forward 02:00 CST, fall back 02:00 CDT), 2025-2028.
DST_CHANGES = [
    datetime(2025, 3, 9, 8, tzinfo=UTC), datetime(2025, 11, 2, 7, tzinfo=UTC),
    datetime(2026, 3, 8, 8, tzinfo=UTC), datetime(2026, 11, 1, 7, tzinfo=UTC),
    datetime(2027, 3, 14, 8, tzinfo=UTC), datetime(2027, 11, 7, 7, tzinfo=UTC),
    datetime(2028, 3, 12, 8, tzinfo=UTC), datetime(2028, 11, 5, 7, tzinfo=UTC),
]

any_instant = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
near_dst = st.builds(
    lambda change, seconds: change + timedelta(seconds=seconds),
    st.sampled_from(DST_CHANGES),
    st.integers(min_value=-3 * 86_400, max_value=3 * 86_400),
)
instants = st.one_of(any_instant, near_dst)


@st.composite
def windows(draw: st.DrawFn) -> Window:
    """Any valid window: minute-aligned start < end (possibly inside the DST gap or overlap),
    any non-empty weekday set."""
    start = draw(st.integers(min_value=0, max_value=24 * 60 - 2))
    end = draw(st.integers(min_value=start + 1, max_value=24 * 60 - 1))
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    return Window(time(start // 60, start % 60), time(end // 60, end % 60), days)


@st.composite
def calendars(draw: st.DrawFn) -> SendingCalendar:
    window = draw(windows())
    holidays = draw(st.sampled_from(["none", "us"]))
    is_holiday = US.is_holiday if holidays == "us" else (lambda _d: False)
    return SendingCalendar(CHICAGO, {TEXT: window}, is_holiday)


def windows_between(
    cal: SendingCalendar, a: datetime, b: datetime
) -> list[tuple[datetime, datetime]]:
    """Every [open, close) interval, in UTC, of the sending days around a..b, computed here
    from the local wall-clock window (independently of next_open's search)."""
    w = cal.windows[TEXT]
    out = []
    day = a.astimezone(CHICAGO).date() - timedelta(days=1)
    while day <= b.astimezone(CHICAGO).date() + timedelta(days=1):
        if day.weekday() in w.weekdays and not cal.is_holiday(day):
            opens = datetime(day.year, day.month, day.day, w.start.hour, w.start.minute,
                             tzinfo=CHICAGO).astimezone(UTC)
            closes = datetime(day.year, day.month, day.day, w.end.hour, w.end.minute,
                              tzinfo=CHICAGO).astimezone(UTC)
            out.append((opens, closes))
        day += timedelta(days=1)
    return out


@st.composite
def calendars_and_instants(draw: st.DrawFn) -> tuple[SendingCalendar, datetime]:
    """A calendar, and an instant anywhere or within minutes of one of its window edges (where
    off-by-one mistakes live)."""
    cal = draw(calendars())
    kind = draw(st.sampled_from(["anywhere", "near-open", "near-close"]))
    if kind == "anywhere":
        return cal, draw(instants)
    day = draw(st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31)))
    w = cal.windows[TEXT]
    edge = w.start if kind == "near-open" else w.end
    at = datetime(day.year, day.month, day.day, edge.hour, edge.minute, tzinfo=CHICAGO)
    offset = draw(st.integers(min_value=-300_000_000, max_value=300_000_000))
    return cal, at.astimezone(UTC) + timedelta(microseconds=offset)


# -- next_open ----------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(cal_at=calendars_and_instants(), probe=st.floats(min_value=0, max_value=1))
def test_next_open_is_the_first_open_instant_at_or_after_any_instant(
    cal_at: tuple[SendingCalendar, datetime], probe: float
) -> None:
    cal, at = cal_at
    # Given any window, weekday set and holiday rule, and any instant
    # When we ask for the next open instant
    nxt = cal.next_open(TEXT, at)
    # Then it is not earlier than the instant, and the channel is open then
    assert nxt >= at
    assert cal.is_open(TEXT, nxt)
    if nxt > at:
        # And no window (computed from the wall clock) overlaps [at, nxt): nothing earlier
        # is open, and nxt is the opening instant of a window
        for opens, closes in windows_between(cal, at, nxt):
            assert not (opens < nxt and closes > at), (opens, closes, at, nxt)
        assert nxt in {opens for opens, _ in windows_between(cal, at, nxt)}
        # And a probe instant between the two is closed
        between = at + (nxt - at) * probe
        if between < nxt:
            assert not cal.is_open(TEXT, between)


@settings(max_examples=40, deadline=None)
@given(at=st.one_of(near_dst, any_instant.map(lambda t: t.replace(second=0, microsecond=0))))
def test_no_minute_before_next_open_is_open_scanning_minute_by_minute(at: datetime) -> None:
    # Given the default US calendar and an instant (near a DST change or anywhere)
    nxt = US.next_open(TEXT, at)
    # When we walk minute by minute from the instant (bounded to four days)
    t = at
    while t < min(nxt, at + timedelta(days=4)):
        # Then every minute before the next open instant is closed
        assert not US.is_open(TEXT, t), t
        t += timedelta(minutes=1)


@settings(max_examples=200, deadline=None)
@given(cal_at=calendars_and_instants())
def test_an_open_instant_is_its_own_next_open_and_lies_inside_its_local_window(
    cal_at: tuple[SendingCalendar, datetime],
) -> None:
    cal, at = cal_at
    # Given an instant at which the channel is open
    if not cal.is_open(TEXT, at):
        return
    # Then next_open gives the instant itself
    assert cal.next_open(TEXT, at) == at
    # And its local wall-clock time is inside the window, on a sending day
    local = at.astimezone(CHICAGO)
    w = cal.windows[TEXT]
    assert local.weekday() in w.weekdays and not cal.is_holiday(local.date())
    assert any(opens <= at < closes for opens, closes in windows_between(cal, at, at))


# -- sending days -------------------------------------------------------------------------

sundays = st.dates(min_value=date(2025, 1, 5), max_value=date(2028, 12, 31)).map(
    lambda d: d + timedelta(days=(6 - d.weekday()))
)


@settings(max_examples=100, deadline=None)
@given(sunday=sundays, seconds=st.integers(min_value=0, max_value=86_399))
def test_nothing_is_sent_on_a_sunday_by_default(sunday: date, seconds: int) -> None:
    # Given the default calendar and any instant of a Sunday, Central time
    at = (datetime(sunday.year, sunday.month, sunday.day, tzinfo=CHICAGO)
          + timedelta(seconds=seconds)).astimezone(UTC)
    if at.astimezone(CHICAGO).date() != sunday:  # the 25-hour fall-back day overflows
        return
    # Then no channel is open
    for channel in Channel:
        assert not SendingCalendar().is_open(channel, at)
        assert not US.is_open(channel, at)


@settings(max_examples=100, deadline=None)
@given(sunday=sundays)
def test_a_sunday_moves_to_the_monday_after(sunday: date) -> None:
    # Given a Sunday, when we ask for its sending day, then it is the Monday after
    assert SendingCalendar().next_sending_day(sunday) == sunday + timedelta(days=1)
    # And with holidays it is the first following day that is not a holiday
    moved = US.next_sending_day(sunday)
    assert moved > sunday and moved.weekday() != 6 and not US.is_holiday(moved)
    assert all(US.is_holiday(d) for d in _days(sunday + timedelta(days=1), moved))


@settings(max_examples=150, deadline=None)
@given(cal=calendars(), day=st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31)))
def test_the_next_sending_day_is_the_day_itself_or_the_first_sending_day_after_it(
    cal: SendingCalendar, day: date
) -> None:
    # Given any calendar and any day, when we ask for the day's sending day
    moved = cal.next_sending_day(day)
    # Then a sending day keeps its date, and any other moves to the first sending day after
    assert moved >= day and cal.is_sending_day(moved)
    assert not any(cal.is_sending_day(d) for d in _days(day, moved))
    w = cal.windows[TEXT]
    assert (moved == day) == (day.weekday() in w.weekdays and not cal.is_holiday(day))


def _days(a: date, b: date) -> list[date]:
    return [a + timedelta(days=i) for i in range((b - a).days)]


@pytest.mark.parametrize(
    ("holiday", "name"), [(date(2026, 11, 26), "Thanksgiving"), (date(2026, 12, 25), "Christmas")]
)
def test_nothing_is_sent_on_a_us_holiday(holiday: date, name: str) -> None:
    # Given the US calendar and a weekday holiday
    assert holiday.weekday() < 6 and US.is_holiday(holiday), name
    # When it is midday on the holiday, Central time, then every channel is closed
    noon = central(holiday.year, holiday.month, holiday.day, 12)
    for channel in (Channel.TEXT, Channel.PHONE, Channel.EMAIL):
        assert not US.is_open(channel, noon)
    # And the next window opens at 11:00 the next sending day
    after = US.next_sending_day(holiday)
    assert after == holiday + timedelta(days=1)
    assert US.next_open(TEXT, noon) == central(after.year, after.month, after.day, 11)
    # And a start date on the holiday moves to that day
    assert US.next_sending_day(holiday) == after
    # While the same weekday a week earlier is an ordinary sending day
    week_before = holiday - timedelta(days=7)
    assert US.is_open(TEXT, central(week_before.year, week_before.month, week_before.day, 12))


def test_a_sunday_followed_by_a_monday_holiday_moves_to_tuesday() -> None:
    # Given Sunday 6 September 2026, before Labor Day (Monday 7 September)
    # Then a campaign on that Sunday goes out on Tuesday
    assert US.next_sending_day(date(2026, 9, 6)) == date(2026, 9, 8)


def test_the_window_is_half_open_in_central_time_across_dst() -> None:
    # Given the text window 11:00-20:00 Central, in winter (CST) and summer (CDT)
    for y, mo, d in [(2026, 1, 6), (2026, 7, 7)]:
        # Then 10:59:59 is closed, 11:00 is open, 19:59:59 is open, 20:00 is closed
        assert not US.is_open(TEXT, central(y, mo, d, 10, 59, 59))
        assert US.is_open(TEXT, central(y, mo, d, 11))
        assert US.is_open(TEXT, central(y, mo, d, 19, 59, 59))
        assert not US.is_open(TEXT, central(y, mo, d, 20))
    # And the UTC opening hour differs by one between the two seasons
    assert central(2026, 1, 6, 11).hour == 17 and central(2026, 7, 7, 11).hour == 16


def test_activated_after_todays_window_a_campaign_starts_the_next_sending_day() -> None:
    # Given Saturday 2026-06-13 at 21:00 Central, after the text window
    # Then the next window is Monday 11:00 (Sunday is skipped)
    assert US.next_open(TEXT, central(2026, 6, 13, 21)) == central(2026, 6, 15, 11)


# -- the Phytel example -------------------------------------------------------------------

def test_phytel_example_a_campaign_started_at_1959_stops_at_2000_and_resumes_at_1100() -> None:
    # Given a text campaign of 100 patients planned at 19:59 on Tuesday 9 June 2026 (Central)
    # at 1,000 per hour (one every 3.6 s)
    tuesday_1959 = central(2026, 6, 9, 19, 59)
    slots = plan_slots(100, tuesday_1959, US, TEXT, per_hour=1000)
    # When the 20:00 close comes
    tuesday_2000 = central(2026, 6, 9, 20)
    before_close = [s for s in slots if s < tuesday_2000]
    # Then the patients sent on Tuesday all went in the last minute, 3.6 s apart
    assert before_close[0] == tuesday_1959
    assert len(before_close) == 17  # 0, 3.6, ..., 57.6 s
    assert all(tuesday_1959 <= s < tuesday_2000 for s in before_close)
    # And the next patient (18th) goes first, at 11:00 on Wednesday
    resumed = slots[len(before_close)]
    assert resumed == central(2026, 6, 10, 11)
    # And the order continues from there, 3.6 s apart
    # (3.6 s and 1 µs: 1,001 sends never fit in one closed hour)
    assert slots[len(before_close) + 1] - resumed == timedelta(seconds=3.6, microseconds=1)
    assert slots == sorted(slots)
