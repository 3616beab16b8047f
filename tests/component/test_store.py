"""Tests for component.store against a real SQLite file and a real PostgreSQL database
(each test runs on both; no mocks)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from ipaddress import ip_network
from pathlib import Path

import pytest

from component.core.bans import Ban
from component.core.models import (
    Assignment,
    ChatEvent,
    ChatState,
    EventKind,
    Group,
    Operator,
    Queue,
    RoutingMode,
    Sender,
)
from component.store import Store, StoreError, migrations

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def db_path(store_target: Path | str) -> Path | str:
    return store_target


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    """For the tests of what only SQLite has (the file, PRAGMAs)."""
    return tmp_path / "refdesk.sqlite3"


@pytest.fixture
async def store(db_path: Path | str) -> AsyncIterator[Store]:
    opened = await Store.open(db_path)
    try:
        yield opened
    finally:
        await opened.close()


async def make_queue(store: Store, name: str = "ask") -> Queue:
    group = await store.groups.by_name("library")
    if group is None:
        group = await store.groups.add("library", "Library", T0)
    return await store.queues.add(name, group.id, f"Ask ({name})", None, T0)


def event(
    chat_id: int,
    seq: int,
    text: str = "hi",
    *,
    client_id: str | None = None,
    kind: EventKind = EventKind.MESSAGE,
    sender: Sender = Sender.PATRON,
    ts: datetime = T0,
) -> ChatEvent:
    return ChatEvent(
        chat_id=chat_id,
        seq=seq,
        kind=kind,
        sender=sender,
        name="You" if sender is Sender.PATRON else "Ann",
        text=text,
        ts=ts,
        client_id=client_id,
    )


# Migrations and pragmas ------------------------------------------------------------------


def test_migrations_are_numbered_from_one() -> None:
    found = migrations()
    assert found, "at least one migration ships with the package"
    assert [n for n, _, _ in found] == list(range(1, len(found) + 1))
    for number, name, sql in found:
        assert name.startswith(f"{number:03d}_")
        assert name.endswith(".sql")
        assert sql.strip()


async def test_open_applies_every_migration(store: Store) -> None:
    assert await store.schema_version() == len(migrations())


async def test_open_sets_user_version_on_disk(sqlite_path: Path) -> None:
    store = await Store.open(sqlite_path)
    await store.close()
    con = sqlite3.connect(sqlite_path)
    try:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        con.close()
    assert version == len(migrations())
    assert {"groups", "queues", "operators", "queue_operators", "chats", "chat_events"} <= tables


async def test_reopen_does_not_reapply_and_keeps_data(db_path: Path | str) -> None:
    first = await Store.open(db_path)
    try:
        await first.groups.add("library", "Library", T0)
    finally:
        await first.close()
    # A second open would fail with "table already exists" if migrations ran again.
    second = await Store.open(db_path)
    try:
        assert await second.schema_version() == len(migrations())
        assert [g.name for g in await second.groups.all()] == ["library"]
    finally:
        await second.close()


async def test_journal_mode_is_wal(sqlite_path: Path) -> None:
    store = await Store.open(sqlite_path)
    try:
        assert (await store.ops.journal_mode()).lower() == "wal"
    finally:
        await store.close()


async def test_integrity_check_ok(store: Store) -> None:
    queue = await make_queue(store)
    chat = await store.chats.create(queue.id, "guest-a", "h1", None, None, T0)
    await store.chats.append_event(event(chat.id, 1))
    assert await store.ops.integrity_check() == "ok"


# Groups ----------------------------------------------------------------------------------


async def test_group_crud(store: Store) -> None:
    group = await store.groups.add("library", "City Library", T0)
    assert group == Group(group.id, "library", "City Library")
    assert group.id > 0
    other = await store.groups.add("aid", "Mutual Aid", T0)
    assert await store.groups.by_name("library") == group
    assert await store.groups.by_name("nope") is None
    assert await store.groups.all() == [other, group]  # ordered by name


async def test_duplicate_group_is_a_store_error(store: Store) -> None:
    await store.groups.add("library", "Library", T0)
    with pytest.raises(StoreError):
        await store.groups.add("library", "Another title", T0)
    assert len(await store.groups.all()) == 1


# Queues ----------------------------------------------------------------------------------


async def test_queue_crud(store: Store) -> None:
    group = await store.groups.add("library", "Library", T0)
    queue = await store.queues.add("ask", group.id, "Ask a librarian", "help@example.org", T0)
    assert queue == Queue(
        queue.id, "ask", group.id, "Ask a librarian", RoutingMode.RING_ALL, "help@example.org"
    )
    science = await store.queues.add("science", group.id, "Science", None, T0)
    assert await store.queues.by_name("ask") == queue
    assert await store.queues.by_name("science") == science
    assert await store.queues.by_name("missing") is None
    assert await store.queues.all() == [queue, science]


async def test_duplicate_queue_is_a_store_error(store: Store) -> None:
    queue = await make_queue(store)
    with pytest.raises(StoreError):
        await store.queues.add("ask", queue.group_id, "Again", None, T0)
    assert len(await store.queues.all()) == 1


async def test_queue_in_missing_group_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError):
        await store.queues.add("ask", 999, "Ask", None, T0)
    assert await store.queues.all() == []


# Operators -------------------------------------------------------------------------------


async def test_operator_crud(store: Store) -> None:
    ann = await store.operators.upsert("ann@example.org", "Ann", 3, T0)
    assert ann == Operator(ann.id, "ann@example.org", "Ann", 3)
    bob = await store.operators.upsert("bob@example.org", "Bob", 1, T0)
    assert await store.operators.by_jid("ann@example.org") == ann
    assert await store.operators.by_jid("nobody@example.org") is None
    assert await store.operators.all() == [ann, bob]


async def test_upsert_operator_updates_in_place(store: Store) -> None:
    first = await store.operators.upsert("ann@example.org", "Ann", 3, T0)
    second = await store.operators.upsert("ann@example.org", "Ann Smith", 5, T0)
    assert second == Operator(first.id, "ann@example.org", "Ann Smith", 5)
    assert await store.operators.all() == [second]


async def test_operator_max_chats_must_be_positive(store: Store) -> None:
    with pytest.raises(StoreError):
        await store.operators.upsert("ann@example.org", "Ann", 0, T0)
    assert await store.operators.all() == []


async def test_assignments(store: Store) -> None:
    queue = await make_queue(store)
    ann = await store.operators.upsert("ann@example.org", "Ann", 3, T0)
    await store.operators.assign(queue.id, ann.id)
    await store.operators.assign(queue.id, ann.id)  # idempotent
    assert await store.operators.assignments() == [Assignment(queue.id, ann.id, "none")]
    await store.operators.set_subscription(queue.id, ann.id, "granted")
    assert await store.operators.assignments() == [Assignment(queue.id, ann.id, "granted")]


async def test_assign_to_missing_operator_is_a_store_error(store: Store) -> None:
    queue = await make_queue(store)
    with pytest.raises(StoreError):
        await store.operators.assign(queue.id, 12345)


async def test_remove_unreferenced_operator_deletes_row_and_memberships(store: Store) -> None:
    queue = await make_queue(store)
    ann = await store.operators.upsert("ann@example.org", "Ann", 3, T0)
    await store.operators.assign(queue.id, ann.id)
    assert await store.operators.delete(ann.id) is True
    assert await store.operators.by_jid("ann@example.org") is None
    assert await store.operators.assignments() == []


async def test_remove_missing_operator_returns_false(store: Store) -> None:
    assert await store.operators.delete(12345) is False


async def test_remove_operator_referenced_by_chat_keeps_row(store: Store) -> None:
    queue = await make_queue(store)
    other_queue = await make_queue(store, "science")
    ann = await store.operators.upsert("ann@example.org", "Ann", 3, T0)
    bob = await store.operators.upsert("bob@example.org", "Bob", 3, T0)
    await store.operators.assign(queue.id, ann.id)
    await store.operators.assign(other_queue.id, ann.id)
    await store.operators.assign(queue.id, bob.id)
    chat = await store.chats.create(queue.id, "guest-a", "h1", None, None, T0)
    await store.chats.set_state(chat.id, ChatState.ACTIVE, T0, operator_id=ann.id)

    # The row stays (False): the chat's transcript names Ann.
    assert await store.operators.delete(ann.id) is False

    assert await store.operators.by_jid("ann@example.org") == ann
    assert await store.operators.assignments() == [Assignment(queue.id, bob.id, "none")]
    stored = await store.chats.by_id(chat.id)
    assert stored is not None and stored.operator_id == ann.id
    assert await store.ops.integrity_check() == "ok"


async def test_remove_operator_referenced_by_event_keeps_row(store: Store) -> None:
    queue = await make_queue(store)
    ann = await store.operators.upsert("ann@example.org", "Ann", 3, T0)
    await store.operators.assign(queue.id, ann.id)
    chat = await store.chats.create(queue.id, "guest-a", "h1", None, None, T0)
    await store.chats.append_event(event(chat.id, 1, sender=Sender.OPERATOR), operator_id=ann.id)
    assert await store.operators.delete(ann.id) is False
    assert await store.operators.by_jid("ann@example.org") == ann
    assert await store.operators.assignments() == []
    (stored,) = await store.chats.events_after(chat.id, 0)
    assert stored.operator_jid == "ann@example.org"


# Chats -----------------------------------------------------------------------------------


async def test_create_chat_and_find_it(store: Store) -> None:
    queue = await make_queue(store)
    chat = await store.chats.create(
        queue.id, "guest-abc", "hash-1", "192.0.2.7", "https://lib.example/page", T0
    )
    assert chat.id > 0
    assert chat.state is ChatState.WAITING
    assert chat.operator_id is None
    assert chat.created_at == T0
    assert chat.ended_at is None
    assert await store.chats.by_id(chat.id) == chat
    assert await store.chats.by_resume("hash-1") == chat
    assert await store.chats.by_resume("hash-2") is None
    assert await store.chats.by_id(chat.id + 100) is None


async def test_chat_timestamps_are_stored_in_utc(store: Store) -> None:
    queue = await make_queue(store)
    local = T0.astimezone(timezone(timedelta(hours=2)))
    chat = await store.chats.create(queue.id, "guest-a", "h1", None, None, local)
    stored = await store.chats.by_id(chat.id)
    assert stored is not None
    assert stored.created_at == T0
    assert stored.created_at.utcoffset() == timedelta(0)


async def test_duplicate_guest_or_resume_hash_is_a_store_error(store: Store) -> None:
    queue = await make_queue(store)
    await store.chats.create(queue.id, "guest-a", "h1", None, None, T0)
    with pytest.raises(StoreError):
        await store.chats.create(queue.id, "guest-a", "h2", None, None, T0)
    with pytest.raises(StoreError):
        await store.chats.create(queue.id, "guest-b", "h1", None, None, T0)
    assert len(await store.chats.open_ones()) == 1


async def test_chat_in_missing_queue_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError):
        await store.chats.create(999, "guest-a", "h1", None, None, T0)


async def test_set_chat_states(store: Store) -> None:
    queue = await make_queue(store)
    ann = await store.operators.upsert("ann@example.org", "Ann", 3, T0)
    chat = await store.chats.create(queue.id, "guest-a", "h1", None, None, T0)

    await store.chats.set_state(chat.id, ChatState.OFFERED, T0)
    offered = await store.chats.by_id(chat.id)
    assert offered is not None and offered.state is ChatState.OFFERED

    later = T0 + timedelta(minutes=1)
    await store.chats.set_state(chat.id, ChatState.ACTIVE, later, operator_id=ann.id)
    active = await store.chats.by_id(chat.id)
    assert active is not None
    assert active.state is ChatState.ACTIVE
    assert active.operator_id == ann.id
    assert active.ended_at is None

    end = T0 + timedelta(minutes=9)
    await store.chats.set_state(chat.id, ChatState.ENDED, end, ended_by="operator")
    ended = await store.chats.by_id(chat.id)
    assert ended is not None
    assert ended.state is ChatState.ENDED
    assert ended.ended_at == end
    assert ended.operator_id == ann.id  # ending keeps who had the chat


async def test_open_chats_lists_waiting_offered_active_in_id_order(store: Store) -> None:
    queue = await make_queue(store)
    chats = [
        await store.chats.create(queue.id, f"guest-{i}", f"h{i}", None, None, T0) for i in range(5)
    ]
    await store.chats.set_state(chats[1].id, ChatState.OFFERED, T0)
    await store.chats.set_state(chats[2].id, ChatState.ACTIVE, T0)
    await store.chats.set_state(chats[3].id, ChatState.ENDED, T0, ended_by="patron")
    await store.chats.set_state(chats[4].id, ChatState.MISSED, T0)
    open_chats = await store.chats.open_ones()
    assert [c.id for c in open_chats] == [chats[0].id, chats[1].id, chats[2].id]
    assert [c.state for c in open_chats] == [
        ChatState.WAITING,
        ChatState.OFFERED,
        ChatState.ACTIVE,
    ]


# Chat events -----------------------------------------------------------------------------


async def test_events_roundtrip_in_seq_order(store: Store) -> None:
    queue = await make_queue(store)
    ann = await store.operators.upsert("ann@example.org", "Ann", 3, T0)
    chat = await store.chats.create(queue.id, "guest-a", "h1", None, None, T0)
    other = await store.chats.create(queue.id, "guest-b", "h2", None, None, T0)
    first = event(chat.id, 1, "question", client_id="c1")
    second = ChatEvent(
        chat_id=chat.id,
        seq=2,
        kind=EventKind.MESSAGE,
        sender=Sender.OPERATOR,
        name="Ann",
        text="answer",
        ts=T0 + timedelta(seconds=5),
        operator_jid="ann@example.org",
    )
    third = event(chat.id, 3, "bye", kind=EventKind.ENDED, sender=Sender.SYSTEM)
    # Appended out of seq order: reads still come back by seq.
    await store.chats.append_event(third)
    await store.chats.append_event(first)
    await store.chats.append_event(second, operator_id=ann.id)
    await store.chats.append_event(event(other.id, 1, "elsewhere"))

    assert await store.chats.events_after(chat.id, 0) == [first, second, third]
    assert await store.chats.events_after(chat.id, 1) == [second, third]
    assert await store.chats.events_after(chat.id, 3) == []
    assert await store.chats.events_after(chat.id, -5) == [first, second, third]
    assert [e.text for e in await store.chats.events_after(other.id, 0)] == ["elsewhere"]


async def test_event_by_client_id(store: Store) -> None:
    queue = await make_queue(store)
    chat = await store.chats.create(queue.id, "guest-a", "h1", None, None, T0)
    other = await store.chats.create(queue.id, "guest-b", "h2", None, None, T0)
    mine = event(chat.id, 1, client_id="m-1")
    await store.chats.append_event(mine)
    await store.chats.append_event(event(chat.id, 2))
    assert await store.chats.event_by_client_id(chat.id, "m-1") == mine
    assert await store.chats.event_by_client_id(chat.id, "m-2") is None
    assert await store.chats.event_by_client_id(other.id, "m-1") is None


async def test_same_client_id_in_another_chat_is_fine(store: Store) -> None:
    queue = await make_queue(store)
    a = await store.chats.create(queue.id, "guest-a", "h1", None, None, T0)
    b = await store.chats.create(queue.id, "guest-b", "h2", None, None, T0)
    await store.chats.append_event(event(a.id, 1, client_id="same"))
    await store.chats.append_event(event(b.id, 1, client_id="same"))
    assert (await store.chats.event_by_client_id(b.id, "same")) is not None


async def test_events_without_client_id_do_not_collide(store: Store) -> None:
    queue = await make_queue(store)
    chat = await store.chats.create(queue.id, "guest-a", "h1", None, None, T0)
    for seq in (1, 2, 3):
        await store.chats.append_event(event(chat.id, seq, sender=Sender.SYSTEM))
    assert await store.chats.last_seq(chat.id) == 3


async def test_last_seq(store: Store) -> None:
    queue = await make_queue(store)
    chat = await store.chats.create(queue.id, "guest-a", "h1", None, None, T0)
    assert await store.chats.last_seq(chat.id) == 0
    await store.chats.append_event(event(chat.id, 1))
    await store.chats.append_event(event(chat.id, 2))
    assert await store.chats.last_seq(chat.id) == 2
    assert await store.chats.last_seq(chat.id + 1) == 0


async def test_duplicate_seq_is_a_store_error(store: Store) -> None:
    queue = await make_queue(store)
    chat = await store.chats.create(queue.id, "guest-a", "h1", None, None, T0)
    await store.chats.append_event(event(chat.id, 1, "first"))
    with pytest.raises(StoreError):
        await store.chats.append_event(event(chat.id, 1, "second"))
    assert [e.text for e in await store.chats.events_after(chat.id, 0)] == ["first"]


async def test_duplicate_client_id_is_a_store_error(store: Store) -> None:
    queue = await make_queue(store)
    chat = await store.chats.create(queue.id, "guest-a", "h1", None, None, T0)
    await store.chats.append_event(event(chat.id, 1, "first", client_id="dup"))
    with pytest.raises(StoreError):
        await store.chats.append_event(event(chat.id, 2, "again", client_id="dup"))
    assert await store.chats.last_seq(chat.id) == 1


async def test_event_for_missing_chat_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError):
        await store.chats.append_event(event(4242, 1))


async def test_store_still_works_after_a_store_error(store: Store) -> None:
    await store.groups.add("library", "Library", T0)
    with pytest.raises(StoreError):
        await store.queues.add("ask", 999, "Ask", None, T0)
    group = await store.groups.by_name("library")
    assert group is not None
    queue = await store.queues.add("ask", group.id, "Ask", None, T0)
    assert await store.queues.all() == [queue]


# Several connections ---------------------------------------------------------------------


async def test_data_version_changes_when_another_connection_commits(db_path: Path | str) -> None:
    service_side = await Store.open(db_path)
    cli_side = await Store.open(db_path)
    try:
        before = await service_side.data_version()
        # Our own commits do not count...
        await service_side.groups.add("library", "Library", T0)
        assert await service_side.data_version() == before
        # ...another connection's do.
        await cli_side.operators.upsert("ann@example.org", "Ann", 3, T0)
        after = await service_side.data_version()
        assert after != before
        assert await service_side.data_version() == after  # stable without new commits
        # And the change is visible through the first connection.
        assert [op.jid for op in await service_side.operators.all()] == ["ann@example.org"]
    finally:
        await cli_side.close()
        await service_side.close()


async def test_second_connection_sees_committed_events(db_path: Path | str) -> None:
    writer = await Store.open(db_path)
    reader = await Store.open(db_path)
    try:
        queue = await make_queue(writer)
        chat = await writer.chats.create(queue.id, "guest-a", "h1", None, None, T0)
        await writer.chats.append_event(event(chat.id, 1, "committed", client_id="x"))
        assert [e.text for e in await reader.chats.events_after(chat.id, 0)] == ["committed"]
        assert await reader.ops.integrity_check() == "ok"
    finally:
        await reader.close()
        await writer.close()


async def test_an_operator_change_is_one_transaction(store: Store) -> None:
    """The operator, their alert address and their queues are written together: a
    membership that cannot be stored leaves no half-made operator behind."""
    queue = await make_queue(store)
    with pytest.raises(StoreError):
        await store.operators.save(
            "new@example.org",
            name="New",
            max_chats=2,
            email="new@example.org",
            memberships={queue.id: True, 999_999: None},
            now=T0,
        )
    assert await store.operators.by_jid("new@example.org") is None
    assert await store.operators.assignments() == []


async def test_bans_that_may_bar_are_the_unlifted_and_unended(store: Store) -> None:
    """The start-up read (rows made bans on the database thread as the cursor reaches
    them) returns exactly the bans that can still bar, equal to what was stored."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    day = timedelta(days=1)

    def ban(net: str, ends: datetime | None) -> Ban:
        return Ban(0, ip_network(net), 1, "spam", now - day, ends, permanent=ends is None)

    kept = [
        await store.bans.add(ban("192.0.2.7", now + day), now),
        await store.bans.add(ban("2001:db8:1:2::/64", None), now),
        await store.bans.add(ban("198.51.100.0/24", now + 2 * day), now),
    ]
    await store.bans.add(ban("203.0.113.9", now - timedelta(seconds=1)), now)  # ended
    lifted = await store.bans.add(ban("203.0.113.10", now + day), now)
    await store.bans.lift(lifted.id, "admin", now)
    got = await store.bans.that_may_bar(now)
    assert sorted(got, key=lambda b: b.id) == kept
    # The index's read: the same bans, as records that make the same `Ban`s.
    entries = await store.bans.index_entries(now)
    assert sorted((e.whole() for e in entries), key=lambda b: b.id) == kept


async def test_nul_in_hostile_text_is_stored_and_found_again(store: Store) -> None:
    """SQLite's text holds NUL, PostgreSQL's cannot: on both, a name or a line with NUL
    is stored, found by the same text, and the store keeps serving."""
    ann = await store.operators.upsert("ann\x00@example.org", "A\x00nn", 3, T0)
    found = await store.operators.by_jid("ann\x00@example.org")
    assert found is not None and found.id == ann.id
    queue = await make_queue(store)
    chat = await store.chats.create(queue.id, "guest-a", "h1", None, None, T0)
    await store.chats.append_event(event(chat.id, 1, "a\x00b", client_id="c\x00"))
    (line,) = await store.chats.events_after(chat.id, 0)
    assert line.text in ("a\x00b", "a\ufffdb")
    assert await store.chats.event_by_client_id(chat.id, "c\x00") is not None


async def test_sticky_rows_are_scoped_by_the_chats_group_and_delete_once(store: Store) -> None:
    ask = await make_queue(store, "ask")
    branch = await store.groups.add("branch", "Branch", T0)
    there = await store.queues.add("there", branch.id, "There", None, T0)
    ana = await store.operators.upsert("ana@lib.example", "Ana", 3, T0)
    ours = await store.chats.create(ask.id, "guest-a", "h1", None, None, T0)
    theirs = await store.chats.create(there.id, "guest-b", "h2", None, None, T0)
    for key, chat_id, at in (
        ("203.0.113.9", ours.id, T0),
        ("198.51.100.0/24", theirs.id, T0 + timedelta(minutes=1)),
        ("192.0.2.1", 999, T0 + timedelta(minutes=2)),  # its chat is gone
    ):
        await store.sticky.remember(
            key=key,
            operator_jid=ana.jid if chat_id != theirs.id else "bo@lib.example",
            chat_id=chat_id,
            why="tagged incident",
            now=at,
            expires_at=at + timedelta(days=1),
        )
    now = T0 + timedelta(hours=1)
    every = await store.sticky.rows(now, None)
    assert [r.mark.key for r in every] == ["192.0.2.1", "198.51.100.0/24", "203.0.113.9"]
    assert [r.group_id for r in every] == [None, branch.id, ask.group_id]
    assert [r.operator_name for r in every] == ["Ana", None, "Ana"]
    (mine,) = await store.sticky.rows(now, {ask.group_id})
    assert mine.mark.chat_id == ours.id and mine.queue_id == ask.id
    assert await store.sticky.rows(now, set()) == []
    assert await store.sticky.rows(T0 + timedelta(days=2), None) == []
    assert await store.sticky.row(mine.id, now) == mine
    # Not if the mark has come from another chat since it was looked at.
    assert await store.sticky.delete(mine.id, theirs.id) is False
    assert await store.sticky.delete(mine.id, ours.id) is True
    assert await store.sticky.delete(mine.id, ours.id) is False
    assert await store.sticky.row(mine.id, now) is None


async def test_a_transaction_cancelled_while_its_begin_waits_leaves_no_transaction_open(
    sqlite_path: Path,
) -> None:
    """A task cancelled while its BEGIN waits its turn on the database thread (a check
    cancelled at shutdown, say): the thread runs that BEGIN all the same. The connection
    must still come out of the transaction, or every later transaction fails with
    "cannot start a transaction within a transaction" (seen once in a full run)."""
    store = await Store.open(sqlite_path)
    try:
        db = store.db
        busy = asyncio.ensure_future(db.run(lambda conn: time.sleep(0.3)))
        await asyncio.sleep(0)  # the database thread is now busy for a while

        async def write() -> None:
            async with db.transaction() as execute:
                await execute("INSERT INTO groups (name, title, created_at) VALUES ('x', 'X', '')")

        task = asyncio.create_task(write())
        await asyncio.sleep(0.05)  # its BEGIN is queued behind the busy call
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await busy
        assert not await db.run(lambda conn: conn.in_transaction)
        async with db.transaction() as execute:
            await execute("INSERT INTO groups (name, title, created_at) VALUES ('y', 'Y', '')")
        names = {row[0] for row in await db.all("SELECT name FROM groups")}
        assert "y" in names and "x" not in names
    finally:
        await store.close()
