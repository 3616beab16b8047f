"""End-of-chat feedback: what a patron's rating may be, and how ratings add up for the
statistics page and its CSV files.

Pure: called by the chat lifecycle (checking a patron's rating frame) and by the admin
statistics (summing the rows the ratings store reads).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from component.core.text import TextRejected, clean_message

MIN_RATING = 1
MAX_RATING = 5
# A few sentences; the frame size limit is far above this.
MAX_COMMENT = 1000


class RatingRefused(ValueError):
    """A rating the service does not store; `code` and `text` as in error frames."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def parse_rating(rating: object, comment: object) -> tuple[int, str | None]:
    """A patron's rating frame's values, checked: an integer from 1 to 5 (not a boolean,
    not a float, not a string) and an optional comment of at most `MAX_COMMENT`
    characters, cleaned like a chat message (empty means none)."""
    if (
        isinstance(rating, bool)
        or not isinstance(rating, int)
        or not MIN_RATING <= rating <= MAX_RATING
    ):
        raise RatingRefused(
            "bad_rating", f"The rating must be a whole number from {MIN_RATING} to {MAX_RATING}."
        )
    if comment is None or comment == "":
        return rating, None
    if isinstance(comment, str) and len(comment) > MAX_COMMENT:
        raise RatingRefused(
            "comment_too_long", f"The comment must be at most {MAX_COMMENT} characters."
        )
    try:
        return rating, clean_message(comment, MAX_COMMENT)
    except TextRejected as exc:
        if exc.code == "empty_message":
            return rating, None
        raise RatingRefused("bad_comment", exc.text) from None


@dataclass(frozen=True, slots=True)
class RatingRow:
    """One stored rating as the statistics see it: when its chat was asked, the queue it
    ended in and the operator who held it last."""

    asked_at: datetime
    queue_id: int
    operator_id: int | None
    rating: int


@dataclass(frozen=True, slots=True)
class RatingSummary:
    """How many ratings, and how many of each value (index 0 is a rating of 1)."""

    counts: tuple[int, ...] = field(default=(0,) * MAX_RATING)

    @property
    def count(self) -> int:
        return sum(self.counts)

    @property
    def mean(self) -> float | None:
        """The average rating; None without ratings."""
        total = self.count
        if not total:
            return None
        return sum((i + 1) * n for i, n in enumerate(self.counts)) / total

    def add(self, rating: int) -> RatingSummary:
        counts = list(self.counts)
        counts[rating - 1] += 1
        return RatingSummary(tuple(counts))


K = TypeVar("K")


def summarize(rows: Iterable[RatingRow], key: Callable[[RatingRow], K]) -> dict[K, RatingSummary]:
    """Ratings grouped by `key` (a queue id, an operator id...)."""
    out: dict[K, RatingSummary] = {}
    for row in rows:
        k = key(row)
        out[k] = out.get(k, RatingSummary()).add(row.rating)
    return out


def total(rows: Iterable[RatingRow]) -> RatingSummary:
    summary = RatingSummary()
    for row in rows:
        summary = summary.add(row.rating)
    return summary


def by_day(
    rows: Iterable[RatingRow], zone: ZoneInfo, first: date, last: date
) -> list[tuple[date, RatingSummary]]:
    """One entry per local day (of the chat's question) from `first` to `last`, days
    without ratings included, for the ratings over time."""
    days = summarize(rows, lambda r: r.asked_at.astimezone(zone).date())
    out = []
    day = first
    while day <= last:
        out.append((day, days.get(day, RatingSummary())))
        day += timedelta(days=1)
    return out


def format_mean(mean: float | None) -> str:
    """'4.25' for people and CSV; '' without ratings."""
    return "" if mean is None else f"{mean:.2f}"


__all__ = [
    "MAX_COMMENT",
    "MAX_RATING",
    "MIN_RATING",
    "RatingRefused",
    "RatingRow",
    "RatingSummary",
    "by_day",
    "format_mean",
    "parse_rating",
    "summarize",
    "total",
]
