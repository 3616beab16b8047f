"""component.core.feedback: which ratings are taken, and how they add up."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from component.core.feedback import (
    MAX_COMMENT,
    RatingRefused,
    RatingRow,
    by_day,
    format_mean,
    parse_rating,
    summarize,
    total,
)


@pytest.mark.parametrize("rating", [1, 2, 3, 4, 5])
def test_ratings_one_to_five(rating: int) -> None:
    assert parse_rating(rating, None) == (rating, None)


@pytest.mark.parametrize(
    "rating", [0, 6, -1, 10**30, 4.0, 4.5, "4", True, False, None, [4], {"r": 4}]
)
def test_other_ratings_are_refused(rating: object) -> None:
    with pytest.raises(RatingRefused) as caught:
        parse_rating(rating, None)
    assert caught.value.code == "bad_rating"


def test_comments() -> None:
    assert parse_rating(3, "") == (3, None)
    assert parse_rating(3, "   \n ") == (3, None)
    assert parse_rating(3, "  Thanks!\r\nVery good. ") == (3, "Thanks!\nVery good.")
    assert parse_rating(3, "x" * MAX_COMMENT) == (3, "x" * MAX_COMMENT)
    with pytest.raises(RatingRefused) as caught:
        parse_rating(3, "x" * (MAX_COMMENT + 1))
    assert caught.value.code == "comment_too_long"
    for bad in ("a\x00b", "\ufffe", 5, ["x"], {"x": 1}):
        with pytest.raises(RatingRefused) as caught:
            parse_rating(3, bad)
        assert caught.value.code == "bad_comment", bad


@given(st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=5)), st.text())
def test_parsing_only_ever_refuses_with_a_code(rating: object, comment: str) -> None:
    try:
        value, text = parse_rating(rating, comment)
    except RatingRefused as exc:
        assert exc.code in ("bad_rating", "comment_too_long", "bad_comment")
    else:
        assert 1 <= value <= 5
        assert text is None or 0 < len(text) <= MAX_COMMENT


def row(day: int, hour: int, queue: int, op: int | None, rating: int) -> RatingRow:
    return RatingRow(datetime(2026, 3, day, hour, tzinfo=UTC), queue, op, rating)


def test_sums_per_key_and_per_local_day() -> None:
    rows = [row(1, 2, 1, 7, 5), row(1, 12, 1, 8, 3), row(2, 12, 2, 7, 4)]
    assert total(rows).count == 3
    assert format_mean(total(rows).mean) == "4.00"
    assert format_mean(total([]).mean) == ""
    per_queue = summarize(rows, lambda r: r.queue_id)
    assert per_queue[1].counts == (0, 0, 1, 0, 1)
    assert per_queue[2].mean == 4
    per_op = summarize(rows, lambda r: r.operator_id)
    assert per_op[7].count == 2
    # 02:00 UTC on 1 March is still 28 February in Chicago.
    days = by_day(rows, ZoneInfo("America/Chicago"), date(2026, 2, 28), date(2026, 3, 3))
    assert [(d.isoformat(), s.count) for d, s in days] == [
        ("2026-02-28", 1),
        ("2026-03-01", 1),
        ("2026-03-02", 1),
        ("2026-03-03", 0),
    ]
