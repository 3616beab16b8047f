"""SQL of shared-computer contacts: the incidents from a group's exempt networks and the
messages drafted to those networks' contacts. Attached to `Store` as
`store.exempt_contacts`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from component.core.exempt_contact import SeenIncident
from component.core.models import NewMail
from component.store.db import Database, from_iso, iso
from component.store.mail import enqueue_in


@dataclass(frozen=True, slots=True)
class ContactDraft:
    """A message to an exempt network's contact, drafted for an admin to send."""

    id: int
    group_id: int
    network: str
    contact_email: str
    incidents: tuple[int, ...]
    body: str
    status: str  # 'draft' | 'sent'
    created_at: datetime
    sent_at: datetime | None
    sent_by: str | None


class ExemptContactStore:
    """Created by `Store`; called by the moderation layer (drafts) and the admin pages
    (list, send)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def incidents_since(self, group_id: int, since: datetime) -> list[SeenIncident]:
        """The incidents of the group's queues since `since` that kept an address."""
        rows = await self.db.all(
            "SELECT i.id, i.kind, i.tags, i.created_at, i.address FROM incidents i"
            " JOIN queues q ON q.id = i.queue_id"
            " WHERE q.group_id = ? AND i.created_at >= ? AND i.address IS NOT NULL",
            (group_id, iso(since)),
        )
        out = []
        for r in rows:
            created = from_iso(r["created_at"])
            assert created is not None
            tags = tuple(t for t in r["tags"].split(",") if t)
            out.append(SeenIncident(r["id"], r["kind"], tags, created, r["address"]))
        return out

    @staticmethod
    def _draft(r: aiosqlite.Row) -> ContactDraft:
        created = from_iso(r["created_at"])
        assert created is not None
        return ContactDraft(
            id=r["id"],
            group_id=r["group_id"],
            network=r["network"],
            contact_email=r["contact_email"],
            incidents=tuple(int(i) for i in r["incidents"].split(",") if i),
            body=r["body"],
            status=r["status"],
            created_at=created,
            sent_at=from_iso(r["sent_at"]),
            sent_by=r["sent_by"],
        )

    async def open_draft(self, group_id: int, network: str) -> ContactDraft | None:
        """The unsent draft for this network, if there is one (one at a time)."""
        row = await self.db.one(
            "SELECT * FROM exempt_contact_drafts WHERE group_id = ? AND network = ?"
            " AND status = 'draft' ORDER BY id DESC LIMIT 1",
            (group_id, network),
        )
        return self._draft(row) if row else None

    async def add_draft(
        self,
        *,
        group_id: int,
        network: str,
        contact_email: str,
        incidents: tuple[int, ...],
        body: str,
        now: datetime,
    ) -> int:
        return await self.db.write(
            "INSERT INTO exempt_contact_drafts (group_id, network, contact_email, incidents,"
            " body, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (group_id, network, contact_email, ",".join(map(str, incidents)), body, iso(now)),
        )

    async def update_draft(self, draft_id: int, *, incidents: tuple[int, ...], body: str) -> None:
        """A further incident: the unsent draft now describes it too."""
        await self.db.write(
            "UPDATE exempt_contact_drafts SET incidents = ?, body = ? WHERE id = ?"
            " AND status = 'draft'",
            (",".join(map(str, incidents)), body, draft_id),
        )

    async def drafts(self, group_id: int, limit: int = 50) -> list[ContactDraft]:
        """The group's drafts, unsent first, newest first (the admin group page)."""
        rows = await self.db.all(
            "SELECT * FROM exempt_contact_drafts WHERE group_id = ?"
            " ORDER BY status = 'sent', id DESC LIMIT ?",
            (group_id, limit),
        )
        return [self._draft(r) for r in rows]

    async def draft(self, group_id: int, draft_id: int) -> ContactDraft | None:
        row = await self.db.one(
            "SELECT * FROM exempt_contact_drafts WHERE id = ? AND group_id = ?",
            (draft_id, group_id),
        )
        return self._draft(row) if row else None

    async def send(
        self, draft_id: int, *, body: str, mail: NewMail, actor: str, now: datetime
    ) -> bool:
        """Queue the mail and mark the draft sent, together; False (and nothing queued)
        if it was sent meanwhile."""
        async with self.db.transaction() as execute:
            row = await self.db.one(
                "SELECT status FROM exempt_contact_drafts WHERE id = ?", (draft_id,)
            )
            if row is None or row["status"] != "draft":
                return False
            # The mail commits with the draft's new status, or neither does.
            mail_id = await enqueue_in(execute, mail, now)
            await execute(
                "UPDATE exempt_contact_drafts SET status = 'sent', body = ?, sent_at = ?,"
                " sent_by = ?, mail_id = ? WHERE id = ?",
                (body, iso(now), actor, mail_id, draft_id),
            )
        return True
