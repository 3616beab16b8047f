"""Patron connections per chat, fed by service events.

Each WebSocket (or, later, long-poll client) is a `PatronConnection` with one ordered
queue of outgoing frames, so every frame of a chat reaches the patron in seq order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from ipaddress import IPv4Network, IPv6Network
from typing import Any

from component.bus import EventBus
from component.core.bans import canonical_address
from component.core.events import (
    BanImposed,
    ChatEnded,
    EmailOffered,
    Event,
    MessageCorrected,
    MessagePosted,
    QueueStatusChanged,
    TypingChanged,
)
from component.core.models import ChatEvent, EventKind, Sender

Frame = dict[str, Any]
# Frames that are transcript entries: each seq is sent at most once per connection.
_TRANSCRIPT_FRAMES = frozenset({"message", "ended"})


def event_frame(event: ChatEvent) -> Frame:
    """The widget-protocol frame for a transcript entry (live or replayed)."""
    if event.kind is EventKind.ENDED:
        ended: Frame = {
            "type": "ended",
            "seq": event.seq,
            "by": event.name or "system",
            "text": event.text,
            "ts": event.ts.isoformat(),
        }
        return _coded(ended, event)
    frame: Frame = {
        "type": "message",
        "seq": event.seq,
        "from": event.sender.value,
        "name": event.name,
        "text": event.text,
        "ts": event.ts.isoformat(),
    }
    if event.client_id is not None:
        frame["id"] = event.client_id
    if event.corrected:
        frame["edited"] = True
    return _coded(frame, event)


def _coded(frame: Frame, event: ChatEvent) -> Frame:
    """A line the service wrote carries its code and parameters: the widget shows it in
    the patron's language, and `text` (English) only if it does not know the code."""
    if event.code is not None:
        frame["code"] = event.code
        frame["params"] = dict(event.params or {})
    return frame


class PatronConnection:
    """One patron socket's outgoing side. While the history is being replayed, live
    frames are held back and released afterwards, skipping what the replay already sent."""

    def __init__(self, chat_id: int, queue: str, ip: str | None = None) -> None:
        self.chat_id = chat_id
        self.queue = queue
        # The patron's address on this connection, so a new ban can find it at once.
        self.ip = ip
        self.frames: asyncio.Queue[Frame | None] = asyncio.Queue()
        self.sent_seq = 0
        self._held: list[Frame] | None = []
        self._last_status: Frame | None = None
        # Set once the connection is over (`close`); `banned` says it ended with a ban, so
        # the transport closes it as such and answers nothing more.
        self.closed = False
        self.banned = False

    def push(self, frame: Frame) -> None:
        """Queue a frame; transcript frames the patron already has are dropped, and so
        is everything after `close`."""
        if self.closed:
            return
        if self._held is not None:
            self._held.append(frame)
            return
        seq = frame.get("seq")
        if isinstance(seq, int):
            if frame["type"] in _TRANSCRIPT_FRAMES and seq <= self.sent_seq:
                return
            self.sent_seq = max(self.sent_seq, seq)
        self.frames.put_nowait(frame)

    def push_status(self, frame: Frame) -> None:
        """Queue a status frame unless it says what the last one said (a busy queue
        changes state with every chat; most patrons' view of it does not change)."""
        if frame != self._last_status:
            self._last_status = frame
            self.push(frame)

    def replay(self, frames: list[Frame], after: int) -> None:
        """Send the history (entries after seq `after`) first, then whatever arrived
        meanwhile."""
        held, self._held = self._held or [], None
        self.sent_seq = after
        for frame in frames:
            self.push(frame)
        for frame in held:
            self.push(frame)

    def ban(self, frame: Frame) -> None:
        """The patron's address was banned: send the ban message (a `banned` frame),
        then end the connection (the transport closes the socket or long-poll session)."""
        if self.closed:
            return
        self.push(frame)
        self.banned = True
        self.close()

    def close(self) -> None:
        """No more frames: the transport ends the connection after the ones queued."""
        if self.closed:
            return
        self.closed = True
        if self._held is not None:
            # Closed during a replay (a ban): what was held back still goes out first.
            held, self._held = self._held, None
            for frame in held:
                self.frames.put_nowait(frame)
        self.frames.put_nowait(None)


class PatronHub:
    """Created by the app factory; subscribed to the service bus while the app runs."""

    def __init__(
        self, bus: EventBus, ban_frame: Callable[[str, str | None], Frame] | None = None
    ) -> None:
        self._bus = bus
        # Given by the app factory: the `banned` frame for a queue and the patron's
        # address (each patron is shown the address refdesk saw for them).
        self._ban_frame = ban_frame
        self._by_chat: dict[int, set[PatronConnection]] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self.status_listeners: set[PatronConnection] = set()

    def start(self) -> None:
        self._unsubscribe = self._bus.subscribe(self._on_event)

    def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        for conns in self._by_chat.values():
            for conn in conns:
                conn.close()
        self._by_chat.clear()

    def register(self, conn: PatronConnection) -> None:
        self._by_chat.setdefault(conn.chat_id, set()).add(conn)

    def unregister(self, conn: PatronConnection) -> None:
        conns = self._by_chat.get(conn.chat_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._by_chat[conn.chat_id]

    def connections(self, chat_id: int) -> int:
        return len(self._by_chat.get(chat_id, ()))

    def _send(self, chat_id: int, frame: Frame) -> None:
        for conn in self._by_chat.get(chat_id, ()):
            conn.push(frame)

    def _on_event(self, event: Event) -> None:
        match event:
            case MessagePosted():
                # The patron's own messages are answered with an ack by their socket and
                # come back only in a replay.
                if event.event.sender is not Sender.PATRON:
                    self._send(event.chat_id, event_frame(event.event))
            case MessageCorrected():
                # The operator corrected their last line (XEP-0308): the widget replaces
                # the text of line `seq` and marks it as edited.
                self._send(
                    event.chat_id,
                    {"type": "correction", "seq": event.seq, "text": event.text, "edited": True},
                )
            case ChatEnded():
                ended = event_frame(event.event)
                if event.feedback:
                    ended["feedback"] = True
                self._send(event.chat_id, ended)
            case TypingChanged():
                if not event.by_patron:
                    state = "composing" if event.composing else "paused"
                    self._send(event.chat_id, {"type": "typing", "state": state})
            case BanImposed():
                for conns in list(self._by_chat.values()):
                    for conn in list(conns):
                        if _in_network(conn.ip, event.network):
                            conn.ban(self._banned_frame(conn, event.text))
            case EmailOffered():
                offer: Frame = {"type": "offer_email", "text": event.text}
                if event.code is not None:
                    offer["code"] = event.code
                self._send(event.chat_id, offer)
            case QueueStatusChanged():
                for chat_id, position in event.positions.items():
                    frame: Frame = {
                        "type": "status",
                        "status": event.status.value,
                        "position": position,
                    }
                    if position is not None:
                        # Only those still waiting care how many are waiting.
                        frame["waiting"] = event.waiting
                    for conn in self._by_chat.get(chat_id, ()):
                        conn.push_status(frame)

    def _banned_frame(self, conn: PatronConnection, text: str) -> Frame:
        if self._ban_frame is None:
            return {"type": "banned", "text": text}
        return self._ban_frame(conn.queue, conn.ip)


def _in_network(ip: str | None, network: IPv4Network | IPv6Network) -> bool:
    if ip is None:
        return False
    try:
        address = canonical_address(ip)
    except ValueError:
        return False
    return address.version == network.version and address in network
