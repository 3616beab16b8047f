"""Transcripts as the admin pages list and search them: chat summaries with queue,
operator, tags and message count, and deleting an ended chat for good.

Scoping: a list a group coordinator may see takes `queue_ids`, the queues whose data the
caller may show: None for all (an admin), a collection (possibly empty) for a
coordinator. Text search uses LIKE with `%`, `_` and the escape character escaped, so
what an admin types is matched literally.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from component.core.models import ChatState
from component.store.db import Database, from_iso, iso, marks

_OPEN_STATES = tuple(s.value for s in ChatState if s.open)


def like_pattern(text: str) -> str:
    """`text` as a LIKE pattern matching it anywhere, literally (use with ESCAPE '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class ChatSummary:
    """One chat as the transcript pages list it."""

    id: int
    queue_id: int
    queue_name: str
    queue_title: str
    group_id: int
    privacy: str
    state: ChatState
    operator_id: int | None
    operator_name: str | None
    operator_jid: str | None
    origin_ip: str | None
    referrer: str | None
    created_at: datetime
    asked_at: datetime | None
    accepted_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None
    tags: tuple[str, ...]
    messages: int


@dataclass(frozen=True, slots=True)
class ChatPage:
    chats: list[ChatSummary]
    total: int


# A chat's tags as one sorted, comma-separated text: the one spelling per engine.
_TAG_LIST = {
    "sqlite": "(SELECT group_concat(tag, ',') FROM (SELECT tag FROM chat_tags t"
    "   WHERE t.chat_id = c.id ORDER BY tag))",
    "postgresql": "(SELECT string_agg(tag, ',' ORDER BY tag) FROM chat_tags t"
    "   WHERE t.chat_id = c.id)",
}
_CHAT_SELECT = (
    "SELECT c.*, q.name AS queue_name, q.title AS queue_title, q.group_id AS group_id,"
    " q.privacy AS privacy, o.name AS operator_name, o.jid AS operator_jid,"
    " {tag_list} AS tag_list,"
    " (SELECT COUNT(*) FROM chat_events e WHERE e.chat_id = c.id AND e.kind = 'message')"
    "   AS message_count"
    " FROM chats c JOIN queues q ON q.id = c.queue_id"
    " LEFT JOIN operators o ON o.id = c.operator_id"
)


def _summary(row: aiosqlite.Row) -> ChatSummary:
    created = from_iso(row["created_at"])
    assert created is not None
    return ChatSummary(
        id=row["id"],
        queue_id=row["queue_id"],
        queue_name=row["queue_name"],
        queue_title=row["queue_title"],
        group_id=row["group_id"],
        privacy=row["privacy"],
        state=ChatState(row["state"]),
        operator_id=row["operator_id"],
        operator_name=row["operator_name"],
        operator_jid=row["operator_jid"],
        origin_ip=row["origin_ip"],
        referrer=row["referrer"],
        created_at=created,
        asked_at=from_iso(row["asked_at"]),
        accepted_at=from_iso(row["accepted_at"]),
        ended_at=from_iso(row["ended_at"]),
        ended_by=row["ended_by"],
        tags=tuple(t for t in (row["tag_list"] or "").split(",") if t),
        messages=row["message_count"],
    )


class TranscriptStore:
    """`store.transcripts`: the admin pages' transcript list, search and deletion."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._select = _CHAT_SELECT.format(tag_list=_TAG_LIST[db.dialect])

    async def search(
        self,
        *,
        queue_ids: Collection[int] | None = None,
        queue_id: int | None = None,
        operator_id: int | None = None,
        tag: str | None = None,
        text: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> ChatPage:
        """Chats that have a transcript (at least one entry), newest first, filtered by
        queue, operator (who had the chat or wrote in it), tag, text in any entry (notes
        included) and start time (`since` included, `until` excluded)."""
        where = ["EXISTS (SELECT 1 FROM chat_events e WHERE e.chat_id = c.id)"]
        params: list[Any] = []
        if queue_ids is not None:
            if not queue_ids:
                return ChatPage([], 0)
            where.append(f"c.queue_id IN ({marks(queue_ids)})")
            params.extend(queue_ids)
        if queue_id is not None:
            where.append("c.queue_id = ?")
            params.append(queue_id)
        if operator_id is not None:
            where.append(
                "(c.operator_id = ? OR EXISTS (SELECT 1 FROM chat_events e"
                " WHERE e.chat_id = c.id AND e.operator_id = ?))"
            )
            params.extend((operator_id, operator_id))
        if tag:
            where.append("EXISTS (SELECT 1 FROM chat_tags t WHERE t.chat_id = c.id AND t.tag = ?)")
            params.append(tag)
        if text:
            where.append(
                "EXISTS (SELECT 1 FROM chat_events e WHERE e.chat_id = c.id"
                " AND e.text LIKE ? ESCAPE '\\')"
            )
            params.append(like_pattern(text))
        if since is not None:
            where.append("c.created_at >= ?")
            params.append(iso(since))
        if until is not None:
            where.append("c.created_at < ?")
            params.append(iso(until))
        condition = " AND ".join(where)
        count = await self._db.one(f"SELECT COUNT(*) FROM chats c WHERE {condition}", params)
        rows = await self._db.all(
            f"{self._select} WHERE {condition} ORDER BY c.id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return ChatPage([_summary(r) for r in rows], int(count[0]) if count else 0)

    async def summary(self, chat_id: int) -> ChatSummary | None:
        row = await self._db.one(f"{self._select} WHERE c.id = ?", (chat_id,))
        return _summary(row) if row else None

    async def summaries(self, chat_ids: Iterable[int]) -> list[ChatSummary]:
        """These chats (those that still exist), newest first."""
        ids = sorted(set(chat_ids))
        if not ids:
            return []
        rows = await self._db.all(
            f"{self._select} WHERE c.id IN ({marks(ids)}) ORDER BY c.id DESC", ids
        )
        return [_summary(r) for r in rows]

    async def tag_names(self, queue_ids: Collection[int] | None = None) -> list[str]:
        """Every tag in use (on the given queues' chats), for the search form."""
        if queue_ids is None:
            rows = await self._db.all("SELECT DISTINCT tag FROM chat_tags ORDER BY tag")
        elif not queue_ids:
            return []
        else:
            rows = await self._db.all(
                "SELECT DISTINCT t.tag FROM chat_tags t JOIN chats c ON c.id = t.chat_id"
                f" WHERE c.queue_id IN ({marks(queue_ids)}) ORDER BY t.tag",
                tuple(queue_ids),
            )
        return [r[0] for r in rows]

    async def delete(self, chat_id: int) -> bool:
        """Delete an ended chat and its transcript and tags for good (bans, incidents,
        tickets and emails that referred to it keep their rows, without the link).
        Open chats are not deleted; returns whether a chat was."""
        count = await self._db.write_count(
            f"DELETE FROM chats WHERE id = ? AND state NOT IN ({marks(_OPEN_STATES)})",
            (chat_id, *_OPEN_STATES),
        )
        if count:
            # The deleted text must not linger in the write-ahead log either.
            await self._db.checkpoint()
        return count > 0
