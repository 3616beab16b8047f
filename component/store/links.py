"""A group's local resource links, offered to its operators."""

from __future__ import annotations

from dataclasses import dataclass

from component.core.models import Link
from component.store.db import Database


@dataclass(frozen=True, slots=True)
class LinkRow:
    """A group's local resource link with its id (for removing it)."""

    id: int
    title: str
    url: str


class LinkStore:
    """`store.links`: written by the directory layer, read by the service and the admin
    pages."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, group_id: int, title: str, url: str) -> None:
        """Append a link at the end of the group's list."""
        await self._db.write(
            "INSERT INTO group_links (group_id, title, url, position) VALUES (?, ?, ?,"
            " (SELECT COALESCE(MAX(position), 0) + 1 FROM group_links WHERE group_id = ?))",
            (group_id, title, url, group_id),
        )

    async def of_group(self, group_id: int) -> list[Link]:
        rows = await self._db.all(
            "SELECT title, url FROM group_links WHERE group_id = ? ORDER BY position, id",
            (group_id,),
        )
        return [Link(r["title"], r["url"]) for r in rows]

    async def rows(self, group_id: int) -> list[LinkRow]:
        rows = await self._db.all(
            "SELECT id, title, url FROM group_links WHERE group_id = ? ORDER BY position, id",
            (group_id,),
        )
        return [LinkRow(r["id"], r["title"], r["url"]) for r in rows]

    async def delete(self, group_id: int, link_id: int) -> bool:
        """Remove one of the group's links; False if the group has no such link."""
        removed = await self._db.write_count(
            "DELETE FROM group_links WHERE id = ? AND group_id = ?", (link_id, group_id)
        )
        return removed > 0
