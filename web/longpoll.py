"""Long-poll fallback for networks that break WebSockets: the same frames over plain HTTP.

- `POST /lp/{queue}` with the hello frame as body → `{"session": id, "frames": [...]}`
- `POST /lp/{queue}/{session}` with one client frame → `{"ok": true}`; answers (ack,
  error...) arrive through the next poll
- `GET /lp/{queue}/{session}` → waits up to `POLL_WAIT` seconds and returns
  `{"frames": [...]}` (an empty list when nothing happened), or 404 when the session has
  expired, after which the widget says hello again with its resume token.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from aiohttp import web

from web.addresses import parse_ip
from web.guarded import guarded_router
from web.hub import Frame
from web.keys import CONFIG, HUB, LONGPOLL, PATRON_SLOTS, SERVICE
from web.longpoll_registry import IDLE_TIMEOUT, LongPollSessions
from web.patron import TOO_MANY_TEXT, request_origin
from web.patron_session import PatronSession, error_frame

POLL_WAIT = 25.0
MAX_FRAMES_PER_POLL = 200


def _drain(session: PatronSession, first: Frame | None = None) -> tuple[list[Frame], bool]:
    """Everything queued for the patron now (after `first`, already taken from the queue);
    and whether the session has closed."""
    frames: list[Frame] = [first] if first is not None else []
    assert session.conn is not None
    queue = session.conn.frames
    while not queue.empty() and len(frames) < MAX_FRAMES_PER_POLL:
        frame = queue.get_nowait()
        if frame is None:
            return frames, True
        frames.append(frame)
    return frames, False


async def _body(request: web.Request) -> bytes:
    limit = request.app[CONFIG].chat.max_frame_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    data = await request.content.read(limit + 1)
    if len(data) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data))
    return data  # the session's decoder checks the UTF-8


def _json(frames: list[Frame], status: int = 200, **extra: object) -> web.Response:
    return web.json_response(
        {"frames": frames, **extra}, status=status, headers={"Cache-Control": "no-store"}
    )


async def open_session(request: web.Request) -> web.Response:
    """POST /lp/{queue}: the hello."""
    service = request.app[SERVICE]
    queue = request.match_info["queue"]
    if not service.is_queue(queue):
        return _json([error_frame("unknown_queue", f"There is no queue called {queue!r}.")], 404)
    limit = request.app[CONFIG].chat.max_frame_bytes
    origin = request_origin(request)
    slots = request.app[PATRON_SLOTS]
    address = parse_ip(origin.ip)
    if address is not None and slots.acquire(address) is not None:
        return _json([error_frame("too_many_connections", TOO_MANY_TEXT)], 429)

    def release() -> None:
        if address is not None:
            slots.release(address)

    session = PatronSession(service, request.app[HUB], queue, origin, limit)
    try:
        await session.receive(await _body(request))
    except BaseException:
        release()
        raise
    if not session.greeted:
        release()
        status = 403 if session.refused else 429 if session.crowded else 400
        return _json(session.early, status)
    frames, _ = _drain(session)
    if session.finished:  # banned while the chat was being opened
        session.close()
        release()
        return _json(frames, 403)
    sid = request.app[LONGPOLL].add(session, queue, on_close=release)
    return _json(frames, session=sid)


async def send_frame(request: web.Request) -> web.Response:
    """POST /lp/{queue}/{session}: one frame from the patron."""
    entry = request.app[LONGPOLL].get(request.match_info["session"], request.match_info["queue"])
    if entry is None:
        return _json([error_frame("unknown_session", "This session has expired.")], 404)
    session = entry.session
    await session.receive(await _body(request))
    if session.finished:
        # Ended on the server's side (a ban): refuse, and say why; the next poll
        # delivers the same frames and closes the session.
        assert session.conn is not None
        if session.conn.banned:
            notice = session.service.ban_notice(session.queue, session.origin.ip)
            return _json([notice.frame()], 403)
        return _json([error_frame("closed", "This session has ended.")], 410)
    return web.json_response({"ok": True}, headers={"Cache-Control": "no-store"})


async def _next_frame(session: PatronSession, stopping: asyncio.Event) -> tuple[bool, Frame | None]:
    """Called by `poll`: (True, the first frame queued for the patron, None once the
    session has closed), or (False, None) after `POLL_WAIT` seconds or as soon as the
    server begins to shut down, whichever comes first."""
    assert session.conn is not None
    getting = asyncio.ensure_future(session.conn.frames.get())
    waking = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait(
            {getting, waking}, timeout=POLL_WAIT, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        waking.cancel()
        if not getting.done():
            getting.cancel()
    # A frame taken off the queue is delivered even if the shutdown began meanwhile.
    if getting.done() and not getting.cancelled():
        return True, getting.result()
    return False, None


async def poll(request: web.Request) -> web.Response:
    """GET /lp/{queue}/{session}: wait for frames."""
    sessions = request.app[LONGPOLL]
    sid = request.match_info["session"]
    entry = sessions.get(sid, request.match_info["queue"])
    if entry is None:
        return _json([error_frame("unknown_session", "This session has expired.")], 404)
    session = entry.session
    assert session.conn is not None
    entry.polling += 1
    frames: list[Frame] = []
    closed = False
    try:
        arrived, first = await _next_frame(session, sessions.stopping)
        if arrived and first is None:
            closed = True
        elif first is not None:
            frames, closed = _drain(session, first)
    finally:
        entry.polling -= 1
        entry.last_seen = time.monotonic()
    if closed:
        sessions.close(sid)
    return _json(frames, closed=closed)


async def sweeper(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: expire idle sessions in the background; close all at shutdown."""
    sessions = app[LONGPOLL]

    async def sweep() -> None:
        while True:
            await asyncio.sleep(IDLE_TIMEOUT / 4)
            sessions.expire(time.monotonic())

    task = asyncio.create_task(sweep())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    sessions.close_all()


async def _wake_polls(app: web.Application) -> None:
    """on_shutdown: answer every waiting poll now; the server waits for open requests
    before it closes, and a poll would otherwise hold it for the whole shutdown timeout."""
    app[LONGPOLL].stopping.set()


def add_routes(app: web.Application) -> None:
    app[LONGPOLL] = LongPollSessions()
    app.cleanup_ctx.append(sweeper)
    app.on_shutdown.append(_wake_polls)
    routes = guarded_router(app)
    routes.add_post("/lp/{queue}", open_session)
    routes.add_post("/lp/{queue}/{session}", send_frame)
    routes.add_get("/lp/{queue}/{session}", poll)
