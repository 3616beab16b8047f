"""Bans of networks and their audit trail (who created, changed, lifted each ban, and
when it expired)."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Network, IPv6Network, ip_network
from types import MappingProxyType
from typing import Any

import aiosqlite

from component.core.ban_index import StoredBan, network_key
from component.core.bans import Ban, canonical_network
from component.core.models import BanAudit
from component.store.db import Database, from_iso, iso

# Which bans each filter of the ban list shows; every `?` stands for "now".
BAN_FILTERS: Mapping[str, str] = MappingProxyType(
    {
        "active": "b.lifted_at IS NULL AND b.starts_at <= ?"
        " AND (b.ends_at IS NULL OR b.ends_at > ?)",
        "ended": "b.lifted_at IS NULL AND b.ends_at IS NOT NULL AND b.ends_at <= ?",
        "lifted": "b.lifted_at IS NOT NULL",
        "all": "TRUE",
    }
)


@dataclass(frozen=True, slots=True)
class BanRow:
    """A ban with what the admin page shows beside it."""

    ban: Ban
    lifted_by: str | None
    chat_id: int | None


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One audit line with the network of its ban."""

    id: int
    ban_id: int
    network: str
    action: str
    actor: str
    detail: str
    at: datetime


def _network(text: str) -> IPv4Network | IPv6Network:
    """A stored network (written as `str(network)`). The address goes through the C
    parser: `ip_network`'s pure-Python one took most of the 3 s that reading 100,000 bans
    at start-up cost. Anything unusual falls back to `ip_network`."""
    address, _, prefix = text.partition("/")
    try:
        bits = int(prefix) if prefix else None
        if ":" in address:
            value = int.from_bytes(socket.inet_pton(socket.AF_INET6, address), "big")
            return IPv6Network((value, 128 if bits is None else bits), strict=False)
        value = int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big")
        return IPv4Network((value, 32 if bits is None else bits), strict=False)
    except (OSError, ValueError):
        return ip_network(text, strict=False)


def ban_from_row(row: aiosqlite.Row) -> Ban:
    starts = from_iso(row["starts_at"])
    assert starts is not None
    ends = from_iso(row["ends_at"])
    return Ban(
        id=row["id"],
        network=_network(row["network"]),
        offence=row["offence"],
        reason=row["reason"],
        starts_at=starts,
        ends_at=ends,
        lifted_at=from_iso(row["lifted_at"]),
        permanent=ends is None,
        created_by=row["created_by"],
    )


def _network_key(text: str) -> tuple[int, int, int]:
    """A stored network as (version, prefix length, integer), canonical, without making
    an `ipaddress` object: the C address parser, then `network_key`. Anything unusual (a
    zone, text `_network` must fall back for) goes through `_network` instead."""
    address, _, prefix = text.partition("/")
    try:
        if ":" in address:
            value = int.from_bytes(socket.inet_pton(socket.AF_INET6, address), "big")
            return network_key(6, int(prefix) if prefix else 128, value)
        value = int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big")
        return network_key(4, int(prefix) if prefix else 32, value)
    except (OSError, ValueError):  # BanError is a ValueError
        network = canonical_network(_network(text))
        return network.version, network.prefixlen, int(network.network_address)


def stored_ban_from_row(row: tuple[Any, ...]) -> StoredBan:
    """A row of `INDEX_COLUMNS` as the index keeps it. The checks `Ban` makes that a
    corrupt row could fail are made here too (then `whole` raises the same `BanError`),
    so a bad row stops the start-up as it did when every row became a `Ban`."""
    ban_id, network, offence, reason, created_by, starts_at, ends_at = row
    starts = datetime.fromisoformat(starts_at)
    ends = datetime.fromisoformat(ends_at) if ends_at else None
    entry = StoredBan(ban_id, *_network_key(network), offence, reason, starts, ends, created_by)
    if offence < 1 or (ends is not None and ends <= starts) or starts.utcoffset() is None:
        entry.whole()  # raises the BanError that says what is wrong
    return entry


class BanStore:
    """`store.bans`: written by the moderation layer (operators' `!ban`, the admin
    desk, the CLI), read into the service's ban index and by the admin pages."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, ban: Ban, now: datetime, *, chat_id: int | None = None, detail: str = ""
    ) -> Ban:
        """Store a new ban (its id is ignored) with its 'create' audit line."""
        async with self._db.transaction() as execute:
            ban_id = await execute(
                "INSERT INTO bans (network, offence, reason, created_by, starts_at, ends_at,"
                " chat_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    str(ban.network),
                    ban.offence,
                    ban.reason,
                    ban.created_by,
                    iso(ban.starts_at),
                    iso(ban.ends_at) if ban.ends_at else None,
                    chat_id,
                    iso(now),
                ),
            )
            await execute(
                "INSERT INTO ban_audit (ban_id, action, actor, detail, created_at)"
                " VALUES (?, 'create', ?, ?, ?)",
                (ban_id, ban.created_by, detail or ban.reason, iso(now)),
            )
        stored = await self.get(ban_id)
        assert stored is not None
        return stored

    async def get(self, ban_id: int) -> Ban | None:
        row = await self._db.one("SELECT * FROM bans WHERE id = ?", (ban_id,))
        return ban_from_row(row) if row else None

    async def all(self) -> list[Ban]:
        rows = await self._db.all("SELECT * FROM bans ORDER BY starts_at DESC, id DESC")
        return [ban_from_row(r) for r in rows]

    async def that_may_bar(self, now: datetime) -> list[Ban]:
        """Bans not lifted and not yet ended: what the service's index is built from, once
        at start-up. Each row is made a `Ban` as the cursor reaches it, on the database
        thread: with 100,000 bans, holding every row before converting any took about
        45 MiB more at the peak (memory the process then kept)."""
        sql = "SELECT * FROM bans WHERE lifted_at IS NULL AND (ends_at IS NULL OR ends_at > ?)"
        args = (iso(now),)
        if self._db.dialect == "postgresql":
            # asyncpg hands over whole result sets; there is no database thread to use.
            return [ban_from_row(row) for row in await self._db.all(sql, args)]

        def read(conn: sqlite3.Connection) -> list[Ban]:
            cur = conn.execute(sql, args)
            try:
                return [ban_from_row(row) for row in cur]
            finally:
                cur.close()

        return await self._db.run(read)

    async def index_entries(self, now: datetime) -> list[StoredBan]:
        """The bans `that_may_bar` returns, as `StoredBan` records for the service's
        index, read once at start-up: with 100,000 bans, making each a checked `Ban` with
        an `ipaddress` network cost about a second of CPU; the index makes the few it
        needs whole. Converted as the cursor reaches each row, on the database thread."""
        sql = (
            "SELECT id, network, offence, reason, created_by, starts_at, ends_at FROM bans"
            " WHERE lifted_at IS NULL AND (ends_at IS NULL OR ends_at > ?)"
        )
        args = (iso(now),)
        if self._db.dialect == "postgresql":
            return [stored_ban_from_row(tuple(row)) for row in await self._db.all(sql, args)]

        def read(conn: sqlite3.Connection) -> list[StoredBan]:
            cur = conn.cursor()
            cur.row_factory = None  # plain tuples: no Row object per ban
            try:
                return [stored_ban_from_row(row) for row in cur.execute(sql, args)]
            finally:
                cur.close()

        return await self._db.run(read)

    async def change_mark(self) -> int:
        """Where the ban audit stands now: every creation, change and lift of a ban writes
        an audit line in the same transaction, so the bans changed after this mark are
        those `changed_since` returns. Read by moderation before each (re)load."""
        row = await self._db.one("SELECT COALESCE(MAX(id), 0) FROM ban_audit")
        return int(row[0]) if row else 0

    async def changed_since(self, mark: int) -> list[Ban]:
        """Bans created, changed or lifted after `mark` (see `change_mark`): what the
        moderation index re-reads when another process (the CLI) wrote."""
        rows = await self._db.all(
            "SELECT * FROM bans WHERE id IN (SELECT ban_id FROM ban_audit WHERE id > ?)",
            (mark,),
        )
        return [ban_from_row(r) for r in rows]

    async def lift(self, ban_id: int, actor: str, now: datetime, detail: str = "") -> None:
        async with self._db.transaction() as execute:
            await execute(
                "UPDATE bans SET lifted_at = ?, lifted_by = ? WHERE id = ? AND lifted_at IS NULL",
                (iso(now), actor, ban_id),
            )
            await execute(
                "INSERT INTO ban_audit (ban_id, action, actor, detail, created_at)"
                " VALUES (?, 'lift', ?, ?, ?)",
                (ban_id, actor, detail, iso(now)),
            )

    async def change_end(
        self, ban_id: int, ends_at: datetime | None, actor: str, now: datetime, detail: str
    ) -> None:
        async with self._db.transaction() as execute:
            await execute(
                "UPDATE bans SET ends_at = ? WHERE id = ?",
                (iso(ends_at) if ends_at else None, ban_id),
            )
            await execute(
                "INSERT INTO ban_audit (ban_id, action, actor, detail, created_at)"
                " VALUES (?, 'change', ?, ?, ?)",
                (ban_id, actor, detail, iso(now)),
            )

    # The admin pages' list -----------------------------------------------------------------

    async def rows(
        self, show: str, now: datetime, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[BanRow], int]:
        """Bans for the list: `show` is 'active', 'ended' (ran out), 'lifted' or 'all';
        newest first. Returns the page and the total."""
        condition = BAN_FILTERS[show]
        params = (iso(now),) * condition.count("?")
        count = await self._db.one(f"SELECT COUNT(*) FROM bans b WHERE {condition}", params)
        rows = await self._db.all(
            f"SELECT b.* FROM bans b WHERE {condition}"
            " ORDER BY b.starts_at DESC, b.id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return (
            [BanRow(ban_from_row(r), r["lifted_by"], r["chat_id"]) for r in rows],
            int(count[0]) if count else 0,
        )

    async def row(self, ban_id: int) -> BanRow | None:
        row = await self._db.one("SELECT * FROM bans WHERE id = ?", (ban_id,))
        return BanRow(ban_from_row(row), row["lifted_by"], row["chat_id"]) if row else None

    # The audit trail -----------------------------------------------------------------------

    async def audit_expiry(self, ban_id: int, now: datetime) -> None:
        """Note once that a ban ran out (called when the service's index drops it)."""
        await self._db.write(
            "INSERT INTO ban_audit (ban_id, action, actor, detail, created_at)"
            " SELECT ?, 'expire', 'system', '', ? WHERE NOT EXISTS"
            " (SELECT 1 FROM ban_audit WHERE ban_id = ? AND action = 'expire')",
            (ban_id, iso(now), ban_id),
        )

    async def audit(self, ban_id: int | None = None) -> list[BanAudit]:
        if ban_id is None:
            rows = await self._db.all("SELECT * FROM ban_audit ORDER BY id DESC LIMIT 500")
        else:
            rows = await self._db.all(
                "SELECT * FROM ban_audit WHERE ban_id = ? ORDER BY id", (ban_id,)
            )
        out = []
        for r in rows:
            at = from_iso(r["created_at"])
            assert at is not None
            out.append(BanAudit(r["ban_id"], r["action"], r["actor"], r["detail"], at))
        return out

    async def audit_log(
        self, ban_id: int | None = None, *, limit: int = 200, offset: int = 0
    ) -> tuple[list[AuditRow], int]:
        """Audit lines, newest first (a ban's own: oldest first), with the total."""
        params: tuple[int, ...] = ()
        where, order = "TRUE", "a.id DESC"
        if ban_id is not None:
            where, order, params = "a.ban_id = ?", "a.id", (ban_id,)
        count = await self._db.one(f"SELECT COUNT(*) FROM ban_audit a WHERE {where}", params)
        rows = await self._db.all(
            "SELECT a.*, b.network FROM ban_audit a JOIN bans b ON b.id = a.ban_id"
            f" WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        out = []
        for r in rows:
            at = from_iso(r["created_at"])
            assert at is not None
            out.append(
                AuditRow(
                    r["id"], r["ban_id"], r["network"], r["action"], r["actor"], r["detail"], at
                )
            )
        return out, int(count[0]) if count else 0
