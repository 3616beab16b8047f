"""End-of-chat ratings (`chat_ratings`): one per chat at most, stored by the chat
lifecycle when a patron rates, read by the admin statistics."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from component.core.feedback import RatingRow
from component.core.stats import StatsFilter
from component.store.db import Database, from_iso, iso


class RatingsStore:
    """Attached to the store as `store.ratings`; shares its connection."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, chat_id: int, rating: int, comment: str | None, now: datetime) -> bool:
        """Store a chat's rating; False if the chat already has one (the primary key
        makes the check and the write one statement, so two at once store one)."""
        stored = await self.db.write_count(
            "INSERT OR IGNORE INTO chat_ratings (chat_id, rating, comment, created_at)"
            " VALUES (?, ?, ?, ?)",
            (chat_id, rating, comment, iso(now)),
        )
        return stored == 1

    async def rated(self, chat_id: int) -> bool:
        """Whether the chat has a rating (the widget is told not to ask again)."""
        row = await self.db.one("SELECT 1 FROM chat_ratings WHERE chat_id = ?", (chat_id,))
        return row is not None

    async def comment(self, chat_id: int) -> tuple[int, str | None] | None:
        """A chat's rating and comment, for the admin's transcript view and tests."""
        row = await self.db.one(
            "SELECT rating, comment FROM chat_ratings WHERE chat_id = ?", (chat_id,)
        )
        return None if row is None else (row["rating"], row["comment"])

    async def scores(self, chat_ids: Collection[int]) -> dict[int, int]:
        """The ratings of those of `chat_ids` that have one (the transcript search's CSV,
        at most a few thousand chats: asked in slices to stay within SQL's limits)."""
        ids = sorted(set(chat_ids))
        out: dict[int, int] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            rows = await self.db.all(
                "SELECT chat_id, rating FROM chat_ratings"
                f" WHERE chat_id IN ({','.join('?' * len(part))})",
                part,
            )
            out.update({r["chat_id"]: r["rating"] for r in rows})
        return out

    async def rows(self, f: StatsFilter) -> list[RatingRow]:
        """The ratings of the chats the statistics filter counts (asked in its range, in
        its queues, held last by its operator)."""
        clauses = ["c.asked_at IS NOT NULL", "c.asked_at >= ?", "c.asked_at < ?"]
        params: list[Any] = [iso(f.start), iso(f.end)]
        if f.queue_ids is not None:
            ids = sorted(f.queue_ids)
            clauses.append(f"c.queue_id IN ({','.join('?' * len(ids))})" if ids else "FALSE")
            params.extend(ids)
        if f.operator_id is not None:
            clauses.append("c.operator_id = ?")
            params.append(f.operator_id)
        rows = await self.db.all(
            "SELECT c.asked_at, c.queue_id, c.operator_id, r.rating FROM chat_ratings r"
            " JOIN chats c ON c.id = r.chat_id WHERE " + " AND ".join(clauses),
            params,
        )
        out = []
        for r in rows:
            asked = from_iso(r["asked_at"])
            assert asked is not None
            out.append(RatingRow(asked, r["queue_id"], r["operator_id"], r["rating"]))
        return out


__all__ = ["RatingsStore"]
