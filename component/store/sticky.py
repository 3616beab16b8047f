"""SQL of sticky pickup: which operator ended which patron's chat as inappropriate, kept
until it expires. Attached to `Store` as `store.sticky`."""

from __future__ import annotations

from datetime import datetime

from component.core.sticky import StickyMark
from component.store.db import Database, from_iso, iso


class StickyStore:
    """Created by `Store`; called by the operator commands (remember) and routing (find)."""

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
        marks = []
        for row in rows:
            created, expires = from_iso(row["created_at"]), from_iso(row["expires_at"])
            assert created is not None and expires is not None
            marks.append(
                StickyMark(
                    row["key"], row["operator_jid"], row["chat_id"], row["why"], created, expires
                )
            )
        return marks

    async def forget_expired(self, now: datetime) -> int:
        """Called by the retention purge: drop marks past their time."""
        return await self.db.write_count(
            "DELETE FROM sticky_pickups WHERE expires_at <= ?", (iso(now),)
        )
