"""The web server's listening sockets, with a guard at the door.

aiohttp's own site hands every accepted socket to a request handler, however many one
address already holds, and asyncio's accept loop (Python 3.11) logs a traceback per
attempt and keeps retrying when the process runs out of file descriptors: a flood of
half-open requests from one address made the service unreachable and wrote tens of
thousands of tracebacks. `GuardedSite` accepts connections itself instead:

- each address (IPv6: its /64) and each network (/24, /48) may hold so many connections;
  over that the connection gets a short 429 answer and is closed at once, before any
  request handler exists (trusted proxies are exempt: they carry everyone);
- the total stays a reserve below the descriptor limit (`ulimit -n`); over it, 503;
- when accept() itself fails for lack of descriptors, it waits a moment and tries again;
- refusals are logged once per kind and minute, with counts, not once per connection.

The time a client has to send its request head is aiohttp's keep-alive timeout, which
the composition root sets to `[web] header_timeout`: aiohttp starts that timer when a
connection opens and after each response, does not restart it when bytes arrive, and
closes a connection whose request head is still incomplete when it fires.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import resource
import socket
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from web.connlimits import AddressSlots, IPAddress
from web.security import STRICT_HEADERS

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# After accept() failed for lack of descriptors: wait this long before the next try.
ACCEPT_RETRY_SECONDS = 0.5
# Refusals of one kind are logged at most once per this many seconds (with counts).
LOG_PERIOD_SECONDS = 60.0
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def _response(status: str, text: str, retry_after: int) -> bytes:
    body = text.encode("utf-8")
    head = (
        f"HTTP/1.1 {status}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {retry_after}\r\n"
        # This answer is written before the app sees the connection.
        + "".join(f"{name}: {value}\r\n" for name, value in STRICT_HEADERS.items())
        + "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


TOO_MANY = _response(
    "429 Too Many Requests",
    "Too many connections from your network. Please close some and try again.\n",
    10,
)
BUSY = _response(
    "503 Service Unavailable", "The chat service is busy. Please try again in a moment.\n", 5
)


def connection_budget(backlog: int) -> int:
    """How many connections the process may hold open: its descriptor limit less a
    reserve for the database, the XMPP and SMTP connections, logs, and the sockets
    accepted in one go only to be refused. Called once by the composition root."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    reserve = min(max(soft // 8, backlog + 64), soft // 2)
    return max(1, soft - reserve)


class FloodLog:
    """Logs refusals of each kind at most once per `period` seconds, with how many there
    were and from where, instead of one line (or traceback) per connection."""

    def __init__(self, logger: logging.Logger, period: float = LOG_PERIOD_SECONDS) -> None:
        self._logger = logger
        self._period = period
        self._pending: dict[str, Counter[str]] = {}
        self._last: dict[str, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def refused(self, kind: str, subject: str) -> None:
        """One refusal of `kind` ("over the cap of 64 connections per address") for
        `subject` (an address or network). Called by the guard for each refusal."""
        loop = asyncio.get_running_loop()
        counts = self._pending.setdefault(kind, Counter())
        if subject in counts or len(counts) < 1000:
            counts[subject] += 1
        else:
            counts["other sources"] += 1
        now = loop.time()
        if now - self._last.get(kind, float("-inf")) >= self._period:
            self._emit(kind, now)
        elif self._timer is None:
            self._timer = loop.call_at(self._last[kind] + self._period, self._flush)

    def _flush(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        for kind in list(self._pending):
            self._emit(kind, now)

    def _emit(self, kind: str, now: float) -> None:
        counts = self._pending.pop(kind, None)
        if not counts:
            return
        self._last[kind] = now
        top = ", ".join(f"{subject} ({n})" for subject, n in counts.most_common(3))
        self._logger.warning(
            "%s: %d time(s) since the last report; from %s%s",
            kind,
            sum(counts.values()),
            top,
            ", ..." if len(counts) > 3 else "",
        )

    def close(self) -> None:
        """Log what is pending and stop (the site is stopping)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = asyncio.get_running_loop().time()
        for kind in list(self._pending):
            self._emit(kind, now)


class ConnectionGuard:
    """Decides, for each accepted connection, whether it is served. Created by the
    composition root with the configured caps; used by `GuardedSite`."""

    def __init__(
        self,
        slots: AddressSlots,
        *,
        max_open: int,
        trusted: Sequence[IPNetwork] = (),
        flood_log: FloodLog | None = None,
    ) -> None:
        self.slots = slots
        self.max_open = max_open
        self.trusted = tuple(trusted)
        self.open = 0
        self.flood_log = flood_log or FloodLog(log)

    def admit(self, peer: IPAddress | None) -> bytes | None:
        """Count a new connection from `peer`; or the answer to send before closing it."""
        if self.open >= self.max_open:
            self.flood_log.refused(
                f"connection refused (503), the server is full ({self.max_open} connections "
                "open, the most its file descriptor limit allows)",
                str(peer),
            )
            return BUSY
        if peer is not None and not self._trusted(peer):
            refusal = self.slots.acquire(peer)
            if refusal is not None:
                self.flood_log.refused(
                    f"connection refused (429), over the cap of {refusal.cap} connections "
                    f"per {refusal.over}",
                    refusal.subject,
                )
                return TOO_MANY
        self.open += 1
        return None

    def release(self, peer: IPAddress | None) -> None:
        """A connection admitted by `admit` has closed."""
        self.open -= 1
        if peer is not None and not self._trusted(peer):
            self.slots.release(peer)

    def _trusted(self, peer: IPAddress) -> bool:
        return any(peer.version == net.version and peer in net for net in self.trusted)


class _GuardedProtocol(asyncio.Protocol):
    """Passes everything to aiohttp's request handler and tells the guard when the
    connection is gone."""

    def __init__(self, inner: asyncio.Protocol, on_lost: Callable[[], None]) -> None:
        self._inner = inner
        self._on_lost: Callable[[], None] | None = on_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        on_lost, self._on_lost = self._on_lost, None
        if on_lost is not None:
            on_lost()
        self._inner.connection_lost(exc)


class _Listener(asyncio.AbstractServer):
    """The listening sockets and their accept tasks, shaped as an asyncio server so that
    aiohttp's runner can list the addresses and close it."""

    def __init__(self, sockets: list[socket.socket]) -> None:
        self.sockets = sockets
        self.tasks: list[asyncio.Task[None]] = []

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        if not self.tasks:
            for sock in self.sockets:
                sock.close()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def is_serving(self) -> bool:
        return any(not task.done() for task in self.tasks)

    async def start_serving(self) -> None:
        """Serving starts with the site."""

    async def serve_forever(self) -> None:
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def wait_closed(self) -> None:
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class GuardedSite(web.BaseSite):
    """Listens on `host`:`port` and serves `runner`'s app behind `guard`. Used by the
    composition root instead of aiohttp's TCPSite."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        guard: ConnectionGuard,
        *,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host or None
        self._port = port
        self._guard = guard
        self._connecting: set[asyncio.Task[bool]] = set()

    @property
    def name(self) -> str:
        return f"http://{self._host or '0.0.0.0'}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        sockets: list[socket.socket] = []
        seen: set[Any] = set()
        try:
            for family, kind, proto, _name, address in infos:
                if (family, address) in seen:
                    continue
                seen.add((family, address))
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(self._backlog)
                sock.setblocking(False)
        except OSError:
            for sock in sockets:
                sock.close()
            raise
        listener = _Listener(sockets)
        for sock in sockets:
            task = asyncio.create_task(self._accept(sock))
            # Closed once its accept loop has ended, so that the loop is no longer
            # watching the descriptor when it is released.
            task.add_done_callback(_closer(sock))
            listener.tasks.append(task)
        self._server = listener

    async def stop(self) -> None:
        await super().stop()
        self._guard.flood_log.close()

    async def _accept(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, address = await loop.sock_accept(listening)
            except OSError as exc:
                if exc.errno in _OUT_OF_DESCRIPTORS:
                    self._guard.flood_log.refused(
                        f"accept() failed ({exc.strerror or exc}), retrying every "
                        f"{ACCEPT_RETRY_SECONDS:g} s",
                        "the listening socket",
                    )
                    await asyncio.sleep(ACCEPT_RETRY_SECONDS)
                continue  # ECONNABORTED and the like: that client gave up already
            self._serve(conn, _peer(address))

    def _serve(self, conn: socket.socket, peer: IPAddress | None) -> None:
        refusal = self._guard.admit(peer)
        if refusal is not None:
            # Answer at once without a transport, and free the descriptor right away.
            with contextlib.suppress(OSError):
                conn.setblocking(False)
                conn.send(refusal)
            conn.close()
            return
        server = self._runner.server
        assert server is not None
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._guard.release(peer)

        def done(task: asyncio.Task[bool]) -> None:
            self._connecting.discard(task)
            if task.cancelled() or task.exception() is not None or task.result():
                release()

        task = asyncio.get_running_loop().create_task(
            _connect(conn, lambda: _GuardedProtocol(server(), release))
        )
        self._connecting.add(task)
        task.add_done_callback(done)


def _closer(sock: socket.socket) -> Callable[[asyncio.Task[None]], None]:
    def close(_task: asyncio.Task[None]) -> None:
        sock.close()

    return close


async def _connect(conn: socket.socket, factory: Callable[[], asyncio.Protocol]) -> bool:
    """Hand an accepted socket to the event loop; True if that failed (and the socket is
    closed), so the caller gives the slot back."""
    try:
        await asyncio.get_running_loop().connect_accepted_socket(factory, sock=conn)
    except OSError:
        conn.close()
        return True
    return False


def _peer(address: Any) -> IPAddress | None:
    try:
        host = str(address[0]).partition("%")[0]
        peer = ipaddress.ip_address(host)
    except (ValueError, IndexError, TypeError):
        return None
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        return peer.ipv4_mapped
    return peer
