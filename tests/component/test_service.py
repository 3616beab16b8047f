"""Tests for component.service.DeskService, driven directly (no XMPP, no web) on a real
SQLite store. Events are collected from `service.bus`."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from component.clock import ManualClock
from component.core import commands
from component.core.changes import QueueUpdate
from component.core.errors import (
    BadCommand,
    ChatClosed,
    InvalidInput,
    NotAnOperator,
    NotYourChat,
    UnknownQueue,
)
from component.core.events import (
    ChatAccepted,
    ChatEnded,
    ChatOffered,
    EmailOffered,
    Event,
    MessagePosted,
    OfferWithdrawn,
    QueueStatusChanged,
    SubscriptionWanted,
    TypingChanged,
)
from component.core.models import (
    ChatEvent,
    ChatState,
    EventKind,
    Presence,
    QueueStatus,
    RoutingMode,
    Sender,
)
from component.service import TYPING_INTERVAL, DeskService, hash_token
from component.store import Store

DOMAIN = "desk.example.org"
ANN = "ann@example.org"
BOB = "bob@example.org"
CAROL = "carol@example.org"  # operator of the other queue only
STRANGER = "mallory@example.org"

E = TypeVar("E")


def Clock() -> ManualClock:
    """A clock the test moves by hand: timers fire only when the test advances it."""
    return ManualClock(datetime(2026, 5, 4, 9, 30, tzinfo=UTC))


@dataclass
class Desk:
    path: Path
    store: Store
    service: DeskService
    clock: ManualClock
    events: list[Event] = field(default_factory=list)

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]


async def advance(desk: Desk, seconds: float) -> int:
    """Let `seconds` pass on the desk's clock: the timers that fall due fire, in order,
    and the work each starts finishes before the next. Returns how many fired."""
    return await desk.clock.advance(seconds, settle=desk.service.idle)


async def seed(store: Store, now: datetime, *, ann_max: int = 3, bob_max: int = 3) -> None:
    group = await store.groups.add("library", "Library", now)
    ask = await store.queues.add("ask", group.id, "Ask a librarian", None, now)
    other = await store.queues.add("science", group.id, "Science desk", None, now)
    ann = await store.operators.upsert(ANN, "Ann", ann_max, now)
    bob = await store.operators.upsert(BOB, "Bob", bob_max, now)
    carol = await store.operators.upsert(CAROL, "Carol", 3, now)
    await store.operators.assign(ask.id, ann.id)
    await store.operators.assign(ask.id, bob.id)
    await store.operators.assign(other.id, carol.id)


async def make_desk(path: Path, clock: ManualClock, *, resume_ttl: float = 3600.0) -> Desk:
    store = await Store.open(path)
    service = DeskService(store, domain=DOMAIN, clock=clock, resume_ttl=resume_ttl)
    await service.start()
    desk = Desk(path, store, service, clock)
    service.bus.subscribe(desk.events.append)
    return desk


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    clock = Clock()
    path = tmp_path / "refdesk.sqlite3"
    d = await make_desk(path, clock)
    await seed(d.store, clock.now())
    await d.service.reload_directory()
    d.events.clear()
    try:
        yield d
    finally:
        await d.service.close()
        await d.store.close()


async def online(desk: Desk, *jids: str, presence: Presence = Presence.AVAILABLE) -> None:
    for jid in jids:
        await desk.service.on_operator_presence(jid, "laptop", presence)


async def asked_chat(desk: Desk, text: str = "Where are the maps?") -> tuple[int, str]:
    """A new chat in `ask` whose patron has asked one question: (chat id, guest)."""
    handle = await desk.service.open_chat("ask", None)
    await desk.service.post_patron_message(handle.chat_id, "m1", text)
    return handle.chat_id, handle.guest


# Opening and resuming --------------------------------------------------------------------


async def test_open_chat_new(desk: Desk) -> None:
    handle = await desk.service.open_chat(
        "ask", None, origin_ip="192.0.2.9", referrer="https://lib.example/"
    )
    assert handle.resumed is False
    assert handle.queue == "ask"
    assert handle.state is ChatState.WAITING
    assert handle.guest.startswith("guest-")
    assert len(handle.resume) >= 16
    stored = await desk.store.chats.by_resume(hash_token(handle.resume))
    assert stored is not None
    assert stored.id == handle.chat_id
    assert stored.guest == handle.guest
    assert stored.origin_ip == "192.0.2.9"
    assert stored.referrer == "https://lib.example/"
    assert stored.created_at == desk.clock.now()
    # The raw token is never stored.
    assert await desk.store.chats.by_resume(handle.resume) is None
    assert [c.id for c in desk.service.open_chats()] == [handle.chat_id]


async def test_open_chat_twice_gives_two_chats(desk: Desk) -> None:
    a = await desk.service.open_chat("ask", None)
    b = await desk.service.open_chat("ask", None)
    assert a.chat_id != b.chat_id
    assert a.guest != b.guest
    assert a.resume != b.resume


async def test_open_chat_resumes_with_token(desk: Desk) -> None:
    first = await desk.service.open_chat("ask", None)
    again = await desk.service.open_chat("ask", first.resume)
    assert again.resumed is True
    assert again.chat_id == first.chat_id
    assert again.guest == first.guest
    assert again.resume == first.resume
    assert [c.id for c in desk.service.open_chats()] == [first.chat_id]


@pytest.mark.parametrize("token", ["not-a-token", "x" * 128])
async def test_open_chat_with_unknown_token_starts_a_new_chat(desk: Desk, token: str) -> None:
    first = await desk.service.open_chat("ask", None)
    other = await desk.service.open_chat("ask", token)
    assert other.resumed is False
    assert other.chat_id != first.chat_id
    assert other.resume != token


async def test_open_chat_token_follows_the_chat_across_queues(desk: Desk) -> None:
    # A transfer moves the chat to another queue while the patron's widget stays on the
    # first one: the token resumes the chat wherever it is, and says where that is.
    first = await desk.service.open_chat("ask", None)
    other = await desk.service.open_chat("science", first.resume)
    assert other.resumed is True
    assert other.chat_id == first.chat_id
    assert other.queue == "ask"


async def test_open_chat_unknown_queue(desk: Desk) -> None:
    with pytest.raises(UnknownQueue) as info:
        await desk.service.open_chat("nope", None)
    assert info.value.code == "unknown_queue"
    assert await desk.store.chats.open_ones() == []


async def test_ended_chat_resumes_until_ttl(desk: Desk) -> None:
    chat_id, _ = await asked_chat(desk)
    handle = await desk.service.open_chat("ask", None)  # unrelated chat
    first = await desk.service.open_chat("ask", handle.resume)
    assert first.chat_id == handle.chat_id
    await desk.service.end_chat_by_patron(handle.chat_id)

    await advance(desk, desk.service.resume_ttl.total_seconds() - 1)
    ended = await desk.service.open_chat("ask", handle.resume)
    assert ended.resumed is True
    assert ended.chat_id == handle.chat_id
    assert ended.state is ChatState.ENDED

    await advance(desk, 2)
    fresh = await desk.service.open_chat("ask", handle.resume)
    assert fresh.resumed is False
    assert fresh.chat_id not in (handle.chat_id, chat_id)


# Patron messages -------------------------------------------------------------------------


async def test_post_patron_message_commits_dense_seqs(desk: Desk) -> None:
    handle = await desk.service.open_chat("ask", None)
    texts = ["  Hello\r\nthere  ", "second", "third"]
    returned = [
        await desk.service.post_patron_message(handle.chat_id, f"c{i}", text)
        for i, text in enumerate(texts)
    ]
    assert [e.seq for e in returned] == [1, 2, 3]
    assert [e.text for e in returned] == ["Hello\nthere", "second", "third"]
    assert all(e.sender is Sender.PATRON and e.kind is EventKind.MESSAGE for e in returned)
    assert [e.client_id for e in returned] == ["c0", "c1", "c2"]
    assert all(e.ts == desk.clock.now() for e in returned)
    # Returned events are committed: the store has exactly them.
    assert await desk.store.chats.events_after(handle.chat_id, 0) == returned
    posted = desk.of(MessagePosted)
    assert [p.event for p in posted] == returned
    assert all(p.guest == handle.guest for p in posted)


async def test_post_patron_message_is_idempotent_on_client_id(desk: Desk) -> None:
    handle = await desk.service.open_chat("ask", None)
    first = await desk.service.post_patron_message(handle.chat_id, "same", "hello")
    published = len(desk.events)
    again = await desk.service.post_patron_message(handle.chat_id, "same", "hello")
    assert again.seq == first.seq == 1
    assert again == first
    assert len(desk.events) == published
    # A resend with other text is refused (the patron is told) and changes nothing.
    with pytest.raises(InvalidInput, match="already used"):
        await desk.service.post_patron_message(handle.chat_id, "same", "different")
    assert len(desk.events) == published
    assert await desk.store.chats.last_seq(handle.chat_id) == 1
    nxt = await desk.service.post_patron_message(handle.chat_id, "next", "more")
    assert nxt.seq == 2


async def test_concurrent_posts_get_dense_unique_seqs(desk: Desk) -> None:
    handle = await desk.service.open_chat("ask", None)
    events = await asyncio.gather(
        *(desk.service.post_patron_message(handle.chat_id, f"id{i}", f"m{i}") for i in range(12))
    )
    assert sorted(e.seq for e in events) == list(range(1, 13))
    stored = await desk.store.chats.events_after(handle.chat_id, 0)
    assert [e.seq for e in stored] == list(range(1, 13))


async def test_concurrent_resends_store_once(desk: Desk) -> None:
    handle = await desk.service.open_chat("ask", None)
    events = await asyncio.gather(
        *(desk.service.post_patron_message(handle.chat_id, "dup", "once") for _ in range(6))
    )
    assert {e.seq for e in events} == {1}
    assert len(desk.of(MessagePosted)) == 1
    assert await desk.store.chats.last_seq(handle.chat_id) == 1


@pytest.mark.parametrize("client_id", [None, 7, "", "x" * 65, ["a"], b"bytes"])
async def test_post_patron_message_rejects_bad_ids(desk: Desk, client_id: object) -> None:
    handle = await desk.service.open_chat("ask", None)
    with pytest.raises(InvalidInput) as info:
        await desk.service.post_patron_message(handle.chat_id, client_id, "hello")
    assert info.value.code == "bad_id"
    assert await desk.store.chats.last_seq(handle.chat_id) == 0
    assert desk.of(MessagePosted) == []


async def test_post_patron_message_accepts_longest_id(desk: Desk) -> None:
    handle = await desk.service.open_chat("ask", None)
    event = await desk.service.post_patron_message(handle.chat_id, "x" * 64, "hello")
    assert event.client_id == "x" * 64


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("bad \x00 char", "illegal_characters"),
        ("bad \ufffe char", "illegal_characters"),
        ("bad \ud800 surrogate", "illegal_characters"),
        ("   \r\n ", "empty_message"),
        (None, "bad_text"),
        (12, "bad_text"),
        ("x" * 4001, "message_too_long"),
    ],
)
async def test_post_patron_message_rejects_bad_text(desk: Desk, text: object, code: str) -> None:
    handle = await desk.service.open_chat("ask", None)
    with pytest.raises(InvalidInput) as info:
        await desk.service.post_patron_message(handle.chat_id, "c1", text)
    assert info.value.code == code
    assert await desk.store.chats.last_seq(handle.chat_id) == 0
    assert desk.of(MessagePosted) == []
    # The id was not used up by the refused message.
    ok = await desk.service.post_patron_message(handle.chat_id, "c1", "fine")
    assert ok.seq == 1


async def test_post_to_unknown_chat_is_closed(desk: Desk) -> None:
    with pytest.raises(ChatClosed):
        await desk.service.post_patron_message(999, "c1", "hello")


# Ring-all --------------------------------------------------------------------------------


async def test_first_message_offers_to_every_available_operator(desk: Desk) -> None:
    await online(desk, ANN, BOB)
    desk.events.clear()
    chat_id, guest = await asked_chat(desk, "Do you have atlases?")
    (offer,) = desk.of(ChatOffered)
    assert offer.chat_id == chat_id
    assert offer.guest == guest
    assert offer.queue == "ask"
    assert offer.queue_title == "Ask a librarian"
    assert set(offer.operator_jids) == {ANN, BOB}
    assert [e.text for e in offer.history] == ["Do you have atlases?"]
    stored = await desk.store.chats.by_id(chat_id)
    assert stored is not None and stored.state is ChatState.OFFERED
    assert desk.service.chat_state(chat_id) is ChatState.OFFERED
    # Later messages go to everyone offered, and are not offered again.
    await desk.service.post_patron_message(chat_id, "m2", "Or maps?")
    assert set(desk.of(MessagePosted)[-1].operator_jids) == {ANN, BOB}
    assert len(desk.of(ChatOffered)) == 1


async def test_opening_a_chat_offers_nothing(desk: Desk) -> None:
    await online(desk, ANN, BOB)
    desk.events.clear()
    await desk.service.open_chat("ask", None)
    assert desk.of(ChatOffered) == []


async def test_unrelayed_leaves_out_a_line_not_passed_on_yet(desk: Desk) -> None:
    """After a reconnection the XMPP adapter sends the store's unrelayed lines ahead of
    its queue. A line its poster has committed but not yet passed on (the store's commit
    returns to the poster a moment later) is one the poster queues itself, behind the
    earlier ones: sent from the store as well, it went out first, out of order (seen as
    a line-order failure after a reconnection). This is that moment, made to last."""
    await online(desk, ANN)
    chat_id, guest = await asked_chat(desk)
    await desk.service.on_operator_message(ANN, guest, "hello")
    queued = await desk.service.post_patron_message(chat_id, "m2", "queued while down")
    live = desk.service.live_by_guest(guest.split("@", 1)[0])
    assert live is not None
    committed = ChatEvent(
        chat_id,
        live.last_seq + 1,
        EventKind.MESSAGE,
        Sender.PATRON,
        "You",
        "committed, not yet passed on",
        desk.clock.now(),
        client_id="m3",
    )
    await desk.store.chats.append_event(committed)
    unrelayed = await desk.service.unrelayed()
    seqs = [e.seq for _guest, _to, events in unrelayed for e in events]
    assert queued.seq in seqs
    assert committed.seq not in seqs


async def test_operator_answer_accepts(desk: Desk) -> None:
    await online(desk, ANN, BOB)
    chat_id, guest = await asked_chat(desk)
    desk.events.clear()

    reply = await desk.service.on_operator_message(ANN, guest, "hello")
    assert reply is None

    (accepted,) = desk.of(ChatAccepted)
    assert accepted.chat_id == chat_id
    assert accepted.operator_jid == ANN
    assert accepted.operator_name == "Ann"
    assert accepted.others == (BOB,)
    assert accepted.explicit is False
    posted = [p.event for p in desk.of(MessagePosted)]
    assert [(e.seq, e.sender, e.text) for e in posted] == [
        (2, Sender.SYSTEM, "Ann joined the chat."),
        (3, Sender.OPERATOR, "hello"),
    ]
    assert posted[1].operator_jid == ANN
    assert posted[1].name == "Ann"
    stored = await desk.store.chats.by_id(chat_id)
    assert stored is not None
    assert stored.state is ChatState.ACTIVE
    ann = await desk.store.operators.by_jid(ANN)
    assert ann is not None and stored.operator_id == ann.id
    assert await desk.store.chats.events_after(chat_id, 1) == posted

    # The patron's next words go to Ann only.
    await desk.service.post_patron_message(chat_id, "m2", "thanks")
    assert desk.of(MessagePosted)[-1].operator_jids == (ANN,)


async def test_second_operator_gets_not_your_chat(desk: Desk) -> None:
    await online(desk, ANN, BOB)
    chat_id, guest = await asked_chat(desk)
    await desk.service.on_operator_message(ANN, guest, "hello")
    seq = await desk.store.chats.last_seq(chat_id)
    for line in ("me too", "!accept", "!end"):
        with pytest.raises(NotYourChat) as info:
            await desk.service.on_operator_message(BOB, guest, line)
        assert "Ann" in info.value.text
        assert info.value.code == "not_allowed"
    assert await desk.store.chats.last_seq(chat_id) == seq
    assert desk.service.chat_state(chat_id) is ChatState.ACTIVE


async def test_explicit_accept(desk: Desk) -> None:
    await online(desk, ANN, BOB)
    chat_id, guest = await asked_chat(desk)
    reply = await desk.service.on_operator_message(BOB, guest, "!ACCEPT")
    assert reply is not None and "You have this chat" in reply
    (accepted,) = desk.of(ChatAccepted)
    assert accepted.explicit is True
    assert accepted.chat_id == chat_id
    assert accepted.operator_jid == BOB
    assert accepted.others == (ANN,)
    again = await desk.service.on_operator_message(BOB, guest, "!accept")
    assert again == "This chat is already yours."
    assert len(desk.of(ChatAccepted)) == 1


async def test_double_bang_is_sent_literally(desk: Desk) -> None:
    await online(desk, ANN)
    _, guest = await asked_chat(desk)
    await desk.service.on_operator_message(ANN, guest, "!!important")
    assert desk.of(MessagePosted)[-1].event.text == "!important"


async def test_operator_illegal_text_is_refused(desk: Desk) -> None:
    await online(desk, ANN)
    chat_id, guest = await asked_chat(desk)
    with pytest.raises(InvalidInput) as info:
        await desk.service.on_operator_message(ANN, guest, "bad \x01 text")
    assert info.value.code == "illegal_characters"
    assert await desk.store.chats.last_seq(chat_id) == 1
    assert desk.of(ChatAccepted) == []


async def test_non_operator_is_refused(desk: Desk) -> None:
    await online(desk, ANN)
    chat_id, guest = await asked_chat(desk)
    with pytest.raises(NotAnOperator) as info:
        await desk.service.on_operator_message(STRANGER, guest, "hello")
    assert info.value.code == "forbidden"
    with pytest.raises(NotAnOperator):
        await desk.service.on_queue_message(STRANGER, "ask", "!status")
    assert await desk.store.chats.last_seq(chat_id) == 1


async def test_operator_of_another_queue_is_refused(desk: Desk) -> None:
    await online(desk, ANN)
    chat_id, guest = await asked_chat(desk)
    with pytest.raises(NotAnOperator):
        await desk.service.on_operator_message(CAROL, guest, "hello")
    assert desk.of(ChatAccepted) == []
    assert desk.service.chat_state(chat_id) is ChatState.OFFERED


async def test_operator_writing_to_unknown_guest(desk: Desk) -> None:
    with pytest.raises(ChatClosed):
        await desk.service.on_operator_message(ANN, "guest-nobody", "hello")


async def test_end_ends_the_chat(desk: Desk) -> None:
    await online(desk, ANN, BOB)
    chat_id, guest = await asked_chat(desk)
    await desk.service.on_operator_message(ANN, guest, "hello")
    desk.events.clear()

    reply = await desk.service.on_operator_message(ANN, guest, "!end")
    assert reply == "Chat ended."
    (ended,) = desk.of(ChatEnded)
    assert ended.chat_id == chat_id
    assert ended.guest == guest
    assert ended.by == "operator"
    assert ended.operator_jids == (ANN,)
    assert ended.event.kind is EventKind.ENDED
    assert ended.event.seq == 4
    assert "Ann" in ended.event.text
    stored = await desk.store.chats.by_id(chat_id)
    assert stored is not None
    assert stored.state is ChatState.ENDED
    assert stored.ended_at == desk.clock.now()
    assert desk.service.chat_state(chat_id) is ChatState.ENDED
    assert chat_id not in [c.id for c in desk.service.open_chats()]
    assert (await desk.store.chats.events_after(chat_id, 3)) == [ended.event]

    with pytest.raises(ChatClosed):
        await desk.service.post_patron_message(chat_id, "late", "are you there?")
    with pytest.raises(ChatClosed):
        await desk.service.on_operator_message(ANN, guest, "one more thing")
    assert await desk.store.chats.last_seq(chat_id) == 4


async def test_end_before_anyone_accepted(desk: Desk) -> None:
    await online(desk, ANN, BOB)
    chat_id, guest = await asked_chat(desk)
    reply = await desk.service.on_operator_message(BOB, guest, "!end")
    assert reply == "Chat ended."
    (ended,) = desk.of(ChatEnded)
    assert set(ended.operator_jids) == {ANN, BOB}
    assert desk.service.chat_state(chat_id) is ChatState.ENDED


async def test_patron_ends_the_chat(desk: Desk) -> None:
    await online(desk, ANN)
    chat_id, guest = await asked_chat(desk)
    await desk.service.on_operator_message(ANN, guest, "hi")
    await desk.service.end_chat_by_patron(chat_id)
    await desk.service.end_chat_by_patron(chat_id)  # twice is harmless
    (ended,) = desk.of(ChatEnded)
    assert ended.by == "patron"
    assert ended.operator_jids == (ANN,)
    stored = await desk.store.chats.by_id(chat_id)
    assert stored is not None and stored.state is ChatState.ENDED


async def test_resend_after_end_returns_the_stored_message(desk: Desk) -> None:
    # The patron's socket dropped before the ack of "m1" arrived, and the operator ended
    # the chat meanwhile: the resend must still be acknowledged with the committed event
    # (post_patron_message: "a resend returns the stored event"), not refused.
    await online(desk, ANN)
    chat_id, guest = await asked_chat(desk, "my question")
    await desk.service.on_operator_message(ANN, guest, "!end")
    again = await desk.service.post_patron_message(chat_id, "m1", "my question")
    assert again.seq == 1
    assert again.text == "my question"


async def test_unknown_chat_command(desk: Desk) -> None:
    await online(desk, ANN)
    _, guest = await asked_chat(desk)
    with pytest.raises(BadCommand) as info:
        await desk.service.on_operator_message(ANN, guest, "!frobnicate now")
    assert "!frobnicate" in info.value.text
    assert info.value.code == "bad_command"
    with pytest.raises(BadCommand):
        await desk.service.on_operator_message(ANN, guest, "!")
    assert desk.of(ChatAccepted) == []


async def test_chat_help(desk: Desk) -> None:
    await online(desk, ANN)
    _, guest = await asked_chat(desk)
    reply = await desk.service.on_operator_message(ANN, guest, "!help")
    assert reply == commands.help_text(commands.CHAT_COMMANDS)


# Presence and offers ---------------------------------------------------------------------


@pytest.mark.parametrize("away", [Presence.AWAY, Presence.XA, Presence.DND, Presence.OFFLINE])
async def test_operator_going_away_withdraws_offers(desk: Desk, away: Presence) -> None:
    await online(desk, ANN, BOB)
    chat_id, _ = await asked_chat(desk)
    await desk.service.on_operator_presence(ANN, "laptop", away)
    await desk.service.post_patron_message(chat_id, "m2", "hello?")
    assert desk.of(MessagePosted)[-1].operator_jids == (BOB,)
    assert desk.service.chat_state(chat_id) is ChatState.OFFERED

    await desk.service.on_operator_presence(BOB, "laptop", away)
    assert desk.service.chat_state(chat_id) is ChatState.WAITING
    stored = await desk.store.chats.by_id(chat_id)
    assert stored is not None and stored.state is ChatState.WAITING
    await desk.service.post_patron_message(chat_id, "m3", "anyone?")
    assert desk.of(MessagePosted)[-1].operator_jids == ()


async def test_operator_becoming_available_gets_waiting_chats(desk: Desk) -> None:
    chat_id, guest = await asked_chat(desk, "first question")
    assert desk.of(ChatOffered) == []
    assert desk.service.chat_state(chat_id) is ChatState.WAITING
    unasked = await desk.service.open_chat("ask", None)  # has said nothing yet

    await online(desk, ANN, presence=Presence.AWAY)
    assert desk.of(ChatOffered) == []
    await online(desk, ANN, presence=Presence.CHAT)
    (offer,) = desk.of(ChatOffered)
    assert offer.chat_id == chat_id
    assert offer.guest == guest
    assert offer.operator_jids == (ANN,)
    assert [e.text for e in offer.history] == ["first question"]
    assert desk.service.chat_state(chat_id) is ChatState.OFFERED
    assert desk.service.chat_state(unasked.chat_id) is ChatState.WAITING

    # A second operator arriving is offered the same chat, alone.
    await online(desk, BOB)
    assert desk.of(ChatOffered)[-1].operator_jids == (BOB,)
    # Repeating the same presence changes nothing.
    await online(desk, BOB)
    assert len(desk.of(ChatOffered)) == 2


async def test_returning_operator_is_offered_again(desk: Desk) -> None:
    await online(desk, ANN)
    chat_id, _ = await asked_chat(desk)
    await online(desk, ANN, presence=Presence.AWAY)
    await online(desk, ANN)
    offers = desk.of(ChatOffered)
    assert [o.operator_jids for o in offers] == [(ANN,), (ANN,)]
    assert desk.service.chat_state(chat_id) is ChatState.OFFERED


async def test_best_resource_counts(desk: Desk) -> None:
    await desk.service.on_operator_presence(ANN, "phone", Presence.AWAY)
    await desk.service.on_operator_presence(ANN, "laptop", Presence.AVAILABLE)
    assert desk.service.presence_of(ANN) is Presence.AVAILABLE
    chat_id, _ = await asked_chat(desk)
    assert desk.of(ChatOffered)[-1].operator_jids == (ANN,)
    await desk.service.on_operator_presence(ANN, "laptop", Presence.OFFLINE)
    assert desk.service.presence_of(ANN) is Presence.AWAY
    assert desk.service.chat_state(chat_id) is ChatState.WAITING
    await desk.service.on_operator_presence(ANN, "phone", Presence.OFFLINE)
    assert desk.service.presence_of(ANN) is Presence.OFFLINE


async def test_presence_of_non_operator_is_ignored(desk: Desk) -> None:
    await desk.service.on_operator_presence(STRANGER, "x", Presence.AVAILABLE)
    assert desk.service.presence_of(STRANGER) is Presence.OFFLINE
    assert desk.events == []


async def test_operator_freed_by_end_gets_waiting_chat(desk: Desk) -> None:
    # Ann takes one chat at a time. While she is busy a second patron asks; when her chat
    # ends she is eligible again (available, under her max) and must be offered it.
    await desk.store.operators.upsert(ANN, "Ann", 1, desk.clock.now())
    await desk.service.reload_directory()
    await online(desk, ANN)
    first_id, first_guest = await asked_chat(desk)
    await desk.service.on_operator_message(ANN, first_guest, "hello")
    second = await desk.service.open_chat("ask", None)
    await desk.service.post_patron_message(second.chat_id, "q", "me next")
    assert [o.chat_id for o in desk.of(ChatOffered)] == [first_id]
    assert desk.service.queue_info("ask").status is QueueStatus.BUSY

    await desk.service.on_operator_message(ANN, first_guest, "!end")
    assert desk.service.queue_info("ask").status is QueueStatus.AVAILABLE
    # The offer is made from a task (the ending chat's lock is held): let it run.
    await desk.service.idle()
    assert [o.chat_id for o in desk.of(ChatOffered)] == [first_id, second.chat_id]


# Queue status ----------------------------------------------------------------------------


async def test_queue_info_offline_available_away(desk: Desk) -> None:
    info = desk.service.queue_info("ask")
    assert info.queue == "ask"
    assert info.title == "Ask a librarian"
    assert info.status is QueueStatus.OFFLINE
    assert info.operators_available == 0

    await online(desk, ANN, presence=Presence.DND)
    assert desk.service.queue_info("ask").status is QueueStatus.AWAY
    await online(desk, BOB)
    info = desk.service.queue_info("ask")
    assert info.status is QueueStatus.AVAILABLE
    assert info.operators_available == 1
    await online(desk, BOB, presence=Presence.OFFLINE)
    assert desk.service.queue_info("ask").status is QueueStatus.AWAY
    await online(desk, ANN, presence=Presence.OFFLINE)
    assert desk.service.queue_info("ask").status is QueueStatus.OFFLINE
    # Carol serves another queue: her presence does not count here.
    await online(desk, CAROL)
    assert desk.service.queue_info("ask").status is QueueStatus.OFFLINE
    assert desk.service.queue_info("science").status is QueueStatus.AVAILABLE


async def test_queue_info_busy_at_max_chats(desk: Desk) -> None:
    await desk.store.operators.upsert(ANN, "Ann", 1, desk.clock.now())
    await desk.service.reload_directory()
    await online(desk, ANN)
    _, guest = await asked_chat(desk)
    assert desk.service.queue_info("ask").status is QueueStatus.AVAILABLE
    assert desk.service.queue_info("ask").waiting == 1
    await desk.service.on_operator_message(ANN, guest, "hi")
    info = desk.service.queue_info("ask")
    assert info.status is QueueStatus.BUSY
    assert info.waiting == 0
    assert info.operators_available == 1


async def test_queue_info_unknown_queue(desk: Desk) -> None:
    with pytest.raises(UnknownQueue):
        desk.service.queue_info("nope")


async def test_queue_status_changes_are_published(desk: Desk) -> None:
    await online(desk, ANN)
    statuses = [(e.queue, e.status) for e in desk.of(QueueStatusChanged)]
    assert ("ask", QueueStatus.AVAILABLE) in statuses
    desk.events.clear()
    await online(desk, ANN)  # same presence again: nothing new to tell
    assert desk.of(QueueStatusChanged) == []
    await online(desk, ANN, presence=Presence.AWAY)
    assert [(e.queue, e.status) for e in desk.of(QueueStatusChanged)] == [("ask", QueueStatus.AWAY)]


async def test_position(desk: Desk) -> None:
    await online(desk, ANN)
    first_id, first_guest = await asked_chat(desk)
    second = await desk.service.open_chat("ask", None)
    await desk.service.post_patron_message(second.chat_id, "q", "me too")
    assert desk.service.position(first_id) == 1
    assert desk.service.position(second.chat_id) == 2
    await desk.service.on_operator_message(ANN, first_guest, "hi")
    assert desk.service.position(first_id) is None
    assert desk.service.position(second.chat_id) == 1


# Queue commands --------------------------------------------------------------------------


async def test_queue_status_command(desk: Desk) -> None:
    await online(desk, ANN)
    await asked_chat(desk)
    reply = await desk.service.on_queue_message(ANN, "ask", "!status")
    assert reply == "ask: available; 1 waiting; 1 operator(s) taking chats."


async def test_queue_who_command(desk: Desk) -> None:
    await online(desk, ANN)
    await online(desk, BOB, presence=Presence.XA)
    reply = await desk.service.on_queue_message(ANN, "ask", "!WHO")
    assert reply.splitlines() == [
        f"Ann ({ANN}): available, 0/3 chats",
        f"Bob ({BOB}): xa, 0/3 chats",
    ]


async def test_queue_list_command(desk: Desk) -> None:
    assert await desk.service.on_queue_message(ANN, "ask", "!list") == "No open chats."
    await online(desk, ANN)
    _, first_guest = await asked_chat(desk)
    # A patron who opened the widget but asked nothing is not listed; nor are other queues.
    await desk.service.open_chat("ask", None)
    await desk.service.open_chat("science", None)
    await desk.service.on_operator_message(ANN, first_guest, "hi")
    reply = await desk.service.on_queue_message(BOB, "ask", "!list")
    assert reply.splitlines() == [
        f"{first_guest}@{DOMAIN} — active with Ann",
    ]


async def test_queue_help_command(desk: Desk) -> None:
    reply = await desk.service.on_queue_message(ANN, "ask", "!help")
    assert reply.startswith(commands.help_text(commands.QUEUE_COMMANDS))
    assert "A line without ! goes to your colleagues" in reply


@pytest.mark.parametrize("line", ["!frobnicate", "!accept", "!", "!end now"])
async def test_queue_unknown_command(desk: Desk, line: str) -> None:
    with pytest.raises(BadCommand) as info:
        await desk.service.on_queue_message(ANN, "ask", line)
    assert "!help" in info.value.text


async def test_queue_plain_text_with_nobody_else_online_says_so(desk: Desk) -> None:
    # A plain line is for the colleagues online (the back-channel); with none, the sender
    # is told it reached no one.
    reply = await desk.service.on_queue_message(ANN, "ask", "hello queue")
    assert "Nobody else is online in the ask queue" in reply


async def test_queue_commands_need_membership_and_a_queue(desk: Desk) -> None:
    with pytest.raises(NotAnOperator):
        await desk.service.on_queue_message(CAROL, "ask", "!status")
    with pytest.raises(UnknownQueue):
        await desk.service.on_queue_message(ANN, "nope", "!status")


# Directory -------------------------------------------------------------------------------


async def test_reload_directory_asks_for_new_subscriptions(tmp_path: Path) -> None:
    clock = Clock()
    d = await make_desk(tmp_path / "db.sqlite3", clock)
    try:
        await seed(d.store, clock.now())
        await d.service.reload_directory()
        wanted = {(e.queue, e.operator_jid) for e in d.of(SubscriptionWanted)}
        assert wanted == {("ask", ANN), ("ask", BOB), ("science", CAROL)}
        d.events.clear()
        await d.service.reload_directory()
        assert d.of(SubscriptionWanted) == []
        assert d.service.queue_names() == ["ask", "science"]
        assert d.service.queues_of(ANN) == ["ask"]
    finally:
        await d.service.close()
        await d.store.close()


async def test_poll_directory_sees_another_connection(desk: Desk) -> None:
    assert await desk.service.poll_directory() is False
    cli = await Store.open(desk.path)
    try:
        dave = await cli.operators.upsert("dave@example.org", "Dave", 2, desk.clock.now())
        queue = await cli.queues.by_name("ask")
        assert queue is not None
        await cli.operators.assign(queue.id, dave.id)
    finally:
        await cli.close()
    assert desk.service.operator("dave@example.org") is None
    assert await desk.service.poll_directory() is True
    assert desk.service.operator("dave@example.org") is not None
    assert desk.service.queues_of("dave@example.org") == ["ask"]
    assert await desk.service.poll_directory() is False


# Restart ---------------------------------------------------------------------------------


async def test_restart_reloads_open_chats_with_their_last_seq(desk: Desk) -> None:
    service = desk.service
    await online(desk, ANN, BOB)
    active_id, active_guest = await asked_chat(desk)
    await service.on_operator_message(ANN, active_guest, "hello")  # seqs 2 and 3
    offered = await service.open_chat("ask", None)
    await service.post_patron_message(offered.chat_id, "q", "still waiting")
    ended = await service.open_chat("ask", None)
    await service.post_patron_message(ended.chat_id, "q", "bye")
    await service.end_chat_by_patron(ended.chat_id)
    active_resume = (await service.open_chat("ask", None)).resume  # another open chat
    await service.close()
    await desk.store.close()

    restarted = await make_desk(desk.path, desk.clock)
    desk.store = restarted.store  # closed by the fixture
    desk.service = restarted.service
    s2 = restarted.service
    assert {c.id for c in s2.open_chats()} >= {active_id, offered.chat_id}
    assert ended.chat_id not in {c.id for c in s2.open_chats()}
    assert s2.chat_state(active_id) is ChatState.ACTIVE
    # Offers are not remembered: the offered chat waits to be offered afresh.
    assert s2.chat_state(offered.chat_id) is ChatState.WAITING

    nxt = await s2.post_patron_message(active_id, "after", "back again")
    assert nxt.seq == 4
    assert restarted.of(MessagePosted)[-1].operator_jids == (ANN,)
    reply = await s2.on_operator_message(ANN, active_guest, "welcome back")
    assert reply is None
    assert restarted.of(MessagePosted)[-1].event.seq == 5
    with pytest.raises(NotYourChat):
        await s2.on_operator_message(BOB, active_guest, "mine?")

    assert (await s2.post_patron_message(offered.chat_id, "q2", "hello?")).seq == 2
    await s2.on_operator_presence(BOB, "laptop", Presence.AVAILABLE)
    offers = restarted.of(ChatOffered)
    assert [(o.chat_id, o.operator_jids) for o in offers] == [(offered.chat_id, (BOB,))]

    resumed = await s2.open_chat("ask", active_resume)
    assert resumed.resumed is True


# Patron gone -----------------------------------------------------------------------------

GONE_TTL = 30.0


@pytest.fixture
async def quick_desk(tmp_path: Path) -> AsyncIterator[Desk]:
    """A desk whose patrons are given up after GONE_TTL seconds without a connection."""
    clock = Clock()
    d = await make_desk(tmp_path / "quick.sqlite3", clock, resume_ttl=GONE_TTL)
    await seed(d.store, clock.now())
    await d.service.reload_directory()
    d.events.clear()
    try:
        yield d
    finally:
        await d.service.close()
        await d.store.close()


async def test_patron_gone_ends_the_chat(quick_desk: Desk) -> None:
    service = quick_desk.service
    await online(quick_desk, ANN)
    handle = await service.open_chat("ask", None)
    service.patron_connected(handle.chat_id)
    await service.post_patron_message(handle.chat_id, "m1", "hello")
    await service.on_operator_message(ANN, handle.guest, "hi")
    service.patron_disconnected(handle.chat_id)
    assert quick_desk.of(ChatEnded) == []
    await advance(quick_desk, GONE_TTL - 1)
    assert quick_desk.of(ChatEnded) == []
    await advance(quick_desk, 1)
    (ended,) = quick_desk.of(ChatEnded)
    assert ended.chat_id == handle.chat_id
    assert ended.by == "system"
    assert ended.operator_jids == (ANN,)
    assert "left" in ended.event.text
    stored = await quick_desk.store.chats.by_id(handle.chat_id)
    assert stored is not None and stored.state is ChatState.ENDED


async def test_patron_who_comes_back_keeps_the_chat(quick_desk: Desk) -> None:
    service = quick_desk.service
    handle = await service.open_chat("ask", None)
    service.patron_connected(handle.chat_id)
    service.patron_connected(handle.chat_id)  # a second tab
    service.patron_disconnected(handle.chat_id)
    await advance(quick_desk, GONE_TTL * 4)
    assert quick_desk.of(ChatEnded) == []
    service.patron_disconnected(handle.chat_id)
    service.patron_connected(handle.chat_id)  # reconnected in time
    await advance(quick_desk, GONE_TTL * 4)
    assert quick_desk.of(ChatEnded) == []
    assert service.chat_state(handle.chat_id) is ChatState.WAITING


async def test_patron_who_never_connects_is_given_up(quick_desk: Desk) -> None:
    handle = await quick_desk.service.open_chat("ask", None)
    assert quick_desk.of(ChatEnded) == []
    await advance(quick_desk, GONE_TTL - 1)
    assert quick_desk.of(ChatEnded) == []
    await advance(quick_desk, 1)
    assert [e.chat_id for e in quick_desk.of(ChatEnded)] == [handle.chat_id]


# Timers on the manual clock --------------------------------------------------------------


async def set_queue(desk: Desk, name: str, update: QueueUpdate) -> None:
    queue = await desk.store.queues.by_name(name)
    assert queue is not None
    await desk.store.queues.update(queue.id, update)
    await desk.service.reload_directory()


async def test_round_robin_offer_times_out_to_the_next_operator(desk: Desk) -> None:
    await set_queue(desk, "ask", QueueUpdate(routing=RoutingMode.ROUND_ROBIN, offer_timeout=30.0))
    await online(desk, ANN, BOB)
    chat_id, _ = await asked_chat(desk)
    (first,) = desk.of(ChatOffered)
    await advance(desk, 29)
    assert len(desk.of(ChatOffered)) == 1 and desk.of(OfferWithdrawn) == []
    await advance(desk, 1)
    (withdrawn,) = desk.of(OfferWithdrawn)
    assert withdrawn.operator_jids == first.operator_jids
    second = desk.of(ChatOffered)[1]
    assert second.chat_id == chat_id
    assert set(second.operator_jids) == {ANN, BOB} - set(first.operator_jids)


async def test_accepted_offer_never_times_out(desk: Desk) -> None:
    await set_queue(desk, "ask", QueueUpdate(routing=RoutingMode.ROUND_ROBIN, offer_timeout=30.0))
    await online(desk, ANN, BOB)
    _, guest = await asked_chat(desk)
    (offer,) = desk.of(ChatOffered)
    await desk.service.on_operator_message(offer.operator_jids[0], guest, "hello")
    await advance(desk, 600)
    assert desk.of(OfferWithdrawn) == []
    assert len(desk.of(ChatOffered)) == 1


async def test_unanswered_chat_rolls_over_to_the_backup_queue(desk: Desk) -> None:
    science = await desk.store.queues.by_name("science")
    assert science is not None
    await set_queue(desk, "ask", QueueUpdate(rollover_after=90.0, backup_queue_id=science.id))
    await online(desk, CAROL)
    chat_id, _ = await asked_chat(desk)
    await advance(desk, 89)
    assert desk.service.chat_queue(chat_id) == "ask"
    await advance(desk, 1)
    assert desk.service.chat_queue(chat_id) == "science"
    assert [o.operator_jids for o in desk.of(ChatOffered)] == [(CAROL,)]


async def test_max_wait_offers_the_email_form_once(desk: Desk) -> None:
    await set_queue(desk, "ask", QueueUpdate(max_wait=90.0, followup_email="ref@lib.example"))
    await asked_chat(desk)
    await advance(desk, 89)
    assert desk.of(EmailOffered) == []
    await advance(desk, 1)
    assert len(desk.of(EmailOffered)) == 1
    await advance(desk, 3600)
    assert len(desk.of(EmailOffered)) == 1


async def test_operator_offline_past_the_grace_loses_their_chats(desk: Desk) -> None:
    await online(desk, ANN)
    chat_id, guest = await asked_chat(desk)
    await desk.service.on_operator_message(ANN, guest, "hello")
    await online(desk, ANN, presence=Presence.OFFLINE)
    await advance(desk, desk.service.operator_grace - 1)
    assert desk.service.chat_state(chat_id) is ChatState.ACTIVE
    await advance(desk, 1)
    assert desk.service.chat_state(chat_id) is not ChatState.ACTIVE
    assert desk.service.live_by_guest(guest) is not None
    live = desk.service.live_by_guest(guest)
    assert live is not None and live.operator is None


async def test_operator_back_within_the_grace_keeps_their_chats(desk: Desk) -> None:
    await online(desk, ANN)
    chat_id, guest = await asked_chat(desk)
    await desk.service.on_operator_message(ANN, guest, "hello")
    await online(desk, ANN, presence=Presence.OFFLINE)
    await advance(desk, desk.service.operator_grace - 1)
    await online(desk, ANN)
    # Well past the grace (and short of the patron-gone time-out, as nobody connected).
    await advance(desk, desk.service.operator_grace * 10)
    assert desk.service.chat_state(chat_id) is ChatState.ACTIVE
    live = desk.service.live_by_guest(guest)
    assert live is not None and live.operator is not None and live.operator.jid == ANN


async def test_typing_flush_fires_on_the_clock(desk: Desk) -> None:
    await online(desk, ANN)
    chat_id, _ = await asked_chat(desk)
    await desk.service.patron_typing(chat_id, True)
    await desk.service.patron_typing(chat_id, False)  # inside the interval: held back
    typing = [e for e in desk.of(TypingChanged) if e.chat_id == chat_id]
    assert [e.composing for e in typing] == [True]
    await advance(desk, TYPING_INTERVAL)
    typing = [e for e in desk.of(TypingChanged) if e.chat_id == chat_id]
    assert [e.composing for e in typing] == [True, False]


async def test_closing_the_service_leaves_no_timer_to_fire(desk: Desk) -> None:
    await online(desk, ANN)
    await asked_chat(desk)
    await online(desk, ANN, presence=Presence.OFFLINE)
    assert desk.clock.pending()
    await desk.service.close()
    assert desk.clock.pending() == []


# Bans written by another process are re-read incrementally ------------------------------


async def test_bans_from_another_connection_are_applied_without_rebuilding_the_index(
    desk: Desk,
) -> None:
    from ipaddress import ip_network

    from component.core.bans import Ban
    from component.core.events import BanImposed

    now = desk.clock.now()
    later = now.replace(year=now.year + 1)

    def ban(network: str) -> Ban:
        return Ban(0, ip_network(network), 1, "spam", now, later, created_by="cli")

    moderation = desk.service.moderation
    cli = await Store.open(desk.path)
    try:
        first = await cli.bans.add(ban("192.0.2.1/32"), now)
        second = await cli.bans.add(ban("198.51.100.0/24"), now)
    finally:
        await cli.close()
    index = moderation._index
    assert await desk.service.poll_directory() is True
    assert moderation.banned("192.0.2.1") is not None
    assert moderation.banned("198.51.100.9") is not None
    assert sorted(e.ban_id for e in desk.of(BanImposed)) == [first.id, second.id]
    desk.events.clear()

    cli = await Store.open(desk.path)
    try:
        await cli.bans.lift(first.id, "cli", now)
        await cli.bans.change_end(second.id, now.replace(year=now.year + 2), "cli", now, "longer")
        third = await cli.bans.add(ban("203.0.113.0/24"), now)
    finally:
        await cli.close()
    assert await desk.service.poll_directory() is True
    assert moderation._index is index  # changed in place, not rebuilt from every ban
    assert moderation.banned("192.0.2.1") is None
    changed = moderation.banned("198.51.100.9")
    assert changed is not None and changed.ends_at == now.replace(year=now.year + 2)
    assert moderation.banned("203.0.113.5") is not None
    # Only the ban this process did not know is announced (open chats from it end).
    assert [e.ban_id for e in desk.of(BanImposed)] == [third.id]
    assert await desk.service.poll_directory() is False


async def test_hot_queries_use_their_indexes(desk: Desk) -> None:
    """EXPLAIN QUERY PLAN of the queries run per line, per hello and per reload: none may
    scan a table that grows with use (transcripts, chats, bans, the ban audit). The
    statements are captured from the connection while the store's own methods run, so the
    check follows the store's SQL wherever it changes."""
    store = desk.store
    ran: list[str] = []

    def trace(conn: sqlite3.Connection, on: bool) -> None:
        conn.set_trace_callback(ran.append if on else None)

    await store.db.run(lambda conn: trace(conn, True))
    try:
        # the transcript after a seq (replays, offers), the newest seq, an idempotent resend
        await store.chats.events_after(1, 0)
        await store.chats.last_seq(1)
        await store.chats.event_by_client_id(1, "c")
        # a hello with a resume token, relay cursors, a ban's incremental reload
        await store.chats.by_resume("h")
        await store.chats.set_relayed({1: 1})
        await store.bans.changed_since(0)
        await store.bans.change_mark()
    finally:
        await store.db.run(lambda conn: trace(conn, False))
    queries = [sql for sql in ran if sql.split()[0].upper() in ("SELECT", "UPDATE")]
    assert len(queries) == 7, ran
    for sql in queries:
        plan = [row[3] for row in await store.db.all("EXPLAIN QUERY PLAN " + sql)]
        assert plan, sql
        scans = [step for step in plan if step.startswith("SCAN")]
        assert not scans, (sql, plan)


async def test_a_hello_does_not_sweep_every_rate_limit_key(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each new chat is rate-limited per address; sweeping the limiter's idle keys walks
    all of them, so it happens once a minute, not at every hello (which made a hello cost
    more the more patrons were around)."""
    from component.core.ratelimit import RateLimiter

    sweeps: list[int] = []
    real = RateLimiter.forget_older_than

    def counted(self: RateLimiter, now: float) -> int:
        sweeps.append(len(self._states))
        return real(self, now)

    monkeypatch.setattr(RateLimiter, "forget_older_than", counted)
    for n in range(300):
        await desk.service.open_chat("ask", None, origin_ip=f"10.{n // 250}.{n % 250}.1")
    assert len(sweeps) <= 1
    await advance(desk, 61)
    await desk.service.open_chat("ask", None, origin_ip="10.9.9.9")
    assert len(sweeps) == 2  # still swept, once a minute
