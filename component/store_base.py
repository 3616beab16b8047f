"""The base of the store: one aiosqlite connection and the few primitives every query
module uses. Queries themselves live in `component.store` and the `component.store_*`
modules, one per concept; `Store` combines them."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiosqlite

T = TypeVar("T")

Execute = Callable[[str, Iterable[Any]], Awaitable[int]]


class StoreError(Exception):
    """A store operation that cannot be done as asked (e.g. a duplicate name)."""


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _statement(sql: str) -> Callable[[sqlite3.Connection], None]:
    """A parameterless statement to run with `StoreBase._run` (transaction control)."""

    def run(conn: sqlite3.Connection) -> None:
        conn.execute(sql).close()

    return run


class StoreBase:
    """Holds the connection; subclassed by the query modules."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        # One connection serves every task: a multi-statement transaction must not let
        # another task's statement slip in between its BEGIN and COMMIT, so every write
        # takes this lock.
        self._write_lock = asyncio.Lock()

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> Awaitable[T]:
        """Run `fn` with the sqlite3 connection on the database thread: one hand-off to
        that thread whatever `fn` does (aiosqlite's own `execute` then `fetchone` then
        `close` cost three). Called by the primitives below and by `CommitQueue`."""
        conn = self._db._conn
        # aiosqlite queues the call on its one thread, in order with its other calls.
        return self._db._execute(fn, conn)  # type: ignore[no-untyped-call]

    async def _one(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        args = tuple(params)

        def one(conn: sqlite3.Connection) -> aiosqlite.Row | None:
            cur = conn.execute(sql, args)
            try:
                row: aiosqlite.Row | None = cur.fetchone()
                return row
            finally:
                cur.close()

        return await self._run(one)

    async def _all(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        args = tuple(params)

        def all_rows(conn: sqlite3.Connection) -> list[aiosqlite.Row]:
            cur = conn.execute(sql, args)
            try:
                return list(cur.fetchall())
            finally:
                cur.close()

        return await self._run(all_rows)

    async def _write(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement in its own transaction (autocommit); return lastrowid."""
        async with self._write_lock:
            return (await self._execute(sql, params))[0]

    async def _write_count(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Like `_write`, returning how many rows changed."""
        async with self._write_lock:
            return (await self._execute(sql, params))[1]

    async def _execute(self, sql: str, params: Iterable[Any]) -> tuple[int, int]:
        args = tuple(params)

        def execute(conn: sqlite3.Connection) -> tuple[int, int]:
            cur = conn.execute(sql, args)
            try:
                return int(cur.lastrowid or 0), cur.rowcount
            finally:
                cur.close()

        try:
            return await self._run(execute)
        except sqlite3.IntegrityError as exc:
            raise StoreError(str(exc)) from exc

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Callable[[str, Iterable[Any]], Awaitable[int]]]:
        """Several writes that commit together or not at all; yields an `execute(sql,
        params) -> lastrowid` to run them with."""

        async def execute(sql: str, params: Iterable[Any] = ()) -> int:
            return (await self._execute(sql, params))[0]

        async with self._write_lock:
            await self._run(_statement("BEGIN IMMEDIATE"))
            try:
                yield execute
            except BaseException:
                await self._run(_statement("ROLLBACK"))
                raise
            await self._run(_statement("COMMIT"))
