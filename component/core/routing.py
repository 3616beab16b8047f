"""Routing decisions: who may get an offer, and what patrons are told about a queue."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from component.core.models import Presence, QueueStatus


@dataclass(frozen=True, slots=True)
class OperatorLoad:
    """An operator of a queue as routing sees them at one instant."""

    jid: str
    presence: Presence
    active_chats: int
    max_chats: int

    @property
    def has_room(self) -> bool:
        return self.active_chats < self.max_chats


def eligible(operators: Iterable[OperatorLoad]) -> list[str]:
    """Operators who may be offered a chat now (ring-all offers to all of them)."""
    return [op.jid for op in operators if op.presence.takes_chats and op.has_room]


def queue_status(operators: Iterable[OperatorLoad]) -> QueueStatus:
    """What the widget shows: available if someone can take a chat, busy if everyone who
    could is at their limit, away if operators are signed in but away, else offline."""
    ops = list(operators)
    if any(op.presence.takes_chats and op.has_room for op in ops):
        return QueueStatus.AVAILABLE
    if any(op.presence.takes_chats for op in ops):
        return QueueStatus.BUSY
    if any(op.presence.online for op in ops):
        return QueueStatus.AWAY
    return QueueStatus.OFFLINE


def next_in_turn(
    operators: Iterable[OperatorLoad],
    last_chat: Mapping[str, datetime],
    skip: Collection[str] = (),
) -> str | None:
    """Round-robin: the eligible operator whose turn it is, or None.

    Fewest active chats first; among equals, the one whose last chat started longest ago
    (never having had one counts as longest); the JID breaks remaining ties so the choice
    is deterministic. `skip` holds operators who already let this chat's offer time out.
    """
    candidates = [
        op for op in operators if op.presence.takes_chats and op.has_room and op.jid not in skip
    ]
    if not candidates:
        return None
    best = min(
        candidates,
        key=lambda op: (op.active_chats, last_chat.get(op.jid, _NEVER), op.jid),
    )
    return best.jid


_NEVER = datetime.min.replace(tzinfo=UTC)
