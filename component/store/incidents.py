"""Incidents: what the moderation desk follows up (abuse reported by operators, bans,
blocked messages), with their tags, notes and resolution."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

import aiosqlite

from component.core.models import Incident
from component.store.db import Database, from_iso, iso, marks, status_in_scope


def incident_from_row(row: aiosqlite.Row) -> Incident:
    created = from_iso(row["created_at"])
    assert created is not None
    return Incident(
        id=row["id"],
        kind=row["kind"],
        chat_id=row["chat_id"],
        address=row["address"],
        queue_id=row["queue_id"],
        reporter=row["reporter"],
        tags=tuple(t for t in row["tags"].split(",") if t),
        notes=row["notes"],
        explicit=bool(row["explicit"]),
        status=row["status"],
        created_at=created,
        resolution=row["resolution"],
        resolved_at=from_iso(row["resolved_at"]),
        outcome=row["outcome"],
    )


class IncidentStore:
    """`store.incidents`: written by the moderation layer, read by the admin pages."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
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
        return await self._db.write(
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
                iso(now),
            ),
        )

    async def first_for_chat(self, chat_id: int, kind: str) -> Incident | None:
        """The chat's first incident of this kind, if any."""
        row = await self._db.one(
            "SELECT * FROM incidents WHERE chat_id = ? AND kind = ? ORDER BY id LIMIT 1",
            (chat_id, kind),
        )
        return incident_from_row(row) if row else None

    async def update(
        self,
        incident_id: int,
        *,
        tags: Iterable[str] | None = None,
        notes: str | None = None,
        explicit: bool | None = None,
    ) -> None:
        if tags is not None:
            await self._db.write(
                "UPDATE incidents SET tags = ? WHERE id = ?", (",".join(tags), incident_id)
            )
        if notes is not None:
            await self._db.write(
                "UPDATE incidents SET notes = ? WHERE id = ?", (notes, incident_id)
            )
        if explicit is not None:
            await self._db.write(
                "UPDATE incidents SET explicit = ? WHERE id = ?", (int(explicit), incident_id)
            )

    async def resolve(self, incident_id: int, resolution: str, now: datetime) -> None:
        await self._db.write(
            "UPDATE incidents SET status = 'resolved', resolution = ?, resolved_at = ?"
            " WHERE id = ?",
            (resolution, iso(now), incident_id),
        )

    async def get(self, incident_id: int) -> Incident | None:
        row = await self._db.one("SELECT * FROM incidents WHERE id = ?", (incident_id,))
        return incident_from_row(row) if row else None

    async def all(self, *, status: str | None = None, limit: int = 500) -> list[Incident]:
        if status is None:
            rows = await self._db.all("SELECT * FROM incidents ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = await self._db.all(
                "SELECT * FROM incidents WHERE status = ? ORDER BY id DESC LIMIT ?",
                (status, limit),
            )
        return [incident_from_row(r) for r in rows]

    async def page(
        self,
        *,
        status: str | None = None,
        queue_ids: Collection[int] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Incident], int]:
        """Incidents, newest first, by status ('open', 'resolved' or None for both) and
        queue scope (incidents without a queue only for callers who see every queue)."""
        scope = status_in_scope("status", status, "queue_id", queue_ids)
        if scope is None:
            return [], 0
        condition, params = scope
        count = await self._db.one(f"SELECT COUNT(*) FROM incidents WHERE {condition}", params)
        rows = await self._db.all(
            f"SELECT * FROM incidents WHERE {condition} ORDER BY id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [incident_from_row(r) for r in rows], int(count[0]) if count else 0

    async def for_chat(self, chat_id: int) -> list[Incident]:
        """Every incident of the chat, oldest first."""
        rows = await self._db.all(
            "SELECT * FROM incidents WHERE chat_id = ? ORDER BY id", (chat_id,)
        )
        return [incident_from_row(r) for r in rows]

    async def by_ids(self, incident_ids: Iterable[int]) -> list[Incident]:
        ids = sorted(set(incident_ids))
        if not ids:
            return []
        rows = await self._db.all(
            f"SELECT * FROM incidents WHERE id IN ({marks(ids)}) ORDER BY id DESC", ids
        )
        return [incident_from_row(r) for r in rows]

    async def addresses(self) -> list[tuple[int, str]]:
        """(incident id, address) of every incident that kept an address: for network
        searches, like `store.chats.stored_origins`."""
        rows = await self._db.all("SELECT id, address FROM incidents WHERE address IS NOT NULL")
        return [(r["id"], r["address"]) for r in rows]
