"""Group commit (component.commit_queue) on a real SQLite file and a real PostgreSQL
database with concurrent writers: a line is acknowledged only once it is committed, lines
arriving together share a transaction, and a batch that cannot commit fails each of its
lines."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from component.core.models import ChatEvent, EventKind, Sender
from component.store import Store, StoreError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(store_target: Path | str) -> AsyncIterator[Store]:
    opened = await Store.open(store_target)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def other(store: Store, store_target: Path | str) -> AsyncIterator[Store]:
    """A second connection to the same database, as another process would have: it sees
    only committed rows."""
    opened = await Store.open(store_target)
    try:
        yield opened
    finally:
        await opened.close()


async def seen(other: Store, chat_id: int, seq: int) -> bool:
    """Whether the other connection finds the line (so it is committed)."""
    return [e.seq for e in await other.chats.events_after(chat_id, seq - 1)][:1] == [seq]


def line(chat_id: int, seq: int, text: str) -> ChatEvent:
    return ChatEvent(
        chat_id=chat_id,
        seq=seq,
        kind=EventKind.MESSAGE,
        sender=Sender.PATRON,
        name="Guest",
        text=text,
        ts=T0,
        client_id=None,
        operator_jid=None,
    )


async def open_chats(store: Store, count: int) -> list[int]:
    group = await store.groups.add("library", "Library", T0)
    queue = await store.queues.add("ask", group.id, "Ask", None, T0)
    return [
        (await store.chats.create(queue.id, f"guest-{n}", f"h{n}", None, None, T0)).id
        for n in range(count)
    ]


def committed(path: Path, chat_id: int, seq: int) -> bool:
    """Whether another connection (another process would see the same) finds the line:
    only committed rows are visible there."""
    with sqlite3.connect(path) as other:
        row = other.execute(
            "SELECT 1 FROM chat_events WHERE chat_id = ? AND seq = ?", (chat_id, seq)
        ).fetchone()
    return row is not None


async def test_lines_written_together_share_a_commit_and_are_committed_when_acknowledged(
    store: Store, other: Store
) -> None:
    chats = await open_chats(store, 40)
    seen_committed: list[bool] = []

    async def write(chat_id: int) -> None:
        await store.chats.append_event(line(chat_id, 1, f"hello from {chat_id}"))
        # Acknowledged: it must already be visible to another connection.
        seen_committed.append(await seen(other, chat_id, 1))

    before = store.commits.batches
    await asyncio.gather(*(write(c) for c in chats))
    assert seen_committed == [True] * len(chats)
    assert store.commits.statements >= len(chats)
    # 40 lines written at once did not take 40 transactions.
    assert store.commits.batches - before < len(chats)


async def test_a_batch_that_cannot_commit_fails_every_line_and_the_queue_keeps_serving(
    tmp_path: Path,
) -> None:
    path = tmp_path / "refdesk.sqlite3"
    store = await Store.open(path)
    try:
        await _batch_cannot_commit(store, path)
    finally:
        await store.close()


async def _batch_cannot_commit(store: Store, path: Path) -> None:
    """SQLite's case: another process holds the file's write lock."""
    chats = await open_chats(store, 10)
    # Another process holds the database's write lock: the batch cannot begin. Waiting
    # the default five seconds for it would only slow the test down.
    await store.db.connection.execute("PRAGMA busy_timeout=50")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        results = await asyncio.gather(
            *(store.chats.append_event(line(c, 1, "lost?")) for c in chats), return_exceptions=True
        )
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert all(isinstance(r, StoreError) for r in results), results
    assert not any(committed(path, c, 1) for c in chats)
    # The next lines go through.
    await asyncio.gather(*(store.chats.append_event(line(c, 1, "again")) for c in chats))
    assert all(committed(path, c, 1) for c in chats)


async def test_one_bad_line_fails_alone_and_the_rest_of_its_batch_commits(
    store: Store, other: Store
) -> None:
    chats = await open_chats(store, 5)
    await store.chats.append_event(line(chats[0], 1, "first"))
    results = await asyncio.gather(
        store.chats.append_event(line(chats[0], 1, "the same seq again")),
        *(store.chats.append_event(line(c, 1, "fine")) for c in chats[1:]),
        return_exceptions=True,
    )
    assert isinstance(results[0], StoreError)
    assert results[1:] == [None] * (len(chats) - 1)
    assert all([await seen(other, c, 1) for c in chats])
    texts = [e.text for e in await other.chats.events_after(chats[0], 0)]
    assert texts == ["first"]


async def test_a_line_alone_that_fails_leaves_no_transaction_open(
    store: Store, other: Store
) -> None:
    """A batch of one line runs as a single statement (no BEGIN, savepoint or COMMIT
    around it): its failure is its own, and the next lines still commit, alone or
    together."""
    chats = await open_chats(store, 3)
    await store.chats.append_event(line(chats[0], 1, "first"))
    assert store.commits.batches == 1 and store.commits.statements == 1
    with pytest.raises(StoreError):
        await store.chats.append_event(line(chats[0], 1, "the same seq again"))
    await store.chats.append_event(line(chats[0], 2, "second"))
    await asyncio.gather(*(store.chats.append_event(line(c, 1, "together")) for c in chats[1:]))
    assert [e.text for e in await other.chats.events_after(chats[0], 0)] == ["first", "second"]
    assert all([await seen(other, c, 1) for c in chats[1:]])


async def test_a_writer_cancelled_before_its_batch_begins_writes_nothing(
    store: Store, other: Store
) -> None:
    chats = await open_chats(store, 3)
    # Hold the write lock so the lines wait for their batch.
    async with store.db.write_lock:
        writers = [asyncio.ensure_future(store.chats.append_event(line(c, 1, "x"))) for c in chats]
        await asyncio.sleep(0)
        writers[1].cancel()
        await asyncio.sleep(0)
    results = await asyncio.gather(*writers, return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], asyncio.CancelledError)
    assert [await seen(other, c, 1) for c in chats] == [True, False, True]
