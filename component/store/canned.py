"""Canned messages: texts operators insert by name, stored globally, per group or per
queue."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from component.core.models import CannedMessage
from component.store.db import Database, StoreError


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


def _canned_row(r: aiosqlite.Row) -> CannedRow:
    return CannedRow(r["id"], r["scope"], r["group_id"], r["queue_id"], r["name"], r["text"])


class CannedStore:
    """`store.canned`: read by the service for a chat's queue and by the admin pages,
    written by the directory layer."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def for_queue(self, queue_id: int, group_id: int) -> list[CannedMessage]:
        """Every canned message a chat in this queue can use, the most specific text of
        each name winning (queue over group over global), sorted by name."""
        rows = await self._db.all(
            "SELECT name, text, scope FROM canned_messages WHERE scope = 'global'"
            " OR (scope = 'group' AND group_id = ?) OR (scope = 'queue' AND queue_id = ?)"
            " ORDER BY name, CASE scope WHEN 'queue' THEN 0 WHEN 'group' THEN 1 ELSE 2 END",
            (group_id, queue_id),
        )
        best: dict[str, CannedMessage] = {}
        for r in rows:
            best.setdefault(r["name"], CannedMessage(r["name"], r["text"], r["scope"]))
        return list(best.values())

    async def rows(
        self, *, group_id: int | None = None, queue_id: int | None = None
    ) -> list[CannedRow]:
        """The canned messages stored at exactly one scope (global with no ids)."""
        scope = _scope(group_id, queue_id)
        rows = await self._db.all(
            "SELECT * FROM canned_messages WHERE scope = ? AND COALESCE(group_id, 0) = ?"
            " AND COALESCE(queue_id, 0) = ? ORDER BY name",
            (scope, group_id or 0, queue_id or 0),
        )
        return [_canned_row(r) for r in rows]

    async def row(self, canned_id: int) -> CannedRow | None:
        row = await self._db.one("SELECT * FROM canned_messages WHERE id = ?", (canned_id,))
        return _canned_row(row) if row else None

    async def save(
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
        async with self._db.transaction() as execute:
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

    async def delete(self, canned_id: int) -> bool:
        """Remove one canned message; False if there is none with that id."""
        removed = await self._db.write_count(
            "DELETE FROM canned_messages WHERE id = ?", (canned_id,)
        )
        return removed > 0
