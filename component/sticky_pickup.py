"""Sticky pickup: after an operator ends a patron's chat as inappropriate, that patron's
next chats are offered to the same operator first, for `[bans] sticky_pickup` seconds.

`Moderation` owns one (`moderation.sticky`); the moderation commands call `remember`,
routing calls `claims` for a new chat's first offer. The matching rules (what may be
remembered under each privacy mode) are pure, in `component.core.sticky`.

`clear_mark` is the one way to forget a mark before it expires, shared by the admin page
and `refdesk sticky clear`: routing reads the marks from the store for every new chat, so
a cleared mark stops applying at once, whichever process cleared it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Protocol

from component.core.sticky import StickyMark, claims, remembered_key
from component.store import Store
from component.store.sticky import StickyRow

log = logging.getLogger(__name__)


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


async def clear_mark(
    store: Store,
    mark_id: int,
    *,
    now: datetime,
    group_ids: Collection[int] | None,
    actor: str,
) -> StickyRow | None:
    """Forget mark `mark_id`, as the admin page (for a coordinator, `group_ids` is their
    group) or `refdesk sticky clear` (None: any group) asks. Returns the mark forgotten,
    or None when there is no such current mark within `group_ids`: another group's mark
    is not found, not refused, so its existence is not confirmed."""
    row = await store.sticky.row(mark_id, now)
    if row is None or (group_ids is not None and row.group_id not in group_ids):
        return None
    if not await store.sticky.delete(mark_id, row.mark.chat_id):
        return None
    # The operator and the chat, never the patron's address: logs are kept longer.
    log.info(
        "sticky pickup mark %d (operator %s, chat %d) cleared by %s",
        mark_id,
        row.mark.operator_jid,
        row.mark.chat_id,
        actor,
    )
    return row
