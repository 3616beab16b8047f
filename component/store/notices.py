"""SQL for the notices trail: what refdesk told whom about bans, incidents and staffing,
and the look-ups the notices desk needs (the addresses a patron gave in a chat).

A standalone class over the store's one connection (`store.notices`)."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from component.core.models import NewMail, Notification
from component.store.db import Database, from_iso, iso
from component.store.mail import enqueue_in


def _notification(row: aiosqlite.Row) -> Notification:
    created = from_iso(row["created_at"])
    assert created is not None
    return Notification(
        id=row["id"],
        purpose=row["purpose"],
        channel=row["channel"],
        recipient=row["recipient"],
        summary=row["summary"],
        created_at=created,
        incident_id=row["incident_id"],
        ban_id=row["ban_id"],
        chat_id=row["chat_id"],
        queue_id=row["queue_id"],
    )


class NoticeStore:
    """Created by `Store`; used by `component.notices` and the admin moderation pages."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self,
        *,
        purpose: str,
        channel: str,
        recipient: str,
        summary: str,
        now: datetime,
        mail: NewMail | None = None,
        incident_id: int | None = None,
        ban_id: int | None = None,
        chat_id: int | None = None,
        queue_id: int | None = None,
    ) -> int:
        """Keep one line of the trail; called by the notices desk once an XMPP notice is
        handed to the XMPP side, or with the email itself (`mail`), which goes in the
        outbox in the same transaction: a notice that can be sent is always in the trail,
        which the staffing watch resumes from after a restart (an alert mailed just
        before a restart whose trail line was lost would be sent again)."""
        async with self.db.transaction() as execute:
            if mail is not None:
                await enqueue_in(execute, mail, now, chat_id=chat_id)
            return await execute(
                "INSERT INTO notifications (purpose, channel, recipient, summary,"
                " incident_id, ban_id, chat_id, queue_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    purpose,
                    channel,
                    recipient,
                    summary,
                    incident_id,
                    ban_id,
                    chat_id,
                    queue_id,
                    iso(now),
                ),
            )

    async def for_incident(self, incident_id: int) -> list[Notification]:
        rows = await self.db.all(
            "SELECT * FROM notifications WHERE incident_id = ? ORDER BY id", (incident_id,)
        )
        return [_notification(r) for r in rows]

    async def for_ban(self, ban_id: int) -> list[Notification]:
        rows = await self.db.all(
            "SELECT * FROM notifications WHERE ban_id = ? ORDER BY id", (ban_id,)
        )
        return [_notification(r) for r in rows]

    async def staffing_for_queue(self, queue_id: int, limit: int = 50) -> list[Notification]:
        """The queue's unstaffed / staffed-again notices, newest first (its admin page)."""
        rows = await self.db.all(
            "SELECT * FROM notifications WHERE queue_id = ?"
            " AND purpose IN ('unstaffed', 'staffed') ORDER BY id DESC LIMIT ?",
            (queue_id, limit),
        )
        return [_notification(r) for r in rows]

    async def recent(self, limit: int = 200) -> list[Notification]:
        rows = await self.db.all("SELECT * FROM notifications ORDER BY id DESC LIMIT ?", (limit,))
        return [_notification(r) for r in rows]

    async def patron_addresses(self, chat_id: int) -> list[str]:
        """The addresses the patron gave in this chat through their own session: the
        transcript request, and the email form of a chat turned into a ticket. Never an
        address an operator typed (a `!refer` target) nor one from another chat."""
        rows = await self.db.all(
            "SELECT transcript_email AS email FROM chats WHERE id = ?1"
            " AND transcript_email IS NOT NULL"
            " UNION SELECT email FROM tickets WHERE chat_id = ?1 AND kind = 'offline'"
            " AND email IS NOT NULL",
            (chat_id,),
        )
        return sorted({str(r["email"]) for r in rows})

    async def set_outcome(self, incident_id: int, outcome: str) -> None:
        """The outcome chosen when the incident was closed (see `core.outcomes`)."""
        await self.db.write("UPDATE incidents SET outcome = ? WHERE id = ?", (outcome, incident_id))

    async def ban_chat(self, ban_id: int) -> tuple[int | None, str | None]:
        """(the chat the ban was made in, who lifted it) for a ban's notices."""
        row = await self.db.one("SELECT chat_id, lifted_by FROM bans WHERE id = ?", (ban_id,))
        if row is None:
            return None, None
        return row["chat_id"], row["lifted_by"]
