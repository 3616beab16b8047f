"""The one aiosqlite connection of the store, with its write lock and the primitives
every sub-store runs its SQL through; the store's error and the timestamp format."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

T = TypeVar("T")

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
    # TRUE rather than 1: PostgreSQL wants a boolean condition, SQLite reads both.
    return " AND ".join(where) or "TRUE", params


def _statement(sql: str) -> Callable[[sqlite3.Connection], None]:
    """A parameterless statement to run with `Database.run` (transaction control)."""

    def run(conn: sqlite3.Connection) -> None:
        conn.execute(sql).close()

    return run


def _rollback_if_open(conn: sqlite3.Connection) -> None:
    """Roll back the connection's transaction if one is open (see `Database.transaction`)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK").close()


class Database:
    """The connection every sub-store shares. Created by `Store.open`; each sub-store
    keeps it and calls `one`, `all`, `write`, `write_count` and `transaction`. The
    PostgreSQL one (component/store/pg.py) has the same interface."""

    # Which SQL dialect: sub-stores choose their few per-dialect variants by it.
    dialect = "sqlite"

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection
        # One connection serves every task: a multi-statement transaction must not let
        # another task's statement slip in between its BEGIN and COMMIT, so every write
        # takes this lock.
        self.write_lock = asyncio.Lock()

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> Awaitable[T]:
        """Run `fn` with the sqlite3 connection on the database thread: one hand-off to
        that thread whatever `fn` does (aiosqlite's own `execute` then `fetchone` then
        `close` cost three). Called by the primitives below and by `CommitQueue`."""
        conn = self.connection._conn
        # aiosqlite queues the call on its one thread, in order with its other calls.
        return self.connection._execute(fn, conn)  # type: ignore[no-untyped-call]

    async def one(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        """The first row of a query, or None."""
        args = tuple(params)

        def one(conn: sqlite3.Connection) -> aiosqlite.Row | None:
            cur = conn.execute(sql, args)
            try:
                row: aiosqlite.Row | None = cur.fetchone()
                return row
            finally:
                cur.close()

        return await self.run(one)

    async def all(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        """Every row of a query."""
        args = tuple(params)

        def all_rows(conn: sqlite3.Connection) -> list[aiosqlite.Row]:
            cur = conn.execute(sql, args)
            try:
                return list(cur.fetchall())
            finally:
                cur.close()

        return await self.run(all_rows)

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
        args = tuple(params)

        def execute(conn: sqlite3.Connection) -> tuple[int, int]:
            cur = conn.execute(sql, args)
            try:
                return int(cur.lastrowid or 0), cur.rowcount
            finally:
                cur.close()

        try:
            return await self.run(execute)
        except sqlite3.IntegrityError as exc:
            raise StoreError(str(exc)) from exc

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Execute]:
        """Several writes that commit together or not at all; yields an `execute(sql,
        params) -> lastrowid` to run them with."""

        async def execute(sql: str, params: Iterable[Any] = ()) -> int:
            return (await self.execute_unlocked(sql, params))[0]

        async with self.write_lock:
            try:
                await self.run(_statement("BEGIN IMMEDIATE"))
                yield execute
                await self.run(_statement("COMMIT"))
            except BaseException:
                # Whatever failed or was cancelled, BEGIN, the writes or COMMIT, the
                # connection must not stay inside the transaction: the database thread runs
                # a BEGIN even when the task awaiting it is cancelled, and a refused COMMIT
                # leaves the transaction open. Left open, every later transaction fails
                # ("cannot start a transaction within a transaction") and the next one to
                # commit would commit these writes too. Shielded, so a second cancellation
                # does not stop it; queued before the lock is released.
                await asyncio.shield(self.run(_rollback_if_open))
                raise

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
