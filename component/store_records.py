"""Queries for the admin pages: records (transcripts, tickets, the mail outbox) and the
moderation desk's lists (bans with their audit, incidents).

Scoping: every list that a group coordinator may see takes `queue_ids`, the queues whose
data the caller may show: None for all (an admin), a collection (possibly empty) for a
coordinator. Text search uses LIKE with `%`, `_` and the escape character escaped, so
what an admin types is matched literally.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

import aiosqlite

from component.core.bans import Ban
from component.core.models import ChatState, Incident, OutboxMail
from component.store_base import StoreBase, _dt, _ts
from component.store_rows import ban_from_row, incident_from_row, mail_from_row

_OPEN_STATES = tuple(s.value for s in ChatState if s.open)

# Which bans each filter of the ban list shows; every `?` stands for "now".
BAN_FILTERS: Mapping[str, str] = MappingProxyType(
    {
        "active": "b.lifted_at IS NULL AND b.starts_at <= ?"
        " AND (b.ends_at IS NULL OR b.ends_at > ?)",
        "ended": "b.lifted_at IS NULL AND b.ends_at IS NOT NULL AND b.ends_at <= ?",
        "lifted": "b.lifted_at IS NOT NULL",
        "all": "1",
    }
)


def like_pattern(text: str) -> str:
    """`text` as a LIKE pattern matching it anywhere, literally (use with ESCAPE '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _marks(values: Collection[Any]) -> str:
    return ",".join("?" * len(values))


def _status_in_scope(
    status_column: str, status: str | None, queue_column: str, queue_ids: Collection[int] | None
) -> tuple[str, list[Any]] | None:
    """The WHERE condition for "this status (or any) in these queues (or all)" and its
    parameters; None when the scope is empty, so nothing can match."""
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        where.append(f"{status_column} = ?")
        params.append(status)
    if queue_ids is not None:
        if not queue_ids:
            return None
        where.append(f"{queue_column} IN ({_marks(queue_ids)})")
        params.extend(queue_ids)
    return " AND ".join(where) or "1", params


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


@dataclass(frozen=True, slots=True)
class BanRow:
    """A ban with what the admin page shows beside it."""

    ban: Ban
    lifted_by: str | None
    chat_id: int | None


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One audit line with the network of its ban."""

    id: int
    ban_id: int
    network: str
    action: str
    actor: str
    detail: str
    at: datetime


@dataclass(frozen=True, slots=True)
class MailStatus:
    """One email of the outbox, without its body (the subject is read from it)."""

    mail: OutboxMail
    queue_id: int | None


@dataclass(frozen=True, slots=True)
class TicketRow:
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


_CHAT_SELECT = (
    "SELECT c.*, q.name AS queue_name, q.title AS queue_title, q.group_id AS group_id,"
    " q.privacy AS privacy, o.name AS operator_name, o.jid AS operator_jid,"
    " (SELECT group_concat(tag, ',') FROM (SELECT tag FROM chat_tags t"
    "   WHERE t.chat_id = c.id ORDER BY tag)) AS tag_list,"
    " (SELECT COUNT(*) FROM chat_events e WHERE e.chat_id = c.id AND e.kind = 'message')"
    "   AS message_count"
    " FROM chats c JOIN queues q ON q.id = c.queue_id"
    " LEFT JOIN operators o ON o.id = c.operator_id"
)


def _summary(row: aiosqlite.Row) -> ChatSummary:
    created = _dt(row["created_at"])
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
        asked_at=_dt(row["asked_at"]),
        accepted_at=_dt(row["accepted_at"]),
        ended_at=_dt(row["ended_at"]),
        ended_by=row["ended_by"],
        tags=tuple(t for t in (row["tag_list"] or "").split(",") if t),
        messages=row["message_count"],
    )


class RecordQueries(StoreBase):
    """Mixed into `component.store.Store`."""

    # Transcripts -------------------------------------------------------------------------

    async def search_chats(
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
            where.append(f"c.queue_id IN ({_marks(queue_ids)})")
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
            params.append(_ts(since))
        if until is not None:
            where.append("c.created_at < ?")
            params.append(_ts(until))
        condition = " AND ".join(where)
        count = await self._one(f"SELECT COUNT(*) FROM chats c WHERE {condition}", params)
        rows = await self._all(
            f"{_CHAT_SELECT} WHERE {condition} ORDER BY c.id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return ChatPage([_summary(r) for r in rows], int(count[0]) if count else 0)

    async def chat_summary(self, chat_id: int) -> ChatSummary | None:
        row = await self._one(f"{_CHAT_SELECT} WHERE c.id = ?", (chat_id,))
        return _summary(row) if row else None

    async def chat_summaries(self, chat_ids: Iterable[int]) -> list[ChatSummary]:
        """These chats (those that still exist), newest first."""
        ids = sorted(set(chat_ids))
        if not ids:
            return []
        rows = await self._all(
            f"{_CHAT_SELECT} WHERE c.id IN ({_marks(ids)}) ORDER BY c.id DESC", ids
        )
        return [_summary(r) for r in rows]

    async def chat_tag_names(self, queue_ids: Collection[int] | None = None) -> list[str]:
        """Every tag in use (on the given queues' chats), for the search form."""
        if queue_ids is None:
            rows = await self._all("SELECT DISTINCT tag FROM chat_tags ORDER BY tag")
        elif not queue_ids:
            return []
        else:
            rows = await self._all(
                "SELECT DISTINCT t.tag FROM chat_tags t JOIN chats c ON c.id = t.chat_id"
                f" WHERE c.queue_id IN ({_marks(queue_ids)}) ORDER BY t.tag",
                tuple(queue_ids),
            )
        return [r[0] for r in rows]

    async def delete_chat(self, chat_id: int) -> bool:
        """Delete an ended chat and its transcript and tags for good (bans, incidents,
        tickets and emails that referred to it keep their rows, without the link).
        Open chats are not deleted; returns whether a chat was."""
        async with self._write_lock:
            _, count = await self._execute(
                f"DELETE FROM chats WHERE id = ? AND state NOT IN ({_marks(_OPEN_STATES)})",
                (chat_id, *_OPEN_STATES),
            )
            if count:
                # The deleted text must not linger in the write-ahead log either.
                await self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return count > 0

    # Bans --------------------------------------------------------------------------------

    async def ban_rows(
        self, show: str, now: datetime, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[BanRow], int]:
        """Bans for the list: `show` is 'active', 'ended' (ran out), 'lifted' or 'all';
        newest first. Returns the page and the total."""
        condition = BAN_FILTERS[show]
        params = (_ts(now),) * condition.count("?")
        count = await self._one(f"SELECT COUNT(*) FROM bans b WHERE {condition}", params)
        rows = await self._all(
            f"SELECT b.* FROM bans b WHERE {condition}"
            " ORDER BY b.starts_at DESC, b.id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return (
            [BanRow(ban_from_row(r), r["lifted_by"], r["chat_id"]) for r in rows],
            int(count[0]) if count else 0,
        )

    async def ban_row(self, ban_id: int) -> BanRow | None:
        row = await self._one("SELECT * FROM bans WHERE id = ?", (ban_id,))
        return BanRow(ban_from_row(row), row["lifted_by"], row["chat_id"]) if row else None

    async def audit_log(
        self, ban_id: int | None = None, *, limit: int = 200, offset: int = 0
    ) -> tuple[list[AuditRow], int]:
        """Audit lines, newest first (a ban's own: oldest first), with the total."""
        params: tuple[int, ...] = ()
        where, order = "1", "a.id DESC"
        if ban_id is not None:
            where, order, params = "a.ban_id = ?", "a.id", (ban_id,)
        count = await self._one(f"SELECT COUNT(*) FROM ban_audit a WHERE {where}", params)
        rows = await self._all(
            "SELECT a.*, b.network FROM ban_audit a JOIN bans b ON b.id = a.ban_id"
            f" WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        out = []
        for r in rows:
            at = _dt(r["created_at"])
            assert at is not None
            out.append(
                AuditRow(
                    r["id"], r["ban_id"], r["network"], r["action"], r["actor"], r["detail"], at
                )
            )
        return out, int(count[0]) if count else 0

    # Incidents ---------------------------------------------------------------------------

    async def incidents_page(
        self,
        *,
        status: str | None = None,
        queue_ids: Collection[int] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Incident], int]:
        """Incidents, newest first, by status ('open', 'resolved' or None for both) and
        queue scope (incidents without a queue only for callers who see every queue)."""
        scope = _status_in_scope("status", status, "queue_id", queue_ids)
        if scope is None:
            return [], 0
        condition, params = scope
        count = await self._one(f"SELECT COUNT(*) FROM incidents WHERE {condition}", params)
        rows = await self._all(
            f"SELECT * FROM incidents WHERE {condition} ORDER BY id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [incident_from_row(r) for r in rows], int(count[0]) if count else 0

    async def incidents_for_chat(self, chat_id: int) -> list[Incident]:
        rows = await self._all("SELECT * FROM incidents WHERE chat_id = ? ORDER BY id", (chat_id,))
        return [incident_from_row(r) for r in rows]

    async def incidents_by_ids(self, incident_ids: Iterable[int]) -> list[Incident]:
        ids = sorted(set(incident_ids))
        if not ids:
            return []
        rows = await self._all(
            f"SELECT * FROM incidents WHERE id IN ({_marks(ids)}) ORDER BY id DESC", ids
        )
        return [incident_from_row(r) for r in rows]

    async def incident_addresses(self) -> list[tuple[int, str]]:
        """(incident id, address) of every incident that kept an address: for network
        searches, like `stored_origins` for chats."""
        rows = await self._all("SELECT id, address FROM incidents WHERE address IS NOT NULL")
        return [(r["id"], r["address"]) for r in rows]

    # Tickets and the outbox -------------------------------------------------------------

    _TICKET_SELECT = (
        "SELECT t.*, q.name AS queue_name, o.name AS operator_name FROM tickets t"
        " JOIN queues q ON q.id = t.queue_id LEFT JOIN operators o ON o.id = t.operator_id"
    )

    async def ticket_rows(
        self,
        *,
        status: str | None = None,
        queue_ids: Collection[int] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[TicketRow], int]:
        """Tickets, newest first, each with its emails; and the total."""
        scope = _status_in_scope("t.status", status, "t.queue_id", queue_ids)
        if scope is None:
            return [], 0
        condition, params = scope
        count = await self._one(f"SELECT COUNT(*) FROM tickets t WHERE {condition}", params)
        rows = await self._all(
            f"{self._TICKET_SELECT} WHERE {condition} ORDER BY t.id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return await self._with_mails(rows), int(count[0]) if count else 0

    async def ticket_row(self, ticket_id: int) -> TicketRow | None:
        rows = await self._all(f"{self._TICKET_SELECT} WHERE t.id = ?", (ticket_id,))
        found = await self._with_mails(rows)
        return found[0] if found else None

    async def _with_mails(self, rows: list[aiosqlite.Row]) -> list[TicketRow]:
        ids = [r["id"] for r in rows]
        mails: dict[int, list[OutboxMail]] = {}
        if ids:
            for m in await self._all(
                f"SELECT * FROM mail_outbox WHERE ticket_id IN ({_marks(ids)}) ORDER BY id",
                ids,
            ):
                mails.setdefault(m["ticket_id"], []).append(mail_from_row(m))
        out = []
        for r in rows:
            created = _dt(r["created_at"])
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

    async def set_ticket_status(self, ticket_id: int, status: str) -> bool:
        return (
            await self._write_count(
                "UPDATE tickets SET status = ? WHERE id = ?", (status, ticket_id)
            )
            > 0
        )

    _MAIL_SCOPE = (
        "SELECT m.*, COALESCE(t.queue_id, c.queue_id) AS scope_queue FROM mail_outbox m"
        " LEFT JOIN tickets t ON t.id = m.ticket_id LEFT JOIN chats c ON c.id = m.chat_id"
    )

    async def outbox(
        self, *, queue_ids: Collection[int] | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[MailStatus], int]:
        """The outbox: failed emails first, then pending, then sent; newest first within
        each. Coordinators see the emails of their queues' tickets and chats only."""
        where = "1"
        params: list[Any] = []
        if queue_ids is not None:
            if not queue_ids:
                return [], 0
            where = f"COALESCE(t.queue_id, c.queue_id) IN ({_marks(queue_ids)})"
            params.extend(queue_ids)
        count = await self._one(
            "SELECT COUNT(*) FROM mail_outbox m LEFT JOIN tickets t ON t.id = m.ticket_id"
            f" LEFT JOIN chats c ON c.id = m.chat_id WHERE {where}",
            params,
        )
        rows = await self._all(
            f"{self._MAIL_SCOPE} WHERE {where} ORDER BY CASE m.status WHEN 'failed' THEN 0"
            " WHEN 'pending' THEN 1 ELSE 2 END, m.id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [MailStatus(mail_from_row(r), r["scope_queue"]) for r in rows], (
            int(count[0]) if count else 0
        )

    async def outbox_mail(self, mail_id: int) -> MailStatus | None:
        row = await self._one(f"{self._MAIL_SCOPE} WHERE m.id = ?", (mail_id,))
        return MailStatus(mail_from_row(row), row["scope_queue"]) if row else None

    async def retry_mail(self, mail_id: int, now: datetime) -> bool:
        """A failed email goes back to pending, due now (its attempts and last error are
        kept for the record). False if it was not failed."""
        return (
            await self._write_count(
                "UPDATE mail_outbox SET status = 'pending', next_attempt_at = ?"
                " WHERE id = ? AND status = 'failed'",
                (_ts(now), mail_id),
            )
            > 0
        )
