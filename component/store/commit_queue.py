"""Group commit: statements written at about the same time share one transaction and so
one fsync, and each writer still returns only once its own statement is committed.

Transcript lines arrive from many chats at once; committing each on its own costs one
fsync apiece (`synchronous=FULL`), and the single database thread then becomes the queue
every acknowledgement waits in. `CommitQueue.write` puts the statement in a batch; one
drain task at a time takes everything waiting, runs it in one transaction in a single
hand-off to the database thread, and then answers each writer: its statement committed,
or the error that kept it (or the whole batch) from committing. Nothing is acknowledged
before its COMMIT returned.

Within a batch one line's failure (a duplicate sequence number) fails that line only
(SQLite undoes the failed statement alone); a failure of the transaction itself
(BEGIN or COMMIT refused: the database locked by another process, a deferred constraint,
a full disk) fails every line of the batch.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from component.store.db import Database, StoreError
from component.store.pg import PgDatabase


@dataclass(slots=True)
class _Pending:
    sql: str
    params: tuple[Any, ...]
    done: asyncio.Future[None] = field(repr=False)


def _commit_batch(
    conn: sqlite3.Connection, items: list[tuple[str, tuple[Any, ...]]]
) -> list[sqlite3.Error | None]:
    """Run on the database thread: every statement in one transaction. Returns each
    statement's own error (None: it is in the commit). Raises when the transaction as a
    whole could not be committed (then nothing was).

    A statement that fails (a duplicate sequence number) is undone by SQLite alone and
    the transaction stays open for the others: that is SQLite's statement rollback, the
    default (ABORT) for constraint errors. The errors that roll back the whole
    transaction instead (a full disk, an I/O error) leave none open, which is checked
    after each failure: then the batch fails as a whole."""
    if len(items) == 1:
        # A line alone, the common case at a chat's pace: one statement in autocommit mode
        # is its own transaction, with the same one fsync, and spares the database thread
        # a BEGIN and a COMMIT (each a hand-over of the GIL between the threads).
        sql, params = items[0]
        try:
            conn.execute(sql, params).close()
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK").close()
            return [exc]
        return [None]
    results: list[sqlite3.Error | None] = []
    conn.execute("BEGIN IMMEDIATE").close()
    try:
        for sql, params in items:
            try:
                conn.execute(sql, params).close()
            except sqlite3.Error as exc:
                if not conn.in_transaction:
                    raise
                results.append(exc)
            else:
                results.append(None)
        conn.execute("COMMIT").close()
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK").close()
        raise
    return results


class CommitQueue:
    """Created by `Store` over its connection; `ChatStore.append_event` writes through it."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: list[_Pending] = []
        self._drain: asyncio.Task[None] | None = None
        # How many transactions and statements went through (metrics, tests, benchmarks).
        self.batches = 0
        self.statements = 0

    async def write(self, sql: str, params: Iterable[Any] = ()) -> None:
        """Commit one statement together with whatever else is waiting; returns once it is
        committed. Raises StoreError if it (or its batch) could not be committed: then it
        is not in the database. Called by the store's append path."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(sql, tuple(params), done))
        if self._drain is None or self._drain.done():
            self._drain = asyncio.create_task(self._run(), name="commit-queue")
        # A writer cancelled before its batch begins leaves its line out of the batch (see
        # `_run`); once the batch has begun, the line commits with it whatever the writer
        # does, as a single statement handed to the database thread always did.
        await done

    async def flush(self) -> None:
        """Wait until everything written so far is committed or failed (called at close)."""
        while self._drain is not None and not self._drain.done():
            await asyncio.shield(self._drain)

    async def _run(self) -> None:
        while self._pending:
            # The write lock keeps other transactions of this connection out; lines that
            # arrive while a batch commits or while another writer holds the lock wait
            # for the next batch, which is what makes batches.
            async with self._db.write_lock:
                batch = [p for p in self._pending if not p.done.cancelled()]
                self._pending = []
                if not batch:
                    continue
                items = [(p.sql, p.params) for p in batch]
                try:
                    results: list[Exception | None]
                    if isinstance(self._db, PgDatabase):
                        results = await self._db.commit_batch(items)
                    else:
                        results = list(
                            await self._db.run(functools.partial(_commit_batch, items=items))
                        )
                except Exception as exc:
                    error = StoreError(f"the batch of {len(batch)} lines was not committed: {exc}")
                    for pending in batch:
                        if not pending.done.done():
                            pending.done.set_exception(error)
                    continue
            self.batches += 1
            self.statements += len(batch)
            for pending, result in zip(batch, results, strict=True):
                if pending.done.done():
                    continue
                if result is None:
                    pending.done.set_result(None)
                else:
                    pending.done.set_exception(StoreError(str(result)))


__all__ = ["CommitQueue"]
