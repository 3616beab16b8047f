"""Time, injected: what the service and its parts read the time from and set timers on.

Every timer in the component (offer time-outs, rollover, a chat's maximum wait, the grace
before an offline operator's chats are withdrawn, the patron-gone time-out, the typing
flush, the mail outbox's idle wait, the XMPP reconnect back-off, the directory poll) goes
through one `Clock`. The composition root passes a `LoopClock` (real time, timers on the
running event loop); tests of the service pass a `ManualClock`, which moves only when the
test says so and then fires what fell due, in order, so no test waits in real time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Timer(Protocol):
    """What `call_later` returns: a pending call that can be called off."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """The time and the timers. `now()` is the wall clock in UTC (what is stored and
    shown); `monotonic()` is seconds that never go back (rate limits, caches);
    `call_later` runs a plain callback once, `delay` seconds from now."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer: ...

    async def sleep(self, delay: float) -> None: ...


class LoopClock:
    """Real time: the system's clock, and timers on the running event loop. Built by the
    composition root (`component.runner.Refdesk`) and by `DeskService` when given none."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, delay), callback)

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(delay)


class ManualTimer:
    """A timer of a `ManualClock`; cancelling it before it is due means it never fires."""

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that stands still until `advance` moves it. For tests: timers fire only
    inside `advance`, in the order they fall due (ties in the order they were set), each
    with the clock showing its due time, so a test says "90 seconds pass" and sees exactly
    what those 90 seconds do, without waiting for them."""

    def __init__(self, start: datetime) -> None:
        self._start = start
        self._elapsed = 0.0
        self._timers: list[tuple[float, int, ManualTimer]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    def call_later(self, delay: float, callback: Callable[[], None]) -> ManualTimer:
        timer = ManualTimer(self._elapsed + max(0.0, delay), callback)
        heapq.heappush(self._timers, (timer.when, next(self._order), timer))
        return timer

    async def sleep(self, delay: float) -> None:
        done = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not done.done():
                done.set_result(None)

        timer = self.call_later(delay, wake)
        try:
            await done
        finally:
            timer.cancel()  # a cancelled sleeper leaves no timer behind

    def pending(self) -> list[float]:
        """Seconds from now until each timer still to fire, soonest first."""
        return sorted(t.when - self._elapsed for _, _, t in self._timers if not t.cancelled)

    async def advance(
        self, seconds: float, settle: Callable[[], Awaitable[None]] | None = None
    ) -> int:
        """Move the clock `seconds` forward, firing each timer that falls due on the way
        (timers set by a fired callback fire too if they fall due in the span). After each
        callback, `settle` (if given) is awaited: the work the callback started, such as
        the service's background tasks, finishes before the next timer fires. Returns how
        many timers fired."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        target = self._elapsed + seconds
        fired = 0
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._elapsed = max(self._elapsed, when)
            timer.callback()
            fired += 1
            # Let whatever the callback woke (a future, a task) take its turn.
            await asyncio.sleep(0)
            if settle is not None:
                await settle()
        self._elapsed = target
        return fired

    def set(self, when: datetime) -> None:
        """Jump the wall clock to `when` without firing anything (a test pinning the date
        a record is stamped with); timers keep their remaining delays."""
        self._start = when - timedelta(seconds=self._elapsed)


__all__ = ["Clock", "LoopClock", "ManualClock", "ManualTimer", "Timer"]
