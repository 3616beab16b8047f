"""Patrons for the benchmarks: widget-protocol WebSocket clients sharing one aiohttp
session, a tracker of message times, and the paced sender both latency benchmarks use.

A patron's benchmark message is ``m:<token> <text>`` with client id ``<token>``; the
operator (`bench.xmpp_clients.BenchOperator`) answers ``r:<token> <text>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bench.common import summarize_ms

TEXT = "Do you have the 1923 city directory on microfilm?"


class Tracker:
    """When each message was sent, acknowledged and answered (perf_counter seconds)."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.acked: dict[str, float] = {}
        self.answered: dict[str, float] = {}
        self.recorded: set[str] = set()
        self.lag: list[float] = []  # how late the pacer sent recorded messages (s)
        self.duplicates = 0
        self._waiting = 0  # recorded and not answered yet
        self._all_in = asyncio.Event()

    def on_send(self, token: str, t: float, record: bool) -> None:
        self.sent[token] = t
        if record:
            self.recorded.add(token)
            self._waiting += 1

    def on_ack(self, token: str, t: float) -> None:
        self.acked.setdefault(token, t)

    def on_answer(self, token: str, t: float) -> None:
        if token in self.answered:
            self.duplicates += 1
            return
        self.answered[token] = t
        if token in self.recorded:
            self._waiting -= 1
            if not self._waiting:
                self._all_in.set()

    def outstanding(self) -> int:
        return self._waiting

    async def drain(self, timeout: float) -> None:
        """Wait until every recorded message is answered, or `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.outstanding() and loop.time() < deadline:
            self._all_in.clear()
            if not self.outstanding():
                break
            try:
                await asyncio.wait_for(self._all_in.wait(), max(0.01, deadline - loop.time()))
            except TimeoutError:
                break

    def round_trips(self) -> list[float]:
        return [self.answered[t] - self.sent[t] for t in self.recorded if t in self.answered]

    def acks(self) -> list[float]:
        return [self.acked[t] - self.sent[t] for t in self.recorded if t in self.acked]

    def summary(self, arrivals: dict[str, float] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sent": len(self.recorded),
            "sent_total": len(self.sent),  # warm-up included: what the CPU window saw
            "answered": len(self.recorded) - self.outstanding(),
            "unanswered": self.outstanding(),
            "duplicates": self.duplicates,
            "rtt_ms": summarize_ms(self.round_trips()),
            "send_lag_ms": summarize_ms(self.lag),
        }
        if self.acked:
            out["ack_ms"] = summarize_ms(self.acks())
        if arrivals is not None:
            there = [arrivals[t] - self.sent[t] for t in self.recorded if t in arrivals]
            back = [
                self.answered[t] - arrivals[t]
                for t in self.recorded
                if t in arrivals and t in self.answered
            ]
            out["to_operator_ms"] = summarize_ms(there)
            out["to_patron_ms"] = summarize_ms(back)
        return out


def patron_address(index: int) -> str:
    """A distinct client address per patron (sent as X-Forwarded-For; the bench config
    trusts 127.0.0.1 as a proxy), at most 20 per /24 network."""
    group = index // 20
    return f"10.{group // 250 % 250 + 1}.{group % 250 + 1}.{index % 20 + 1}"


class Patron:
    """One widget connection. `accepted` is set when the first system line (the
    operator's "... joined the chat.") arrives after the patron asked."""

    _ids = itertools.count(1)

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        queue: str,
        tracker: Tracker | None,
        index: int | None = None,
    ) -> None:
        self.session = session
        self.address = patron_address(next(self._ids) if index is None else index)
        self.url = base_url.replace("http", "ws", 1) + f"/ws/{queue}"
        self.tracker = tracker
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None
        self.welcome: asyncio.Future[dict[str, Any]] | None = None
        self.accepted = asyncio.Event()
        self.asked = False
        self.first_ack = asyncio.Event()
        self.status_frames = 0
        self.errors: list[dict[str, Any]] = []
        self.ended = False
        self.closed = False

    async def open(self, timeout: float = 30) -> dict[str, Any]:
        self.welcome = asyncio.get_running_loop().create_future()
        self.ws = await self.session.ws_connect(
            self.url,
            timeout=aiohttp.ClientWSTimeout(ws_close=5),
            headers={"X-Forwarded-For": self.address},
        )
        self.reader = asyncio.create_task(self._read(self.ws))
        await self.ws.send_str(json.dumps({"type": "hello", "last_seq": 0}))
        return await asyncio.wait_for(self.welcome, timeout)

    async def ask(self, text: str, timeout: float = 60) -> None:
        """The first question (not measured); returns once acknowledged."""
        assert self.ws is not None
        self.asked = True
        await self.ws.send_str(json.dumps({"type": "message", "id": "open", "text": text}))
        await asyncio.wait_for(self.first_ack.wait(), timeout)

    async def send(self, token: str, body: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps({"type": "message", "id": token, "text": body}))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.perf_counter()
            frame = json.loads(msg.data)
            kind = frame.get("type")
            if kind == "message":
                text = frame.get("text", "")
                sender = frame.get("from")
                if sender == "operator" and text.startswith("r:") and self.tracker:
                    self.tracker.on_answer(text[2:].split(" ", 1)[0], now)
                elif sender == "system" and self.asked:
                    self.accepted.set()
            elif kind == "ack":
                if frame.get("id") == "open":
                    self.first_ack.set()
                elif self.tracker:
                    self.tracker.on_ack(str(frame.get("id")), now)
            elif kind == "status":
                self.status_frames += 1
            elif kind == "welcome":
                if self.welcome is not None and not self.welcome.done():
                    self.welcome.set_result(frame)
            elif kind == "error":
                if len(self.errors) < 5:
                    self.errors.append(frame)
            elif kind == "ended":
                self.ended = True
        self.closed = True

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader


class Fleet:
    """All the patrons of a run, sharing one aiohttp session (no connection limit)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.patrons: list[Patron] = []
        self.failures: list[str] = []

    def status_frames(self) -> int:
        return sum(p.status_frames for p in self.patrons)

    async def open_idle(self, total: int, queues: list[str], parallel: int = 50) -> float:
        """Open sockets (hello only, nothing asked) until there are `total`."""
        return await self._grow(total, queues, parallel, ask=False, timeout=60)

    async def open_chats(
        self, total: int, queues: list[str], parallel: int = 20, timeout: float = 120
    ) -> float:
        """Open chats, ask, and wait until an operator accepts each, until there are
        `total`; returns the seconds it took. Failures are counted, not raised."""
        return await self._grow(total, queues, parallel, ask=True, timeout=timeout)

    async def _grow(
        self, total: int, queues: list[str], parallel: int, *, ask: bool, timeout: float
    ) -> float:
        began = time.perf_counter()
        sem = asyncio.Semaphore(parallel)

        async def one(i: int) -> Patron | None:
            async with sem:
                patron = Patron(self.session, self.base_url, queues[i % len(queues)], None)
                try:
                    await patron.open()
                    if ask:
                        await patron.ask(f"bench-open {i}: my first question", timeout)
                        await asyncio.wait_for(patron.accepted.wait(), timeout)
                except Exception as exc:
                    self.failures.append(f"chat {i}: {type(exc).__name__} {exc}"[:200])
                    await patron.close()
                    return None
                return patron

        opened = await asyncio.gather(*(one(i) for i in range(len(self.patrons), total)))
        self.patrons.extend(p for p in opened if p is not None)
        return time.perf_counter() - began

    async def end_all(self) -> None:
        """Ask refdesk to end every chat ({"type": "end"}) and close the sockets."""
        for patron in self.patrons:
            if patron.ws is not None and not patron.ws.closed:
                with contextlib.suppress(Exception):
                    await patron.ws.send_str(json.dumps({"type": "end"}))
        await self.close_all()

    async def close_all(self) -> None:
        await asyncio.gather(*(p.close() for p in self.patrons), return_exceptions=True)
        self.patrons = []

    async def close(self) -> None:
        await self.close_all()
        await self.session.close()


Sender = Callable[[int, str, str], Awaitable[None] | None]


async def paced(
    chats: int,
    interval: float,
    warmup: float,
    duration: float,
    send: Sender,
    tracker: Tracker,
    prefix: str,
    seed: int = 1,
) -> None:
    """Every chat sends one message every `interval` seconds, each chat at its own random
    phase, for `warmup` (not recorded) then `duration` seconds (recorded). Open loop: a
    chat does not wait for the answer to its previous message."""
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    phases = [rng.uniform(0, interval) for _ in range(chats)]
    t0 = loop.time() + 0.1
    recorded_from = t0 + warmup
    end = recorded_from + duration

    async def one(i: int) -> None:
        for k in itertools.count():
            at = t0 + phases[i] + k * interval
            if at >= end:
                return
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            record = at >= recorded_from
            if record:
                tracker.lag.append(max(0.0, loop.time() - at))
            token = f"{prefix}.{i}.{k}"
            tracker.on_send(token, time.perf_counter(), record)
            result = send(i, token, f"m:{token} {TEXT}")
            if inspect.isawaitable(result):
                await result

    await asyncio.gather(*(one(i) for i in range(chats)))
