"""Queues (what patrons chat with) and their settings."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from component.core.changes import QueueUpdate
from component.core.models import Queue, RoutingMode
from component.store.db import Database, StoreError, iso


def queue_from_row(row: aiosqlite.Row) -> Queue:
    return Queue(
        id=row["id"],
        name=row["name"],
        group_id=row["group_id"],
        title=row["title"],
        routing=RoutingMode(row["routing"]),
        followup_email=row["followup_email"],
        offer_timeout=row["offer_timeout"],
        rollover_after=row["rollover_after"],
        backup_queue_id=row["backup_queue_id"],
        hours=row["hours"],
        timezone=row["timezone"],
        closed_days=tuple(d for d in row["closed_days"].split(",") if d),
        escalation=row["escalation"],
        referral_email=row["referral_email"],
        max_wait=row["max_wait"],
        privacy=row["privacy"],
        retention_days=row["retention_days"],
        purge_transcripts=bool(row["purge_transcripts"]),
        feedback=bool(row["feedback"]),
        widget_color=row["widget_color"],
        widget_logo=row["widget_logo"],
        greeting=row["greeting"],
        text_available=row["text_available"],
        text_away=row["text_away"],
        text_offline=row["text_offline"],
        allowed_origins=row["allowed_origins"],
    )


class QueueStore:
    """`store.queues`: read by the directory cache, written by the directory layer."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, name: str, group_id: int, title: str, followup_email: str | None, now: datetime
    ) -> Queue:
        if await self.by_name(name) is not None:
            raise StoreError(f"queue {name!r} already exists")
        qid = await self._db.write(
            "INSERT INTO queues (name, group_id, title, followup_email, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (name, group_id, title, followup_email, iso(now)),
        )
        return Queue(qid, name, group_id, title, RoutingMode.RING_ALL, followup_email)

    async def by_name(self, name: str) -> Queue | None:
        row = await self._db.one("SELECT * FROM queues WHERE name = ?", (name,))
        return queue_from_row(row) if row else None

    async def all(self) -> list[Queue]:
        return [queue_from_row(r) for r in await self._db.all("SELECT * FROM queues ORDER BY name")]

    async def update(self, queue_id: int, update: QueueUpdate) -> None:
        """Change a queue's settings in one statement. Called by the directory layer,
        which has validated every value (and by tests setting a queue up)."""
        await self._db.update_row("queues", queue_id, update.columns())

    async def delete(self, queue_id: int) -> None:
        """Delete a queue nobody has used. Refused (StoreError with the reason) while it is
        another queue's backup, has open chats, or has a history: chats in which a patron
        asked something, or tickets. Chats that never got a question (a widget opened and
        closed, the admin page's preview) go with it, as do its canned messages and
        operator memberships."""
        async with self._db.transaction() as execute:
            backups = await self._db.all(
                "SELECT name FROM queues WHERE backup_queue_id = ? AND id != ? ORDER BY name",
                (queue_id, queue_id),
            )
            if backups:
                names = ", ".join(r["name"] for r in backups)
                raise StoreError(
                    f"it is the backup queue of {names}: choose another backup there first"
                )
            row = await self._db.one(
                "SELECT (SELECT COUNT(*) FROM chats WHERE queue_id = ?1"
                "  AND (asked_at IS NOT NULL OR state IN ('waiting', 'offered', 'active'))),"
                " (SELECT COUNT(*) FROM tickets WHERE queue_id = ?1)",
                (queue_id,),
            )
            chats, tickets = (int(row[0]), int(row[1])) if row else (0, 0)
            if chats or tickets:
                raise StoreError(
                    f"it has a history ({chats} chat(s), {tickets} ticket(s)) that transcripts"
                    " and statistics refer to; stop using it instead (hours 'never', no"
                    " operators)"
                )
            await execute("DELETE FROM chats WHERE queue_id = ?", (queue_id,))
            await execute("UPDATE queues SET backup_queue_id = NULL WHERE id = ?", (queue_id,))
            await execute("DELETE FROM queues WHERE id = ?", (queue_id,))
