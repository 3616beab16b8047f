"""SQL of sticky pickup: which operator ended which patron's chat as inappropriate, kept
until it expires. Attached to `Store` as `store.sticky`."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from component.core.sticky import StickyMark
from component.store.db import Database, from_iso, iso


@dataclass(frozen=True, slots=True)
class StickyRow:
    """A current mark as the admin page and `refdesk sticky list` show it: the mark, the
    operator's display name (None if they are no longer an operator) and the queue and
    group of the chat it came from (None once that chat is deleted)."""

    id: int
    mark: StickyMark
    operator_name: str | None
    queue_id: int | None
    group_id: int | None


# The mark with its chat's queue and group: a coordinator sees the marks of their group's
# chats only, and a mark whose chat is gone belongs to no group (admins still see it).
_ROWS = (
    "SELECT s.id, s.key, s.operator_jid, s.chat_id, s.why, s.created_at, s.expires_at,"
    " o.name AS operator_name, c.queue_id, q.group_id FROM sticky_pickups s"
    " LEFT JOIN operators o ON o.jid = s.operator_jid"
    " LEFT JOIN chats c ON c.id = s.chat_id"
    " LEFT JOIN queues q ON q.id = c.queue_id"
    " WHERE s.expires_at > ?"
)


def _mark(row: Any) -> StickyMark:
    created, expires = from_iso(row["created_at"]), from_iso(row["expires_at"])
    assert created is not None and expires is not None
    return StickyMark(row["key"], row["operator_jid"], row["chat_id"], row["why"], created, expires)


class StickyStore:
    """Created by `Store`; called by the operator commands (remember), routing (find), and
    the admin page and `refdesk sticky` (list, clear)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def remember(
        self,
        *,
        key: str,
        operator_jid: str,
        chat_id: int,
        why: str,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        """Remember (or refresh) that `operator_jid` ended `chat_id` for `why`; expired
        marks are forgotten on the way, so nothing is kept past its time."""
        async with self.db.transaction() as execute:
            await execute("DELETE FROM sticky_pickups WHERE expires_at <= ?", (iso(now),))
            await execute(
                "INSERT INTO sticky_pickups (key, operator_jid, chat_id, why, created_at,"
                " expires_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (key, operator_jid) DO UPDATE SET chat_id = excluded.chat_id,"
                " why = excluded.why, created_at = excluded.created_at,"
                " expires_at = excluded.expires_at",
                (key, operator_jid, chat_id, why, iso(now), iso(expires_at)),
            )

    async def current(self, now: datetime) -> list[StickyMark]:
        """Every mark not yet expired (a handful: one per troublesome patron and operator)."""
        rows = await self.db.all(
            "SELECT key, operator_jid, chat_id, why, created_at, expires_at"
            " FROM sticky_pickups WHERE expires_at > ?",
            (iso(now),),
        )
        return [_mark(row) for row in rows]

    async def rows(self, now: datetime, group_ids: Collection[int] | None) -> list[StickyRow]:
        """The marks not yet expired, newest first, of the chats of `group_ids` (None: all,
        for admins and the command line). Called by the admin page and `sticky list`."""
        sql = _ROWS
        params: list[object] = [iso(now)]
        if group_ids is not None:
            ids = sorted(group_ids)
            sql += f" AND q.group_id IN ({','.join('?' * len(ids))})" if ids else " AND FALSE"
            params.extend(ids)
        found = await self.db.all(sql + " ORDER BY s.created_at DESC, s.id DESC", params)
        return [_row(r) for r in found]

    async def row(self, mark_id: int, now: datetime) -> StickyRow | None:
        """One current mark by its number (None if there is none or it has expired)."""
        found = await self.db.one(_ROWS + " AND s.id = ?", (iso(now), mark_id))
        return None if found is None else _row(found)

    async def delete(self, mark_id: int, chat_id: int) -> bool:
        """Forget one mark, if it still comes from `chat_id` (the chat whose group the
        caller checked: a `remember` meanwhile may have moved it to another chat); False
        if it did not (or two clears at once: one wins). Called only by
        `component.sticky_pickup.clear_mark`, which checks who may."""
        return (
            await self.db.write_count(
                "DELETE FROM sticky_pickups WHERE id = ? AND chat_id = ?", (mark_id, chat_id)
            )
            == 1
        )

    async def forget_expired(self, now: datetime) -> int:
        """Called by the retention purge: drop marks past their time."""
        return await self.db.write_count(
            "DELETE FROM sticky_pickups WHERE expires_at <= ?", (iso(now),)
        )


def _row(row: Any) -> StickyRow:
    return StickyRow(row["id"], _mark(row), row["operator_name"], row["queue_id"], row["group_id"])
