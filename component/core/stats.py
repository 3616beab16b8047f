"""Statistics for the admin page: percentiles, bucketing by local hour and day, SVG bar
charts and CSV cells. Pure: the store counts and ranks in SQL, this module turns its rows
into what the page shows.

Definitions (the admin page repeats them for its readers):

- A chat counts only once the patron asked something (`asked_at` is set); its time for
  the date range, the hour of day and the day is `asked_at`, seen in the chosen zone.
- **answered**: an operator accepted it (`accepted_at` is set).
- **followed up by email**: its state is `followed-up`, or a ticket (offline question or
  referral) is linked to it. A chat an operator answered and then referred by email is
  both answered and followed up.
- **missed**: asked, never accepted, not followed up, and over (state `missed`, or
  `ended` without `accepted_at`).
- **open**: asked, not accepted, not followed up and still waiting or offered.
  So `asked = answered + missed + open + (followed up and not answered)`.
- **wait**: `accepted_at - asked_at` of answered chats (0 if an operator was quicker than
  the question); **duration**: `ended_at - accepted_at` of answered chats that ended.
- Percentiles are **nearest-rank**: the p-th percentile of n sorted values is the value
  at 1-based rank `ceil(p * n / 100)`. It is always one of the measured values (no
  interpolation), p100 is the maximum, and for n = 1 every percentile is that value. The
  store computes the same rank in SQL, `(p * n + 99) / 100` in integer arithmetic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from html import escape
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PERCENTILES = (50, 90, 99)

# Zones offered in the page's list (free text is accepted too, checked by `parse_zone`).
COMMON_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Paris",
    "Europe/Madrid",
    "Europe/Berlin",
    "Europe/Rome",
    "Europe/Amsterdam",
    "Europe/Stockholm",
    "Europe/Helsinki",
    "Europe/Athens",
    "America/St_Johns",
    "America/Halifax",
    "America/Toronto",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Vancouver",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Mexico_City",
    "America/Sao_Paulo",
    "Africa/Johannesburg",
    "Africa/Nairobi",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Perth",
    "Australia/Adelaide",
    "Australia/Sydney",
    "Pacific/Auckland",
)

# Longest date range the page accepts (a year, leap or not).
MAX_DAYS = 366
# The years a report or search may name: the day after 9999-12-31 and the instants just
# before 0001-01-01 in zones ahead of UTC do not exist (OverflowError in the arithmetic).
MIN_YEAR = 1970
MAX_YEAR = 9998

_ZONE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$")


class StatsError(ValueError):
    """Input the statistics cannot use (a bad zone, date or range), with a readable text."""


# Percentiles ----------------------------------------------------------------------------


def nearest_rank(n: int, p: int) -> int:
    """The 1-based rank of the p-th percentile among n sorted values: ceil(p * n / 100),
    at least 1. Integer arithmetic, exactly as the store's SQL does it."""
    if n < 1:
        raise ValueError("no values")
    if not 0 < p <= 100:
        raise ValueError("p must be in 1..100")
    return max(1, (p * n + 99) // 100)


def percentile(values: Iterable[float], p: int) -> float | None:
    """Nearest-rank percentile of `values` (None when there are none)."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[nearest_rank(len(ordered), p) - 1]


@dataclass(frozen=True, slots=True)
class Spread:
    """How a measure (seconds) spreads: how many values and their p50/p90/p99."""

    count: int = 0
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        ordered = sorted(values)
        if not ordered:
            return cls()
        n = len(ordered)
        p50, p90, p99 = (ordered[nearest_rank(n, p) - 1] for p in PERCENTILES)
        return cls(n, p50, p90, p99)


@dataclass(frozen=True, slots=True)
class Timing:
    """Wait (asked → accepted) and duration (accepted → ended) of some chats."""

    wait: Spread = field(default_factory=Spread)
    duration: Spread = field(default_factory=Spread)


# Counts ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counts:
    """The outcome counts of a set of asked chats (see the module's definitions)."""

    asked: int = 0
    answered: int = 0
    missed: int = 0
    followed_up: int = 0
    open: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.asked + other.asked,
            self.answered + other.answered,
            self.missed + other.missed,
            self.followed_up + other.followed_up,
            self.open + other.open,
        )

    @property
    def answered_share(self) -> float | None:
        """Answered / asked, or None when nothing was asked."""
        return self.answered / self.asked if self.asked else None


def total(counts: Iterable[Counts]) -> Counts:
    result = Counts()
    for c in counts:
        result = result + c
    return result


@dataclass(frozen=True, slots=True)
class StatsFilter:
    """Which chats to count: asked in [start, end) (UTC), in these queues (None: all), of
    this operator (None: any)."""

    start: datetime
    end: datetime
    queue_ids: frozenset[int] | None = None
    operator_id: int | None = None


@dataclass(frozen=True, slots=True)
class StatsReport:
    """What the store reports for a filter: counts per queue id, per operator id (None:
    chats no operator holds) and per UTC slot (start, in order); wait and duration
    percentiles of all the chats, per queue and per operator."""

    by_queue: dict[int, Counts]
    by_operator: dict[int | None, Counts]
    slots: list[tuple[datetime, Counts]]
    timing: Timing
    timing_by_queue: dict[int, Timing]
    timing_by_operator: dict[int | None, Timing]

    @property
    def counts(self) -> Counts:
        return total(self.by_queue.values())


# Time zones and ranges ------------------------------------------------------------------


def parse_zone(text: str) -> ZoneInfo:
    """A time zone from its IANA name ('Europe/Paris'); StatsError for anything else."""
    name = text.strip()
    if not name or len(name) > 64 or not _ZONE_KEY.match(name):
        raise StatsError("Enter a time zone name such as Europe/Paris or UTC.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise StatsError(f"Unknown time zone: {name}.") from None


def parse_day(text: str) -> date:
    """A date written YYYY-MM-DD (what `<input type=date>` sends)."""
    s = text.strip()
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", s):
        raise StatsError("Enter a date as YYYY-MM-DD.")
    try:
        day = date.fromisoformat(s)
    except ValueError:
        raise StatsError("Enter a real date as YYYY-MM-DD.") from None
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise StatsError(f"Enter a date from {MIN_YEAR} to {MAX_YEAR}.")
    return day


def check_range(first: date, last: date) -> None:
    if last < first:
        raise StatsError("The end date is before the start date.")
    if (last - first).days + 1 > MAX_DAYS:
        raise StatsError(f"Choose at most {MAX_DAYS} days.")


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) whose wall-clock time in `zone` is `day` 00:00 or later: an
    ambiguous midnight is its first occurrence, a midnight skipped by a DST jump is the
    instant of the jump."""
    naive = datetime.combine(day, time(0))
    candidates = [naive.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)]
    real = [u for u in candidates if u.astimezone(zone).replace(tzinfo=None) == naive]
    if real:
        return min(real)
    lo, hi = sorted(candidates)
    # The wall clock only moves forward across a gap: bisect to the second of the jump.
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0) if hi.microsecond else hi


def local_range(first: date, last: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) covering local days `first`..`last` inclusive."""
    return day_start(first, zone), day_start(last + timedelta(days=1), zone)


def slot_minutes(zone: ZoneInfo, start: datetime, end: datetime) -> int:
    """How finely the store must count (minutes) so that every slot lies within one local
    hour: 60 when the zone's offsets in [start, end) are whole hours, else 15 (every
    offset in use is a multiple of 15 minutes, e.g. +05:30, +05:45, -03:30)."""
    at = start
    while True:
        offset = at.astimezone(zone).utcoffset() or timedelta(0)
        if offset % timedelta(hours=1):
            return 15
        if at >= end:
            return 60
        at = min(end, at + timedelta(hours=12))


# Bucketing ------------------------------------------------------------------------------


def by_hour_of_day(slots: Iterable[tuple[datetime, Counts]], zone: ZoneInfo) -> list[Counts]:
    """24 counts, local hour 0..23, from the store's UTC slots (each slot's start decides
    its hour; slots are small enough that the whole slot is in that hour)."""
    hours = [Counts()] * 24
    for start, counts in slots:
        hour = start.astimezone(zone).hour
        hours[hour] = hours[hour] + counts
    return hours


def by_day(
    slots: Iterable[tuple[datetime, Counts]], zone: ZoneInfo, first: date, last: date
) -> list[tuple[date, Counts]]:
    """One entry per local day from `first` to `last` (zeros included)."""
    days: dict[date, Counts] = {}
    for start, counts in slots:
        day = start.astimezone(zone).date()
        days[day] = days.get(day, Counts()) + counts
    out = []
    day = first
    while day <= last:
        out.append((day, days.get(day, Counts())))
        day += timedelta(days=1)
    return out


# Showing numbers ------------------------------------------------------------------------


def format_seconds(seconds: float | None) -> str:
    """A duration for people: '45 s', '2 min 05 s', '1 h 02 min'; '—' for none."""
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def csv_seconds(seconds: float | None) -> str:
    """A duration for a CSV cell: seconds with one decimal, empty for none."""
    return "" if seconds is None else f"{seconds:.1f}"


_CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> str:
    """One CSV cell, guarded against formula injection: text a spreadsheet would run as
    a formula (starting with = + - @, or a tab or carriage return) gets a leading quote."""
    text = "" if value is None else str(value)
    if text.startswith(_CSV_TRIGGERS):
        return "'" + text
    return text


# SVG bar charts -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    label: str  # short, under the bar (left out in between when crowded)
    name: str  # in full, for the bar's own <title> and the chart's summary
    value: int


def _amount(value: int, unit: str) -> str:
    return f"{value} {unit[:-1] if value == 1 and unit.endswith('s') else unit}"


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50... that is at least `value` (at least 1)."""
    if value <= 1:
        return 1
    magnitude: int = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    raise AssertionError("unreachable")  # pragma: no cover


def _ticks(top: int) -> list[int]:
    if top <= 5:
        return list(range(top + 1))
    # top is 1, 2 or 5 times a power of ten: steps of 2, 5 or 10 times a smaller one.
    step = top // 4 if str(top).startswith("2") else top // 5
    return list(range(0, top + 1, step))


def _attr(value: str) -> str:
    return escape(value, quote=True)


def bar_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    bars: Sequence[Bar],
    width: int = 760,
    height: int = 240,
    label_every: int = 1,
    unit: str = "chats",
) -> str:
    """An accessible SVG bar chart as a string: `role="img"`, an `aria-label` of `title`
    and `description`, a `<title>` and `<desc>`, one `<rect class="bar">` per bar with its
    own `<title>`. Presentation attributes only (the page's CSP forbids `style`); every
    text is escaped. `chart_id` must be a plain identifier."""
    if not re.fullmatch(r"[a-z][a-z0-9-]*", chart_id):
        raise ValueError("chart_id must be a plain identifier")
    left, right, top, bottom = 44, 8, 12, 28
    plot_w = width - left - right
    plot_h = height - top - bottom
    highest = max((b.value for b in bars), default=0)
    y_top = _nice_ceiling(highest)
    parts = [
        f'<svg class="chart" id="{chart_id}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{_attr(title + ". " + description)}" '
        f'aria-describedby="{chart_id}-desc" preserveAspectRatio="xMinYMin meet">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
    ]
    for tick in _ticks(y_top):
        y = top + plot_h - plot_h * tick / y_top
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#d5d9e0" stroke-width="1"/>'
        )
        parts.append(
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="12" fill="#5a6270">{tick}</text>'
        )
    n = max(1, len(bars))
    slot = plot_w / n
    bar_w = max(1.0, slot * 0.78)
    every = max(1, label_every)
    for i, bar in enumerate(bars):
        x = left + i * slot + (slot - bar_w) / 2
        h = plot_h * bar.value / y_top
        y = top + plot_h - h
        tip = f"{bar.name}: {_amount(bar.value, unit)}"
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
            f'fill="#0b57d0"><title>{escape(tip)}</title></rect>'
        )
        if i % every == 0:
            parts.append(
                f'<text class="label" x="{x + bar_w / 2:.1f}" y="{height - bottom + 16}" '
                f'text-anchor="middle" font-size="12" fill="#5a6270">{escape(bar.label)}</text>'
            )
    parts.append(
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" '
        f'y2="{top + plot_h}" stroke="#5a6270" stroke-width="1"/>'
    )
    if highest == 0:
        parts.append(
            f'<text class="empty" x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" '
            'text-anchor="middle" font-size="14" fill="#5a6270">No chats in this period</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def describe_bars(bars: Sequence[Bar], unit: str = "chats") -> str:
    """A one-sentence summary for a chart's aria-label: the total and the busiest bar."""
    total_value = sum(b.value for b in bars)
    if total_value == 0:
        return f"No {unit} in this period."
    busiest = max(bars, key=lambda b: b.value)
    return f"{_amount(total_value, unit)} in all; the busiest: {busiest.name} with {busiest.value}."


__all__ = [
    "COMMON_ZONES",
    "MAX_DAYS",
    "MAX_YEAR",
    "MIN_YEAR",
    "PERCENTILES",
    "Bar",
    "Counts",
    "Spread",
    "StatsError",
    "StatsFilter",
    "StatsReport",
    "Timing",
    "bar_chart",
    "by_day",
    "by_hour_of_day",
    "check_range",
    "csv_safe",
    "csv_seconds",
    "day_start",
    "describe_bars",
    "format_seconds",
    "local_range",
    "nearest_rank",
    "parse_day",
    "parse_zone",
    "percentile",
    "slot_minutes",
    "total",
]
