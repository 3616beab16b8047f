"""Tickets: questions to be answered by email (offline questions, referrals), filed with
their emails in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from component.core.models import NewMail, OutboxMail, Ticket
from component.store.db import Database, from_iso, iso, marks, status_in_scope
from component.store.mail import enqueue_in, mail_from_row


@dataclass(frozen=True, slots=True)
class TicketRow:
    """A ticket as the admin pages list it, with its queue, operator and emails."""

    id: int
    kind: str
    queue_id: int
    queue_name: str
    chat_id: int | None
    name: str | None
    email: str | None
    question: str
    status: str
    operator_name: str | None
    created_at: datetime
    mails: tuple[OutboxMail, ...]


def ticket_from_row(row: aiosqlite.Row) -> Ticket:
    created = from_iso(row["created_at"])
    assert created is not None
    return Ticket(
        row["id"],
        row["kind"],
        row["queue_id"],
        row["chat_id"],
        row["name"],
        row["email"],
        row["question"],
        row["status"],
        created,
    )


_TICKET_SELECT = (
    "SELECT t.*, q.name AS queue_name, o.name AS operator_name FROM tickets t"
    " JOIN queues q ON q.id = t.queue_id LEFT JOIN operators o ON o.id = t.operator_id"
)


class TicketStore:
    """`store.tickets`: filed by the follow-up layer, listed by the admin pages."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        *,
        kind: str,
        queue_id: int,
        question: str,
        now: datetime,
        mails: Callable[[int], Iterable[NewMail]],
        chat_id: int | None = None,
        name: str | None = None,
        email: str | None = None,
        origin_ip: str | None = None,
        operator_id: int | None = None,
    ) -> int:
        """File a ticket and the emails that go with it in one transaction: either the
        patron's question is kept and will be mailed, or nothing happened. `mails` builds
        the emails from the new ticket's id."""
        async with self._db.transaction() as execute:
            ticket_id = await execute(
                "INSERT INTO tickets (kind, queue_id, chat_id, name, email, question,"
                " origin_ip, operator_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, queue_id, chat_id, name, email, question, origin_ip, operator_id, iso(now)),
            )
            for mail in mails(ticket_id):
                await enqueue_in(execute, mail, now, ticket_id=ticket_id, chat_id=chat_id)
        return ticket_id

    async def get(self, ticket_id: int) -> Ticket | None:
        row = await self._db.one("SELECT * FROM tickets WHERE id = ?", (ticket_id,))
        return ticket_from_row(row) if row else None

    async def all(self, limit: int = 200) -> list[Ticket]:
        rows = await self._db.all("SELECT * FROM tickets ORDER BY id DESC LIMIT ?", (limit,))
        return [ticket_from_row(r) for r in rows]

    async def set_status(self, ticket_id: int, status: str) -> bool:
        changed = await self._db.write_count(
            "UPDATE tickets SET status = ? WHERE id = ?", (status, ticket_id)
        )
        return changed > 0

    # The admin pages' list -----------------------------------------------------------------

    async def rows(
        self,
        *,
        status: str | None = None,
        queue_ids: Collection[int] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[TicketRow], int]:
        """Tickets, newest first, each with its emails; and the total."""
        scope = status_in_scope("t.status", status, "t.queue_id", queue_ids)
        if scope is None:
            return [], 0
        condition, params = scope
        count = await self._db.one(f"SELECT COUNT(*) FROM tickets t WHERE {condition}", params)
        rows = await self._db.all(
            f"{_TICKET_SELECT} WHERE {condition} ORDER BY t.id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return await self._with_mails(rows), int(count[0]) if count else 0

    async def row(self, ticket_id: int) -> TicketRow | None:
        rows = await self._db.all(f"{_TICKET_SELECT} WHERE t.id = ?", (ticket_id,))
        found = await self._with_mails(rows)
        return found[0] if found else None

    async def _with_mails(self, rows: list[aiosqlite.Row]) -> list[TicketRow]:
        ids = [r["id"] for r in rows]
        mails: dict[int, list[OutboxMail]] = {}
        if ids:
            for m in await self._db.all(
                f"SELECT * FROM mail_outbox WHERE ticket_id IN ({marks(ids)}) ORDER BY id",
                ids,
            ):
                mails.setdefault(m["ticket_id"], []).append(mail_from_row(m))
        out = []
        for r in rows:
            created = from_iso(r["created_at"])
            assert created is not None
            out.append(
                TicketRow(
                    id=r["id"],
                    kind=r["kind"],
                    queue_id=r["queue_id"],
                    queue_name=r["queue_name"],
                    chat_id=r["chat_id"],
                    name=r["name"],
                    email=r["email"],
                    question=r["question"],
                    status=r["status"],
                    operator_name=r["operator_name"],
                    created_at=created,
                    mails=tuple(mails.get(r["id"], ())),
                )
            )
        return out
