"""Sticky pickup: after an operator ends a patron's chat as inappropriate, that patron's
next chats are offered to the same operator first, for `[bans] sticky_pickup` seconds.

`Moderation` owns one (`moderation.sticky`); the moderation commands call `remember`,
routing calls `claims` for a new chat's first offer. The matching rules (what may be
remembered under each privacy mode) are pure, in `component.core.sticky`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from component.core.sticky import StickyMark, claims, remembered_key
from component.store import Store


class StickyHost(Protocol):
    """The store and the injected clock (the service provides both)."""

    store: Store

    def clock(self) -> datetime: ...


class StickyPickup:
    """Created by `Moderation` with the service and the configured seconds (0: off)."""

    def __init__(self, host: StickyHost, seconds: float) -> None:
        self.host = host
        self.seconds = seconds

    async def remember(
        self, *, address: str | None, privacy: str, operator_jid: str, chat_id: int, why: str
    ) -> bool:
        """Called by the moderation commands when an operator ends a chat as inappropriate
        (`!c goodbye-inappropriate`, `!ban`, an incident tag). Only what the queue's
        privacy mode lets refdesk keep is remembered; False when nothing is."""
        if self.seconds <= 0:
            return False
        key = remembered_key(address, privacy)
        if key is None:
            return False
        now = self.host.clock()
        await self.host.store.sticky.remember(
            key=key,
            operator_jid=operator_jid,
            chat_id=chat_id,
            why=why,
            now=now,
            expires_at=now + timedelta(seconds=self.seconds),
        )
        return True

    async def claims(self, address: str | None) -> list[StickyMark]:
        """Called by routing for a new chat's first offer: the operators who ended this
        patron's chats as inappropriate lately, newest first."""
        if self.seconds <= 0 or address is None:
            return []
        now = self.host.clock()
        return claims(await self.host.store.sticky.current(now), address, now)
