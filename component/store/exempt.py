"""Exempt networks: addresses a group's operators may not ban (the library's own
public computers, say)."""

from __future__ import annotations

from dataclasses import dataclass

from component.store.db import Database


@dataclass(frozen=True, slots=True)
class ExemptRow:
    """A network a group's operators cannot ban, with its id and the admin's note."""

    id: int
    network: str
    note: str
    # Whom to write to about repeated incidents from it, instead of a ban.
    contact_email: str | None = None


class ExemptStore:
    """`store.exempt`: written by the directory layer, read into the moderation layer's
    rules and by the admin pages."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, group_id: int, network: str, note: str = "", contact_email: str | None = None
    ) -> None:
        """Add an exempt network, or change the note and contact of one already there."""
        await self._db.write(
            "INSERT INTO exempt_networks (group_id, network, note, contact_email)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (group_id, network) DO UPDATE SET"
            " note = excluded.note, contact_email = excluded.contact_email",
            (group_id, network, note, contact_email),
        )

    async def by_group(self) -> dict[int, list[str]]:
        """Group id -> its exempt networks (as text)."""
        out: dict[int, list[str]] = {}
        for r in await self._db.all("SELECT group_id, network FROM exempt_networks ORDER BY id"):
            out.setdefault(r["group_id"], []).append(r["network"])
        return out

    async def rows(self, group_id: int) -> list[ExemptRow]:
        rows = await self._db.all(
            "SELECT id, network, note, contact_email FROM exempt_networks WHERE group_id = ?"
            " ORDER BY id",
            (group_id,),
        )
        return [ExemptRow(r["id"], r["network"], r["note"], r["contact_email"]) for r in rows]

    async def delete(self, group_id: int, exempt_id: int) -> bool:
        removed = await self._db.write_count(
            "DELETE FROM exempt_networks WHERE id = ? AND group_id = ?", (exempt_id, group_id)
        )
        return removed > 0
