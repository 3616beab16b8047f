"""One patron's conversation with the server, whatever carries it (WebSocket or long-poll).

A transport parses nothing itself: it hands each text frame to `PatronSession.receive`
and sends whatever appears on `session.conn.frames`. Every error a patron can cause comes
back as an `error` frame and the session goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from component.core.bans import usable_address
from component.core.errors import DeskError
from component.core.models import ChatState
from component.service import ChatHandle, DeskService
from web.frames import FrameError, decode_object
from web.hub import Frame, PatronConnection, PatronHub, event_frame

log = logging.getLogger(__name__)

MAX_TOKEN = 128
# Open connections (WebSockets and long-poll sessions) one chat may have at once.
MAX_CONNECTIONS_PER_CHAT = 8


def error_frame(code: str, text: str) -> Frame:
    return {"type": "error", "code": code, "text": text}


def parse_frame(data: str | bytes, limit: int) -> dict[str, Any]:
    """Decode one client frame: a JSON object with a string `type`, at most `limit` bytes
    (bounded depth, no lone surrogates: see `web.frames`)."""
    frame = decode_object(data, max_bytes=limit)
    if not isinstance(frame.get("type"), str):
        raise FrameError("bad_frame", 'A frame must be a JSON object with a "type".')
    return frame


# No chat has more lines than this; the bound keeps the value within SQLite's integers.
MAX_LAST_SEQ = 2**53


def parse_hello(frame: dict[str, Any]) -> tuple[str | None, int]:
    if frame["type"] != "hello":
        raise FrameError("hello_expected", "The first frame must be a hello.")
    resume = frame.get("resume")
    if resume is not None and (not isinstance(resume, str) or len(resume) > MAX_TOKEN):
        raise FrameError("bad_resume", "The resume token is not valid.")
    last_seq = frame.get("last_seq", 0)
    # Bounded above too: JSON carries integers up to 2**64 - 1, SQLite only to 2**63 - 1,
    # and an ended chat's history is read with it as it came.
    if (
        isinstance(last_seq, bool)
        or not isinstance(last_seq, int)
        or not 0 <= last_seq <= MAX_LAST_SEQ
    ):
        raise FrameError("bad_last_seq", "last_seq must be a non-negative integer.")
    return resume or None, last_seq


def status_frame(service: DeskService, conn: PatronConnection) -> Frame:
    """The queue's state for one patron (the same shape the hub pushes on changes)."""
    queue = service.chat_queue(conn.chat_id) or conn.queue
    info = service.queue_info(queue)
    position = service.position(conn.chat_id)
    frame: Frame = {"type": "status", "status": info.status.value, "position": position}
    if position is not None:
        frame["waiting"] = info.waiting
    return frame


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the patron came from, as far as the server may know it."""

    ip: str | None
    referrer: str | None


class PatronSession:
    """Created by a transport when a patron connects; `receive` each frame; `close` once
    the transport is gone."""

    def __init__(
        self, service: DeskService, hub: PatronHub, queue: str, origin: Origin, limit: int
    ) -> None:
        self.service = service
        self.hub = hub
        self.queue = queue
        self.origin = origin
        # The address parsed once: the ban check runs on every frame and the rate limit on
        # every line, and the three parses of the text they made per line cost twice what
        # the checks themselves do (None: no usable address).
        self.address = usable_address(origin.ip)
        self.limit = limit
        self.conn: PatronConnection | None = None
        # Frames sent before the hello (errors) wait here until a connection exists.
        self.early: list[Frame] = []
        # Set when the patron may not chat at all (banned): the transport closes.
        self.refused = False
        # Set when the chat already has MAX_CONNECTIONS_PER_CHAT connections: the
        # transport closes this one.
        self.crowded = False

    @property
    def greeted(self) -> bool:
        return self.conn is not None

    async def receive(self, data: str | bytes) -> None:
        """One text frame from the patron (bytes: a long-poll body, UTF-8 unchecked)."""
        conn = self.conn
        if conn is not None and (conn.closed or self._barred(conn)):
            return  # the connection is over (banned): nothing more is answered
        try:
            frame = parse_frame(data, self.limit)
            if conn is None:
                await self._hello(frame)
            else:
                await self._dispatch(frame, conn)
        except (FrameError, DeskError) as exc:
            self.error(exc.code, exc.text)

    @property
    def finished(self) -> bool:
        """The connection has ended (a ban, the chat's hub stopping): the transport
        closes it once the frames already queued are sent."""
        return self.conn is not None and self.conn.closed

    def _barred(self, conn: PatronConnection) -> bool:
        """Check the patron's address against the bans on every frame (a microsecond):
        a ban that took effect while no event could reach this connection still bites."""
        if self.service.moderation.banned(self.address) is None:
            return False
        conn.ban(self.service.ban_notice(self.queue, self.origin.ip).frame())
        return True

    def error(self, code: str, text: str) -> None:
        if self.conn is None:
            self.early.append(error_frame(code, text))
        else:
            self.conn.push(error_frame(code, text))

    async def _hello(self, frame: dict[str, Any]) -> None:
        resume, last_seq = parse_hello(frame)
        if self.service.moderation.banned(self.address) is not None:
            # Before any chat exists: a banned address never gets one.
            self.early.append(self.service.ban_notice(self.queue, self.origin.ip).frame())
            self.refused = True
            return
        handle = await self.service.open_chat(
            self.queue, resume, origin_ip=self.origin.ip, referrer=self.origin.referrer
        )
        if self.hub.connections(handle.chat_id) >= MAX_CONNECTIONS_PER_CHAT:
            # Every connection of a chat gets every frame of it: a resume token must not
            # multiply that work without bound.
            self.early.append(
                error_frame(
                    "too_many_connections",
                    "This chat is open in too many windows. Close some and try again.",
                )
            )
            self.crowded = True
            return
        conn = PatronConnection(handle.chat_id, handle.queue, self.origin.ip)
        self.conn = conn
        self.hub.register(conn)
        self.service.patron_connected(handle.chat_id)
        if self._barred(conn):
            return  # banned while the chat was being opened: no ban event reached us
        # Without a valid resume the chat is new: everything in it is after seq 0.
        await self._welcome(conn, handle, last_seq if handle.resumed else 0)

    async def _welcome(self, conn: PatronConnection, handle: ChatHandle, last_seq: int) -> None:
        """Welcome the patron, then replay what they missed, then the queue's state."""
        conn.frames.put_nowait(
            {
                "type": "welcome",
                "chat": handle.chat_id,
                "resume": handle.resume,
                "resumed": handle.resumed,
                "status": self.service.queue_info(handle.queue).status.value,
            }
        )
        # A client claiming more than the chat holds would silently skip what comes next.
        newest = self.service.last_seq(handle.chat_id)
        if newest is not None:
            last_seq = min(last_seq, newest)
        history = await self.service.history(handle.chat_id, last_seq)
        frames = [event_frame(e) for e in history]
        if self.service.chat_state(handle.chat_id) is ChatState.ENDED:
            # A page that reloads after the end learns whether to (still) ask for a rating.
            feedback = await self.service.feedback_state(handle.chat_id)
            if feedback is not None:
                for frame in frames:
                    if frame["type"] == "ended":
                        frame["feedback"] = feedback == "ask"
        conn.replay(frames, after=last_seq)
        if self.service.chat_state(handle.chat_id) is not ChatState.ENDED:
            conn.push_status(status_frame(self.service, conn))

    async def _dispatch(self, frame: dict[str, Any], conn: PatronConnection) -> None:
        service = self.service
        kind = frame["type"]
        if kind == "message":
            await service.moderation.admit_message(self.address, None)
            event = await service.post_patron_message(
                conn.chat_id, frame.get("id"), frame.get("text")
            )
            conn.push({"type": "ack", "id": event.client_id, "seq": event.seq})
        elif kind == "typing":
            state = frame.get("state")
            if state not in ("composing", "paused"):
                raise FrameError("bad_typing", 'Typing state must be "composing" or "paused".')
            await service.patron_typing(conn.chat_id, state == "composing")
        elif kind == "end":
            await service.end_chat_by_patron(conn.chat_id)
        elif kind == "hello":
            raise FrameError("already_greeted", "This connection has already said hello.")
        elif kind == "rating":
            chat = frame.get("chat", conn.chat_id)
            if chat != conn.chat_id or isinstance(chat, bool):
                # Only the chat this connection's token opened may be rated.
                raise FrameError("wrong_chat", "Only this chat can be rated here.")
            # Counted like messages: refused ratings must not be a free way to load the store.
            await service.moderation.admit_message(self.address, None)
            await service.rate_chat(conn.chat_id, frame.get("rating"), frame.get("comment"))
            conn.push({"type": "rating_ok"})
        elif kind == "transcript":
            address = await service.followup.request_transcript(
                conn.chat_id, frame.get("email"), origin_ip=self.origin.ip, lang=frame.get("lang")
            )
            conn.push({"type": "transcript_ok", "email": address})
        else:
            raise FrameError("unknown_type", f"Unknown frame type {kind[:40]!r}.")

    def close(self) -> None:
        """The transport is gone for good."""
        if self.conn is not None:
            self.service.patron_disconnected(self.conn.chat_id)
            self.hub.unregister(self.conn)
            self.conn.close()
