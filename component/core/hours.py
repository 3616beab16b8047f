"""Service hours: when a queue is open, in the queue's own time zone, minus closed days.

Admins type hours as compact text (`parse_hours`); the service asks `is_open` when it
computes a queue's status and `next_change` to know when to look again; the admin pages
show `describe` and put `format_hours` back into the edit form.

The text format, one clause per day group, clauses separated by `;` or new lines::

    mon-fri 09:00-17:00; sat 10:00-14:00
    mon,wed 08:30-12:00, 13:00-17:00
    fri-mon 22:00-02:00          (day ranges may wrap past Sunday)
    daily 00:00-24:00            (also: weekdays, weekends)
    always                       (or an empty text)
    never

Rules, chosen so that what an admin types means one thing only:

- Days are English names, three letters or in full, any case; `a-b` is a range.
- Times are `H:MM` or `HH:MM` on the 24-hour clock; `24:00` may only end an interval.
- An interval whose end is earlier than its start runs overnight: `22:00-02:00` on Friday
  is Friday 22:00-24:00 plus Saturday 00:00-02:00, and is stored split that way. An end
  equal to the start is an error (`00:00-24:00` is the whole day); `22:00-00:00` is
  22:00 until midnight.
- Clauses add up: overlapping or touching intervals merge, so the same schedule always has
  the same stored (and formatted) form.
- A closed date closes that local calendar day from midnight to midnight, including the
  after-midnight part of an overnight interval started the evening before.

Local times that a DST change makes ambiguous or skips are resolved as "the first moment
the wall clock shows that time or later": an ambiguous time is its first occurrence, and a
skipped one is the instant the clocks jump. So an interval is one unbroken stretch of real
time, even across a change, and the queue never flaps open and shut in a repeated hour.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_GROUPS: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {
        "daily": (0, 1, 2, 3, 4, 5, 6),
        "weekdays": (0, 1, 2, 3, 4),
        "weekends": (5, 6),
        "weekend": (5, 6),
    }
)
_MIDNIGHT = time(0)
_DAY_MINUTES = 24 * 60
# next_change looks this far ahead; far enough for any weekly schedule, short enough to
# stay cheap when holidays close every opening in sight.
HORIZON = timedelta(days=14)

_TIME_RE = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Dashes people paste from word processors count as the plain one.
_DASHES_RE = re.compile(r"\s*[-\u2010-\u2015]\s*")


class HoursError(ValueError):
    """Service hours that cannot be read; the message names the bad part."""


@dataclass(frozen=True, slots=True)
class Interval:
    """An opening within one local day, from `start` up to (not including) `end`.

    Both are naive whole-minute times. `end` of 00:00 means 24:00, the end of the day,
    so `Interval(time(0), time(0))` is the whole day.
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        for t in (self.start, self.end):
            if t.tzinfo is not None or t.second or t.microsecond:
                raise HoursError(f"{t.isoformat()}: service hours are naive whole minutes")
        if self.start_minute >= self.end_minute:
            raise HoursError(f"{self}: end before start")

    @property
    def start_minute(self) -> int:
        return self.start.hour * 60 + self.start.minute

    @property
    def end_minute(self) -> int:
        """Minutes since midnight, with 24:00 as 1440."""
        if self.end == _MIDNIGHT:
            return _DAY_MINUTES
        return self.end.hour * 60 + self.end.minute

    def __str__(self) -> str:
        return f"{_fmt_minute(self.start_minute)}-{_fmt_minute(self.end_minute)}"


_WHOLE_DAY = (Interval(_MIDNIGHT, _MIDNIGHT),)


@dataclass(frozen=True, slots=True)
class ServiceHours:
    """A queue's weekly schedule in its time zone, with closed local dates.

    `weekly` has one tuple of intervals per weekday, Monday first. An empty `weekly`
    means always open and is stored as seven whole days, so equal schedules compare equal
    however they were built; each day's intervals are likewise stored sorted and merged.
    """

    weekly: tuple[tuple[Interval, ...], ...]
    tz: ZoneInfo
    closed: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        weekly = self.weekly or (_WHOLE_DAY,) * 7
        if len(weekly) != 7:
            raise HoursError(f"a week has 7 days, not {len(weekly)}")
        # Frozen: normalising needs object.__setattr__, once, at construction.
        object.__setattr__(self, "weekly", tuple(_merge(day) for day in weekly))
        object.__setattr__(self, "closed", frozenset(self.closed))

    @classmethod
    def always(cls, tz: ZoneInfo | str = "UTC") -> ServiceHours:
        """Open at every moment; the default for a queue whose admin set no hours."""
        zone = tz if isinstance(tz, ZoneInfo) else _zone(tz)
        return cls((), zone)

    @property
    def is_always(self) -> bool:
        """Seven whole days and no closed dates: open at every moment."""
        return not self.closed and all(day == _WHOLE_DAY for day in self.weekly)


def parse_hours(text: str, tz: str, closed: Iterable[str] = ()) -> ServiceHours:
    """Read hours as an admin typed them; for the admin pages and the config loader.

    `tz` is an IANA zone name and `closed` holds ISO dates (YYYY-MM-DD) in that zone; a
    single string is read as a list separated by commas or spaces, as a form field gives it.
    Raises HoursError naming the first bad part.
    """
    zone = _zone(tz)
    if isinstance(closed, str):
        # Iterating a string would give one character per "date".
        closed = re.split(r"[,\s]+", closed.strip()) if closed.strip() else []
    closed_dates = frozenset(_parse_date(s) for s in closed)
    words = text.strip().lower()
    if words in ("", "always"):
        return ServiceHours((), zone, closed_dates)
    if words == "never":
        return ServiceHours(((),) * 7, zone, closed_dates)
    days: list[list[Interval]] = [[] for _ in range(7)]
    for clause in re.split(r"[;\n]", text):
        if not clause.strip():
            continue  # a trailing `;` or a blank line
        clause_days, intervals = _parse_clause(clause)
        for day in clause_days:
            for start, end in intervals:
                if end > start:
                    days[day].append(_interval(start, end))
                    continue
                # Overnight: the part after midnight belongs to the next day.
                days[day].append(_interval(start, _DAY_MINUTES))
                if end > 0:
                    days[(day + 1) % 7].append(_interval(0, end))
    return ServiceHours(tuple(tuple(d) for d in days), zone, closed_dates)


def format_hours(hours: ServiceHours) -> str:
    """The schedule as `parse_hours` text, for the admin edit form.

    Round trip: `parse_hours(format_hours(h), h.tz.key, [d.isoformat() for d in h.closed])`
    equals `h`; the zone and closed dates are separate fields and not part of the text.
    """
    if all(day == _WHOLE_DAY for day in hours.weekly):
        return "always"
    groups = _day_groups(hours)
    if not groups:
        return "never"
    return "; ".join(
        f"{_format_days(days, '-', ',')} {', '.join(map(str, intervals))}"
        for days, intervals in groups
    )


def describe(hours: ServiceHours) -> str:
    """One line for people, e.g. "Mon–Fri 09:00–17:00, Sat 10:00–14:00 (America/Chicago)";
    for the admin pages and for operators asking about a queue (`!status`)."""
    zone = hours.tz.key or str(hours.tz)
    if all(day == _WHOLE_DAY for day in hours.weekly):
        line = f"Always open ({zone})"
    elif not (groups := _day_groups(hours)):
        line = f"Never open ({zone})"
    else:
        parts = [
            _format_days(days, "–", ", ").title()
            + " "
            + " and ".join(str(i).replace("-", "–") for i in intervals)
            for days, intervals in groups
        ]
        line = f"{', '.join(parts)} ({zone})"
    if hours.closed:
        line += "; closed " + ", ".join(d.isoformat() for d in sorted(hours.closed))
    return line


def is_open(hours: ServiceHours, at: datetime) -> bool:
    """Whether the queue is in service at the instant `at` (aware; UTC by convention).

    For the service, whenever it works out a queue's status for patrons and operators.
    """
    _require_aware(at)
    local_day = at.astimezone(hours.tz).date()
    # The neighbouring days too: around a DST change an interval of one local date can
    # reach into an instant whose wall-clock date is another.
    return any(
        start <= at < end
        for offset in (-1, 0, 1)
        for start, end in _spans(hours, local_day + timedelta(days=offset))
    )


def next_change(hours: ServiceHours, at: datetime) -> datetime | None:
    """The next instant after `at` (aware) when the queue opens or closes, in UTC.

    None when nothing changes within 14 days (always open, or closed all that time).
    For the service, to schedule its next status check instead of polling.
    """
    _require_aware(at)
    at = at.astimezone(UTC)
    horizon = at + HORIZON
    first = at.astimezone(hours.tz).date() - timedelta(days=1)
    last = horizon.astimezone(hours.tz).date() + timedelta(days=1)
    spans: list[tuple[datetime, datetime]] = []
    day = first
    while day <= last:
        spans.extend(_spans(hours, day))
        day += timedelta(days=1)
    for start, end in _union(spans):
        # A span touching `at` from either side decides the next change.
        if start > at:
            return start if start <= horizon else None
        if end > at:
            return end if end <= horizon else None
    return None


# Parsing ------------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ZoneInfo refuses odd keys with ValueError and unreadable ones with OSError.
        raise HoursError(f"unknown time zone {name!r}") from None


def _parse_date(text: str) -> date:
    s = text.strip()
    # date.fromisoformat alone would also take 20261225 and 2026-W52-5.
    if not _DATE_RE.fullmatch(s):
        raise HoursError(f"bad closed date {text!r}: write YYYY-MM-DD")
    try:
        return date.fromisoformat(s)
    except ValueError:
        raise HoursError(f"bad closed date {text!r}: no such day") from None


def _parse_clause(clause: str) -> tuple[list[int], list[tuple[int, int]]]:
    text = _DASHES_RE.sub("-", clause.strip())
    # Day names hold no digits, so the times start at the first digit.
    split = re.search(r"[0-9]", text)
    day_part = text[: split.start()] if split else text
    time_part = text[split.start() :] if split else ""
    if not day_part.strip():
        raise HoursError(f"{clause.strip()!r}: no days given")
    if not time_part.strip():
        raise HoursError(f"{clause.strip()!r}: no hours given")
    days = _parse_days(day_part)
    intervals = [_parse_range(part) for part in re.split(r"[,\s]+", time_part.strip()) if part]
    return days, intervals


def _parse_days(text: str) -> list[int]:
    days: list[int] = []
    for item in re.split(r"[,\s]+", text.strip().lower()):
        if not item:
            continue
        if item in _DAY_GROUPS:
            days.extend(_DAY_GROUPS[item])
            continue
        first, sep, last = item.partition("-")
        if sep and (not first or not last or "-" in last):
            raise HoursError(f"bad day range {item!r}: write e.g. mon-fri")
        a = _day(first)
        if not sep:
            days.append(a)
            continue
        b = _day(last)
        # A range may wrap past Sunday: fri-mon is Fri, Sat, Sun, Mon.
        days.extend((a + i) % 7 for i in range((b - a) % 7 + 1))
    return sorted(set(days))


def _day(name: str) -> int:
    if name in DAY_NAMES:
        return DAY_NAMES.index(name)
    if name in _FULL_DAY_NAMES:
        return _FULL_DAY_NAMES.index(name)
    raise HoursError(f"unknown day {name!r}")


def _parse_range(text: str) -> tuple[int, int]:
    if re.search(r"[a-z]", text, re.IGNORECASE):
        raise HoursError(f"bad interval {text!r}: separate day groups with ';'")
    start_text, sep, end_text = text.partition("-")
    if not sep or "-" in end_text:
        raise HoursError(f"bad interval {text!r}: write HH:MM-HH:MM")
    start = _parse_time(start_text, text)
    end = _parse_time(end_text, text)
    if start == _DAY_MINUTES:
        raise HoursError(f"{text}: 24:00 can only end an interval")
    if start == end:
        raise HoursError(f"{text}: empty interval (the whole day is 00:00-24:00)")
    return start, end


def _parse_time(text: str, interval: str) -> int:
    m = _TIME_RE.fullmatch(text)
    if not m:
        raise HoursError(f"bad time {text!r} in {interval!r}: write HH:MM")
    hour, minute = int(m[1]), int(m[2])
    if minute > 59 or hour > 24 or (hour == 24 and minute):
        raise HoursError(f"bad time {text!r} in {interval!r}")
    return hour * 60 + minute


def _interval(start: int, end: int) -> Interval:
    return Interval(_time(start), _time(end % _DAY_MINUTES))


# Normal form and formatting -----------------------------------------------------------


def _time(minute: int) -> time:
    return time(minute // 60, minute % 60)


def _fmt_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _merge(day: Iterable[Interval]) -> tuple[Interval, ...]:
    merged: list[tuple[int, int]] = []
    for i in sorted(day, key=lambda i: i.start_minute):
        if merged and i.start_minute <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], i.end_minute))
        else:
            merged.append((i.start_minute, i.end_minute))
    return tuple(_interval(s, e) for s, e in merged)


def _day_groups(hours: ServiceHours) -> list[tuple[list[int], tuple[Interval, ...]]]:
    """Days with the same intervals, grouped, in the order of each group's first day."""
    groups: dict[tuple[Interval, ...], list[int]] = {}
    for day, intervals in enumerate(hours.weekly):
        if intervals:
            groups.setdefault(intervals, []).append(day)
    return [(days, intervals) for intervals, days in groups.items()]


def _format_days(days: Sequence[int], dash: str, comma: str) -> str:
    """Lower-case day names, with runs of three or more days as ranges."""
    if len(days) == 7:
        return "daily"
    runs: list[list[int]] = []
    for day in days:
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    names: list[str] = []
    for run in runs:
        if len(run) >= 3:
            names.append(f"{DAY_NAMES[run[0]]}{dash}{DAY_NAMES[run[-1]]}")
        else:
            names.extend(DAY_NAMES[d] for d in run)
    return comma.join(names)


# Instants -----------------------------------------------------------------------------


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at.isoformat()}: an aware datetime is needed")


def _spans(hours: ServiceHours, day: date) -> list[tuple[datetime, datetime]]:
    """The open stretches of one local date, as UTC instants."""
    if day in hours.closed:
        return []
    spans = []
    for interval in hours.weekly[day.weekday()]:
        start = _instant(day, interval.start, hours.tz)
        if interval.end == _MIDNIGHT:
            end = _instant(day + timedelta(days=1), _MIDNIGHT, hours.tz)
        else:
            end = _instant(day, interval.end, hours.tz)
        if start < end:
            spans.append((start, end))
    return spans


def _instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The first instant whose wall-clock time on `day` is `at` or later, in UTC."""
    naive = datetime.combine(day, at)
    candidates = [naive.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1)]
    real = [u for u in candidates if u.astimezone(tz).replace(tzinfo=None) == naive]
    if real:
        return min(real)  # ambiguous: the first occurrence
    # Skipped by a forward jump. The two folds read the time with the offsets before and
    # after the jump, so they bracket the jump; find it to the second by bisection.
    lo, hi = sorted(candidates)
    before = lo.astimezone(tz).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) // 2
        mid = mid.replace(microsecond=0)
        if mid.astimezone(tz).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return hi


def _union(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    # Touching spans merge too, so midnight inside an overnight opening is no change.
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
