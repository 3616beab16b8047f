"""What the service holds about an open chat, and what it tells about a queue: the
shapes the service and its parts (follow-up, moderation, operator commands) share.

Kept apart from `component.service` so that the parts can name them without importing
the service (which imports the parts).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from component.clock import Timer
from component.core.models import ChatState, Operator, Queue, QueueStatus
from component.core.ratelimit import TypingThrottle

# Seconds between two typing notifications of one chat (each goes to every offered operator).
TYPING_INTERVAL = 2.0


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
    offer_timer: Timer | None = None
    rollover_timer: Timer | None = None
    max_wait_timer: Timer | None = None
    typing: TypingThrottle = field(default_factory=lambda: TypingThrottle(TYPING_INTERVAL))

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
        for timer in (self.gone_timer, self.offer_timer, self.rollover_timer, self.max_wait_timer):
            if timer is not None:
                timer.cancel()
        self.gone_timer = self.offer_timer = self.rollover_timer = self.max_wait_timer = None


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """The queue's state for the status endpoint and the widget."""

    queue: str
    title: str
    status: QueueStatus
    waiting: int
    operators_available: int
    open_now: bool = True


__all__ = ["TYPING_INTERVAL", "LiveChat", "QueueInfo"]
