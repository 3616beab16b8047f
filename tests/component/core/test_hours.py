"""Tests for component.core.hours: reading, showing and applying a queue's service hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from component.core.hours import (
    HORIZON,
    HoursError,
    Interval,
    ServiceHours,
    describe,
    format_hours,
    is_open,
    next_change,
    parse_hours,
)

NY = "America/New_York"
MADRID = "Europe/Madrid"
CHICAGO = "America/Chicago"
WHOLE_DAY = (Interval(time(0), time(0)),)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def iv(start: str, end: str) -> Interval:
    """An interval from text times; "24:00" is the end of the day."""
    return Interval(
        time.fromisoformat(start), time(0) if end == "24:00" else time.fromisoformat(end)
    )


def week(**days: tuple[Interval, ...]) -> tuple[tuple[Interval, ...], ...]:
    names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return tuple(days.get(name, ()) for name in names)


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def changes(hours: ServiceHours, at: datetime, n: int) -> list[datetime]:
    found: list[datetime] = []
    for _ in range(n):
        nxt = next_change(hours, at)
        assert nxt is not None
        found.append(nxt)
        at = nxt
    return found


# Parsing ------------------------------------------------------------------------------


def test_parse_weekdays_and_saturday() -> None:
    hours = parse_hours("mon-fri 09:00-17:00; sat 10:00-14:00", CHICAGO)
    nine_to_five = (iv("09:00", "17:00"),)
    assert hours.weekly == week(
        mon=nine_to_five,
        tue=nine_to_five,
        wed=nine_to_five,
        thu=nine_to_five,
        fri=nine_to_five,
        sat=(iv("10:00", "14:00"),),
    )
    assert hours.tz == ZoneInfo(CHICAGO)
    assert hours.closed == frozenset()


def test_parse_day_list_with_two_intervals() -> None:
    hours = parse_hours("mon,wed 08:30-12:00, 13:00-17:00", "UTC")
    split = (iv("08:30", "12:00"), iv("13:00", "17:00"))
    assert hours.weekly == week(mon=split, wed=split)


@pytest.mark.parametrize(
    "text", ["daily 00:00-24:00", "always", "ALWAYS", "", "  ", "mon-sun 0:00-24:00"]
)
def test_parse_always_open(text: str) -> None:
    assert parse_hours(text, "UTC") == ServiceHours.always()


def test_parse_never() -> None:
    assert parse_hours("Never", "UTC").weekly == ((),) * 7


@pytest.mark.parametrize(
    ("text", "same_as"),
    [
        ("MON-FRI 09:00-17:00", "mon-fri 09:00-17:00"),
        ("Monday-Friday 09:00-17:00", "mon-fri 09:00-17:00"),
        ("mon - fri 9:00 - 17:00", "mon-fri 09:00-17:00"),
        ("mon–fri 09:00–17:00", "mon-fri 09:00-17:00"),
        ("mon, tue,wed 09:00-17:00", "mon-wed 09:00-17:00"),
        ("weekdays 09:00-17:00", "mon-fri 09:00-17:00"),
        ("weekends 10:00-14:00", "sat,sun 10:00-14:00"),
        ("fri-mon 10:00-14:00", "mon,fri,sat,sun 10:00-14:00"),
        ("mon-mon 10:00-14:00", "mon 10:00-14:00"),
        ("mon 09:00-12:00 13:00-17:00", "mon 09:00-12:00, 13:00-17:00"),
        ("mon 09:00-17:00;", "mon 09:00-17:00"),
        ("mon 09:00-17:00\ntue 10:00-11:00", "mon 09:00-17:00; tue 10:00-11:00"),
        # Clauses add up and overlapping or touching intervals merge.
        ("mon 09:00-12:00; mon 11:00-13:00", "mon 09:00-13:00"),
        ("mon 09:00-12:00, 12:00-13:00", "mon 09:00-13:00"),
        ("mon 13:00-17:00, 09:00-12:00", "mon 09:00-12:00, 13:00-17:00"),
        ("mon-fri 09:00-17:00; wed 16:00-20:00", "mon,tue,thu,fri 09:00-17:00; wed 09:00-20:00"),
    ],
)
def test_parse_liberal_spellings(text: str, same_as: str) -> None:
    assert parse_hours(text, "UTC") == parse_hours(same_as, "UTC")


@pytest.mark.parametrize(
    ("text", "same_as"),
    [
        ("fri 22:00-02:00", "fri 22:00-24:00; sat 00:00-02:00"),
        ("sun 22:00-02:00", "sun 22:00-24:00; mon 00:00-02:00"),
        ("mon 17:00-09:00", "mon 17:00-24:00; tue 00:00-09:00"),
        ("mon 22:00-00:00", "mon 22:00-24:00"),
        (
            "mon-fri 09:00-17:00; fri 20:00-10:00",
            "mon-fri 09:00-17:00; fri 20:00-24:00; sat 00:00-10:00",
        ),
    ],
)
def test_overnight_intervals_split_at_midnight(text: str, same_as: str) -> None:
    assert parse_hours(text, "UTC") == parse_hours(same_as, "UTC")


def test_parse_closed_dates() -> None:
    hours = parse_hours("mon-fri 09:00-17:00", NY, ["2026-12-25", " 2027-01-01 "])
    assert hours.closed == {date(2026, 12, 25), date(2027, 1, 1)}


def test_parse_closed_dates_as_one_string() -> None:
    # A form field gives one string; it must not be read one character at a time.
    hours = parse_hours("always", NY, "2026-12-25, 2026-12-26 2027-01-01")
    assert hours.closed == {date(2026, 12, 25), date(2026, 12, 26), date(2027, 1, 1)}
    assert parse_hours("always", NY, "").closed == frozenset()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mon-fry 09:00-17:00", "unknown day 'fry'"),
        ("funday 09:00-17:00", "unknown day 'funday'"),
        ("mon- 09:00-17:00", "bad day range 'mon-'"),
        ("mon 09:00-25:00", "bad time '25:00' in '09:00-25:00'"),
        ("mon 09:60-10:00", "bad time '09:60'"),
        ("mon 09:00-24:30", "bad time '24:30'"),
        ("mon 24:00-02:00", "24:00 can only end an interval"),
        ("mon 09:00-09:00", "09:00-09:00: empty interval"),
        ("mon 00:00-00:00", "the whole day is 00:00-24:00"),
        ("mon 09:00", "bad interval '09:00'"),
        ("mon 09:00-10:00-11:00", "bad interval '09:00-10:00-11:00'"),
        ("mon 9-17", "bad time '9' in '9-17'"),
        ("mon 0900-1700", "bad time '0900'"),
        ("mon 09:00-12:00 tue 13:00-17:00", "separate day groups with ';'"),
        ("09:00-17:00", "'09:00-17:00': no days given"),
        ("mon", "'mon': no hours given"),
        ("mon-fri 09:00-17:00; sat", "'sat': no hours given"),
    ],
)
def test_parse_errors_name_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(HoursError) as err:
        parse_hours(text, "UTC")
    assert message in str(err.value)


@pytest.mark.parametrize(
    "tz", ["Mars/Base", "", "../etc/passwd", "/etc/localtime", "america/new_york"]
)
def test_unknown_time_zone(tz: str) -> None:
    with pytest.raises(HoursError) as err:
        parse_hours("always", tz)
    assert str(err.value) == f"unknown time zone {tz!r}"


@pytest.mark.parametrize(
    ("closed", "message"),
    [
        ("2026-13-01", "bad closed date '2026-13-01': no such day"),
        ("2026-02-30", "bad closed date '2026-02-30': no such day"),
        ("20261225", "bad closed date '20261225': write YYYY-MM-DD"),
        ("2026-W52-5", "write YYYY-MM-DD"),
        ("tomorrow", "bad closed date 'tomorrow'"),
    ],
)
def test_bad_closed_dates(closed: str, message: str) -> None:
    with pytest.raises(HoursError) as err:
        parse_hours("always", "UTC", [closed])
    assert message in str(err.value)


def test_hours_error_is_a_value_error() -> None:
    assert issubclass(HoursError, ValueError)


# The values ---------------------------------------------------------------------------


def test_always_in_a_zone() -> None:
    assert ServiceHours.always(NY) == ServiceHours.always(ZoneInfo(NY))
    assert ServiceHours.always(NY).tz.key == NY
    assert ServiceHours.always().tz.key == "UTC"
    assert ServiceHours.always().is_always
    with pytest.raises(HoursError, match="unknown time zone"):
        ServiceHours.always("Mars/Base")


def test_empty_schedule_means_always_open() -> None:
    hours = ServiceHours((), ZoneInfo("UTC"))
    assert hours == ServiceHours.always()
    assert hours.weekly == (WHOLE_DAY,) * 7


def test_closed_dates_make_always_not_always() -> None:
    hours = ServiceHours((), ZoneInfo("UTC"), frozenset({date(2026, 12, 25)}))
    assert not hours.is_always


def test_schedule_is_stored_sorted_and_merged() -> None:
    messy = ServiceHours(
        week(mon=(iv("13:00", "17:00"), iv("09:00", "12:00"), iv("11:00", "13:00"))),
        ZoneInfo("UTC"),
    )
    assert messy.weekly[0] == (iv("09:00", "17:00"),)


def test_week_must_have_seven_days() -> None:
    with pytest.raises(HoursError, match="7 days"):
        ServiceHours(((iv("09:00", "17:00"),),) * 5, ZoneInfo("UTC"))


def test_interval_checks() -> None:
    assert Interval(time(22), time(0)).end_minute == 24 * 60
    assert str(Interval(time(0), time(0))) == "00:00-24:00"
    with pytest.raises(HoursError, match="17:00-09:00: end before start"):
        Interval(time(17), time(9))
    with pytest.raises(HoursError, match="whole minutes"):
        Interval(time(9, 0, 30), time(17))
    with pytest.raises(HoursError, match="naive"):
        Interval(time(9, tzinfo=UTC), time(17))


# Formatting and describing -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "formatted"),
    [
        ("mon-fri 09:00-17:00; sat 10:00-14:00", "mon-fri 09:00-17:00; sat 10:00-14:00"),
        ("mon,wed 08:30-12:00, 13:00-17:00", "mon,wed 08:30-12:00, 13:00-17:00"),
        ("daily 09:00-17:00", "daily 09:00-17:00"),
        ("daily 00:00-24:00", "always"),
        ("never", "never"),
        ("sat,sun 10:00-14:00", "sat,sun 10:00-14:00"),
        ("mon,tue,wed,fri 9:00-17:00", "mon-wed,fri 09:00-17:00"),
        ("sun 22:00-02:00", "mon 00:00-02:00; sun 22:00-24:00"),
    ],
)
def test_format_hours(text: str, formatted: str) -> None:
    assert format_hours(parse_hours(text, "UTC")) == formatted


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "mon-fri 09:00-17:00; sat 10:00-14:00",
            "Mon–Fri 09:00–17:00, Sat 10:00–14:00 (America/Chicago)",
        ),
        (
            "mon,wed 08:30-12:00, 13:00-17:00",
            "Mon, Wed 08:30–12:00 and 13:00–17:00 (America/Chicago)",
        ),
        ("daily 09:00-17:00", "Daily 09:00–17:00 (America/Chicago)"),
        ("always", "Always open (America/Chicago)"),
        ("never", "Never open (America/Chicago)"),
        ("fri 22:00-02:00", "Fri 22:00–24:00, Sat 00:00–02:00 (America/Chicago)"),
    ],
)
def test_describe(text: str, line: str) -> None:
    assert describe(parse_hours(text, CHICAGO)) == line


def test_describe_lists_closed_dates_in_order() -> None:
    hours = parse_hours("mon-fri 09:00-17:00", NY, ["2027-01-01", "2026-12-25"])
    assert (
        describe(hours) == "Mon–Fri 09:00–17:00 (America/New_York); closed 2026-12-25, 2027-01-01"
    )


# is_open and next_change, without DST ------------------------------------------------


def test_open_from_start_up_to_end() -> None:
    hours = parse_hours("mon-fri 09:00-17:00", "UTC")
    # 2026-01-05 is a Monday.
    assert not is_open(hours, utc(2026, 1, 5, 8, 59, 59))
    assert is_open(hours, utc(2026, 1, 5, 9))
    assert is_open(hours, utc(2026, 1, 5, 16, 59, 59))
    assert not is_open(hours, utc(2026, 1, 5, 17))
    assert not is_open(hours, utc(2026, 1, 10, 12))  # Saturday


def test_is_open_in_the_queue_zone() -> None:
    hours = parse_hours("mon-fri 09:00-17:00", CHICAGO)
    # January: Chicago is UTC-6, so 09:00 there is 15:00 UTC.
    assert not is_open(hours, utc(2026, 1, 5, 14, 59))
    assert is_open(hours, utc(2026, 1, 5, 15))
    assert is_open(hours, utc(2026, 1, 5, 22, 59))
    assert not is_open(hours, utc(2026, 1, 5, 23))


def test_is_open_accepts_any_aware_datetime() -> None:
    hours = parse_hours("mon-fri 09:00-17:00", CHICAGO)
    assert is_open(hours, datetime(2026, 1, 5, 9, tzinfo=ZoneInfo(CHICAGO)))


def test_naive_datetimes_are_refused() -> None:
    hours = ServiceHours.always()
    with pytest.raises(ValueError, match="aware"):
        is_open(hours, datetime(2026, 1, 5, 9))
    with pytest.raises(ValueError, match="aware"):
        next_change(hours, datetime(2026, 1, 5, 9))


def test_end_of_day_and_overnight() -> None:
    hours = parse_hours("fri 22:00-02:00", "UTC")
    # 2026-01-09 is a Friday.
    assert is_open(hours, utc(2026, 1, 9, 23, 59, 59))
    assert is_open(hours, utc(2026, 1, 10, 0))
    assert is_open(hours, utc(2026, 1, 10, 1, 59))
    assert not is_open(hours, utc(2026, 1, 10, 2))
    # Midnight inside the overnight opening is not a change.
    assert next_change(hours, utc(2026, 1, 9, 22)) == utc(2026, 1, 10, 2)


def test_closed_date_closes_the_whole_local_day() -> None:
    hours = parse_hours("mon-fri 09:00-17:00", NY, ["2026-12-25"])
    assert not is_open(hours, utc(2026, 12, 25, 15))  # Friday 10:00 in New York
    assert is_open(hours, utc(2026, 12, 24, 15))
    # Thursday 16:00 EST: the next change is the close at 17:00, then Monday 09:00.
    assert changes(hours, utc(2026, 12, 24, 21), 2) == [
        utc(2026, 12, 24, 22),
        utc(2026, 12, 28, 14),
    ]


def test_closed_date_cuts_the_morning_part_of_an_overnight_opening() -> None:
    hours = parse_hours("fri 22:00-02:00", "UTC", ["2026-01-10"])
    assert is_open(hours, utc(2026, 1, 9, 23))
    assert not is_open(hours, utc(2026, 1, 10, 1))
    assert next_change(hours, utc(2026, 1, 9, 23)) == utc(2026, 1, 10)


def test_next_change_alternates() -> None:
    hours = parse_hours("mon 09:00-12:00, 13:00-17:00", "UTC")
    assert changes(hours, utc(2026, 1, 5), 5) == [
        utc(2026, 1, 5, 9),
        utc(2026, 1, 5, 12),
        utc(2026, 1, 5, 13),
        utc(2026, 1, 5, 17),
        utc(2026, 1, 12, 9),
    ]


def test_next_change_is_strictly_after() -> None:
    hours = parse_hours("mon 09:00-17:00", "UTC")
    assert next_change(hours, utc(2026, 1, 5, 9)) == utc(2026, 1, 5, 17)
    assert next_change(hours, utc(2026, 1, 5, 17)) == utc(2026, 1, 12, 9)


def test_next_change_is_in_utc() -> None:
    hours = parse_hours("mon 09:00-17:00", MADRID)
    nxt = next_change(hours, datetime(2026, 1, 5, 8, tzinfo=ZoneInfo(MADRID)))
    assert nxt == utc(2026, 1, 5, 8)
    assert nxt is not None and nxt.tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["always", "daily 00:00-24:00", "mon-sun 00:00-12:00, 12:00-24:00"]
)
@pytest.mark.parametrize("tz", ["UTC", NY, MADRID, "America/Havana", "America/Santiago"])
def test_always_open_never_changes(text: str, tz: str) -> None:
    hours = parse_hours(text, tz)
    # Across both 2026 DST changes of each zone.
    for at in (
        utc(2026, 3, 7),
        utc(2026, 3, 28),
        utc(2026, 4, 3),
        utc(2026, 10, 31),
        utc(2026, 9, 4),
    ):
        assert is_open(hours, at)
        assert next_change(hours, at) is None


def test_never_open_never_changes() -> None:
    hours = parse_hours("never", NY)
    assert not is_open(hours, utc(2026, 3, 8, 7))
    assert next_change(hours, utc(2026, 3, 8, 7)) is None


def test_next_change_horizon_is_fourteen_days() -> None:
    assert timedelta(days=14) == HORIZON
    # Mondays 2026-01-05 and 2026-01-12 closed: the next opening is exactly 14 days on.
    hours = parse_hours("mon 09:00-10:00", "UTC", ["2026-01-05", "2026-01-12"])
    assert next_change(hours, utc(2026, 1, 5, 9)) == utc(2026, 1, 19, 9)
    assert next_change(hours, utc(2026, 1, 5, 8, 59, 59)) is None
    later = parse_hours("mon 09:00-10:00", "UTC", ["2026-01-05", "2026-01-12", "2026-01-19"])
    assert next_change(later, utc(2026, 1, 5, 8)) is None


def test_next_change_of_a_long_opening_beyond_the_horizon() -> None:
    hours = parse_hours("always", "UTC", ["2026-02-01"])
    assert next_change(hours, utc(2026, 1, 1)) is None
    assert next_change(hours, utc(2026, 1, 20)) == utc(2026, 2, 1)
    assert next_change(hours, utc(2026, 2, 1, 5)) == utc(2026, 2, 2)


# DST -----------------------------------------------------------------------------------


def test_new_york_weekday_hours_follow_the_spring_change() -> None:
    hours = parse_hours("mon-fri 09:00-17:00", NY)
    # Friday 2026-03-06 is EST (UTC-5); Monday 2026-03-09 is EDT (UTC-4).
    assert changes(hours, utc(2026, 3, 6, 12), 3) == [
        utc(2026, 3, 6, 14),
        utc(2026, 3, 6, 22),
        utc(2026, 3, 9, 13),
    ]


def test_new_york_weekday_hours_follow_the_autumn_change() -> None:
    hours = parse_hours("mon-fri 09:00-17:00", NY)
    assert changes(hours, utc(2026, 10, 30, 12), 3) == [
        utc(2026, 10, 30, 13),
        utc(2026, 10, 30, 21),
        utc(2026, 11, 2, 14),
    ]


def test_madrid_hours_follow_both_changes() -> None:
    hours = parse_hours("daily 09:00-17:00", MADRID)
    # CET is UTC+1, CEST UTC+2; the changes are on 2026-03-29 and 2026-10-25.
    assert next_change(hours, utc(2026, 3, 28, 0)) == utc(2026, 3, 28, 8)
    assert next_change(hours, utc(2026, 3, 29, 0)) == utc(2026, 3, 29, 7)
    assert next_change(hours, utc(2026, 10, 24, 0)) == utc(2026, 10, 24, 7)
    assert next_change(hours, utc(2026, 10, 25, 0)) == utc(2026, 10, 25, 8)


def test_nonexistent_start_opens_when_the_clocks_jump() -> None:
    # 2026-03-08 in New York: 02:00 EST jumps to 03:00 EDT (07:00 UTC); 02:30 never happens.
    hours = parse_hours("sun 02:30-05:00", NY)
    assert not is_open(hours, utc(2026, 3, 8, 6, 59, 59))
    assert is_open(hours, utc(2026, 3, 8, 7))
    assert changes(hours, utc(2026, 3, 8, 6), 2) == [utc(2026, 3, 8, 7), utc(2026, 3, 8, 9)]


def test_nonexistent_end_closes_when_the_clocks_jump() -> None:
    hours = parse_hours("sun 00:00-02:30", NY)
    assert changes(hours, utc(2026, 3, 8, 4), 2) == [utc(2026, 3, 8, 5), utc(2026, 3, 8, 7)]


def test_opening_across_the_spring_gap_is_an_hour_shorter() -> None:
    hours = parse_hours("sun 01:00-04:00", NY)
    opens, closes = changes(hours, utc(2026, 3, 8), 2)
    assert (opens, closes) == (utc(2026, 3, 8, 6), utc(2026, 3, 8, 8))


def test_madrid_nonexistent_time() -> None:
    # 2026-03-29 in Madrid: 02:00 CET jumps to 03:00 CEST at 01:00 UTC.
    hours = parse_hours("sun 02:15-04:00", MADRID)
    assert changes(hours, utc(2026, 3, 29), 2) == [utc(2026, 3, 29, 1), utc(2026, 3, 29, 2)]


def test_ambiguous_start_is_the_first_occurrence_and_stays_open() -> None:
    # 2026-11-01 in New York: 01:00-02:00 happens twice, first EDT (05:00-06:00 UTC),
    # then EST (06:00-07:00 UTC).
    hours = parse_hours("sun 01:30-03:00", NY)
    assert not is_open(hours, utc(2026, 11, 1, 5, 29))
    assert is_open(hours, utc(2026, 11, 1, 5, 30))
    # 01:10 EST: the wall clock shows a time before 01:30, yet the queue stays open.
    assert is_open(hours, utc(2026, 11, 1, 6, 10))
    assert changes(hours, utc(2026, 11, 1, 4), 2) == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 8)]


def test_ambiguous_end_is_the_first_occurrence_and_does_not_reopen() -> None:
    hours = parse_hours("sun 00:00-01:30", NY)
    assert is_open(hours, utc(2026, 11, 1, 5, 29))
    assert not is_open(hours, utc(2026, 11, 1, 5, 30))
    # 01:10 EST is inside 00:00-01:30 by the wall clock, but the opening is over.
    assert not is_open(hours, utc(2026, 11, 1, 6, 10))
    assert next_change(hours, utc(2026, 11, 1, 5, 30)) == utc(2026, 11, 8, 5)


def test_madrid_ambiguous_time() -> None:
    # 2026-10-25 in Madrid: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    hours = parse_hours("sun 02:30-04:00", MADRID)
    assert changes(hours, utc(2026, 10, 24, 23), 2) == [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 3),
    ]
    assert is_open(hours, utc(2026, 10, 25, 1, 10))  # 02:10 CET


def test_overnight_opening_across_the_spring_change() -> None:
    hours = parse_hours("sat 22:00-04:00", NY)
    # Saturday 22:00 EST is 03:00 UTC; Sunday 04:00 EDT is 08:00 UTC.
    assert changes(hours, utc(2026, 3, 8), 2) == [utc(2026, 3, 8, 3), utc(2026, 3, 8, 8)]


def test_midnight_that_does_not_exist() -> None:
    # Cairo, 2026-04-24: clocks jump from 00:00 to 01:00 (at 22:00 UTC on the 23rd).
    hours = parse_hours("thu 20:00-02:00", "Africa/Cairo")
    assert changes(hours, utc(2026, 4, 23, 12), 2) == [utc(2026, 4, 23, 18), utc(2026, 4, 23, 23)]
    assert is_open(hours, utc(2026, 4, 23, 22))


def test_midnight_that_happens_after_a_repeated_hour() -> None:
    # Santiago, 2026-04-05: midnight goes back to 23:00 on the 4th (at 03:00 UTC), so
    # Saturday's 23:00-24:00 happens twice and 24:00 comes after the second time.
    hours = parse_hours("sat 22:00-24:00", "America/Santiago")
    assert changes(hours, utc(2026, 4, 4, 12), 2) == [utc(2026, 4, 5, 1), utc(2026, 4, 5, 4)]
    assert is_open(hours, utc(2026, 4, 5, 3, 30))


# Properties ----------------------------------------------------------------------------

ZONES = [
    "UTC",
    NY,
    MADRID,
    "Australia/Lord_Howe",  # 30-minute DST change
    "Asia/Kolkata",  # half-hour offset
    "America/Santiago",  # changes at midnight
    "Africa/Cairo",
    "Pacific/Chatham",
    "America/St_Johns",
]


@st.composite
def intervals(draw: st.DrawFn) -> Interval:
    start = draw(st.integers(0, 24 * 60 - 1))
    end = draw(st.integers(start + 1, 24 * 60))
    return Interval(time(start // 60, start % 60), time((end // 60) % 24, end % 60))


@st.composite
def service_hours(draw: st.DrawFn) -> ServiceHours:
    weekly = tuple(tuple(draw(st.lists(intervals(), max_size=3))) for _ in range(7))
    closed = draw(st.frozensets(st.dates(date(2025, 12, 1), date(2027, 1, 31)), max_size=6))
    return ServiceHours(weekly, ZoneInfo(draw(st.sampled_from(ZONES))), closed)


instants = st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31), timezones=st.just(UTC))


def _transitions() -> list[datetime]:
    """The 2026 UTC-offset changes of the zones above, found hour by hour."""
    found = []
    for key in ZONES:
        zone = ZoneInfo(key)
        at = utc(2026, 1, 1)
        while at.year == 2026:
            if (at + timedelta(hours=1)).astimezone(zone).utcoffset() != at.astimezone(
                zone
            ).utcoffset():
                found.append(at)
            at += timedelta(hours=1)
    return found


near_dst = st.builds(
    lambda t, minutes: t + timedelta(minutes=minutes),
    st.sampled_from(_transitions()),
    st.integers(-36 * 60, 36 * 60),
)


# The properties below draw whole weeks (7 days of up to 3 intervals, up to 6 closed
# dates, one of the 9 zones above, picked for their unusual offsets and DST rules), and
# almost all of their time goes into drawing them: 50 weeks per property, 200 in all, cover
# every zone many times over, while the DST cases are pinned by the explicit tests above.
WEEKS = settings(max_examples=50, deadline=None)


@WEEKS
@given(service_hours())
def test_format_parse_round_trip(hours: ServiceHours) -> None:
    text = format_hours(hours)
    again = parse_hours(text, hours.tz.key, [d.isoformat() for d in hours.closed])
    assert again == hours
    assert format_hours(again) == text


@WEEKS
@given(service_hours())
def test_describe_always_names_the_zone(hours: ServiceHours) -> None:
    assert f"({hours.tz.key})" in describe(hours)


@WEEKS
@given(service_hours(), st.one_of(instants, near_dst), st.floats(0, 1, exclude_max=True))
def test_is_open_is_constant_until_next_change(
    hours: ServiceHours, at: datetime, frac: float
) -> None:
    state = is_open(hours, at)
    nxt = next_change(hours, at)
    if nxt is None:
        assert is_open(hours, at + HORIZON * frac) == state
        return
    assert at < nxt <= at + HORIZON
    assert nxt.tzinfo is UTC
    assert is_open(hours, nxt) != state
    assert is_open(hours, nxt - timedelta(microseconds=1)) == state
    # timedelta * float rounds to the microsecond; keep the sample short of the change.
    between = min(at + (nxt - at) * frac, nxt - timedelta(microseconds=1))
    assert is_open(hours, between) == state


@WEEKS
@given(service_hours(), st.one_of(instants, near_dst))
def test_is_open_follows_the_wall_clock_away_from_dst_changes(
    hours: ServiceHours, at: datetime
) -> None:
    local = at.astimezone(hours.tz)
    offsets = {
        datetime.combine(local.date() + timedelta(days=d), time(0), hours.tz).utcoffset()
        for d in (-1, 0, 1, 2)
    }
    if len(offsets) != 1:
        return  # a DST change nearby: covered by the explicit tests above
    minute = local.hour * 60 + local.minute
    expected = local.date() not in hours.closed and any(
        i.start_minute <= minute < i.end_minute for i in hours.weekly[local.weekday()]
    )
    assert is_open(hours, at) == expected


@given(
    st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
    st.integers(0, 24 * 60 - 1),
    st.integers(0, 24 * 60 - 1),
)
def test_overnight_equals_its_two_halves(day: str, start: int, end: int) -> None:
    names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    if start <= end:
        return
    nxt = names[(names.index(day) + 1) % 7]
    whole = parse_hours(f"{day} {hhmm(start)}-{hhmm(end)}", "UTC")
    halves = f"{day} {hhmm(start)}-24:00" + (f"; {nxt} 00:00-{hhmm(end)}" if end else "")
    assert whole == parse_hours(halves, "UTC")
