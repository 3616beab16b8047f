"""The mail outbox: every email refdesk sends is committed here first (with the change
that caused it), then the mailer sends it with retries."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from component.core.models import NewMail, OutboxMail
from component.store.db import Database, Execute, from_iso, iso, marks


@dataclass(frozen=True, slots=True)
class MailStatus:
    """One email of the outbox, without its body (the subject is read from it)."""

    mail: OutboxMail
    queue_id: int | None


def mail_from_row(row: aiosqlite.Row) -> OutboxMail:
    next_at = from_iso(row["next_attempt_at"])
    created = from_iso(row["created_at"])
    assert next_at is not None and created is not None
    return OutboxMail(
        id=row["id"],
        purpose=row["purpose"],
        recipients=tuple(row["recipients"].split("\n")),
        message=bytes(row["message"]),
        status=row["status"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        next_attempt_at=next_at,
        created_at=created,
        ticket_id=row["ticket_id"],
        chat_id=row["chat_id"],
        sent_at=from_iso(row["sent_at"]),
    )


async def enqueue_in(
    execute: Execute,
    mail: NewMail,
    now: datetime,
    *,
    ticket_id: int | None = None,
    chat_id: int | None = None,
) -> int:
    """Put an email in the outbox inside the caller's transaction (`execute`); returns
    its id. The one INSERT of an outbox row: called by `MailStore`, by
    `TicketStore.create` (a ticket and its emails commit together), by
    `ExemptContactStore.send` (the mail and the draft's new status commit together) and by
    `NoticeStore.record` (a staff or ban notice and its line of the trail)."""
    return await execute(
        "INSERT INTO mail_outbox (ticket_id, chat_id, purpose, recipients, message,"
        " next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            ticket_id,
            chat_id,
            mail.purpose,
            "\n".join(mail.recipients),
            mail.message,
            iso(now),
            iso(now),
        ),
    )


_MAIL_SCOPE = (
    "SELECT m.*, COALESCE(t.queue_id, c.queue_id) AS scope_queue FROM mail_outbox m"
    " LEFT JOIN tickets t ON t.id = m.ticket_id LEFT JOIN chats c ON c.id = m.chat_id"
)


class MailStore:
    """`store.mail`: filled by the follow-up layer, drained by the mailer, listed and
    retried by the admin pages."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def enqueue(self, mail: NewMail, now: datetime, *, chat_id: int | None = None) -> int:
        async with self._db.transaction() as execute:
            return await enqueue_in(execute, mail, now, chat_id=chat_id)

    async def transcript_mailed(self, chat_id: int) -> bool:
        """Whether the chat's transcript copy has been put in the outbox (sent or not)."""
        row = await self._db.one(
            "SELECT 1 FROM mail_outbox WHERE chat_id = ? AND purpose = 'transcript' LIMIT 1",
            (chat_id,),
        )
        return row is not None

    async def enqueue_transcript(self, chat_id: int, mail: NewMail, now: datetime) -> bool:
        """Put the chat's transcript copy in the outbox and forget the address asked for,
        unless a copy was queued already: at most one per chat, even when two requests
        race. Returns whether this call queued it."""
        async with self._db.transaction() as execute:
            if await self.transcript_mailed(chat_id):
                return False
            await enqueue_in(execute, mail, now, chat_id=chat_id)
            await execute("UPDATE chats SET transcript_email = NULL WHERE id = ?", (chat_id,))
        return True

    # The mailer's side ---------------------------------------------------------------------

    async def due(self, now: datetime, limit: int = 20) -> list[OutboxMail]:
        rows = await self._db.all(
            "SELECT * FROM mail_outbox WHERE status = 'pending' AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at, id LIMIT ?",
            (iso(now), limit),
        )
        return [mail_from_row(r) for r in rows]

    async def next_due(self) -> datetime | None:
        row = await self._db.one(
            "SELECT MIN(next_attempt_at) FROM mail_outbox WHERE status = 'pending'"
        )
        return from_iso(row[0]) if row and row[0] else None

    async def mark_sent(self, mail_id: int, now: datetime) -> None:
        await self._db.write(
            "UPDATE mail_outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1,"
            " last_error = NULL WHERE id = ?",
            (iso(now), mail_id),
        )

    async def mark_retry(self, mail_id: int, next_at: datetime, error: str) -> None:
        await self._db.write(
            "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = ?,"
            " last_error = ? WHERE id = ?",
            (iso(next_at), error[:500], mail_id),
        )

    async def mark_failed(self, mail_id: int, error: str) -> None:
        await self._db.write(
            "UPDATE mail_outbox SET status = 'failed', attempts = attempts + 1,"
            " last_error = ? WHERE id = ?",
            (error[:500], mail_id),
        )

    async def all(self, status: str | None = None, limit: int = 200) -> list[OutboxMail]:
        if status is None:
            rows = await self._db.all(
                "SELECT * FROM mail_outbox ORDER BY id DESC LIMIT ?", (limit,)
            )
        else:
            rows = await self._db.all(
                "SELECT * FROM mail_outbox WHERE status = ? ORDER BY id DESC LIMIT ?",
                (status, limit),
            )
        return [mail_from_row(r) for r in rows]

    # The admin pages' side -----------------------------------------------------------------

    async def page(
        self, *, queue_ids: Collection[int] | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[MailStatus], int]:
        """The outbox: failed emails first, then pending, then sent; newest first within
        each. Coordinators see the emails of their queues' tickets and chats only."""
        where = "TRUE"
        params: list[Any] = []
        if queue_ids is not None:
            if not queue_ids:
                return [], 0
            where = f"COALESCE(t.queue_id, c.queue_id) IN ({marks(queue_ids)})"
            params.extend(queue_ids)
        count = await self._db.one(
            "SELECT COUNT(*) FROM mail_outbox m LEFT JOIN tickets t ON t.id = m.ticket_id"
            f" LEFT JOIN chats c ON c.id = m.chat_id WHERE {where}",
            params,
        )
        rows = await self._db.all(
            f"{_MAIL_SCOPE} WHERE {where} ORDER BY CASE m.status WHEN 'failed' THEN 0"
            " WHEN 'pending' THEN 1 ELSE 2 END, m.id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [MailStatus(mail_from_row(r), r["scope_queue"]) for r in rows], (
            int(count[0]) if count else 0
        )

    async def status(self, mail_id: int) -> MailStatus | None:
        row = await self._db.one(f"{_MAIL_SCOPE} WHERE m.id = ?", (mail_id,))
        return MailStatus(mail_from_row(row), row["scope_queue"]) if row else None

    async def retry(self, mail_id: int, now: datetime) -> bool:
        """A failed email goes back to pending, due now (its attempts and last error are
        kept for the record). False if it was not failed."""
        changed = await self._db.write_count(
            "UPDATE mail_outbox SET status = 'pending', next_attempt_at = ?"
            " WHERE id = ? AND status = 'failed'",
            (iso(now), mail_id),
        )
        return changed > 0
