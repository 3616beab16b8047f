"""A patron as the tests see one: a real WebSocket client speaking the widget protocol."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import aiohttp

Frame = dict[str, Any]


class PatronClient:
    """Connects to `/ws/{queue}` of a running refdesk, says hello and keeps every frame."""

    _ids = itertools.count(1)

    def __init__(self, base_url: str, queue: str) -> None:
        self.base_url = base_url
        self.queue = queue
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.frames: list[Frame] = []
        self._inbox: asyncio.Queue[Frame] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.resume: str | None = None
        self.chat_id: int | None = None
        self.last_seq = 0
        self.welcome: Frame | None = None
        # The page's language, said with every hello when set (the widget always says it).
        self.lang: str | None = None

    async def connect(self, resume: str | None = None, last_seq: int | None = None) -> Frame:
        """Open the socket and say hello; returns the welcome frame."""
        if self.session is None:
            self.session = aiohttp.ClientSession()
        url = self.base_url.replace("http", "ws", 1) + f"/ws/{self.queue}"
        self.ws = await self.session.ws_connect(url)
        self._reader = asyncio.create_task(self._read(self.ws))
        hello: Frame = {
            "type": "hello",
            "last_seq": self.last_seq if last_seq is None else last_seq,
        }
        token = resume if resume is not None else self.resume
        if token:
            hello["resume"] = token
        if self.lang is not None:
            hello["lang"] = self.lang
        await self.send(hello)
        welcome = await self.next("welcome")
        self.welcome = welcome
        self.resume = welcome["resume"]
        self.chat_id = welcome["chat"]
        return welcome

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                frame = json.loads(msg.data)
                if isinstance(frame.get("seq"), int) and frame["type"] in ("message", "ended"):
                    self.last_seq = max(self.last_seq, frame["seq"])
                self.frames.append(frame)
                self._inbox.put_nowait(frame)
        self._inbox.put_nowait({"type": "_closed", "code": ws.close_code})

    async def send(self, frame: Frame) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(frame))

    async def send_raw(self, data: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(data)

    async def say(self, text: str, client_id: str | None = None) -> Frame:
        """Send a message and wait for its ack; returns the ack."""
        cid = client_id or f"m{next(self._ids)}"
        await self.send({"type": "message", "id": cid, "text": text})
        return await self.next("ack", lambda f: f.get("id") == cid)

    async def next(self, kind: str, where: Any = None, timeout: float = 10.0) -> Frame:
        """The next frame of type `kind` (matching `where`), skipping others."""

        async def find() -> Frame:
            while True:
                frame = await self._inbox.get()
                if frame["type"] == kind and (where is None or where(frame)):
                    return frame
                if frame["type"] == "_closed" and kind != "_closed":
                    raise AssertionError(f"socket closed while waiting for {kind}: {frame}")

        try:
            return await asyncio.wait_for(find(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"no {kind!r} frame within {timeout}s; got {self.frames[-10:]}"
            ) from None

    async def seen(self, kind: str, where: Any = None, timeout: float = 10.0) -> Frame:
        """Like `next`, but a matching frame that already arrived counts too."""
        for frame in self.frames:
            if frame["type"] == kind and (where is None or where(frame)):
                return frame
        return await self.next(kind, where, timeout)

    def messages(self) -> list[Frame]:
        return [f for f in self.frames if f["type"] == "message"]

    async def drop(self) -> None:
        """Close the socket as a network drop would (the chat stays resumable)."""
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader
        self._inbox = asyncio.Queue()

    async def close(self) -> None:
        await self.drop()
        if self.session is not None:
            await self.session.close()


class ProxiedPatron(PatronClient):
    """A patron behind the desk's trusted proxy (loopback), from `ip`: every request says
    so in X-Forwarded-For, as the proxy would. Used by the ban, moderation, mail-abuse and
    hostile-input tests to stand for many patrons on one machine."""

    def __init__(self, base_url: str, queue: str, ip: str) -> None:
        super().__init__(base_url, queue)
        self.ip = ip

    async def connect(self, resume: str | None = None, last_seq: int | None = None) -> Frame:
        if self.session is None:
            self.session = aiohttp.ClientSession(headers={"X-Forwarded-For": self.ip})
        return await super().connect(resume, last_seq)
