"""The patron WebSocket, `/ws/{queue}` (protocol: docs/widget-protocol.md).

A thin transport: frames go to a `PatronSession`, whose outgoing frames a writer task
sends in order. Only a broken protocol closes the socket (no hello in time, a frame far
over the limit); everything else is an `error` frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from web.addresses import client_ip, parse_ip, request_hops
from web.frames import encode_frame
from web.keys import CONFIG, HUB, PATRON_SLOTS, SERVICE, SOCKETS
from web.patron_session import Origin, PatronSession, error_frame

log = logging.getLogger(__name__)

# Close code of a socket whose address is banned (4000-4999: for applications).
CLOSE_BANNED = 4403
CLOSE_NO_HELLO = 4408
CLOSE_TOO_MANY = 4429
TOO_MANY_TEXT = "Too many chat connections from your network. Please close some and try again."
# aiohttp closes the socket (1009) above this multiple of our own limit; between the two,
# the patron gets an error frame and keeps the chat.
HARD_LIMIT_FACTOR = 4


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


def request_origin(request: web.Request) -> Origin:
    """The patron's address (proxies believed only if trusted) and referring page."""
    web_config = request.app[CONFIG].web
    trusted = web_config.trusted_networks
    hops = request_hops(request, web_config.forwarded_header) if trusted else []
    ip = client_ip(request.remote, hops, trusted)
    referrer = request.headers.get("Referer")
    return Origin(str(ip) if ip else None, referrer[:1000] if referrer else None)


async def _writer(ws: web.WebSocketResponse, session: PatronSession) -> None:
    """Send the session's frames in order until it is closed; a connection that ended
    on the server's side (a ban) closes the socket, which also ends the reading loop."""
    conn = session.conn
    assert conn is not None
    while True:
        frame = await conn.frames.get()
        if frame is None:
            break
        await ws.send_str(encode_frame(frame))
    if conn.banned:
        await ws.close(code=CLOSE_BANNED, message=b"banned")
    else:
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"connection ended")


async def handle_ws(request: web.Request) -> web.StreamResponse:
    """GET /ws/{queue}: one patron's chat."""
    config = request.app[CONFIG]
    if not origin_allowed(request.headers.get("Origin"), config.web.public_url, request.host):
        raise web.HTTPForbidden(text="WebSocket connections are only allowed from this site.")
    limit = config.chat.max_frame_bytes
    origin = request_origin(request)
    slots = request.app[PATRON_SLOTS]
    address = parse_ip(origin.ip)
    if address is not None and slots.acquire(address) is not None:
        # Counted per patron address even behind a proxy (the listener counts peers).
        raise web.HTTPTooManyRequests(text=TOO_MANY_TEXT)
    try:
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=limit * HARD_LIMIT_FACTOR)
        await ws.prepare(request)
        request.app[SOCKETS].add(ws)
        try:
            return await _chat(ws, request, origin, limit)
        finally:
            request.app[SOCKETS].discard(ws)
    finally:
        if address is not None:
            slots.release(address)


async def _chat(
    ws: web.WebSocketResponse, request: web.Request, origin: Origin, limit: int
) -> web.WebSocketResponse:
    service = request.app[SERVICE]
    queue = request.match_info["queue"]
    if not service.is_queue(queue):
        await ws.send_json(error_frame("unknown_queue", f"There is no queue called {queue!r}."))
        await ws.close(code=4404, message=b"unknown queue")
        return ws
    session = PatronSession(service, request.app[HUB], queue, origin, limit)
    writer: asyncio.Task[None] | None = None
    loop = asyncio.get_running_loop()
    # One deadline for the hello, however many other frames arrive before it.
    deadline = loop.time() + request.app[CONFIG].web.header_timeout
    try:
        while not session.greeted:
            try:
                msg = await ws.receive(timeout=max(0.0, deadline - loop.time()))
            except TimeoutError:
                await ws.send_json(error_frame("hello_expected", "No hello received in time."))
                await ws.close(code=CLOSE_NO_HELLO, message=b"no hello")
                return ws
            if msg.type == WSMsgType.TEXT:
                await session.receive(msg.data)
            elif msg.type == WSMsgType.BINARY:
                session.error("binary_frame", "Only text frames are used.")
            else:
                return ws
            for frame in session.early:
                await ws.send_json(frame)
            session.early.clear()
            if session.refused:
                await ws.close(code=CLOSE_BANNED, message=b"banned")
                return ws
            if session.crowded:
                await ws.close(code=CLOSE_TOO_MANY, message=b"too many connections")
                return ws
        writer = asyncio.create_task(_writer(ws, session))
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await session.receive(msg.data)
            elif msg.type == WSMsgType.BINARY:
                session.error("binary_frame", "Only text frames are used.")
            else:
                break
    finally:
        session.close()
        if writer is not None:
            with contextlib.suppress(Exception):
                await writer
    return ws
