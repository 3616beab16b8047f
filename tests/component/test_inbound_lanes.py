"""InboundLanes: one sender's stanzas in order, different senders at the same time (one
lane for everyone made each operator's line wait for every earlier line's commit)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from component.inbound_lanes import InboundLanes


async def test_one_key_in_order_other_keys_meanwhile() -> None:
    lanes = InboundLanes()
    log: list[str] = []
    gate = asyncio.Event()

    def job(name: str, wait: asyncio.Event | None = None) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            log.append(f"{name} start")
            if wait is not None:
                await wait.wait()
            log.append(f"{name} end")

        return run

    lanes.put("ann", job("ann 1", gate))  # waits, like a line waiting for its commit
    lanes.put("ann", job("ann 2"))
    lanes.put("bob", job("bob 1"))
    for _ in range(5):
        await asyncio.sleep(0)
    # Bob's line was not held behind Ann's; Ann's second waits for her first.
    assert log == ["ann 1 start", "bob 1 start", "bob 1 end"]
    joined = asyncio.ensure_future(lanes.join())
    await asyncio.sleep(0)
    assert not joined.done()
    gate.set()
    await asyncio.wait_for(joined, 5)
    assert log[3:] == ["ann 1 end", "ann 2 start", "ann 2 end"]


async def test_a_failing_job_is_logged_and_the_lane_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lanes = InboundLanes()
    done: list[int] = []

    async def boom() -> None:
        raise ValueError("bad stanza")

    async def fine() -> None:
        done.append(1)

    lanes.put("ann", boom)
    lanes.put("ann", fine)
    await asyncio.wait_for(lanes.join(), 5)
    assert done == [1]
    assert "failed to handle an inbound stanza" in caplog.text


async def test_close_drops_what_is_queued_and_join_returns() -> None:
    lanes = InboundLanes()
    never = asyncio.Event()
    ran: list[str] = []

    async def stuck() -> None:
        await never.wait()

    async def later() -> None:
        ran.append("later")

    lanes.put("ann", stuck)
    lanes.put("ann", later)
    await asyncio.sleep(0)
    await asyncio.wait_for(lanes.close(), 5)
    await asyncio.wait_for(lanes.join(), 5)
    lanes.put("ann", later)  # after close: refused
    await asyncio.sleep(0)
    assert ran == []
