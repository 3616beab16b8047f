"""Queries for the admin pages: directory (groups, queues, operators, canned messages,
local resource links, exempt networks).

The basic reads the service shares live in `component.store`; this module holds the
directory's write paths (one method and one transaction per change, called by
`component.directory`, the layer the CLI and the admin pages share), rows with their ids
for the admin pages, and deletions that refuse, with a sentence saying why, when the
thing is still in use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from component.core.changes import UNSET, Unset
from component.core.models import Operator
from component.store_base import StoreBase, StoreError, _ts


@dataclass(frozen=True, slots=True)
class LinkRow:
    """A group's local resource link with its id (for removing it)."""

    id: int
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class ExemptRow:
    """A network a group's operators cannot ban, with its id and the admin's note."""

    id: int
    network: str
    note: str
    # Whom to write to about repeated incidents from it, instead of a ban.
    contact_email: str | None = None


@dataclass(frozen=True, slots=True)
class CannedRow:
    """A canned message as stored at one scope ('global', 'group' or 'queue')."""

    id: int
    scope: str
    group_id: int | None
    queue_id: int | None
    name: str
    text: str


def _scope(group_id: int | None, queue_id: int | None) -> str:
    if group_id is not None and queue_id is not None:
        raise StoreError("a canned message belongs to a group or a queue, not both")
    return "queue" if queue_id is not None else "group" if group_id is not None else "global"


class DirectoryQueries(StoreBase):
    """Mixed into `component.store.Store`."""

    # Local resource links ---------------------------------------------------------------

    async def link_rows(self, group_id: int) -> list[LinkRow]:
        rows = await self._all(
            "SELECT id, title, url FROM group_links WHERE group_id = ? ORDER BY position, id",
            (group_id,),
        )
        return [LinkRow(r["id"], r["title"], r["url"]) for r in rows]

    async def delete_link(self, group_id: int, link_id: int) -> bool:
        """Remove one of the group's links; False if the group has no such link."""
        removed = await self._write_count(
            "DELETE FROM group_links WHERE id = ? AND group_id = ?", (link_id, group_id)
        )
        return removed > 0

    # Exempt networks --------------------------------------------------------------------

    async def exempt_rows(self, group_id: int) -> list[ExemptRow]:
        rows = await self._all(
            "SELECT id, network, note, contact_email FROM exempt_networks WHERE group_id = ?"
            " ORDER BY id",
            (group_id,),
        )
        return [ExemptRow(r["id"], r["network"], r["note"], r["contact_email"]) for r in rows]

    async def delete_exempt(self, group_id: int, exempt_id: int) -> bool:
        removed = await self._write_count(
            "DELETE FROM exempt_networks WHERE id = ? AND group_id = ?", (exempt_id, group_id)
        )
        return removed > 0

    # Canned messages --------------------------------------------------------------------

    @staticmethod
    def _canned_row(r: aiosqlite.Row) -> CannedRow:
        return CannedRow(r["id"], r["scope"], r["group_id"], r["queue_id"], r["name"], r["text"])

    async def canned_rows(
        self, *, group_id: int | None = None, queue_id: int | None = None
    ) -> list[CannedRow]:
        """The canned messages stored at exactly one scope (global with no ids)."""
        scope = _scope(group_id, queue_id)
        rows = await self._all(
            "SELECT * FROM canned_messages WHERE scope = ? AND COALESCE(group_id, 0) = ?"
            " AND COALESCE(queue_id, 0) = ? ORDER BY name",
            (scope, group_id or 0, queue_id or 0),
        )
        return [self._canned_row(r) for r in rows]

    async def canned_row(self, canned_id: int) -> CannedRow | None:
        row = await self._one("SELECT * FROM canned_messages WHERE id = ?", (canned_id,))
        return self._canned_row(row) if row else None

    async def save_canned(
        self,
        name: str,
        text: str,
        *,
        group_id: int | None = None,
        queue_id: int | None = None,
        canned_id: int | None = None,
        replace: bool = False,
    ) -> int:
        """Write one canned message at one scope (global with no ids), in one transaction;
        returns its id. With `canned_id`, that message is renamed or reworded; else a new
        one is made, or with `replace` the one of that name at that scope is replaced.
        StoreError when another message at the scope has the name. The only write path
        for canned messages (the directory layer calls it)."""
        scope = _scope(group_id, queue_id)
        taken = StoreError(f"there is already a canned message called {name!r} here")
        async with self._transaction() as execute:
            if canned_id is not None:
                try:
                    await execute(
                        "UPDATE canned_messages SET name = ?, text = ? WHERE id = ?",
                        (name, text, canned_id),
                    )
                except StoreError:
                    raise taken from None
                return canned_id
            if replace:
                await execute(
                    "DELETE FROM canned_messages WHERE scope = ? AND COALESCE(group_id, 0) = ?"
                    " AND COALESCE(queue_id, 0) = ? AND name = ?",
                    (scope, group_id or 0, queue_id or 0, name),
                )
            try:
                return await execute(
                    "INSERT INTO canned_messages (scope, group_id, queue_id, name, text)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (scope, group_id, queue_id, name, text),
                )
            except StoreError:
                raise taken from None

    async def delete_canned(self, canned_id: int) -> bool:
        """Remove one canned message; False if there is none with that id."""
        removed = await self._write_count("DELETE FROM canned_messages WHERE id = ?", (canned_id,))
        return removed > 0

    # Operators and their queues ---------------------------------------------------------

    async def operator_by_id(self, operator_id: int) -> Operator | None:
        row = await self._one("SELECT * FROM operators WHERE id = ?", (operator_id,))
        if row is None:
            return None
        return Operator(row["id"], row["jid"], row["name"], row["max_chats"], row["email"])

    async def save_operator(
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
        async with self._transaction() as execute:
            row = await self._one("SELECT * FROM operators WHERE jid = ?", (jid,))
            if row is not None and create_only:
                raise StoreError(f"{jid} is already an operator")
            if row is None:
                op_id = await execute(
                    "INSERT INTO operators (jid, name, max_chats, created_at) VALUES (?, ?, ?, ?)",
                    (
                        jid,
                        jid.split("@")[0].capitalize() if name is None else name,
                        3 if max_chats is None else max_chats,
                        _ts(now),
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
                for r in await self._all(
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
            saved = await self._one("SELECT * FROM operators WHERE id = ?", (op_id,))
        assert saved is not None
        return Operator(
            saved["id"], saved["jid"], saved["name"], saved["max_chats"], saved["email"]
        )

    async def remove_assignment(self, queue_id: int, operator_id: int) -> bool:
        removed = await self._write_count(
            "DELETE FROM queue_operators WHERE queue_id = ? AND operator_id = ?",
            (queue_id, operator_id),
        )
        return removed > 0

    async def delete_operator(self, operator_id: int, queues: Iterable[int] | None = None) -> bool:
        """Take an operator out of `queues` (None: every queue), in one transaction; when
        they are then in no queue at all and no chat, transcript, tag or ticket refers to
        them (their name must stay readable there), delete the row too. Returns whether
        the row went (False for no such operator). The only way operators are removed
        (the directory layer calls it)."""
        async with self._transaction() as execute:
            if await self._one("SELECT 1 FROM operators WHERE id = ?", (operator_id,)) is None:
                return False
            if queues is None:
                await execute("DELETE FROM queue_operators WHERE operator_id = ?", (operator_id,))
            else:
                for qid in queues:
                    await execute(
                        "DELETE FROM queue_operators WHERE queue_id = ? AND operator_id = ?",
                        (qid, operator_id),
                    )
            used = await self._one(
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

    # Deleting queues and groups ---------------------------------------------------------

    async def delete_queue(self, queue_id: int) -> None:
        """Delete a queue nobody has used. Refused (StoreError with the reason) while it is
        another queue's backup, has open chats, or has a history: chats in which a patron
        asked something, or tickets. Chats that never got a question (a widget opened and
        closed, the admin page's preview) go with it, as do its canned messages and
        operator memberships."""
        async with self._transaction() as execute:
            backups = await self._all(
                "SELECT name FROM queues WHERE backup_queue_id = ? AND id != ? ORDER BY name",
                (queue_id, queue_id),
            )
            if backups:
                names = ", ".join(r["name"] for r in backups)
                raise StoreError(
                    f"it is the backup queue of {names}: choose another backup there first"
                )
            row = await self._one(
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

    async def delete_group(self, group_id: int) -> None:
        """Delete a group with no queues and no coordinator accounts (StoreError saying
        which otherwise); its links, exempt networks and canned messages go with it."""
        async with self._transaction() as execute:
            row = await self._one(
                "SELECT (SELECT COUNT(*) FROM queues WHERE group_id = ?1),"
                " (SELECT COUNT(*) FROM admins WHERE group_id = ?1)",
                (group_id,),
            )
            queues, coordinators = (int(row[0]), int(row[1])) if row else (0, 0)
            if queues:
                raise StoreError(f"it still has {queues} queue(s): delete them first")
            if coordinators:
                raise StoreError(
                    f"{coordinators} coordinator account(s) belong to it: remove them first"
                )
            await execute("DELETE FROM groups WHERE id = ?", (group_id,))
