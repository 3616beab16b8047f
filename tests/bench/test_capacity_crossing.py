"""Where the capacity benchmark says p99 passed the threshold (pure logic)."""

from __future__ import annotations

import math

from bench.capacity import crossing


def step(sessions: int, p99: float) -> dict[str, object]:
    return {"sessions": sessions, "rtt_ms": {"p99": p99}}


def test_interpolated_between_the_steps_around_it() -> None:
    got = crossing([step(1000, 20.0), step(3000, 80.0), step(4000, 120.0)])
    assert got == {"sessions": 3500, "how": "interpolated between 3000 and 4000"}


def test_a_step_where_no_line_was_answered_failed_it_did_not_pass() -> None:
    # Its p99 is NaN, which compares false with everything: it once counted as sustained.
    got = crossing([step(3000, 79.5), step(4000, math.nan)])
    assert got["sessions"] == 3000 and "no line answered at 4000" in got["how"]
    assert crossing([step(1000, math.nan)])["how"] == "already at the first step"


def test_never_reached() -> None:
    assert crossing([step(1000, 10.0), step(2000, 30.0)]) == {
        "sessions": None,
        "how": "not reached",
    }
