"""Groups (libraries or departments that own queues)."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from component.core.changes import GroupUpdate
from component.core.models import Group
from component.store.db import Database, StoreError, iso


def group_from_row(row: aiosqlite.Row) -> Group:
    return Group(
        row["id"],
        row["name"],
        row["title"],
        bool(row["operators_may_ban"]),
        row["appeal_email"],
        tuple(a for a in row["coordinator_emails"].split(",") if a),
        tuple(d for d in row["referral_domains"].split(",") if d),
    )


class GroupStore:
    """`store.groups`: read by the directory cache, written by the directory layer."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, name: str, title: str, now: datetime) -> Group:
        if await self.by_name(name) is not None:
            raise StoreError(f"group {name!r} already exists")
        gid = await self._db.write(
            "INSERT INTO groups (name, title, created_at) VALUES (?, ?, ?)",
            (name, title, iso(now)),
        )
        return Group(gid, name, title)

    async def by_name(self, name: str) -> Group | None:
        row = await self._db.one("SELECT * FROM groups WHERE name = ?", (name,))
        return group_from_row(row) if row else None

    async def by_id(self, group_id: int) -> Group | None:
        row = await self._db.one("SELECT * FROM groups WHERE id = ?", (group_id,))
        return group_from_row(row) if row else None

    async def all(self) -> list[Group]:
        return [group_from_row(r) for r in await self._db.all("SELECT * FROM groups ORDER BY name")]

    async def update(self, group_id: int, update: GroupUpdate) -> None:
        """Change a group's settings in one statement. Called by the directory layer,
        which has validated every value."""
        await self._db.update_row("groups", group_id, update.columns())

    async def delete(self, group_id: int) -> None:
        """Delete a group with no queues and no coordinator accounts (StoreError saying
        which otherwise); its links, exempt networks and canned messages go with it."""
        async with self._db.transaction() as execute:
            row = await self._db.one(
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
