"""All SQL of refdesk, behind one class.

The service calls it; nothing else touches the database. SQLite in WAL mode through
aiosqlite; numbered migrations in `component/migrations/NNN_name.sql` are applied at
open, tracked with `PRAGMA user_version`.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from component.commit_queue import CommitQueue
from component.core.bans import Ban
from component.core.changes import GroupUpdate, QueueUpdate
from component.core.models import (
    Assignment,
    BanAudit,
    CannedMessage,
    Chat,
    ChatEvent,
    ChatState,
    EventKind,
    Group,
    Incident,
    Link,
    NewMail,
    Operator,
    OutboxMail,
    Queue,
    RoutingMode,
    Sender,
    Ticket,
)
from component.files import create_private, foreign_owner
from component.store_admin import AdminQueries
from component.store_base import StoreError, _dt, _ts
from component.store_directory import DirectoryQueries
from component.store_ops import BackupResult, OpsQueries, OutboxSummary
from component.store_records import RecordQueries
from component.store_rows import ban_from_row, incident_from_row, mail_from_row
from component.store_stats import StatsQueries

__all__ = ["BackupResult", "OutboxSummary", "Store", "StoreError", "migrations"]

_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """The numbered migrations shipped with the package, in order: (number, name, sql)."""
    found = []
    for entry in resources.files("component.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    if numbers != list(range(1, len(found) + 1)):
        raise StoreError(f"migrations are not numbered 1..N without gaps: {numbers}")
    return found


def _try_open(path: str) -> None:
    """Open and close the database file (creating it if missing); raises sqlite3.Error
    if that cannot be done. Run in a thread by `Store.open`."""
    sqlite3.connect(path).close()


class Store(AdminQueries, DirectoryQueries, OpsQueries, RecordQueries, StatsQueries):
    """The database. Created with `await Store.open(path)` by the composition root or the
    CLI, closed with `await store.close()`."""

    @classmethod
    async def open(cls, path: Path | str, *, synchronous: str = "FULL") -> Store:
        """Open (creating if needed, readable by its owner only) and migrate the database
        at `path`. A file that cannot be opened or is no database (a directory, a missing
        folder, another kind of file) is a StoreError naming the path, for the CLI to print
        as one line."""
        # Try the file with plain sqlite3 first: when aiosqlite's own connect fails, its
        # worker thread later dies noisily on a closed event loop, after the caller has
        # already reported the error.
        try:
            if str(path) != ":memory:":
                create_private(Path(path))
            await asyncio.to_thread(_try_open, str(path))
            db = await aiosqlite.connect(str(path), isolation_level=None)
        except (sqlite3.Error, OSError, ValueError) as exc:
            owner = foreign_owner(Path(path)) if str(path) != ":memory:" else None
            why = f"{exc} ({owner})" if owner else str(exc)
            raise StoreError(f"cannot open the database {path}: {why}") from None
        try:
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA journal_mode=WAL")
            # FULL: a message acknowledged to its sender survives a power cut, not only a
            # crash of the process.
            await db.execute(f"PRAGMA synchronous={synchronous}")
            await db.execute("PRAGMA foreign_keys=ON")
            # Deleted data (purged addresses and transcripts) is overwritten, not left in
            # free pages of the file.
            await db.execute("PRAGMA secure_delete=ON")
            await db.execute("PRAGMA busy_timeout=5000")
            store = cls(db)
            await store._migrate()
        except sqlite3.Error as exc:
            await db.close()
            raise StoreError(f"cannot use the database {path}: {exc}") from None
        except BaseException:
            await db.close()
            raise
        return store

    def __init__(self, db: aiosqlite.Connection) -> None:
        super().__init__(db)
        # Transcript lines committed together (group commit), see component.commit_queue.
        self.commits = CommitQueue(self)

    async def close(self) -> None:
        await self.commits.flush()
        await self._db.close()

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        current = int(row[0]) if row else 0
        for number, name, sql in migrations():
            if number <= current:
                continue
            # executescript commits implicitly, so the version bump rides inside the script.
            await self._db.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
            _ = name

    async def schema_version(self) -> int:
        async with self._db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def data_version(self) -> int:
        """Changes when another connection (e.g. the CLI) commits; polled by the service."""
        async with self._db.execute("PRAGMA data_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def journal_mode(self) -> str:
        async with self._db.execute("PRAGMA journal_mode") as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else ""

    # Groups ------------------------------------------------------------------------------

    async def add_group(self, name: str, title: str, now: datetime) -> Group:
        if await self.group_by_name(name) is not None:
            raise StoreError(f"group {name!r} already exists")
        gid = await self._write(
            "INSERT INTO groups (name, title, created_at) VALUES (?, ?, ?)",
            (name, title, _ts(now)),
        )
        return Group(gid, name, title)

    @staticmethod
    def _group(row: aiosqlite.Row) -> Group:
        return Group(
            row["id"],
            row["name"],
            row["title"],
            bool(row["operators_may_ban"]),
            row["appeal_email"],
        )

    async def group_by_name(self, name: str) -> Group | None:
        row = await self._one("SELECT * FROM groups WHERE name = ?", (name,))
        return self._group(row) if row else None

    async def group_by_id(self, group_id: int) -> Group | None:
        row = await self._one("SELECT * FROM groups WHERE id = ?", (group_id,))
        return self._group(row) if row else None

    async def list_groups(self) -> list[Group]:
        return [self._group(r) for r in await self._all("SELECT * FROM groups ORDER BY name")]

    async def update_group(self, group_id: int, update: GroupUpdate) -> None:
        """Change a group's settings in one statement. Called by the directory layer,
        which has validated every value."""
        await self._update_row("groups", group_id, update.columns())

    async def _update_row(self, table: str, row_id: int, columns: dict[str, object]) -> None:
        if not columns:
            return
        # Column names come from the update dataclasses' fields, never from input.
        assignments = ", ".join(f"{key} = ?" for key in columns)
        await self._write(
            f"UPDATE {table} SET {assignments} WHERE id = ?", (*columns.values(), row_id)
        )

    # Queues ------------------------------------------------------------------------------

    @staticmethod
    def _queue(row: aiosqlite.Row) -> Queue:
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
            widget_color=row["widget_color"],
            widget_logo=row["widget_logo"],
            greeting=row["greeting"],
            text_available=row["text_available"],
            text_away=row["text_away"],
            text_offline=row["text_offline"],
            allowed_origins=row["allowed_origins"],
        )

    async def update_queue(self, queue_id: int, update: QueueUpdate) -> None:
        """Change a queue's settings in one statement. Called by the directory layer,
        which has validated every value (and by tests setting a queue up)."""
        await self._update_row("queues", queue_id, update.columns())

    async def add_queue(
        self, name: str, group_id: int, title: str, followup_email: str | None, now: datetime
    ) -> Queue:
        if await self.queue_by_name(name) is not None:
            raise StoreError(f"queue {name!r} already exists")
        qid = await self._write(
            "INSERT INTO queues (name, group_id, title, followup_email, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (name, group_id, title, followup_email, _ts(now)),
        )
        return Queue(qid, name, group_id, title, RoutingMode.RING_ALL, followup_email)

    async def queue_by_name(self, name: str) -> Queue | None:
        row = await self._one("SELECT * FROM queues WHERE name = ?", (name,))
        return self._queue(row) if row else None

    async def list_queues(self) -> list[Queue]:
        return [self._queue(r) for r in await self._all("SELECT * FROM queues ORDER BY name")]

    # Operators ---------------------------------------------------------------------------

    @staticmethod
    def _operator(row: aiosqlite.Row) -> Operator:
        return Operator(row["id"], row["jid"], row["name"], row["max_chats"], row["email"])

    async def upsert_operator(self, jid: str, name: str, max_chats: int, now: datetime) -> Operator:
        """Create the operator, or update name and max chats of an existing one: a short
        form of `save_operator` for seeding a database (the demo, tests)."""
        return await self.save_operator(
            jid, name=name, max_chats=max_chats, memberships={}, now=now
        )

    async def set_operator_email(self, operator_id: int, email: str | None) -> None:
        await self._write("UPDATE operators SET email = ? WHERE id = ?", (email, operator_id))

    async def operator_by_jid(self, jid: str) -> Operator | None:
        row = await self._one("SELECT * FROM operators WHERE jid = ?", (jid,))
        return self._operator(row) if row else None

    async def list_operators(self) -> list[Operator]:
        rows = await self._all("SELECT * FROM operators ORDER BY jid")
        return [self._operator(r) for r in rows]

    async def assign(self, queue_id: int, operator_id: int, *, on_call: bool | None = None) -> None:
        """Make the operator a member of the queue; `on_call` None leaves that flag as is."""
        await self._write(
            "INSERT OR IGNORE INTO queue_operators (queue_id, operator_id) VALUES (?, ?)",
            (queue_id, operator_id),
        )
        if on_call is not None:
            await self._write(
                "UPDATE queue_operators SET on_call = ? WHERE queue_id = ? AND operator_id = ?",
                (int(on_call), queue_id, operator_id),
            )

    async def list_assignments(self) -> list[Assignment]:
        rows = await self._all("SELECT * FROM queue_operators ORDER BY queue_id, operator_id")
        return [
            Assignment(r["queue_id"], r["operator_id"], r["subscription"], bool(r["on_call"]))
            for r in rows
        ]

    async def set_subscription(self, queue_id: int, operator_id: int, state: str) -> None:
        await self._write(
            "UPDATE queue_operators SET subscription = ? WHERE queue_id = ? AND operator_id = ?",
            (state, queue_id, operator_id),
        )

    # Chats -------------------------------------------------------------------------------

    @staticmethod
    def _chat(row: aiosqlite.Row) -> Chat:
        created = _dt(row["created_at"])
        assert created is not None
        return Chat(
            id=row["id"],
            queue_id=row["queue_id"],
            guest=row["guest"],
            state=ChatState(row["state"]),
            operator_id=row["operator_id"],
            created_at=created,
            origin_ip=row["origin_ip"],
            referrer=row["referrer"],
            ended_at=_dt(row["ended_at"]),
            asked_at=_dt(row["asked_at"]),
            accepted_at=_dt(row["accepted_at"]),
            relayed_seq=row["relayed_seq"],
        )

    async def create_chat(
        self,
        queue_id: int,
        guest: str,
        resume_hash: str,
        origin_ip: str | None,
        referrer: str | None,
        now: datetime,
    ) -> Chat:
        cid = await self._write(
            "INSERT INTO chats (queue_id, guest, resume_hash, state, origin_ip, referrer,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (queue_id, guest, resume_hash, ChatState.WAITING.value, origin_ip, referrer, _ts(now)),
        )
        return Chat(cid, queue_id, guest, ChatState.WAITING, None, now, origin_ip, referrer)

    async def chat_by_resume(self, resume_hash: str) -> Chat | None:
        row = await self._one("SELECT * FROM chats WHERE resume_hash = ?", (resume_hash,))
        return self._chat(row) if row else None

    async def chat_by_id(self, chat_id: int) -> Chat | None:
        row = await self._one("SELECT * FROM chats WHERE id = ?", (chat_id,))
        return self._chat(row) if row else None

    async def open_chats(self) -> list[Chat]:
        rows = await self._all(
            "SELECT * FROM chats WHERE state IN ('waiting', 'offered', 'active') ORDER BY id"
        )
        return [self._chat(r) for r in rows]

    async def set_chat_queue(self, chat_id: int, queue_id: int) -> None:
        """A transfer or rollover moved the chat to another queue."""
        await self._write("UPDATE chats SET queue_id = ? WHERE id = ?", (queue_id, chat_id))

    async def set_relayed(self, cursors: dict[int, int]) -> None:
        """Record how far each chat's patron messages have been relayed (in one go)."""
        if not cursors:
            return
        rows = [(seq, chat_id) for chat_id, seq in cursors.items()]

        def update(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE chats SET relayed_seq = MAX(relayed_seq, ?) WHERE id = ?", rows
            ).close()

        # One hand-off to the database thread for all of them: one per cursor, under the
        # write lock, held every line's commit back for as long as a thousand took.
        async with self._transaction():
            await self._run(update)

    async def set_asked_at(self, chat_id: int, now: datetime) -> None:
        await self._write(
            "UPDATE chats SET asked_at = ? WHERE id = ? AND asked_at IS NULL", (_ts(now), chat_id)
        )

    async def set_chat_state(
        self,
        chat_id: int,
        state: ChatState,
        now: datetime,
        *,
        operator_id: int | None = None,
        ended_by: str | None = None,
    ) -> None:
        if state is ChatState.ACTIVE:
            await self._write(
                # The first acceptance counts for wait times; a transfer keeps it.
                "UPDATE chats SET state = ?, operator_id = ?,"
                " accepted_at = COALESCE(accepted_at, ?) WHERE id = ?",
                (state.value, operator_id, _ts(now), chat_id),
            )
        elif state is ChatState.WAITING:
            # Back to the queue (operator left, transfer): the chat has no operator again.
            await self._write(
                "UPDATE chats SET state = ?, operator_id = NULL WHERE id = ?",
                (state.value, chat_id),
            )
        elif state in (ChatState.ENDED, ChatState.MISSED, ChatState.FOLLOWED_UP):
            await self._write(
                "UPDATE chats SET state = ?, ended_at = ?, ended_by = ? WHERE id = ?",
                (state.value, _ts(now), ended_by, chat_id),
            )
        else:
            await self._write("UPDATE chats SET state = ? WHERE id = ?", (state.value, chat_id))

    # Chat events -------------------------------------------------------------------------

    @staticmethod
    def _event(row: aiosqlite.Row) -> ChatEvent:
        ts = _dt(row["created_at"])
        assert ts is not None
        return ChatEvent(
            chat_id=row["chat_id"],
            seq=row["seq"],
            kind=EventKind(row["kind"]),
            sender=Sender(row["sender"]),
            name=row["name"],
            text=row["text"],
            ts=ts,
            client_id=row["client_id"],
            operator_jid=row["jid"],
        )

    _EVENT_COLUMNS = (
        "e.chat_id, e.seq, e.kind, e.sender, e.name, e.text, e.client_id, e.created_at, o.jid"
    )

    async def append_event(self, event: ChatEvent, operator_id: int | None = None) -> None:
        """Commit one transcript entry. Its seq must be the chat's next one; the service
        serialises appends per chat so that holds. Lines of many chats arriving together
        share one transaction (see component.commit_queue); this returns once the line is
        committed."""
        await self.commits.write(
            "INSERT INTO chat_events (chat_id, seq, kind, sender, operator_id, name, text,"
            " client_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.chat_id,
                event.seq,
                event.kind.value,
                event.sender.value,
                operator_id,
                event.name,
                event.text,
                event.client_id,
                _ts(event.ts),
            ),
        )

    async def events_after(self, chat_id: int, seq: int) -> list[ChatEvent]:
        rows = await self._all(
            f"SELECT {self._EVENT_COLUMNS} FROM chat_events e"
            " LEFT JOIN operators o ON o.id = e.operator_id"
            " WHERE e.chat_id = ? AND e.seq > ? ORDER BY e.seq",
            (chat_id, seq),
        )
        return [self._event(r) for r in rows]

    async def event_by_client_id(self, chat_id: int, client_id: str) -> ChatEvent | None:
        row = await self._one(
            f"SELECT {self._EVENT_COLUMNS} FROM chat_events e"
            " LEFT JOIN operators o ON o.id = e.operator_id"
            " WHERE e.chat_id = ? AND e.client_id = ?",
            (chat_id, client_id),
        )
        return self._event(row) if row else None

    async def last_seq(self, chat_id: int) -> int:
        row = await self._one(
            "SELECT COALESCE(MAX(seq), 0) FROM chat_events WHERE chat_id = ?", (chat_id,)
        )
        return int(row[0]) if row else 0

    # Canned messages, links, tags -------------------------------------------------------

    async def canned_for_queue(self, queue_id: int, group_id: int) -> list[CannedMessage]:
        """Every canned message a chat in this queue can use, the most specific text of
        each name winning (queue over group over global), sorted by name."""
        rows = await self._all(
            "SELECT name, text, scope FROM canned_messages WHERE scope = 'global'"
            " OR (scope = 'group' AND group_id = ?) OR (scope = 'queue' AND queue_id = ?)"
            " ORDER BY name, CASE scope WHEN 'queue' THEN 0 WHEN 'group' THEN 1 ELSE 2 END",
            (group_id, queue_id),
        )
        best: dict[str, CannedMessage] = {}
        for r in rows:
            best.setdefault(r["name"], CannedMessage(r["name"], r["text"], r["scope"]))
        return list(best.values())

    async def add_link(self, group_id: int, title: str, url: str) -> None:
        await self._write(
            "INSERT INTO group_links (group_id, title, url, position) VALUES (?, ?, ?,"
            " (SELECT COALESCE(MAX(position), 0) + 1 FROM group_links WHERE group_id = ?))",
            (group_id, title, url, group_id),
        )

    async def links(self, group_id: int) -> list[Link]:
        rows = await self._all(
            "SELECT title, url FROM group_links WHERE group_id = ? ORDER BY position, id",
            (group_id,),
        )
        return [Link(r["title"], r["url"]) for r in rows]

    async def add_tag(self, chat_id: int, tag: str, operator_id: int | None, now: datetime) -> bool:
        """Tag a chat; False if it already had the tag."""
        added = await self._write_count(
            "INSERT OR IGNORE INTO chat_tags (chat_id, tag, operator_id, created_at)"
            " VALUES (?, ?, ?, ?)",
            (chat_id, tag, operator_id, _ts(now)),
        )
        return added > 0

    async def tags(self, chat_id: int) -> list[str]:
        rows = await self._all(
            "SELECT tag FROM chat_tags WHERE chat_id = ? ORDER BY tag", (chat_id,)
        )
        return [r["tag"] for r in rows]

    # Tickets and the mail outbox -----------------------------------------------------------

    async def create_ticket(
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
        async with self._transaction() as execute:
            ticket_id = await execute(
                "INSERT INTO tickets (kind, queue_id, chat_id, name, email, question,"
                " origin_ip, operator_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, queue_id, chat_id, name, email, question, origin_ip, operator_id, _ts(now)),
            )
            for mail in mails(ticket_id):
                await self._enqueue(execute, mail, now, ticket_id=ticket_id, chat_id=chat_id)
        return ticket_id

    async def enqueue_mail(
        self, mail: NewMail, now: datetime, *, chat_id: int | None = None
    ) -> int:
        async with self._transaction() as execute:
            return await self._enqueue(execute, mail, now, ticket_id=None, chat_id=chat_id)

    @staticmethod
    async def _enqueue(
        execute: Callable[[str, Iterable[Any]], Awaitable[int]],
        mail: NewMail,
        now: datetime,
        *,
        ticket_id: int | None,
        chat_id: int | None,
    ) -> int:
        return await execute(
            "INSERT INTO mail_outbox (ticket_id, chat_id, purpose, recipients, message,"
            " next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                ticket_id,
                chat_id,
                mail.purpose,
                "\n".join(mail.recipients),
                mail.message,
                _ts(now),
                _ts(now),
            ),
        )

    _mail = staticmethod(mail_from_row)

    async def due_mail(self, now: datetime, limit: int = 20) -> list[OutboxMail]:
        rows = await self._all(
            "SELECT * FROM mail_outbox WHERE status = 'pending' AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at, id LIMIT ?",
            (_ts(now), limit),
        )
        return [self._mail(r) for r in rows]

    async def next_mail_due(self) -> datetime | None:
        row = await self._one(
            "SELECT MIN(next_attempt_at) FROM mail_outbox WHERE status = 'pending'"
        )
        return _dt(row[0]) if row and row[0] else None

    async def mark_mail_sent(self, mail_id: int, now: datetime) -> None:
        await self._write(
            "UPDATE mail_outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1,"
            " last_error = NULL WHERE id = ?",
            (_ts(now), mail_id),
        )

    async def mark_mail_retry(self, mail_id: int, next_at: datetime, error: str) -> None:
        await self._write(
            "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = ?,"
            " last_error = ? WHERE id = ?",
            (_ts(next_at), error[:500], mail_id),
        )

    async def mark_mail_failed(self, mail_id: int, error: str) -> None:
        await self._write(
            "UPDATE mail_outbox SET status = 'failed', attempts = attempts + 1,"
            " last_error = ? WHERE id = ?",
            (error[:500], mail_id),
        )

    async def list_mail(self, status: str | None = None, limit: int = 200) -> list[OutboxMail]:
        if status is None:
            rows = await self._all("SELECT * FROM mail_outbox ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = await self._all(
                "SELECT * FROM mail_outbox WHERE status = ? ORDER BY id DESC LIMIT ?",
                (status, limit),
            )
        return [self._mail(r) for r in rows]

    @staticmethod
    def _ticket(row: aiosqlite.Row) -> Ticket:
        created = _dt(row["created_at"])
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

    async def ticket(self, ticket_id: int) -> Ticket | None:
        row = await self._one("SELECT * FROM tickets WHERE id = ?", (ticket_id,))
        return self._ticket(row) if row else None

    async def list_tickets(self, limit: int = 200) -> list[Ticket]:
        rows = await self._all("SELECT * FROM tickets ORDER BY id DESC LIMIT ?", (limit,))
        return [self._ticket(r) for r in rows]

    async def set_transcript_email(self, chat_id: int, email: str | None) -> None:
        await self._write("UPDATE chats SET transcript_email = ? WHERE id = ?", (email, chat_id))

    async def transcript_email(self, chat_id: int) -> str | None:
        row = await self._one("SELECT transcript_email FROM chats WHERE id = ?", (chat_id,))
        return row[0] if row else None

    async def transcript_mailed(self, chat_id: int) -> bool:
        """Whether the chat's transcript copy has been put in the outbox (sent or not)."""
        row = await self._one(
            "SELECT 1 FROM mail_outbox WHERE chat_id = ? AND purpose = 'transcript' LIMIT 1",
            (chat_id,),
        )
        return row is not None

    async def enqueue_transcript(self, chat_id: int, mail: NewMail, now: datetime) -> bool:
        """Put the chat's transcript copy in the outbox and forget the address asked for,
        unless a copy was queued already: at most one per chat, even when two requests
        race. Returns whether this call queued it."""
        async with self._transaction() as execute:
            if await self.transcript_mailed(chat_id):
                return False
            await self._enqueue(execute, mail, now, ticket_id=None, chat_id=chat_id)
            await execute("UPDATE chats SET transcript_email = NULL WHERE id = ?", (chat_id,))
        return True

    # Bans, audit, incidents, exempt networks -------------------------------------------------

    _ban = staticmethod(ban_from_row)

    async def add_ban(
        self, ban: Ban, now: datetime, *, chat_id: int | None = None, detail: str = ""
    ) -> Ban:
        """Store a new ban (its id is ignored) with its 'create' audit line."""
        async with self._transaction() as execute:
            ban_id = await execute(
                "INSERT INTO bans (network, offence, reason, created_by, starts_at, ends_at,"
                " chat_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    str(ban.network),
                    ban.offence,
                    ban.reason,
                    ban.created_by,
                    _ts(ban.starts_at),
                    _ts(ban.ends_at) if ban.ends_at else None,
                    chat_id,
                    _ts(now),
                ),
            )
            await execute(
                "INSERT INTO ban_audit (ban_id, action, actor, detail, created_at)"
                " VALUES (?, 'create', ?, ?, ?)",
                (ban_id, ban.created_by, detail or ban.reason, _ts(now)),
            )
        stored = await self.ban(ban_id)
        assert stored is not None
        return stored

    async def ban(self, ban_id: int) -> Ban | None:
        row = await self._one("SELECT * FROM bans WHERE id = ?", (ban_id,))
        return self._ban(row) if row else None

    async def list_bans(self) -> list[Ban]:
        rows = await self._all("SELECT * FROM bans ORDER BY starts_at DESC, id DESC")
        return [self._ban(r) for r in rows]

    async def bans_that_may_bar(self, now: datetime) -> list[Ban]:
        """Bans not lifted and not yet ended: what the service's index is built from."""
        rows = await self._all(
            "SELECT * FROM bans WHERE lifted_at IS NULL AND (ends_at IS NULL OR ends_at > ?)",
            (_ts(now),),
        )
        return [self._ban(r) for r in rows]

    async def ban_change_mark(self) -> int:
        """Where the ban audit stands now: every creation, change and lift of a ban writes
        an audit line in the same transaction, so the bans changed after this mark are
        those `bans_changed_since` returns. Read by moderation before each (re)load."""
        row = await self._one("SELECT COALESCE(MAX(id), 0) FROM ban_audit")
        return int(row[0]) if row else 0

    async def bans_changed_since(self, mark: int) -> list[Ban]:
        """Bans created, changed or lifted after `mark` (see `ban_change_mark`): what the
        moderation index re-reads when another process (the CLI) wrote."""
        rows = await self._all(
            "SELECT * FROM bans WHERE id IN (SELECT ban_id FROM ban_audit WHERE id > ?)",
            (mark,),
        )
        return [self._ban(r) for r in rows]

    async def lift_ban(self, ban_id: int, actor: str, now: datetime, detail: str = "") -> None:
        async with self._transaction() as execute:
            await execute(
                "UPDATE bans SET lifted_at = ?, lifted_by = ? WHERE id = ? AND lifted_at IS NULL",
                (_ts(now), actor, ban_id),
            )
            await execute(
                "INSERT INTO ban_audit (ban_id, action, actor, detail, created_at)"
                " VALUES (?, 'lift', ?, ?, ?)",
                (ban_id, actor, detail, _ts(now)),
            )

    async def change_ban_end(
        self, ban_id: int, ends_at: datetime | None, actor: str, now: datetime, detail: str
    ) -> None:
        async with self._transaction() as execute:
            await execute(
                "UPDATE bans SET ends_at = ? WHERE id = ?",
                (_ts(ends_at) if ends_at else None, ban_id),
            )
            await execute(
                "INSERT INTO ban_audit (ban_id, action, actor, detail, created_at)"
                " VALUES (?, 'change', ?, ?, ?)",
                (ban_id, actor, detail, _ts(now)),
            )

    async def audit_expiry(self, ban_id: int, now: datetime) -> None:
        await self._write(
            "INSERT INTO ban_audit (ban_id, action, actor, detail, created_at)"
            " SELECT ?, 'expire', 'system', '', ? WHERE NOT EXISTS"
            " (SELECT 1 FROM ban_audit WHERE ban_id = ? AND action = 'expire')",
            (ban_id, _ts(now), ban_id),
        )

    async def ban_audit(self, ban_id: int | None = None) -> list[BanAudit]:
        if ban_id is None:
            rows = await self._all("SELECT * FROM ban_audit ORDER BY id DESC LIMIT 500")
        else:
            rows = await self._all(
                "SELECT * FROM ban_audit WHERE ban_id = ? ORDER BY id", (ban_id,)
            )
        out = []
        for r in rows:
            at = _dt(r["created_at"])
            assert at is not None
            out.append(BanAudit(r["ban_id"], r["action"], r["actor"], r["detail"], at))
        return out

    async def add_exempt_network(self, group_id: int, network: str, note: str = "") -> None:
        await self._write(
            "INSERT OR REPLACE INTO exempt_networks (group_id, network, note) VALUES (?, ?, ?)",
            (group_id, network, note),
        )

    async def exempt_networks(self) -> dict[int, list[str]]:
        """Group id -> its exempt networks (as text)."""
        out: dict[int, list[str]] = {}
        for r in await self._all("SELECT group_id, network FROM exempt_networks ORDER BY id"):
            out.setdefault(r["group_id"], []).append(r["network"])
        return out

    _incident = staticmethod(incident_from_row)

    async def add_incident(
        self,
        *,
        kind: str,
        reporter: str,
        now: datetime,
        chat_id: int | None = None,
        address: str | None = None,
        queue_id: int | None = None,
        tags: Iterable[str] = (),
        notes: str = "",
        explicit: bool = False,
    ) -> int:
        return await self._write(
            "INSERT INTO incidents (kind, chat_id, address, queue_id, reporter, tags, notes,"
            " explicit, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                kind,
                chat_id,
                address,
                queue_id,
                reporter,
                ",".join(tags),
                notes,
                int(explicit),
                _ts(now),
            ),
        )

    async def incident_for_chat(self, chat_id: int, kind: str) -> Incident | None:
        row = await self._one(
            "SELECT * FROM incidents WHERE chat_id = ? AND kind = ? ORDER BY id LIMIT 1",
            (chat_id, kind),
        )
        return self._incident(row) if row else None

    async def update_incident(
        self,
        incident_id: int,
        *,
        tags: Iterable[str] | None = None,
        notes: str | None = None,
        explicit: bool | None = None,
    ) -> None:
        if tags is not None:
            await self._write(
                "UPDATE incidents SET tags = ? WHERE id = ?", (",".join(tags), incident_id)
            )
        if notes is not None:
            await self._write("UPDATE incidents SET notes = ? WHERE id = ?", (notes, incident_id))
        if explicit is not None:
            await self._write(
                "UPDATE incidents SET explicit = ? WHERE id = ?", (int(explicit), incident_id)
            )

    async def resolve_incident(self, incident_id: int, resolution: str, now: datetime) -> None:
        await self._write(
            "UPDATE incidents SET status = 'resolved', resolution = ?, resolved_at = ?"
            " WHERE id = ?",
            (resolution, _ts(now), incident_id),
        )

    async def incident(self, incident_id: int) -> Incident | None:
        row = await self._one("SELECT * FROM incidents WHERE id = ?", (incident_id,))
        return self._incident(row) if row else None

    async def list_incidents(
        self, *, status: str | None = None, limit: int = 500
    ) -> list[Incident]:
        if status is None:
            rows = await self._all("SELECT * FROM incidents ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = await self._all(
                "SELECT * FROM incidents WHERE status = ? ORDER BY id DESC LIMIT ?",
                (status, limit),
            )
        return [self._incident(r) for r in rows]

    async def chats_from(self, addresses: Iterable[str], limit: int = 500) -> list[Chat]:
        """Chats whose stored origin is one of `addresses` (exact texts), newest first."""
        wanted = list(addresses)
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        rows = await self._all(
            f"SELECT * FROM chats WHERE origin_ip IN ({marks}) ORDER BY id DESC LIMIT ?",
            (*wanted, limit),
        )
        return [self._chat(r) for r in rows]

    async def stored_origins(self) -> list[tuple[int, str]]:
        """(chat id, stored origin) of every chat that kept one: for network searches."""
        rows = await self._all("SELECT id, origin_ip FROM chats WHERE origin_ip IS NOT NULL")
        return [(r["id"], r["origin_ip"]) for r in rows]

    # Retention ------------------------------------------------------------------------------

    async def purge(self, queue_id: int, before: datetime, *, transcripts: bool) -> int:
        """Forget addresses (and with `transcripts`, the text) of the queue's chats that
        ended before `before`. Returns how many chats were touched. secure_delete and a WAL
        checkpoint make sure the old bytes do not linger in the file."""
        async with self._transaction() as execute:
            ids_rows = await self._all(
                "SELECT id FROM chats WHERE queue_id = ? AND ended_at IS NOT NULL AND ended_at < ?",
                (queue_id, _ts(before)),
            )
            ids = [r["id"] for r in ids_rows]
            for chat_id in ids:
                await execute(
                    "UPDATE chats SET origin_ip = NULL, referrer = NULL, transcript_email = NULL"
                    " WHERE id = ?",
                    (chat_id,),
                )
                await execute("UPDATE incidents SET address = NULL WHERE chat_id = ?", (chat_id,))
                await execute("UPDATE tickets SET origin_ip = NULL WHERE chat_id = ?", (chat_id,))
                if transcripts:
                    await execute("DELETE FROM chat_events WHERE chat_id = ?", (chat_id,))
                    await execute(
                        "UPDATE tickets SET question = '(purged)', email = NULL, name = NULL"
                        " WHERE chat_id = ?",
                        (chat_id,),
                    )
        async with self._write_lock:
            await self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(ids)

    async def integrity_check(self) -> str:
        row = await self._one("PRAGMA integrity_check")
        return str(row[0]) if row else ""
