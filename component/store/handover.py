"""SQL for shift hand-over notes (`!handover` on a queue JID). A standalone part of the
store, reached as `store.handover`; the staff channel (`component.staff`) is its only
caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from component.store.db import Database, from_iso, iso


@dataclass(frozen=True, slots=True)
class HandoverNote:
    """A queue's current hand-over note, and whom it was given to (None until then)."""

    queue_id: int
    author_jid: str
    author_name: str
    text: str
    created_at: datetime
    delivered_to: str | None
    delivered_at: datetime | None


class HandoverStore:
    """Created by `Store.__init__` over the store's one connection."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def note(self, queue_id: int) -> HandoverNote | None:
        """The queue's current note, if any."""
        row = await self.db.one(
            "SELECT queue_id, author_jid, author_name, text, created_at, delivered_to,"
            " delivered_at FROM handover_notes WHERE queue_id = ?",
            (queue_id,),
        )
        if row is None:
            return None
        created = from_iso(row["created_at"])
        assert created is not None
        return HandoverNote(
            queue_id=row["queue_id"],
            author_jid=row["author_jid"],
            author_name=row["author_name"],
            text=row["text"],
            created_at=created,
            delivered_to=row["delivered_to"],
            delivered_at=from_iso(row["delivered_at"]),
        )

    async def set_note(
        self, queue_id: int, author_jid: str, author_name: str, text: str, now: datetime
    ) -> None:
        """Replace the queue's note with a new, undelivered one."""
        await self.db.write(
            "INSERT INTO handover_notes (queue_id, author_jid, author_name, text, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(queue_id) DO UPDATE SET"
            " author_jid = excluded.author_jid, author_name = excluded.author_name,"
            " text = excluded.text, created_at = excluded.created_at,"
            " delivered_to = NULL, delivered_at = NULL",
            (queue_id, author_jid, author_name, text, iso(now)),
        )

    async def clear(self, queue_id: int) -> bool:
        """Delete the queue's note; returns whether there was one."""
        return (
            await self.db.write_count("DELETE FROM handover_notes WHERE queue_id = ?", (queue_id,))
            > 0
        )

    async def mark_delivered(self, queue_id: int, jid: str, now: datetime) -> bool:
        """Record that `jid` got the note. Only the first delivery counts: returns False
        if the note was delivered already (or is gone), so that two operators coming
        online at once do not both receive it."""
        changed = await self.db.write_count(
            "UPDATE handover_notes SET delivered_to = ?, delivered_at = ?"
            " WHERE queue_id = ? AND delivered_to IS NULL",
            (jid, iso(now), queue_id),
        )
        return changed > 0
