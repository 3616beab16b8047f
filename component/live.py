"""What the service holds about an open chat, and what it tells about a queue: the
shapes the service and its parts (follow-up, moderation, operator commands) share.

Kept apart from `component.service` so that the parts can name them without importing
the service (which imports the parts).

The locking rule of the whole service, stated once: every change to one open chat
happens while holding that chat's `LiveChat.lock`, which keeps sequence numbers dense and
decisions (who took the chat, where it went) race-free. The lock is taken only by
`hold(live)`, which yields a `Held`; every operation that changes a chat takes that
`Held`, not the bare `LiveChat`, so it cannot be called without the lock held. A `Held`
is dead once its `async with` block is left. Code that holds one chat's lock never waits
for another chat's lock (it spawns that work instead), so there is no lock order to keep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from component.clock import Clock, Timer
from component.core.models import ChatState, Operator, Queue, QueueStatus
from component.core.ratelimit import TypingThrottle

# Seconds between two typing notifications of one chat (each goes to every offered operator).
TYPING_INTERVAL = 2.0

# The fields the open-chat registry indexes (queue, place in line, operator's load).
_INDEXED = frozenset({"queue", "operator", "last_seq"})


@dataclass
class LiveChat:
    """An open chat as the service holds it between events. Mutated under `lock` only."""

    id: int
    queue: Queue
    guest: str
    state: ChatState
    operator: Operator | None
    created_at: datetime
    last_seq: int
    asked_at: datetime | None = None
    accepted_at: datetime | None = None
    origin_ip: str | None = None
    referrer: str | None = None
    offered_to: set[str] = field(default_factory=set)
    # Round-robin: operators whose offer of this chat timed out, in this queue.
    passed: set[str] = field(default_factory=set)
    # Queues this chat has been in (rollover never loops).
    visited: set[int] = field(default_factory=set)
    # The newest patron message the XMPP server confirmed reading (see `note_relayed`).
    relayed_seq: int = 0
    # The patron's address as last seen, in memory only (what is stored follows the
    # queue's privacy mode): bans must bite on the live connection whatever is kept.
    ip: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Open patron connections, and the timer that ends the chat when none comes back.
    connections: int = 0
    gone_timer: Timer | None = None
    # The guest's presence as operators were last shown it (connected or not), when it may
    # change again (monotonic seconds), and the timer that shows a change made sooner.
    presence_shown: bool = True
    presence_next_at: float = 0.0
    presence_timer: Timer | None = None
    offer_timer: Timer | None = None
    rollover_timer: Timer | None = None
    max_wait_timer: Timer | None = None
    typing: TypingThrottle = field(default_factory=lambda: TypingThrottle(TYPING_INTERVAL))
    # Sticky pickup: whether routing has asked who ended this patron's chats as
    # inappropriate lately, and whether the chat is offered to that operator alone now.
    sticky_checked: bool = False
    sticky_hold: bool = False
    # The operator's last line, the one they may still correct (XEP-0308): their JID, the
    # stanza ids that name it (the original and any correction of it) and its seq. In
    # memory only: after a restart nothing can be corrected.
    last_line: tuple[str, frozenset[str], int] | None = None
    # Set by the registry (`OpenChats.add`): told whenever an indexed field changes, so
    # waiting counts, places in line and operators' loads are kept up to date as they
    # change instead of being counted over every open chat on every hello and status.
    on_change: Callable[[LiveChat], None] | None = field(default=None, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in _INDEXED:
            hook = self.__dict__.get("on_change")
            if hook is not None:
                hook(self)

    @property
    def unanswered(self) -> bool:
        """The patron has asked and no operator has taken the chat yet."""
        return self.operator is None and self.last_seq > 0

    def recipients(self) -> tuple[str, ...]:
        """Operators who must see what the patron writes now."""
        if self.operator is not None:
            return (self.operator.jid,)
        return tuple(sorted(self.offered_to))

    def cancel_timers(self) -> None:
        for timer in (
            self.gone_timer,
            self.offer_timer,
            self.rollover_timer,
            self.max_wait_timer,
            self.presence_timer,
        ):
            if timer is not None:
                timer.cancel()
        self.gone_timer = self.offer_timer = self.rollover_timer = self.max_wait_timer = None
        self.presence_timer = None


# Only `hold` has this key, so only `hold` can make a `Held`.
_HOLD_KEY = object()


class Held:
    """Proof that the chat's lock is held: made only by `hold`, valid only inside its
    `async with` block. The service's parts take it wherever a change needs the lock."""

    __slots__ = ("_live", "_valid")

    def __init__(self, live: LiveChat, key: object) -> None:
        if key is not _HOLD_KEY or not live.lock.locked():
            raise TypeError("a Held is made by `async with hold(live)` only")
        self._live = live
        self._valid = True

    @property
    def live(self) -> LiveChat:
        """The held chat; raises once the `async with hold(...)` block has been left."""
        if not self._valid:
            raise RuntimeError(f"chat {self._live.id}: its lock is no longer held")
        return self._live


class hold:
    """Take the chat's lock for a block of changes: `async with hold(live) as held:`.
    Whoever takes it re-checks, inside the block, that the chat is still open.

    A small class rather than an `asynccontextmanager` generator: every line of every
    chat takes it, and the generator's way cost three times this one, lock included."""

    __slots__ = ("_held", "_live")

    def __init__(self, live: LiveChat) -> None:
        self._live = live
        self._held: Held | None = None

    async def __aenter__(self) -> Held:
        await self._live.lock.acquire()
        try:
            self._held = Held(self._live, _HOLD_KEY)
        except BaseException:
            self._live.lock.release()
            raise
        return self._held

    async def __aexit__(self, *_exc: object) -> None:
        if self._held is not None:
            self._held._valid = False
        self._live.lock.release()


class Background:
    """The service's background work and timers, cancelled together at shutdown. One
    per service, shared by its parts; every timer runs on the injected clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as background work (cancelled at `close`)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def later(self, delay: float, job: Callable[[], Coroutine[Any, Any, None]]) -> Timer:
        """Run `job` as background work `delay` seconds from now, on the injected clock."""
        return self.clock.call_later(delay, lambda: self.spawn(job()))

    async def idle(self) -> None:
        """Wait until the work running now (and any it starts) is done."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel all background work and wait for it to stop."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """The queue's state for the status endpoint and the widget."""

    queue: str
    title: str
    status: QueueStatus
    waiting: int
    operators_available: int
    open_now: bool = True


__all__ = ["TYPING_INTERVAL", "Background", "Held", "LiveChat", "QueueInfo", "hold"]
