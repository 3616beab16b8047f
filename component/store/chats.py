"""Chats: their rows and states, their transcripts (chat events), tags, relay cursors,
the transcript address asked for, and retention (forgetting what a queue keeps no
longer)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime

import aiosqlite

from component.core.models import Chat, ChatEvent, ChatState, EventKind, Sender
from component.store.commit_queue import CommitQueue
from component.store.db import Database, from_iso, iso, marks
from component.store.pg import PgDatabase


def chat_from_row(row: aiosqlite.Row) -> Chat:
    created = from_iso(row["created_at"])
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
        ended_at=from_iso(row["ended_at"]),
        asked_at=from_iso(row["asked_at"]),
        accepted_at=from_iso(row["accepted_at"]),
        relayed_seq=row["relayed_seq"],
    )


def _params(raw: str | None) -> dict[str, str] | None:
    """A patron line's stored parameters (JSON written by `append_event`)."""
    if raw is None:
        return None
    value = json.loads(raw)
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else None


def event_from_row(row: aiosqlite.Row) -> ChatEvent:
    ts = from_iso(row["created_at"])
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
        code=row["code"],
        params=_params(row["params"]),
        corrected=row["corrected_at"] is not None,
    )


_EVENT_COLUMNS = (
    "e.chat_id, e.seq, e.kind, e.sender, e.name, e.text, e.client_id, e.created_at, o.jid,"
    " e.code, e.params, e.corrected_at"
)


class ChatStore:
    """`store.chats`: written by the service as chats start, move, get messages and
    end; read by it at start-up and by the patron and operator doors."""

    def __init__(self, db: Database, commits: CommitQueue) -> None:
        self._db = db
        # Transcript lines go through the group commit (`append_event`).
        self._commits = commits

    async def create(
        self,
        queue_id: int,
        guest: str,
        resume_hash: str,
        origin_ip: str | None,
        referrer: str | None,
        now: datetime,
    ) -> Chat:
        cid = await self._db.write(
            "INSERT INTO chats (queue_id, guest, resume_hash, state, origin_ip, referrer,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (queue_id, guest, resume_hash, ChatState.WAITING.value, origin_ip, referrer, iso(now)),
        )
        return Chat(cid, queue_id, guest, ChatState.WAITING, None, now, origin_ip, referrer)

    async def by_resume(self, resume_hash: str) -> Chat | None:
        row = await self._db.one("SELECT * FROM chats WHERE resume_hash = ?", (resume_hash,))
        return chat_from_row(row) if row else None

    async def by_id(self, chat_id: int) -> Chat | None:
        row = await self._db.one("SELECT * FROM chats WHERE id = ?", (chat_id,))
        return chat_from_row(row) if row else None

    async def open_ones(self) -> list[Chat]:
        """The chats waiting, offered or active, oldest first (the service reloads them
        at start-up)."""
        rows = await self._db.all(
            "SELECT * FROM chats WHERE state IN ('waiting', 'offered', 'active') ORDER BY id"
        )
        return [chat_from_row(r) for r in rows]

    async def set_queue(self, chat_id: int, queue_id: int) -> None:
        """A transfer or rollover moved the chat to another queue."""
        await self._db.write("UPDATE chats SET queue_id = ? WHERE id = ?", (queue_id, chat_id))

    async def set_relayed(self, cursors: dict[int, int]) -> None:
        """Record how far each chat's patron messages have been relayed (in one go)."""
        if not cursors:
            return
        rows = [(seq, chat_id) for chat_id, seq in cursors.items()]
        if isinstance(self._db, PgDatabase):
            # PostgreSQL's two-argument maximum is GREATEST.
            async with self._db.transaction():
                await self._db.execute_many(
                    "UPDATE chats SET relayed_seq = GREATEST(relayed_seq, ?) WHERE id = ?", rows
                )
            return

        def update(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE chats SET relayed_seq = MAX(relayed_seq, ?) WHERE id = ?", rows
            ).close()

        # One hand-off to the database thread for all of them: one per cursor, under the
        # write lock, held every line's commit back for as long as a thousand took.
        async with self._db.transaction():
            await self._db.run(update)

    async def set_asked_at(self, chat_id: int, now: datetime) -> None:
        await self._db.write(
            "UPDATE chats SET asked_at = ? WHERE id = ? AND asked_at IS NULL", (iso(now), chat_id)
        )

    async def set_state(
        self,
        chat_id: int,
        state: ChatState,
        now: datetime,
        *,
        operator_id: int | None = None,
        ended_by: str | None = None,
    ) -> None:
        if state is ChatState.ACTIVE:
            await self._db.write(
                # The first acceptance counts for wait times; a transfer keeps it.
                "UPDATE chats SET state = ?, operator_id = ?,"
                " accepted_at = COALESCE(accepted_at, ?) WHERE id = ?",
                (state.value, operator_id, iso(now), chat_id),
            )
        elif state is ChatState.WAITING:
            # Back to the queue (operator left, transfer): the chat has no operator again.
            await self._db.write(
                "UPDATE chats SET state = ?, operator_id = NULL WHERE id = ?",
                (state.value, chat_id),
            )
        elif state in (ChatState.ENDED, ChatState.MISSED, ChatState.FOLLOWED_UP):
            await self._db.write(
                "UPDATE chats SET state = ?, ended_at = ?, ended_by = ? WHERE id = ?",
                (state.value, iso(now), ended_by, chat_id),
            )
        else:
            await self._db.write("UPDATE chats SET state = ? WHERE id = ?", (state.value, chat_id))

    # Transcript entries ------------------------------------------------------------------

    async def correct_event(self, chat_id: int, seq: int, text: str, now: datetime) -> None:
        """Replace an operator's line with its corrected text, noting when (XEP-0308)."""
        await self._db.write(
            "UPDATE chat_events SET text = ?, corrected_at = ? WHERE chat_id = ? AND seq = ?",
            (text, iso(now), chat_id, seq),
        )

    async def append_event(self, event: ChatEvent, operator_id: int | None = None) -> None:
        """Commit one transcript entry. Its seq must be the chat's next one; the service
        serialises appends per chat so that holds. Lines of many chats arriving together
        share one transaction (see `component.store.commit_queue`); this returns once the
        line is committed."""
        await self._commits.write(
            "INSERT INTO chat_events (chat_id, seq, kind, sender, operator_id, name, text,"
            " client_id, created_at, code, params) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.chat_id,
                event.seq,
                event.kind.value,
                event.sender.value,
                operator_id,
                event.name,
                event.text,
                event.client_id,
                iso(event.ts),
                event.code,
                None if event.params is None else json.dumps(dict(event.params)),
            ),
        )

    async def events_after(self, chat_id: int, seq: int) -> list[ChatEvent]:
        rows = await self._db.all(
            f"SELECT {_EVENT_COLUMNS} FROM chat_events e"
            " LEFT JOIN operators o ON o.id = e.operator_id"
            " WHERE e.chat_id = ? AND e.seq > ? ORDER BY e.seq",
            (chat_id, seq),
        )
        return [event_from_row(r) for r in rows]

    async def event_by_client_id(self, chat_id: int, client_id: str) -> ChatEvent | None:
        row = await self._db.one(
            f"SELECT {_EVENT_COLUMNS} FROM chat_events e"
            " LEFT JOIN operators o ON o.id = e.operator_id"
            " WHERE e.chat_id = ? AND e.client_id = ?",
            (chat_id, client_id),
        )
        return event_from_row(row) if row else None

    async def last_seq(self, chat_id: int) -> int:
        row = await self._db.one(
            "SELECT COALESCE(MAX(seq), 0) FROM chat_events WHERE chat_id = ?", (chat_id,)
        )
        return int(row[0]) if row else 0

    # Tags --------------------------------------------------------------------------------

    async def add_tag(self, chat_id: int, tag: str, operator_id: int | None, now: datetime) -> bool:
        """Tag a chat; False if it already had the tag."""
        added = await self._db.write_count(
            "INSERT OR IGNORE INTO chat_tags (chat_id, tag, operator_id, created_at)"
            " VALUES (?, ?, ?, ?)",
            (chat_id, tag, operator_id, iso(now)),
        )
        return added > 0

    async def tags(self, chat_id: int) -> list[str]:
        rows = await self._db.all(
            "SELECT tag FROM chat_tags WHERE chat_id = ? ORDER BY tag", (chat_id,)
        )
        return [r["tag"] for r in rows]

    # The transcript copy a patron asked for ------------------------------------------------

    async def set_transcript_email(self, chat_id: int, email: str | None) -> None:
        await self._db.write("UPDATE chats SET transcript_email = ? WHERE id = ?", (email, chat_id))

    async def set_transcript_lang(self, chat_id: int, lang: str) -> None:
        """The language the copy is to be written in, as the patron's page said it with
        the request (the follow-up desk calls it with every request)."""
        await self._db.write("UPDATE chats SET transcript_lang = ? WHERE id = ?", (lang, chat_id))

    async def transcript_email(self, chat_id: int) -> str | None:
        row = await self._db.one("SELECT transcript_email FROM chats WHERE id = ?", (chat_id,))
        return row[0] if row else None

    async def transcript_lang(self, chat_id: int) -> str | None:
        """The language stored by `set_transcript_lang`; None if none was (a chat from
        before migration 012, or no request)."""
        row = await self._db.one("SELECT transcript_lang FROM chats WHERE id = ?", (chat_id,))
        return row[0] if row else None

    # Origins (for the moderation desk's network searches) ---------------------------------

    async def from_addresses(self, addresses: Iterable[str], limit: int = 500) -> list[Chat]:
        """Chats whose stored origin is one of `addresses` (exact texts), newest first."""
        wanted = list(addresses)
        if not wanted:
            return []
        rows = await self._db.all(
            f"SELECT * FROM chats WHERE origin_ip IN ({marks(wanted)}) ORDER BY id DESC LIMIT ?",
            (*wanted, limit),
        )
        return [chat_from_row(r) for r in rows]

    async def stored_origins(self) -> list[tuple[int, str]]:
        """(chat id, stored origin) of every chat that kept one: for network searches."""
        rows = await self._db.all("SELECT id, origin_ip FROM chats WHERE origin_ip IS NOT NULL")
        return [(r["id"], r["origin_ip"]) for r in rows]

    # Retention ---------------------------------------------------------------------------

    async def purge(self, queue_id: int, before: datetime, *, transcripts: bool) -> int:
        """Forget addresses (and with `transcripts`, the text) of the queue's chats that
        ended before `before`, in their incidents and tickets too. Returns how many chats
        were touched. secure_delete and a WAL checkpoint make sure the old bytes do not
        linger in the file. Called by the retention job."""
        async with self._db.transaction() as execute:
            ids_rows = await self._db.all(
                "SELECT id FROM chats WHERE queue_id = ? AND ended_at IS NOT NULL AND ended_at < ?",
                (queue_id, iso(before)),
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
                    # A rating's comment is the patron's own words: it goes with them.
                    await execute(
                        "UPDATE chat_ratings SET comment = NULL WHERE chat_id = ?", (chat_id,)
                    )
                    await execute(
                        "UPDATE tickets SET question = '(purged)', email = NULL, name = NULL"
                        " WHERE chat_id = ?",
                        (chat_id,),
                    )
        await self._db.checkpoint()
        return len(ids)
