"""Routing decisions: who may get an offer, and what patrons are told about a queue."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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
