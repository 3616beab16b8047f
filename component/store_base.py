"""The base of the store: one aiosqlite connection and the few primitives every query
module uses. Queries themselves live in `component.store` and the `component.store_*`
modules, one per concept; `Store` combines them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import aiosqlite

Execute = Callable[[str, Iterable[Any]], Awaitable[int]]


class StoreError(Exception):
    """A store operation that cannot be done as asked (e.g. a duplicate name)."""


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class StoreBase:
    """Holds the connection; subclassed by the query modules."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        # One connection serves every task: a multi-statement transaction must not let
        # another task's statement slip in between its BEGIN and COMMIT, so every write
        # takes this lock.
        self._write_lock = asyncio.Lock()

    async def _one(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        async with self._db.execute(sql, tuple(params)) as cur:
            return await cur.fetchone()

    async def _all(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        async with self._db.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def _write(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement in its own transaction (autocommit); return lastrowid."""
        async with self._write_lock:
            return (await self._execute(sql, params))[0]

    async def _write_count(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Like `_write`, returning how many rows changed."""
        async with self._write_lock:
            return (await self._execute(sql, params))[1]

    async def _execute(self, sql: str, params: Iterable[Any]) -> tuple[int, int]:
        try:
            async with self._db.execute(sql, tuple(params)) as cur:
                return int(cur.lastrowid or 0), cur.rowcount
        except aiosqlite.IntegrityError as exc:
            raise StoreError(str(exc)) from exc

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Callable[[str, Iterable[Any]], Awaitable[int]]]:
        """Several writes that commit together or not at all; yields an `execute(sql,
        params) -> lastrowid` to run them with."""

        async def execute(sql: str, params: Iterable[Any] = ()) -> int:
            return (await self._execute(sql, params))[0]

        async with self._write_lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield execute
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")
