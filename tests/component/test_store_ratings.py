"""The ratings store and the coded patron lines in the store: a rating once per chat
(even when two arrive together), comments purged with transcripts, codes and parameters
kept with their line."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from component.core.models import ChatEvent, ChatState, EventKind, Sender
from component.core.patron_text import line
from component.store import Store
from tests.component.test_store import T0, db_path, make_queue, store  # noqa: F401


async def test_one_rating_per_chat_even_at_once(store: Store) -> None:  # noqa: F811
    queue = await make_queue(store)
    chat = await store.chats.create(queue.id, "guest-a", "hash-a", None, None, T0)
    results = await asyncio.gather(
        *(store.ratings.add(chat.id, n, f"c{n}", T0) for n in range(1, 6))
    )
    assert sorted(results) == [False, False, False, False, True]
    assert await store.ratings.rated(chat.id)
    stored = await store.ratings.comment(chat.id)
    assert stored is not None and stored == (stored[0], f"c{stored[0]}")


async def test_comments_go_with_the_transcripts(store: Store) -> None:  # noqa: F811
    queue = await make_queue(store)
    chat = await store.chats.create(queue.id, "guest-b", "hash-b", None, None, T0)
    await store.chats.set_state(chat.id, ChatState.ENDED, T0, ended_by="patron")
    assert await store.ratings.add(chat.id, 2, "My words", T0)
    await store.chats.purge(queue.id, T0 + timedelta(days=1), transcripts=False)
    assert await store.ratings.comment(chat.id) == (2, "My words")
    await store.chats.purge(queue.id, T0 + timedelta(days=1), transcripts=True)
    # The rating stays for the statistics; the patron's words are gone.
    assert await store.ratings.comment(chat.id) == (2, None)


async def test_a_coded_line_keeps_its_code_and_parameters(store: Store) -> None:  # noqa: F811
    queue = await make_queue(store)
    chat = await store.chats.create(queue.id, "guest-c", "hash-c", None, None, T0)
    joined = line("joined", name='Ana "}{')
    await store.chats.append_event(
        ChatEvent(
            chat.id,
            1,
            EventKind.MESSAGE,
            Sender.SYSTEM,
            "",
            joined.english,
            T0,
            code=joined.code,
            params=joined.params,
        )
    )
    [stored] = await store.chats.events_after(chat.id, 0)
    assert (stored.text, stored.code, stored.params) == (
        'Ana "}{ joined the chat.',
        "joined",
        {"name": 'Ana "}{'},
    )


async def test_scores_of_many_chats_at_once(store: Store) -> None:  # noqa: F811
    queue = await make_queue(store)
    ids = []
    for n in range(3):
        chat = await store.chats.create(queue.id, f"guest-s{n}", f"hash-s{n}", None, None, T0)
        ids.append(chat.id)
    await store.ratings.add(ids[0], 5, None, T0)
    await store.ratings.add(ids[2], 1, "meh", T0)
    assert await store.ratings.scores(ids) == {ids[0]: 5, ids[2]: 1}
    assert await store.ratings.scores([]) == {}
    # More ids than one statement takes, most of them of no chat.
    assert await store.ratings.scores([*range(10_000, 11_200), ids[2]]) == {ids[2]: 1}
