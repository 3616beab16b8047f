"""Operators and their queue memberships (assignments, on-call flags and presence
subscription states)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import aiosqlite

from component.core.changes import UNSET, Unset
from component.core.models import Assignment, Operator
from component.store.db import Database, StoreError, iso


def operator_from_row(row: aiosqlite.Row) -> Operator:
    return Operator(row["id"], row["jid"], row["name"], row["max_chats"], row["email"])


class OperatorStore:
    """`store.operators`: read by the directory cache and the service, written by the
    directory layer (`save`, `delete`) and by presence handling (`set_subscription`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, jid: str, name: str, max_chats: int, now: datetime) -> Operator:
        """Create the operator, or update name and max chats of an existing one: a short
        form of `save` for seeding a database (the demo, tests)."""
        return await self.save(jid, name=name, max_chats=max_chats, memberships={}, now=now)

    async def set_email(self, operator_id: int, email: str | None) -> None:
        await self._db.write("UPDATE operators SET email = ? WHERE id = ?", (email, operator_id))

    async def by_jid(self, jid: str) -> Operator | None:
        row = await self._db.one("SELECT * FROM operators WHERE jid = ?", (jid,))
        return operator_from_row(row) if row else None

    async def by_id(self, operator_id: int) -> Operator | None:
        row = await self._db.one("SELECT * FROM operators WHERE id = ?", (operator_id,))
        return operator_from_row(row) if row else None

    async def all(self) -> list[Operator]:
        rows = await self._db.all("SELECT * FROM operators ORDER BY jid")
        return [operator_from_row(r) for r in rows]

    async def save(
        self,
        jid: str,
        *,
        name: str | None,
        max_chats: int | None,
        email: str | Unset | None = UNSET,
        memberships: Mapping[int, bool | None],
        exclusive: bool = False,
        manageable: Iterable[int] | None = None,
        create_only: bool = False,
        now: datetime,
    ) -> Operator:
        """Create or change an operator and their queue memberships in one transaction.
        The only write path for operators (the directory layer calls it).

        `name` and `max_chats` None keep the stored values (a new operator gets the JID's
        local part, capitalised, and 3). `memberships` is queue id -> on call (None:
        leave the flag as it is). With `exclusive`, the operator's queues among
        `manageable` (None: all) become exactly those keys; memberships of other queues
        are left alone, and an existing membership keeps its subscription state.
        `create_only` refuses (StoreError) a JID that already is an operator."""
        allowed = None if manageable is None else set(manageable)
        if allowed is not None and not set(memberships) <= allowed:
            raise StoreError("those queues cannot be changed here")
        async with self._db.transaction() as execute:
            row = await self._db.one("SELECT * FROM operators WHERE jid = ?", (jid,))
            if row is not None and create_only:
                raise StoreError(f"{jid} is already an operator")
            if row is None:
                op_id = await execute(
                    "INSERT INTO operators (jid, name, max_chats, created_at) VALUES (?, ?, ?, ?)",
                    (
                        jid,
                        jid.split("@")[0].capitalize() if name is None else name,
                        3 if max_chats is None else max_chats,
                        iso(now),
                    ),
                )
            else:
                op_id = row["id"]
                await execute(
                    "UPDATE operators SET name = COALESCE(?, name),"
                    " max_chats = COALESCE(?, max_chats) WHERE id = ?",
                    (name, max_chats, op_id),
                )
            if email is not UNSET:
                await execute("UPDATE operators SET email = ? WHERE id = ?", (email, op_id))
            if exclusive:
                for r in await self._db.all(
                    "SELECT queue_id FROM queue_operators WHERE operator_id = ?", (op_id,)
                ):
                    qid = r["queue_id"]
                    if qid not in memberships and (allowed is None or qid in allowed):
                        await execute(
                            "DELETE FROM queue_operators WHERE queue_id = ? AND operator_id = ?",
                            (qid, op_id),
                        )
            for qid, on_call in memberships.items():
                await execute(
                    "INSERT OR IGNORE INTO queue_operators (queue_id, operator_id) VALUES (?, ?)",
                    (qid, op_id),
                )
                if on_call is not None:
                    await execute(
                        "UPDATE queue_operators SET on_call = ?"
                        " WHERE queue_id = ? AND operator_id = ?",
                        (int(on_call), qid, op_id),
                    )
            saved = await self._db.one("SELECT * FROM operators WHERE id = ?", (op_id,))
        assert saved is not None
        return operator_from_row(saved)

    async def delete(self, operator_id: int, queues: Iterable[int] | None = None) -> bool:
        """Take an operator out of `queues` (None: every queue), in one transaction; when
        they are then in no queue at all and no chat, transcript, tag or ticket refers to
        them (their name must stay readable there), delete the row too. Returns whether
        the row went (False for no such operator). The only way operators are removed
        (the directory layer calls it)."""
        async with self._db.transaction() as execute:
            if await self._db.one("SELECT 1 FROM operators WHERE id = ?", (operator_id,)) is None:
                return False
            if queues is None:
                await execute("DELETE FROM queue_operators WHERE operator_id = ?", (operator_id,))
            else:
                for qid in queues:
                    await execute(
                        "DELETE FROM queue_operators WHERE queue_id = ? AND operator_id = ?",
                        (qid, operator_id),
                    )
            used = await self._db.one(
                "SELECT 1 FROM queue_operators WHERE operator_id = ?1"
                " UNION ALL SELECT 1 FROM chats WHERE operator_id = ?1"
                " UNION ALL SELECT 1 FROM chat_events WHERE operator_id = ?1"
                " UNION ALL SELECT 1 FROM chat_tags WHERE operator_id = ?1"
                " UNION ALL SELECT 1 FROM tickets WHERE operator_id = ?1 LIMIT 1",
                (operator_id,),
            )
            if used:
                return False
            await execute("DELETE FROM operators WHERE id = ?", (operator_id,))
        return True

    # Memberships -------------------------------------------------------------------------

    async def assign(self, queue_id: int, operator_id: int, *, on_call: bool | None = None) -> None:
        """Make the operator a member of the queue; `on_call` None leaves that flag as is."""
        await self._db.write(
            "INSERT OR IGNORE INTO queue_operators (queue_id, operator_id) VALUES (?, ?)",
            (queue_id, operator_id),
        )
        if on_call is not None:
            await self._db.write(
                "UPDATE queue_operators SET on_call = ? WHERE queue_id = ? AND operator_id = ?",
                (int(on_call), queue_id, operator_id),
            )

    async def unassign(self, queue_id: int, operator_id: int) -> bool:
        """Take the operator out of the queue; False if they were not in it."""
        removed = await self._db.write_count(
            "DELETE FROM queue_operators WHERE queue_id = ? AND operator_id = ?",
            (queue_id, operator_id),
        )
        return removed > 0

    async def assignments(self) -> list[Assignment]:
        rows = await self._db.all("SELECT * FROM queue_operators ORDER BY queue_id, operator_id")
        return [
            Assignment(r["queue_id"], r["operator_id"], r["subscription"], bool(r["on_call"]))
            for r in rows
        ]

    async def set_subscription(self, queue_id: int, operator_id: int, state: str) -> None:
        await self._db.write(
            "UPDATE queue_operators SET subscription = ? WHERE queue_id = ? AND operator_id = ?",
            (state, queue_id, operator_id),
        )
