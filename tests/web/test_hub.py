"""Tests for web.hub: ordering of patron frames around a history replay."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from component.bus import EventBus
from component.core.events import ChatEnded, MessagePosted, QueueStatusChanged, TypingChanged
from component.core.models import ChatEvent, EventKind, QueueStatus, Sender
from web.hub import Frame, PatronConnection, PatronHub, event_frame

TS = datetime(2026, 5, 4, 9, 30, 15, 250000, tzinfo=UTC)


def msg(seq: int, text: str = "hi", sender: Sender = Sender.OPERATOR) -> Frame:
    return {"type": "message", "seq": seq, "from": sender.value, "text": text}


def drain(conn: PatronConnection) -> list[Frame | None]:
    out: list[Frame | None] = []
    while True:
        try:
            out.append(conn.frames.get_nowait())
        except asyncio.QueueEmpty:
            return out


def seqs(frames: list[Frame | None]) -> list[object]:
    return [f.get("seq") if f else None for f in frames]


def chat_event(
    seq: int,
    *,
    kind: EventKind = EventKind.MESSAGE,
    sender: Sender = Sender.OPERATOR,
    name: str = "Ann",
    text: str = "Hello!",
    client_id: str | None = None,
) -> ChatEvent:
    return ChatEvent(
        chat_id=7,
        seq=seq,
        kind=kind,
        sender=sender,
        name=name,
        text=text,
        ts=TS,
        client_id=client_id,
    )


# PatronConnection ------------------------------------------------------------------------


def test_frames_are_held_until_replay() -> None:
    conn = PatronConnection(7, "ask")
    conn.push(msg(3))
    conn.push({"type": "typing", "state": "composing"})
    assert conn.frames.empty()
    conn.replay([msg(1), msg(2)], after=0)
    frames = drain(conn)
    assert seqs(frames) == [1, 2, 3, None]
    assert frames[3] == {"type": "typing", "state": "composing"}
    assert conn.sent_seq == 3


def test_replay_drops_held_frames_already_delivered() -> None:
    conn = PatronConnection(7, "ask")
    # Live events committed while the history was being read: 4 and 5 are also in it.
    conn.push(msg(4, "live four"))
    conn.push(msg(5, "live five"))
    conn.push(msg(6, "live six"))
    conn.replay([msg(3), msg(4, "history four"), msg(5, "history five")], after=2)
    frames = drain(conn)
    assert seqs(frames) == [3, 4, 5, 6]
    assert [f["text"] for f in frames if f] == ["hi", "history four", "history five", "live six"]


def test_replay_drops_ended_frame_already_delivered() -> None:
    conn = PatronConnection(7, "ask")
    ended: Frame = {"type": "ended", "seq": 2, "by": "system", "text": "bye"}
    conn.push(dict(ended))
    conn.replay([msg(1), dict(ended)], after=0)
    frames = drain(conn)
    assert [f["type"] for f in frames if f] == ["message", "ended"]


def test_replay_skips_history_at_or_below_after() -> None:
    conn = PatronConnection(7, "ask")
    conn.replay([msg(2), msg(3)], after=3)
    assert drain(conn) == []
    assert conn.sent_seq == 3


def test_empty_replay_releases_held_frames() -> None:
    conn = PatronConnection(7, "ask")
    conn.push(msg(6))
    conn.push({"type": "queue_changed"})
    conn.replay([], after=5)
    frames = drain(conn)
    assert seqs(frames) == [6, None]
    assert conn.sent_seq == 6


def test_after_replay_frames_flow_directly_and_duplicates_drop() -> None:
    conn = PatronConnection(7, "ask")
    conn.replay([msg(1)], after=0)
    drain(conn)
    conn.push(msg(2))
    conn.push(msg(2))
    conn.push(msg(1))
    conn.push(msg(3))
    assert seqs(drain(conn)) == [2, 3]


def test_acks_pass_even_with_a_lower_seq() -> None:
    conn = PatronConnection(7, "ask")
    conn.replay([msg(1), msg(2), msg(3), msg(4)], after=0)
    drain(conn)
    ack: Frame = {"type": "ack", "id": "c9", "seq": 2}
    conn.push(ack)
    again: Frame = {"type": "ack", "id": "c9", "seq": 2}
    conn.push(again)
    assert drain(conn) == [ack, again]
    assert conn.sent_seq == 4


def test_held_ack_with_lower_seq_passes_after_replay() -> None:
    conn = PatronConnection(7, "ask")
    ack: Frame = {"type": "ack", "id": "c1", "seq": 1}
    conn.push(ack)
    conn.replay([msg(1, sender=Sender.PATRON), msg(2)], after=0)
    frames = drain(conn)
    assert frames[-1] == ack
    assert seqs(frames) == [1, 2, 1]


def test_ack_does_not_hide_a_later_message() -> None:
    conn = PatronConnection(7, "ask")
    conn.replay([], after=0)
    conn.push({"type": "ack", "id": "c1", "seq": 1})
    conn.push(msg(2))
    assert seqs(drain(conn)) == [1, 2]


def test_frames_without_seq_always_pass() -> None:
    conn = PatronConnection(7, "ask")
    conn.replay([msg(5)], after=0)
    drain(conn)
    status: Frame = {"type": "status", "status": "available"}
    error: Frame = {"type": "error", "code": "x", "text": "y"}
    conn.push(status)
    conn.push(error)
    conn.push(status)
    assert drain(conn) == [status, error, status]


def test_close_queues_the_end_marker() -> None:
    conn = PatronConnection(7, "ask")
    conn.replay([msg(1)], after=0)
    conn.close()
    assert seqs(drain(conn)) == [1, None]


# event_frame -----------------------------------------------------------------------------


def test_event_frame_operator_message() -> None:
    frame = event_frame(chat_event(3))
    assert frame == {
        "type": "message",
        "seq": 3,
        "from": "operator",
        "name": "Ann",
        "text": "Hello!",
        "ts": TS.isoformat(),
    }
    assert datetime.fromisoformat(frame["ts"]) == TS


def test_event_frame_patron_message_carries_client_id() -> None:
    frame = event_frame(chat_event(1, sender=Sender.PATRON, name="You", client_id="c-1"))
    assert frame["type"] == "message"
    assert frame["from"] == "patron"
    assert frame["id"] == "c-1"


def test_event_frame_system_message() -> None:
    frame = event_frame(chat_event(2, sender=Sender.SYSTEM, text="Ann joined the chat."))
    assert frame["from"] == "system"
    assert frame["text"] == "Ann joined the chat."
    assert "id" not in frame


def test_event_frame_ended() -> None:
    frame = event_frame(
        chat_event(9, kind=EventKind.ENDED, sender=Sender.SYSTEM, name="", text="Ended.")
    )
    assert frame == {
        "type": "ended",
        "seq": 9,
        "by": "system",
        "text": "Ended.",
        "ts": TS.isoformat(),
    }


def test_event_frame_ended_with_a_name() -> None:
    frame = event_frame(chat_event(4, kind=EventKind.ENDED, name="Ann", text="Ann ended it."))
    assert frame["type"] == "ended"
    assert frame["by"] == "Ann"
    assert frame["seq"] == 4


# PatronHub -------------------------------------------------------------------------------


def test_hub_routes_events_to_the_chat_connections() -> None:
    bus = EventBus()
    hub = PatronHub(bus)
    hub.start()
    mine = PatronConnection(7, "ask")
    other = PatronConnection(8, "science")
    hub.register(mine)
    hub.register(other)
    mine.replay([], after=0)
    other.replay([], after=0)

    patron = chat_event(1, sender=Sender.PATRON, name="You", client_id="c1")
    bus.publish(MessagePosted(7, "guest-a", patron, ()))
    operator = chat_event(2)
    bus.publish(MessagePosted(7, "guest-a", operator, ()))
    bus.publish(TypingChanged(7, "guest-a", False, True, ()))
    bus.publish(TypingChanged(7, "guest-a", True, True, ()))
    ended = chat_event(3, kind=EventKind.ENDED, sender=Sender.SYSTEM, name="", text="Bye")
    bus.publish(ChatEnded(7, "guest-a", ended, "operator", ()))
    bus.publish(QueueStatusChanged("science", QueueStatus.AWAY, 1, 0, {8: 1}))
    # The same view again is not sent twice.
    bus.publish(QueueStatusChanged("science", QueueStatus.AWAY, 1, 0, {8: 1}))

    frames = drain(mine)
    assert frames == [
        event_frame(operator),
        {"type": "typing", "state": "composing"},
        event_frame(ended),
    ]
    assert drain(other) == [{"type": "status", "status": "away", "position": 1, "waiting": 1}]
    assert hub.connections(7) == 1

    hub.unregister(mine)
    assert hub.connections(7) == 0
    hub.stop()
    assert drain(other) == [None]
    bus.publish(MessagePosted(8, "guest-b", chat_event(5), ()))
    assert drain(other) == []
