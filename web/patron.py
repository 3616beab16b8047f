"""The patron WebSocket, `/ws/{queue}` (protocol: DESIGN.md, docs/widget-protocol.md).

The handler parses frames and delegates to the service; every error a patron can cause
becomes an `error` frame and the socket stays open, except where the protocol itself is
broken beyond repair (no hello, a frame far over the limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from component.core.errors import DeskError
from component.core.models import ChatState
from component.service import ChatHandle, DeskService
from web.addresses import client_ip
from web.hub import Frame, PatronConnection, event_frame
from web.keys import CONFIG, HUB, SERVICE, SOCKETS

log = logging.getLogger(__name__)

HELLO_TIMEOUT = 15.0
MAX_TOKEN = 128
# aiohttp closes the socket (1009) above this multiple of our own limit; between the two,
# the patron gets an error frame and keeps the chat.
HARD_LIMIT_FACTOR = 4


class FrameError(Exception):
    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def error_frame(code: str, text: str) -> Frame:
    return {"type": "error", "code": code, "text": text}


def origin_allowed(origin: str | None, public_url: str, host: str | None) -> bool:
    """Browsers send Origin on every WebSocket; only our own pages may open one. Tools
    that send no Origin (tests, native apps) are not browsers and cannot be tricked into
    using a patron's cookies, of which there are none anyway."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    if not parts.scheme or not parts.netloc:
        return False
    public = urlsplit(public_url)
    return (parts.scheme, parts.netloc) == (public.scheme, public.netloc) or (
        host is not None and parts.netloc == host
    )


def parse_frame(data: str, limit: int) -> dict[str, Any]:
    if len(data.encode("utf-8", "surrogatepass")) > limit:
        raise FrameError("frame_too_large", f"Frames are limited to {limit} bytes.")
    try:
        frame = json.loads(data)
    except ValueError:
        raise FrameError("bad_json", "The frame is not valid JSON.") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError("bad_frame", 'A frame must be a JSON object with a "type".')
    return frame


def parse_hello(frame: dict[str, Any]) -> tuple[str | None, int]:
    if frame["type"] != "hello":
        raise FrameError("hello_expected", "The first frame must be a hello.")
    resume = frame.get("resume")
    if resume is not None and (not isinstance(resume, str) or len(resume) > MAX_TOKEN):
        raise FrameError("bad_resume", "The resume token is not valid.")
    last_seq = frame.get("last_seq", 0)
    if isinstance(last_seq, bool) or not isinstance(last_seq, int) or last_seq < 0:
        raise FrameError("bad_last_seq", "last_seq must be a non-negative integer.")
    return resume or None, last_seq


def status_frame(service: DeskService, conn: PatronConnection) -> Frame:
    info = service.queue_info(conn.queue)
    return {
        "type": "status",
        "status": info.status.value,
        "waiting": info.waiting,
        "position": service.position(conn.chat_id),
    }


async def _writer(ws: web.WebSocketResponse, conn: PatronConnection, service: DeskService) -> None:
    """Send the connection's frames in order until it is closed."""
    while True:
        frame = await conn.frames.get()
        if frame is None:
            break
        if frame["type"] == "queue_changed":
            frame = status_frame(service, conn)
        await ws.send_json(frame)


async def handle_ws(request: web.Request) -> web.StreamResponse:
    """GET /ws/{queue}: one patron's chat."""
    config = request.app[CONFIG]
    if not origin_allowed(request.headers.get("Origin"), config.web.public_url, request.host):
        raise web.HTTPForbidden(text="WebSocket connections are only allowed from this site.")
    limit = config.chat.max_frame_bytes
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=limit * HARD_LIMIT_FACTOR)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    try:
        return await _chat(ws, request, limit)
    finally:
        request.app[SOCKETS].discard(ws)


async def _chat(
    ws: web.WebSocketResponse, request: web.Request, limit: int
) -> web.WebSocketResponse:
    service = request.app[SERVICE]
    hub = request.app[HUB]
    queue = request.match_info["queue"]
    if not service.is_queue(queue):
        await ws.send_json(error_frame("unknown_queue", f"There is no queue called {queue!r}."))
        await ws.close(code=4404, message=b"unknown queue")
        return ws
    hello = await _hello(ws, service, request, queue, limit)
    if hello is None:
        return ws
    handle, last_seq = hello
    conn = PatronConnection(handle.chat_id, queue)
    writer = asyncio.create_task(_writer(ws, conn, service))
    hub.register(conn)
    service.patron_connected(handle.chat_id)
    try:
        await _welcome(conn, service, handle, last_seq)
        await _serve(ws, conn, service, limit)
    finally:
        service.patron_disconnected(handle.chat_id)
        hub.unregister(conn)
        conn.close()
        with contextlib.suppress(Exception):
            await writer
    return ws


async def _hello(
    ws: web.WebSocketResponse,
    service: DeskService,
    request: web.Request,
    queue: str,
    limit: int,
) -> tuple[ChatHandle, int] | None:
    """Wait for the hello and open or resume the chat: the chat and the last seq the
    patron has seen. None if the patron never said hello."""
    while True:
        try:
            msg = await ws.receive(timeout=HELLO_TIMEOUT)
        except TimeoutError:
            await ws.send_json(error_frame("hello_expected", "No hello received."))
            await ws.close(code=4408, message=b"no hello")
            return None
        if msg.type != WSMsgType.TEXT:
            if msg.type == WSMsgType.BINARY:
                await ws.send_json(error_frame("binary_frame", "Only text frames are used."))
                continue
            return None
        try:
            resume, last_seq = parse_hello(parse_frame(msg.data, limit))
        except FrameError as exc:
            await ws.send_json(error_frame(exc.code, exc.text))
            continue
        ip = client_ip(
            request.remote,
            request.headers.get("X-Forwarded-For"),
            request.app[CONFIG].web.trusted_networks,
        )
        referrer = request.headers.get("Referer")
        handle = await service.open_chat(
            queue, resume, origin_ip=str(ip) if ip else None, referrer=referrer
        )
        # Without a valid resume the chat is new: everything in it is after seq 0.
        return handle, (last_seq if handle.resumed else 0)


async def _welcome(
    conn: PatronConnection, service: DeskService, handle: ChatHandle, last_seq: int
) -> None:
    """Welcome the patron, then replay what they missed, then tell them the queue state."""
    conn.frames.put_nowait(
        {
            "type": "welcome",
            "chat": handle.chat_id,
            "resume": handle.resume,
            "resumed": handle.resumed,
            "status": service.queue_info(handle.queue).status.value,
        }
    )
    # A client claiming more than the chat holds would silently skip what comes next.
    newest = service.last_seq(handle.chat_id)
    if newest is not None:
        last_seq = min(last_seq, newest)
    history = await service.history(handle.chat_id, last_seq)
    conn.replay([event_frame(e) for e in history], after=last_seq)
    if service.chat_state(handle.chat_id) is not ChatState.ENDED:
        conn.push(status_frame(service, conn))


async def _serve(
    ws: web.WebSocketResponse, conn: PatronConnection, service: DeskService, limit: int
) -> None:
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            conn.push(error_frame("binary_frame", "Only text frames are used."))
            continue
        if msg.type != WSMsgType.TEXT:
            break
        try:
            frame = parse_frame(msg.data, limit)
            await _dispatch(frame, conn, service)
        except FrameError as exc:
            conn.push(error_frame(exc.code, exc.text))
        except DeskError as exc:
            conn.push(error_frame(exc.code, exc.text))


async def _dispatch(frame: dict[str, Any], conn: PatronConnection, service: DeskService) -> None:
    kind = frame["type"]
    if kind == "message":
        event = await service.post_patron_message(conn.chat_id, frame.get("id"), frame.get("text"))
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
    elif kind == "transcript":
        raise FrameError(
            "not_available", "Transcript copies by email are not available on this service yet."
        )
    else:
        raise FrameError("unknown_type", f"Unknown frame type {kind[:40]!r}.")
