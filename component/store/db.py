"""The one aiosqlite connection of the store, with its write lock and the primitives
every sub-store runs its SQL through; the store's error and the timestamp format."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

# Runs one statement inside a transaction and returns its lastrowid (see
# `Database.transaction`).
Execute = Callable[[str, Iterable[Any]], Awaitable[int]]


class StoreError(Exception):
    """A store operation that cannot be done as asked (e.g. a duplicate name)."""


def iso(value: datetime) -> str:
    """A time as stored: ISO 8601 UTC text of one fixed format, so comparing the text
    compares the instants. Used by every sub-store when it writes or compares times."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_iso(value: str | None) -> datetime | None:
    """A stored time (or NULL) back as a datetime; used by the sub-stores' row readers."""
    return datetime.fromisoformat(value) if value else None


def marks(values: Iterable[Any]) -> str:
    """`?,?,…`: one placeholder per value, for an `IN (…)` of several parameters."""
    return ",".join("?" for _ in values)


def status_in_scope(
    status_column: str, status: str | None, queue_column: str, queue_ids: Collection[int] | None
) -> tuple[str, list[Any]] | None:
    """The WHERE condition for "this status (or any) in these queues (or all)" and its
    parameters; None when the scope is empty, so nothing can match. Used by the incident
    and ticket lists of the admin pages."""
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        where.append(f"{status_column} = ?")
        params.append(status)
    if queue_ids is not None:
        if not queue_ids:
            return None
        where.append(f"{queue_column} IN ({marks(queue_ids)})")
        params.extend(queue_ids)
    return " AND ".join(where) or "1", params


class Database:
    """The connection every sub-store shares. Created by `Store.open`; each sub-store
    keeps it and calls `one`, `all`, `write`, `write_count` and `transaction`."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection
        # One connection serves every task: a multi-statement transaction must not let
        # another task's statement slip in between its BEGIN and COMMIT, so every write
        # takes this lock.
        self.write_lock = asyncio.Lock()

    async def one(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        """The first row of a query, or None."""
        async with self.connection.execute(sql, tuple(params)) as cur:
            return await cur.fetchone()

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        """Every row of a query."""
        async with self.connection.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def write(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement in its own transaction (autocommit); return lastrowid."""
        async with self.write_lock:
            return (await self.execute_unlocked(sql, params))[0]

    async def write_count(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Like `write`, returning how many rows changed."""
        async with self.write_lock:
            return (await self.execute_unlocked(sql, params))[1]

    async def execute_unlocked(self, sql: str, params: Iterable[Any]) -> tuple[int, int]:
        """One statement, (lastrowid, rowcount); an integrity error becomes StoreError.
        The caller holds `write_lock` (the primitives above, or a sub-store that must
        run a PRAGMA right after its statement under the same lock)."""
        try:
            async with self.connection.execute(sql, tuple(params)) as cur:
                return int(cur.lastrowid or 0), cur.rowcount
        except aiosqlite.IntegrityError as exc:
            raise StoreError(str(exc)) from exc

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Execute]:
        """Several writes that commit together or not at all; yields an `execute(sql,
        params) -> lastrowid` to run them with."""

        async def execute(sql: str, params: Iterable[Any] = ()) -> int:
            return (await self.execute_unlocked(sql, params))[0]

        async with self.write_lock:
            await self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield execute
            except BaseException:
                await self.connection.execute("ROLLBACK")
                raise
            await self.connection.execute("COMMIT")

    async def update_row(self, table: str, row_id: int, columns: dict[str, object]) -> None:
        """Set some columns of one row in one statement (nothing for no columns). Called
        by the groups' and queues' update methods with their update objects' columns."""
        if not columns:
            return
        # Column names come from the update dataclasses' fields, never from input.
        assignments = ", ".join(f"{key} = ?" for key in columns)
        await self.write(
            f"UPDATE {table} SET {assignments} WHERE id = ?", (*columns.values(), row_id)
        )

    async def checkpoint(self) -> None:
        """Truncate the write-ahead log, so deleted data does not linger in it. Called
        after purges and deletions of transcripts."""
        async with self.write_lock:
            await self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def pragma(self, name: str) -> Any:
        """The value of a read-only PRAGMA (`user_version`, `data_version`, …)."""
        async with self.connection.execute(f"PRAGMA {name}") as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def file(self) -> Path | None:
        """The main database file, or None for an in-memory database."""
        async with self.connection.execute("PRAGMA database_list") as cur:
            files = {row[1]: row[2] for row in await cur.fetchall()}
        path = files.get("main") or ""
        return Path(path) if path else None
