"""Tests for component.core.escalation: when a burst of chats calls the on-call person."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from component.core.escalation import (
    EscalationRule,
    RuleError,
    WindowKind,
    describe,
    parse_rule,
    should_escalate,
)

ZONE = ZoneInfo("UTC")
NY = ZoneInfo("America/New_York")
FOUR_IN_TEN = EscalationRule.sliding(4, timedelta(minutes=10))
FOUR_IN_FIRST_TWENTY = EscalationRule.hour_start(4, 20)


def at(h: int, mi: int = 0, s: int = 0, *, day: int = 10) -> datetime:
    """An instant on Saturday 2026-01-10, UTC."""
    return datetime(2026, 1, day, h, mi, s, tzinfo=UTC)


def minutes(*marks: int, h: int = 10) -> list[datetime]:
    return [at(h) + timedelta(minutes=m) for m in marks]


# Parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("4 in 10m", FOUR_IN_TEN),
        ("4 chats within 10 minutes", FOUR_IN_TEN),
        ("  4 Chats  WITHIN 10 Minutes. ", FOUR_IN_TEN),
        ("4 in 10 min", FOUR_IN_TEN),
        ("4 within 10mins", FOUR_IN_TEN),
        ("4 chats in any 10 minutes", FOUR_IN_TEN),
        ("4 requests in the last 10 minutes", FOUR_IN_TEN),
        ("4 in past 10 minutes", FOUR_IN_TEN),
        ("four chats arrive within ten minutes", FOUR_IN_TEN),
        ("4 in 1h", EscalationRule.sliding(4, timedelta(hours=1))),
        ("4 in an hour", EscalationRule.sliding(4, timedelta(hours=1))),
        ("5 chats within 2 hours", EscalationRule.sliding(5, timedelta(hours=2))),
        ("twenty-five in 90m", EscalationRule.sliding(25, timedelta(minutes=90))),
        ("2 in 1 minute", EscalationRule.sliding(2, timedelta(minutes=1))),
        ("4 in 24 hrs", EscalationRule.sliding(4, timedelta(hours=24))),
        ("4 in first 20m of hour", FOUR_IN_FIRST_TWENTY),
        ("4 chats in the first 20 minutes of an hour", FOUR_IN_FIRST_TWENTY),
        ("four in the first twenty minutes of an hour", FOUR_IN_FIRST_TWENTY),
        ("4 within first 20 min of each hour", FOUR_IN_FIRST_TWENTY),
        ("4 in the first 20 minutes after the hour", FOUR_IN_FIRST_TWENTY),
        ("4 in the first 20 minutes past every hour", FOUR_IN_FIRST_TWENTY),
        ("3 in first 1h of hour", EscalationRule.hour_start(3, 60)),
    ],
)
def test_parse_rule(text: str, rule: EscalationRule) -> None:
    assert parse_rule(text) == rule


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty rule"),
        ("   ", "empty rule"),
        ("1 in 10m", "the count must be at least 2, not 1"),
        ("0 in 10m", "at least 2"),
        ("4 in 0m", "from 1 minute to 24 hours, not 0 minutes"),
        ("4 in 25h", "from 1 minute to 24 hours, not 25 hours"),
        ("4 in 1441 minutes", "not 1441 minutes"),
        ("4 in first 90m of hour", "from 1 to 60 minutes, not 90 minutes"),
        ("4 in first 0m of hour", "from 1 to 60 minutes"),
        ("4 in 10s", "unknown unit 's'"),
        ("4 in 10 fortnights", "unknown unit 'fortnights'"),
        ("fourty in 10m", "unknown number 'fourty'"),
        ("4 in 10", "give a unit"),
        ("4 in the first 20 minutes", "cannot read the rule"),
        ("4 in 10m or so", "cannot read the rule '4 in 10m or so'"),
        ("lots in 10m", "unknown number 'lots'"),
        ("-4 in 10m", "cannot read the rule"),
        ("4", "cannot read the rule"),
    ],
)
def test_parse_rule_errors(text: str, message: str) -> None:
    with pytest.raises(RuleError) as err:
        parse_rule(text)
    assert message in str(err.value)


def test_rule_error_is_a_value_error() -> None:
    assert issubclass(RuleError, ValueError)


# The value ------------------------------------------------------------------------------


def test_constructors() -> None:
    assert FOUR_IN_TEN.kind is WindowKind.SLIDING
    assert FOUR_IN_TEN.first_minutes is None
    assert FOUR_IN_FIRST_TWENTY.kind is WindowKind.HOUR_START
    assert FOUR_IN_FIRST_TWENTY.first_minutes == 20
    assert FOUR_IN_FIRST_TWENTY.window == timedelta(minutes=20)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: EscalationRule.sliding(1, timedelta(minutes=10)), "at least 2"),
        (lambda: EscalationRule.sliding(4, timedelta(seconds=90)), "whole minutes"),
        (lambda: EscalationRule.sliding(4, timedelta(0)), "from 1 minute"),
        (lambda: EscalationRule.sliding(4, timedelta(minutes=-10)), "from 1 minute"),
        (lambda: EscalationRule.sliding(4, timedelta(days=2)), "not 48 hours"),
        (lambda: EscalationRule.hour_start(4, 0), "from 1 to 60"),
        (lambda: EscalationRule.hour_start(4, 61), "from 1 to 60"),
    ],
)
def test_rules_out_of_bounds(build: Callable[[], EscalationRule], message: str) -> None:
    with pytest.raises(RuleError, match=message):
        build()


# Describing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (FOUR_IN_TEN, "4 chats within 10 minutes"),
        (EscalationRule.sliding(2, timedelta(minutes=1)), "2 chats within 1 minute"),
        (EscalationRule.sliding(4, timedelta(hours=1)), "4 chats within 1 hour"),
        (EscalationRule.sliding(4, timedelta(minutes=90)), "4 chats within 90 minutes"),
        (EscalationRule.sliding(4, timedelta(hours=24)), "4 chats within 24 hours"),
        (FOUR_IN_FIRST_TWENTY, "4 chats in the first 20 minutes of an hour"),
        (EscalationRule.hour_start(4, 1), "4 chats in the first 1 minute of an hour"),
        (EscalationRule.hour_start(4, 60), "4 chats in the first 60 minutes of an hour"),
    ],
)
def test_describe(rule: EscalationRule, text: str) -> None:
    assert describe(rule) == text
    assert parse_rule(text) == rule


rules = st.one_of(
    st.builds(
        EscalationRule.sliding,
        st.integers(2, 500),
        st.integers(1, 24 * 60).map(lambda m: timedelta(minutes=m)),
    ),
    st.builds(EscalationRule.hour_start, st.integers(2, 500), st.integers(1, 60)),
)


@given(rules)
def test_describe_parse_round_trip(rule: EscalationRule) -> None:
    assert parse_rule(describe(rule)) == rule


@given(st.integers(2, 1000), st.integers(1, 24 * 60))
def test_compact_form(count: int, window: int) -> None:
    rule = EscalationRule.sliding(count, timedelta(minutes=window))
    assert parse_rule(f"{count} in {window}m") == rule
    if window <= 60:
        assert parse_rule(f"{count} in first {window}m of hour") == EscalationRule.hour_start(
            count, window
        )


# Sliding windows -------------------------------------------------------------------------


def test_four_within_ten_minutes_trips() -> None:
    arrivals = minutes(0, 3, 6, 9)
    assert not should_escalate(FOUR_IN_TEN, arrivals[:3], arrivals[2], ZONE, None)
    assert should_escalate(FOUR_IN_TEN, arrivals, arrivals[3], ZONE, None)


def test_sliding_window_includes_both_ends() -> None:
    assert should_escalate(FOUR_IN_TEN, minutes(0, 3, 6, 10), at(10, 10), ZONE, None)
    late = [*minutes(0, 3, 6), at(10, 10) + timedelta(microseconds=1)]
    assert not should_escalate(FOUR_IN_TEN, late, late[-1], ZONE, None)


def test_spread_out_arrivals_do_not_trip() -> None:
    arrivals = minutes(0, 5, 11, 16, 22, 27)
    assert not any(should_escalate(FOUR_IN_TEN, arrivals, a, ZONE, None) for a in arrivals)


def test_arrival_order_does_not_matter() -> None:
    assert should_escalate(FOUR_IN_TEN, minutes(9, 0, 6, 3), at(10, 9), ZONE, None)


def test_arrivals_after_now_are_ignored() -> None:
    assert not should_escalate(FOUR_IN_TEN, minutes(0, 3, 6, 12), at(10, 6), ZONE, None)


def test_a_late_check_on_a_sliding_window_sees_only_the_window() -> None:
    assert should_escalate(FOUR_IN_TEN, minutes(0, 3, 6, 9), at(10, 10), ZONE, None)
    assert not should_escalate(FOUR_IN_TEN, minutes(0, 3, 6, 9), at(10, 10, 1), ZONE, None)


def test_one_call_per_sliding_burst() -> None:
    burst = minutes(0, 3, 6, 9)
    called = at(10, 9)
    assert should_escalate(FOUR_IN_TEN, burst, called, ZONE, None)
    # The same check again, and the burst going on: no second call.
    assert not should_escalate(FOUR_IN_TEN, burst, called, ZONE, called)
    more = [*burst, *minutes(12, 14, 17, 18)]
    assert not should_escalate(FOUR_IN_TEN, more, at(10, 12), ZONE, called)
    assert not should_escalate(FOUR_IN_TEN, more, at(10, 18), ZONE, called)
    # A window that starts exactly at the call still includes it.
    assert not should_escalate(FOUR_IN_TEN, more, at(10, 19), ZONE, called)
    # Four new arrivals in a window wholly after the call: a new burst.
    again = [*more, at(10, 19, 30)]
    assert should_escalate(FOUR_IN_TEN, again, at(10, 19, 30), ZONE, called)


def test_old_arrivals_do_not_count_after_a_call() -> None:
    called = at(10, 9)
    # Twenty minutes later, only three chats since the call fall in the window.
    arrivals = [*minutes(0, 3, 6, 9), *minutes(21, 25, 29)]
    assert not should_escalate(FOUR_IN_TEN, arrivals, at(10, 29), ZONE, called)
    assert should_escalate(FOUR_IN_TEN, [*arrivals, at(10, 30)], at(10, 30), ZONE, called)


def test_an_old_call_does_not_block_a_new_burst() -> None:
    called = at(8, 0)
    assert should_escalate(FOUR_IN_TEN, minutes(0, 3, 6, 9), at(10, 9), ZONE, called)


# Hour-start windows ----------------------------------------------------------------------


def test_four_in_the_first_twenty_minutes_trips() -> None:
    arrivals = minutes(1, 5, 10, 19)
    assert should_escalate(FOUR_IN_FIRST_TWENTY, arrivals, at(10, 19), ZONE, None)
    assert not should_escalate(FOUR_IN_FIRST_TWENTY, arrivals[:3], at(10, 10), ZONE, None)


def test_hour_start_window_ends_before_minute_twenty() -> None:
    arrivals = minutes(1, 5, 10, 20)
    assert not should_escalate(FOUR_IN_FIRST_TWENTY, arrivals, at(10, 20), ZONE, None)


def test_hour_start_window_counts_only_this_hour() -> None:
    # Four chats within ten minutes, but across the hour boundary.
    arrivals = [at(9, 55), at(9, 58), at(10, 1), at(10, 2)]
    assert not should_escalate(FOUR_IN_FIRST_TWENTY, arrivals, at(10, 2), ZONE, None)
    assert should_escalate(FOUR_IN_TEN, arrivals, at(10, 2), ZONE, None)


def test_hour_start_rule_stays_tripped_for_the_rest_of_the_hour() -> None:
    arrivals = minutes(1, 5, 10, 19)
    assert should_escalate(FOUR_IN_FIRST_TWENTY, arrivals, at(10, 45), ZONE, None)
    assert should_escalate(FOUR_IN_FIRST_TWENTY, arrivals, at(10, 59, 59), ZONE, None)
    assert not should_escalate(FOUR_IN_FIRST_TWENTY, arrivals, at(11, 0), ZONE, None)


def test_one_call_per_hour() -> None:
    called = at(10, 19)
    arrivals = [*minutes(1, 5, 10, 19), *minutes(25, 30, 35, 40)]
    assert not should_escalate(FOUR_IN_FIRST_TWENTY, arrivals, at(10, 40), ZONE, called)
    # A late call (at 10:45) still blocks only its own hour.
    next_hour = [*arrivals, *minutes(2, 4, 6, 8, h=11)]
    assert should_escalate(FOUR_IN_FIRST_TWENTY, next_hour, at(11, 8), ZONE, at(10, 45))


def test_hour_boundary_is_in_the_queue_zone() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30: local hours start at half past in UTC
    arrivals = minutes(31, 35, 40, 45, h=4)  # 10:01-10:15 in Kolkata
    assert should_escalate(FOUR_IN_FIRST_TWENTY, arrivals, at(4, 45), kolkata, None)
    assert not should_escalate(FOUR_IN_FIRST_TWENTY, arrivals, at(4, 45), ZONE, None)


def test_hour_start_in_a_repeated_hour() -> None:
    # 2026-11-01 in New York: 01:00 EDT is 05:00 UTC, 01:00 EST is 06:00 UTC.
    first_pass = [datetime(2026, 11, 1, 5, m, tzinfo=UTC) for m in (1, 5, 10)]
    second_pass = [datetime(2026, 11, 1, 6, m, tzinfo=UTC) for m in (1, 5, 10, 15)]
    now = datetime(2026, 11, 1, 6, 1, tzinfo=UTC)
    assert not should_escalate(FOUR_IN_FIRST_TWENTY, [*first_pass, now], now, NY, None)
    now = second_pass[-1]
    assert should_escalate(FOUR_IN_FIRST_TWENTY, second_pass, now, NY, None)
    # A call in the first 01:00 hour does not block the second one.
    assert should_escalate(FOUR_IN_FIRST_TWENTY, second_pass, now, NY, first_pass[-1])


def test_hour_start_after_the_spring_change() -> None:
    # 2026-03-08 in New York: 03:00 EDT is 07:00 UTC, straight after 01:59 EST.
    arrivals = [datetime(2026, 3, 8, 7, m, tzinfo=UTC) for m in (0, 5, 10, 15)]
    assert should_escalate(FOUR_IN_FIRST_TWENTY, arrivals, arrivals[-1], NY, None)
    before = [datetime(2026, 3, 8, 6, m, tzinfo=UTC) for m in (50, 55)] + arrivals[:2]
    assert not should_escalate(FOUR_IN_FIRST_TWENTY, before, before[-1], NY, None)


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 1, 10, 10)
    with pytest.raises(ValueError, match="aware"):
        should_escalate(FOUR_IN_TEN, [], naive, ZONE, None)
    with pytest.raises(ValueError, match="aware"):
        should_escalate(FOUR_IN_TEN, [naive], at(10), ZONE, None)
    with pytest.raises(ValueError, match="aware"):
        should_escalate(FOUR_IN_TEN, [], at(10), ZONE, naive)


# Properties ------------------------------------------------------------------------------

small_rules = st.one_of(
    st.builds(
        EscalationRule.sliding,
        st.integers(2, 6),
        st.integers(1, 120).map(lambda m: timedelta(minutes=m)),
    ),
    st.builds(EscalationRule.hour_start, st.integers(2, 6), st.integers(1, 60)),
)
zones = st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]).map(
    ZoneInfo
)
# Arrivals over a few hours, with seconds, so bursts and boundaries both happen.
offsets = st.lists(st.integers(0, 6 * 3600), max_size=40)
START = datetime(2026, 11, 1, 3, tzinfo=UTC)  # spans the New York autumn change


def arrivals_from(seconds: list[int]) -> list[datetime]:
    return sorted(START + timedelta(seconds=s) for s in seconds)


def window_start(rule: EscalationRule, now: datetime, tz: ZoneInfo) -> datetime:
    if rule.kind is WindowKind.SLIDING:
        return now - rule.window
    return now.astimezone(tz).replace(minute=0, second=0, microsecond=0).astimezone(UTC)


@given(small_rules, zones, offsets, st.integers(0, 6 * 3600))
def test_without_a_past_call_it_is_a_count(
    rule: EscalationRule, tz: ZoneInfo, seconds: list[int], now_s: int
) -> None:
    arrivals = arrivals_from(seconds)
    now = START + timedelta(seconds=now_s)
    start = window_start(rule, now, tz)
    if rule.kind is WindowKind.SLIDING:
        n = sum(start <= a <= now for a in arrivals)
    else:
        n = sum(start <= a < start + rule.window and a <= now for a in arrivals)
    assert should_escalate(rule, arrivals, now, tz, None) == (n >= rule.count)


@given(small_rules, zones, offsets, st.integers(0, 6 * 3600), st.integers(0, 6 * 3600))
def test_more_arrivals_never_untrip(
    rule: EscalationRule, tz: ZoneInfo, seconds: list[int], extra: int, now_s: int
) -> None:
    arrivals = arrivals_from(seconds)
    now = START + timedelta(seconds=now_s)
    if should_escalate(rule, arrivals, now, tz, None):
        more = arrivals_from([*seconds, extra])
        assert should_escalate(rule, more, now, tz, None)


@given(small_rules, zones, offsets, st.integers(0, 6 * 3600))
def test_never_twice_for_the_same_check(
    rule: EscalationRule, tz: ZoneInfo, seconds: list[int], now_s: int
) -> None:
    arrivals = arrivals_from(seconds)
    now = START + timedelta(seconds=now_s)
    if should_escalate(rule, arrivals, now, tz, None):
        assert not should_escalate(rule, arrivals, now, tz, now)


@given(small_rules, zones, offsets)
def test_calls_as_a_service_would_make_them(
    rule: EscalationRule, tz: ZoneInfo, seconds: list[int]
) -> None:
    """Ask at every arrival, as the service does, and check the calls it would make."""
    arrivals = arrivals_from(seconds)
    calls: list[datetime] = []
    for i, now in enumerate(arrivals):
        seen = arrivals[: i + 1]
        if should_escalate(rule, seen, now, tz, calls[-1] if calls else None):
            calls.append(now)
    for previous, call in itertools.pairwise(calls):
        # No arrival counts towards two calls: each call's window begins after the last.
        start = window_start(rule, call, tz)
        assert start > previous
        fresh = [a for a in arrivals if previous < a <= call and a >= start]
        assert len(fresh) >= rule.count
        if rule.kind is WindowKind.SLIDING:
            assert call - previous > rule.window
        else:
            assert window_start(rule, previous, tz) < start  # a later clock hour


@pytest.mark.parametrize(
    "text",
    [
        "4 in 99999999999999999999m",
        "4 in 999999999999999999999999h",
        "99999999999999999999 in 10m",
        "99999999999999999999 in the first 10 minutes of the hour",
    ],
)
def test_numbers_too_large_for_a_rule_are_refused(text: str) -> None:
    with pytest.raises(RuleError):
        parse_rule(text)
