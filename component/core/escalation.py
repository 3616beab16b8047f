"""On-call escalation: when a burst of chats means the on-call person is called in.

A typical weekend rule (docs/admins.md, "On call"): "if four chats arrive within ten
minutes (or four in the first twenty minutes of an hour), the on-call person is called
in". A queue holds one or
more `EscalationRule`s; the service is meant to ask `should_escalate` each time a chat
arrives (and may ask again on a timer) and to call the on-call person when it says yes.

Two kinds of window:

- sliding, "4 in 10m": the window is the `window` just before now, both ends included,
  so four chats at 10:00, 10:03, 10:06 and 10:10 trip "4 in 10m".
- hour-start, "4 in first 20m of hour": the window is the first `window` of the current
  clock hour in the queue's time zone (from HH:00 up to, not including, HH:20). Once that
  count is reached the rule stays tripped until the hour ends, so a check that comes late
  (a timer, a restart) still calls.

One call per burst: every arrival at or before the last escalation is spent, and the
window that trips again must begin after `last_escalation`. For a sliding rule that means
no new call until more than one window length after the last, and then only for `count`
arrivals that all came after it; for an hour-start rule, at most one call per clock hour.
A steady stream that keeps meeting the rule therefore calls again about once per window;
a service that knows the on-call person is already in can skip asking.

Rule text (`parse_rule`) is liberal in wording and strict in meaning:

    4 in 10m            4 chats within 10 minutes        four chats arrive within ten minutes
    4 in 1h             4 requests in the last 2 hours   4 in an hour
    4 in first 20m of hour     4 chats in the first 20 minutes of an hour
    four in the first twenty minutes of each hour

Counts are at least 2; sliding windows are whole minutes from 1 minute to 24 hours;
hour-start windows are 1 to 60 minutes.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

MIN_COUNT = 2
# More arrivals than any desk sees in a day's window: a rule above it could never trip.
MAX_COUNT = 10_000
MIN_WINDOW = timedelta(minutes=1)
MAX_WINDOW = timedelta(hours=24)
MAX_FIRST_MINUTES = 60

_EXAMPLES = "write e.g. '4 in 10m' or '4 in first 20m of hour'"

# Read-only tables: module state must not change under anyone.
_UNITS: Mapping[str, int] = MappingProxyType(
    {
        **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 1),
        **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 60),
    }
)
_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen",
)  # fmt: skip
_TENS: Mapping[str, int] = MappingProxyType(
    {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60}
)

# A number as digits, a word ("four", "twenty-five") or "a"/"an" for one.
_NUM = r"(?P<{}>[0-9]+|an?|[a-z]+(?:-[a-z]+)?)"
# A number glued to its unit ("10m") or apart ("ten minutes").
_AMOUNT = _NUM + r"\s*(?P<{}>[a-z]+)"
_COUNT = _NUM.format("count") + (
    r"(?:\s+(?:chats?|arrivals?|requests?|questions?|patrons?))?"
    r"(?:\s+(?:arrive|arriving|come\s+in|coming\s+in))?"
)
_SLIDING_RE = re.compile(
    _COUNT
    + r"\s+(?:in|within)\s+(?:(?:the\s+)?(?:last|past)\s+|any\s+)?"
    + _AMOUNT.format("amount", "unit")
)
_HOUR_START_RE = re.compile(
    _COUNT
    + r"\s+(?:in|within)\s+(?:the\s+)?first\s+"
    + _AMOUNT.format("amount", "unit")
    + r"\s+(?:of|after|past)\s+(?:(?:the|an?|each|every)\s+)?hour"
)


class RuleError(ValueError):
    """An escalation rule that cannot be read or makes no sense; the message says why."""


class WindowKind(enum.Enum):
    SLIDING = "sliding"
    HOUR_START = "hour-start"


@dataclass(frozen=True, slots=True)
class EscalationRule:
    """`count` arrivals within `window` trip the rule.

    For `WindowKind.HOUR_START`, `window` is the first part of each clock hour (see
    `first_minutes`). Build with `sliding`, `hour_start` or `parse_rule`.
    """

    count: int
    window: timedelta
    kind: WindowKind = WindowKind.SLIDING

    def __post_init__(self) -> None:
        if self.count < MIN_COUNT:
            raise RuleError(f"the count must be at least {MIN_COUNT}, not {self.count}")
        if self.count > MAX_COUNT:
            raise RuleError(f"the count must be at most {MAX_COUNT}, not {self.count}")
        if self.window % timedelta(minutes=1):
            raise RuleError(f"the window must be whole minutes, not {self.window}")
        if self.kind is WindowKind.SLIDING and not MIN_WINDOW <= self.window <= MAX_WINDOW:
            raise RuleError(
                f"the window must be from 1 minute to 24 hours, not {_span(self.window)}"
            )
        minutes = self.window // timedelta(minutes=1)
        if self.kind is WindowKind.HOUR_START and not 1 <= minutes <= MAX_FIRST_MINUTES:
            raise RuleError(
                f"the start of an hour must be from 1 to {MAX_FIRST_MINUTES} minutes, "
                f"not {_span(self.window)}"
            )

    @classmethod
    def sliding(cls, count: int, window: timedelta) -> EscalationRule:
        """`count` arrivals within any `window`, e.g. 4 within 10 minutes."""
        return cls(count, window, WindowKind.SLIDING)

    @classmethod
    def hour_start(cls, count: int, first_minutes: int) -> EscalationRule:
        """`count` arrivals in the first `first_minutes` of a clock hour."""
        return cls(count, timedelta(minutes=first_minutes), WindowKind.HOUR_START)

    @property
    def first_minutes(self) -> int | None:
        """The hour-start window in minutes; None for a sliding rule."""
        if self.kind is WindowKind.HOUR_START:
            return self.window // timedelta(minutes=1)
        return None


def parse_rule(text: str) -> EscalationRule:
    """Read a rule as an admin typed it; for the admin pages and the config loader.

    Raises RuleError with the reason when the text is not a rule or the rule is out of
    bounds.
    """
    words = " ".join(text.strip().lower().replace(",", " ").split()).rstrip(".")
    if not words:
        raise RuleError(f"empty rule: {_EXAMPLES}")
    if m := _HOUR_START_RE.fullmatch(words):
        minutes = _amount(m["amount"], m["unit"])
        return EscalationRule.hour_start(_number(m["count"]), minutes)
    if m := _SLIDING_RE.fullmatch(words):
        minutes = _amount(m["amount"], m["unit"])
        return EscalationRule.sliding(_number(m["count"]), timedelta(minutes=minutes))
    if re.search(r"[0-9]$", words):
        raise RuleError(f"cannot read the rule {text.strip()!r}: give a unit, e.g. 10m")
    raise RuleError(f"cannot read the rule {text.strip()!r}: {_EXAMPLES}")


def describe(rule: EscalationRule) -> str:
    """The rule in words, e.g. "4 chats within 10 minutes", for the admin pages; `parse_rule`
    reads it back to the same rule."""
    if rule.kind is WindowKind.HOUR_START:
        # Always minutes here: "the first 1 hour of an hour" reads badly.
        return f"{rule.count} chats in the first {_minutes(rule.window)} of an hour"
    return f"{rule.count} chats within {_span(rule.window)}"


def should_escalate(
    rule: EscalationRule,
    arrivals: Sequence[datetime],
    now: datetime,
    tz: ZoneInfo,
    last_escalation: datetime | None,
) -> bool:
    """Whether to call the on-call person now; for the service, each time a chat arrives
    (and on a timer if it likes: a repeated question gets the same answer, not a new call).

    `arrivals` are the queue's recent chat arrival times, in any order; those after `now`
    are ignored. `tz` is the queue's time zone, which places the hour boundaries.
    `last_escalation` is when this rule last called someone, or None; passing the queue's
    last call by any of its rules keeps two rules from calling twice for one burst. All
    datetimes must be aware.
    """
    extra = [] if last_escalation is None else [last_escalation]
    for moment in (now, *arrivals, *extra):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"{moment.isoformat()}: an aware datetime is needed")
    if rule.kind is WindowKind.SLIDING:
        start = now - rule.window
        end = now  # inclusive: 10:00 and 10:10 are "within 10 minutes"
        counted = [a for a in arrivals if start <= a <= end]
    else:
        start = _hour_start(now, tz)
        counted = [a for a in arrivals if start <= a < start + rule.window and a <= now]
    # One call per burst: the window that trips again must begin after the last call,
    # so no arrival counts towards two calls.
    if last_escalation is not None and start <= last_escalation:
        return False
    return len(counted) >= rule.count


def _hour_start(now: datetime, tz: ZoneInfo) -> datetime:
    """The instant the local clock hour containing `now` began."""
    local = now.astimezone(tz)
    # replace() keeps `fold`: in the second pass of a repeated hour, the second 01:00.
    top = local.replace(minute=0, second=0, microsecond=0)
    return top.astimezone(UTC)


def _number(word: str) -> int:
    if word.isdigit():
        # Bounded before any arithmetic: timedelta cannot hold 10**20 minutes, and the
        # rule's own bounds are far below six digits.
        if len(word) > 6:
            raise RuleError(f"the number {word[:12]}... is far too large")
        return int(word)
    if word in ("a", "an"):
        return 1
    if word in _ONES:
        return _ONES.index(word)
    tens, _, ones = word.partition("-")
    if tens in _TENS and (not ones or ones in _ONES[1:10]):
        return _TENS[tens] + (_ONES.index(ones) if ones else 0)
    raise RuleError(f"unknown number {word!r}")


def _amount(number: str, unit: str) -> int:
    """A duration in whole minutes."""
    if unit not in _UNITS:
        raise RuleError(f"unknown unit {unit!r}: use minutes (m) or hours (h)")
    return _number(number) * _UNITS[unit]


def _span(window: timedelta) -> str:
    """A window in words, in hours when it is whole hours."""
    hours, rest = divmod(window, timedelta(hours=1))
    if hours and not rest:
        return f"{hours} hour" + ("s" if hours != 1 else "")
    return _minutes(window)


def _minutes(window: timedelta) -> str:
    minutes, rest = divmod(window, timedelta(minutes=1))
    if rest:
        return str(window)  # only in the error for a window that is not whole minutes
    return f"{minutes} minute" + ("s" if minutes != 1 else "")
