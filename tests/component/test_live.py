"""The locking rule of `component.live`: a `Held` exists only inside `hold(live)`, with the
chat's lock taken, and refuses to be used once its block is left."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from component.core.models import ChatState, Queue, RoutingMode
from component.live import Held, LiveChat, hold


def _live() -> LiveChat:
    queue = Queue(
        id=1, name="ask", group_id=1, title="Ask", routing=RoutingMode.RING_ALL, followup_email=None
    )
    return LiveChat(
        id=7,
        queue=queue,
        guest="guest-abc",
        state=ChatState.WAITING,
        operator=None,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        last_seq=0,
    )


async def test_a_held_chat_has_its_lock_taken_and_dies_with_the_block() -> None:
    live = _live()
    kept: list[Held] = []
    async with hold(live) as held:
        assert live.lock.locked()
        assert held.live is live
        kept.append(held)
    assert not live.lock.locked()
    with pytest.raises(RuntimeError, match="no longer held"):
        _ = kept[0].live


async def test_the_lock_is_released_when_the_block_raises() -> None:
    live = _live()
    with pytest.raises(ValueError):
        async with hold(live):
            raise ValueError("boom")
    assert not live.lock.locked()


async def test_a_held_cannot_be_made_outside_hold() -> None:
    live = _live()
    with pytest.raises(TypeError, match="hold"):
        Held(live, object())
    async with live.lock:
        # Even with the lock taken by hand, only `hold` hands out a Held.
        with pytest.raises(TypeError, match="hold"):
            Held(live, object())
