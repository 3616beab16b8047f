"""Tests for component.core.stats: percentiles, local ranges and buckets across DST
changes, the SVG charts (escaped, no inline styles) and CSV cells."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from component.core.stats import (
    Bar,
    Counts,
    Spread,
    StatsError,
    bar_chart,
    by_day,
    by_hour_of_day,
    check_range,
    csv_safe,
    day_start,
    describe_bars,
    format_seconds,
    local_range,
    nearest_rank,
    parse_day,
    parse_zone,
    percentile,
    slot_minutes,
    total,
)

PARIS = ZoneInfo("Europe/Paris")
SVG = "{http://www.w3.org/2000/svg}"


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


# Percentiles ----------------------------------------------------------------------------


def test_nearest_rank_by_hand() -> None:
    values = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert percentile(values, 50) == 50  # rank ceil(5) = 5
    assert percentile(values, 90) == 90  # rank 9
    assert percentile(values, 99) == 100  # rank ceil(9.9) = 10
    assert percentile(reversed(values), 50) == 50  # order of input does not matter
    assert percentile([7], 50) == percentile([7], 99) == 7
    assert percentile([], 50) is None
    assert percentile([1, 2], 50) == 1 and percentile([1, 2], 51) == 2
    assert Spread.of([3, 1, 2]) == Spread(3, 2, 3, 3)
    assert Spread.of([]) == Spread(0, None, None, None)


def test_nearest_rank_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        nearest_rank(0, 50)
    with pytest.raises(ValueError):
        nearest_rank(3, 0)
    with pytest.raises(ValueError):
        nearest_rank(3, 101)


@given(st.integers(1, 10_000), st.integers(1, 100))
def test_integer_rank_is_the_ceiling(n: int, p: int) -> None:
    # The store ranks in SQL with (p * n + 99) / 100; it must be ceil(p * n / 100).
    assert nearest_rank(n, p) == max(1, math.ceil(p * n / 100))


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=200), st.integers(1, 100))
def test_percentile_is_a_value_with_enough_below(values: list[float], p: int) -> None:
    got = percentile(values, p)
    assert got in values
    at_or_below = sum(1 for v in values if v <= got)
    assert at_or_below / len(values) >= p / 100
    below = sum(1 for v in values if v < got)
    assert below / len(values) < p / 100


# Zones, dates, ranges -------------------------------------------------------------------


def test_parse_zone_and_dates() -> None:
    assert parse_zone(" Europe/Paris ") == PARIS
    assert parse_zone("UTC") == ZoneInfo("UTC")
    for bad in ("", "Mars/Olympus", "../etc/passwd", "Europe/Paris; DROP", "/etc/localtime"):
        with pytest.raises(StatsError):
            parse_zone(bad)
    assert parse_day("2026-03-29") == date(2026, 3, 29)
    for bad in ("2026-02-30", "20260329", "2026-W13-7", "yesterday"):
        with pytest.raises(StatsError):
            parse_day(bad)
    check_range(date(2026, 1, 1), date(2026, 12, 31))
    with pytest.raises(StatsError, match="before"):
        check_range(date(2026, 2, 1), date(2026, 1, 1))
    with pytest.raises(StatsError, match="at most"):
        check_range(date(2025, 1, 1), date(2026, 1, 2))


def test_local_days_across_dst_changes() -> None:
    # Paris springs forward on 2026-03-29 (23-hour day) and falls back on 2026-10-25.
    start, end = local_range(date(2026, 3, 29), date(2026, 3, 29), PARIS)
    assert (start, end) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert end - start == timedelta(hours=23)
    start, end = local_range(date(2026, 10, 25), date(2026, 10, 25), PARIS)
    assert (start, end) == (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    assert end - start == timedelta(hours=25)


def test_a_skipped_midnight_starts_the_day_at_the_jump() -> None:
    # Santiago (Chile) springs forward at midnight: 2026-09-06 00:00 does not exist.
    santiago = ZoneInfo("America/Santiago")
    start = day_start(date(2026, 9, 6), santiago)
    assert start.astimezone(santiago).replace(tzinfo=None) == datetime(2026, 9, 6, 1, 0)
    assert (start - timedelta(seconds=1)).astimezone(santiago).date() == date(2026, 9, 5)


def test_slot_size_follows_the_zone_offsets() -> None:
    jan, dec = utc(2026, 1, 1), utc(2026, 12, 31)
    assert slot_minutes(ZoneInfo("UTC"), jan, dec) == 60
    assert slot_minutes(PARIS, jan, dec) == 60
    assert slot_minutes(ZoneInfo("Asia/Kolkata"), jan, dec) == 15  # +05:30
    assert slot_minutes(ZoneInfo("Asia/Kathmandu"), jan, dec) == 15  # +05:45
    # Lord Howe Island is +10:30 in winter and +11:00 in summer (DST of half an hour).
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    assert slot_minutes(lord_howe, utc(2026, 12, 1), utc(2027, 1, 31)) == 60
    assert slot_minutes(lord_howe, utc(2026, 12, 1), utc(2027, 4, 30)) == 15


def test_buckets_across_spring_forward() -> None:
    one = Counts(asked=1, answered=1)
    slots = [
        (utc(2026, 3, 28, 22, 30), one),  # 23:30 CET on the 28th
        (utc(2026, 3, 28, 23), one),  # 00:00 CET on the 29th
        (utc(2026, 3, 29, 0, 59), one),  # 01:59 CET
        (utc(2026, 3, 29, 1), one),  # 03:00 CEST: 02:00 never happened
        (utc(2026, 3, 29, 21, 59), one),  # 23:59 CEST on the 29th
        (utc(2026, 3, 29, 22), one),  # 00:00 CEST on the 30th
    ]
    hours = by_hour_of_day(slots, PARIS)
    assert len(hours) == 24
    assert [hours[h].asked for h in (0, 1, 2, 3, 23)] == [2, 1, 0, 1, 2]
    days = by_day(slots, PARIS, date(2026, 3, 28), date(2026, 3, 30))
    assert [(d.isoformat(), c.asked) for d, c in days] == [
        ("2026-03-28", 1),
        ("2026-03-29", 4),
        ("2026-03-30", 1),
    ]
    assert total(c for _, c in days) == Counts(asked=6, answered=6)


def test_buckets_across_fall_back() -> None:
    one = Counts(asked=1)
    slots = [
        (utc(2026, 10, 24, 22), one),  # 00:00 CEST on the 25th
        (utc(2026, 10, 25, 0, 30), one),  # 02:30 CEST
        (utc(2026, 10, 25, 1, 30), one),  # 02:30 CET: the hour repeats
        (utc(2026, 10, 25, 22, 59), one),  # 23:59 CET on the 25th
        (utc(2026, 10, 25, 23), one),  # the 26th
    ]
    hours = by_hour_of_day(slots, PARIS)
    assert hours[2].asked == 2 and hours[0].asked == 2 and hours[23].asked == 1
    days = by_day(slots, PARIS, date(2026, 10, 24), date(2026, 10, 26))
    assert [c.asked for _, c in days] == [0, 4, 1]


def test_half_hour_zone_needs_quarter_slots() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    one = Counts(asked=1)
    # 09:00 and 09:30 UTC are 14:30 and 15:00 in Kolkata: different local hours.
    hours = by_hour_of_day([(utc(2026, 3, 2, 9), one), (utc(2026, 3, 2, 9, 30), one)], kolkata)
    assert hours[14].asked == 1 and hours[15].asked == 1


# Showing ----------------------------------------------------------------------------------


def test_format_seconds() -> None:
    assert format_seconds(None) == "—"
    assert format_seconds(0) == "0 s"
    assert format_seconds(44.6) == "45 s"
    assert format_seconds(125) == "2 min 05 s"
    assert format_seconds(3720) == "1 h 02 min"


def test_csv_cells_cannot_become_formulas() -> None:
    for evil in ('=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"):
        assert csv_safe(evil) == "'" + evil
    assert csv_safe("Ask a librarian") == "Ask a librarian"
    assert csv_safe(12) == "12" and csv_safe(None) == "" and csv_safe("") == ""
    assert csv_safe("a=b") == "a=b"


def _chart(bars: list[Bar], **kw: object) -> str:
    return bar_chart(
        chart_id="chart-test",
        title=str(kw.get("title", "Chats per hour")),
        description=describe_bars(bars),
        bars=bars,
    )


def test_chart_is_accessible_svg_with_bars() -> None:
    bars = [Bar(f"{h:02d}", f"{h:02d}:00–{h + 1:02d}:00", h % 5) for h in range(24)]
    svg = _chart(bars)
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-label", "").startswith("Chats per hour. 46 chats in all; the busiest: 04")
    assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}desc") is not None
    rects = root.findall(f"{SVG}rect")
    assert len(rects) == 24
    heights = [float(r.get("height", "0")) for r in rects]
    assert heights[0] == 0 and heights[4] > heights[3] > heights[1] > 0
    first_tip = rects[1].find(f"{SVG}title")
    assert first_tip is not None and first_tip.text == "01:00–02:00: 1 chat"
    # The CSP forbids inline styles: presentation attributes only.
    assert "style=" not in svg and "<style" not in svg


def test_chart_escapes_every_label() -> None:
    evil = '<script>alert("x")</script>&'
    bars = [Bar(evil, evil, 3), Bar("ok", "ok", 1)]
    svg = _chart(bars, title=evil)
    assert "<script>" not in svg
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in svg
    root = ET.fromstring(svg)  # still well-formed
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == evil
    assert evil in root.get("aria-label", "")
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert evil in texts


def test_empty_chart_says_so() -> None:
    bars = [Bar(str(d), f"day {d}", 0) for d in range(30)]
    svg = _chart(bars)
    assert "No chats in this period" in svg
    assert ET.fromstring(svg).get("aria-label", "").endswith("No chats in this period.")
    with pytest.raises(ValueError):
        bar_chart(chart_id='x" onload="alert(1)', title="t", description="d", bars=bars)


def test_crowded_labels_are_thinned() -> None:
    bars = [Bar(f"d{d}", f"day {d}", 1) for d in range(100)]
    svg = bar_chart(chart_id="days", title="t", description="d", bars=bars, label_every=10)
    labels = re.findall(r'<text class="label"[^>]*>([^<]*)</text>', svg)
    assert labels == [f"d{d}" for d in range(0, 100, 10)]
