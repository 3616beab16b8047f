"""Whether a queue has been left unstaffed during its service hours long enough that its
group's coordinators and its on-call operators must be told, and when to tell them it is
staffed again.

Pure: the service feeds each queue's state (inside its hours? anyone available?) and the
monotonic time at each tick and presence change, and acts on the answer. Unit tests drive
it with numbers, without sleeping."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from component.core.hours import HORIZON, ServiceHours, is_open, next_change


class Tell(enum.Enum):
    NOTHING = "nothing"
    UNSTAFFED = "unstaffed"  # nobody available for the whole delay: tell once
    STAFFED = "staffed"  # staffed again after an UNSTAFFED notice


@dataclass(frozen=True, slots=True)
class Watch:
    """One queue's watch: since when (monotonic seconds) it has been unstaffed inside its
    hours (None: it is not), and whether the people were told."""

    since: float | None = None
    told: bool = False


def step(
    watch: Watch, *, in_hours: bool, staffed: bool, now: float, after: float
) -> tuple[Watch, Tell]:
    """The next watch and what to tell. Unstaffed inside the hours for `after` seconds:
    UNSTAFFED, once. Staffed again (or the hours ended) after that: STAFFED when someone
    is available, and the watch starts over."""
    if staffed or not in_hours:
        if watch.told and staffed:
            return Watch(), Tell.STAFFED
        # Closing time without anyone coming back: nobody needs a "staffed" line, and the
        # next opening starts a fresh watch.
        return Watch(), Tell.NOTHING
    if watch.since is None:
        return Watch(since=now), Tell.NOTHING
    if not watch.told and now - watch.since >= after:
        return Watch(since=watch.since, told=True), Tell.UNSTAFFED
    return watch, Tell.NOTHING


def resumed(told_at: datetime | None, now: datetime, hours: ServiceHours, at: float) -> Watch:
    """A queue's watch when the service starts (monotonic time `at`), from the last staffing
    notice it finds stored: an "unstaffed" notice at `told_at` still stands when the queue
    has been inside its hours ever since (a closing in between ended that watch without a
    notice), so nobody is told twice and someone coming online is "staffed again". Any
    other case starts afresh. `told_at` is None when the last notice was not "unstaffed"."""
    if told_at is None or not is_open(hours, told_at) or not is_open(hours, now):
        return Watch()
    # `next_change` looks HORIZON ahead: a notice older than that is followed in steps.
    start = told_at
    while True:
        change = next_change(hours, start)
        if change is not None:
            return Watch() if change <= now else Watch(since=at, told=True)
        if now - start <= HORIZON:
            return Watch(since=at, told=True)
        start += HORIZON
