"""Connection exhaustion against the real server: refdesk runs in a subprocess with a low
file-descriptor limit (set for that process only), and this test opens real sockets.

Loopback is 127.0.0.0/8 on Linux, so the attacker and the bystander connect from
different source addresses (and networks) of it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import resource
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from component.config import write_config_toml
from component.prosody import free_port
from tests.conftest import COMPONENT_DOMAIN, SECRET, seed
from tests.listening import listens_on

NOFILE = 256
ATTACKER = "127.0.0.1"
BYSTANDER = "127.0.1.1"
REPO = Path(__file__).resolve().parents[2]
# `[web] header_timeout` in these tests (10 s by default): every half-open connection
# under the caps waits it out, so shorter is quicker; long enough that a flood from one
# address is still being opened well within it. Slow clients send a byte or a frame every
# `TRICKLE` seconds, well under it, so a deadline that restarted with each byte or frame
# would never fire.
# (A clean-clone run once found the server unreachable for the bystander right after the
# slow clients, with 1 s and 0.15 s: not these values, but a stranger that had taken the
# server's port before it could, and stopped; `ServerProcess.start` now checks.)
HEADER_TIMEOUT = 2.0
TRICKLE = 0.3


def _enough_descriptors_for_the_test(needed: int) -> None:
    """The test process itself holds the attacker's sockets: raise its own soft limit if
    needed (never the machine's, never above the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


class ServerProcess:
    """`refdesk run` in a child process whose descriptor limit is `nofile`."""

    def __init__(self, tmp: Path, web: dict[str, Any], nofile: int = NOFILE) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "refdesk.log"
        self.config_path = tmp / "refdesk.toml"
        self.nofile = nofile
        self.web = web
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        await seed(self.tmp / "refdesk.sqlite3")
        values: dict[str, dict[str, object]] = {
            "xmpp": {"domain": COMPONENT_DOMAIN, "secret": SECRET, "port": free_port()},
            "web": {"host": "127.0.0.1", "port": self.port, **self.web},
            "storage": {"path": str(self.tmp / "refdesk.sqlite3")},
            "mail": {"smtp_port": free_port()},
        }
        self.config_path.write_text(write_config_toml(values), encoding="utf-8")
        nofile = self.nofile

        def lower_limit() -> None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "import sys; from component.cli import main; sys.exit(main())",
                "--config",
                str(self.config_path),
                "run",
                cwd=REPO,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=lower_limit,
            )
        for _ in range(200):
            if self.process.returncode is not None:
                raise AssertionError(f"refdesk exited: {self.log()}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                # The port answers; is it ours? (see tests.listening)
                if listens_on(self.process.pid, self.port):
                    return
            await asyncio.sleep(0.1)
        raise AssertionError(f"refdesk did not start: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@contextlib.asynccontextmanager
async def running(tmp: Path, **web: Any) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(tmp, web)
    try:
        await server.start()
        yield server
    finally:
        await server.stop()


async def test_a_port_taken_by_another_process_is_not_taken_for_the_server(
    tmp_path: Path,
) -> None:
    """The port chosen for the server was free a moment ago; another process took it
    first (another test's desk). The server cannot listen and exits; the stranger answers
    on the port. Start-up must see that, not go on talking to the stranger (whose port
    refused connections once it stopped, mid-test)."""
    with socket.create_server(("127.0.0.1", 0)) as stranger:
        server = ServerProcess(tmp_path, {})
        server.port = stranger.getsockname()[1]
        server.url = f"http://127.0.0.1:{server.port}"
        try:
            with pytest.raises(AssertionError, match="refdesk exited"):
                await server.start()
        finally:
            await server.stop()
        assert "already in use" in server.log()


def _half_open(port: int, source: str, count: int) -> list[socket.socket]:
    """`count` connections from `source`, each with an unfinished request head (plain
    blocking sockets: the server is another process)."""
    conns = []
    for _ in range(count):
        try:
            sock = socket.create_connection(
                ("127.0.0.1", port), timeout=5, source_address=(source, 0)
            )
        except OSError:
            continue  # the server's backlog is full: that connection never got in
        sock.sendall(b"GET /api/queues/ask/status HTTP/1.1\r\nHost: x\r\n")
        conns.append(sock)
    return conns


def _answer(sock: socket.socket) -> bytes:
    """What the server sends on a connection before it closes it (a refusal, or nothing
    when the header timeout cuts it off)."""
    sock.settimeout(60)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(4096):
            data += chunk
    return data


def _close_all(conns: list[socket.socket]) -> None:
    for sock in conns:
        sock.close()


async def _status(url: str, source: str) -> tuple[int, str]:
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    timeout = aiohttp.ClientTimeout(total=20)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as s,
        s.get(url + "/api/queues/ask/status") as resp,
    ):
        return resp.status, await resp.text()


def _tracebacks(log: str) -> int:
    return log.count("Traceback (most recent call last)")


async def test_half_open_flood_from_one_address_leaves_the_service_reachable(
    tmp_path: Path,
) -> None:
    _enough_descriptors_for_the_test(4 * NOFILE)
    async with running(tmp_path, header_timeout=HEADER_TIMEOUT) as server:
        flood = await asyncio.to_thread(_half_open, server.port, ATTACKER, NOFILE + 50)
        try:
            status, body = await _status(server.url, BYSTANDER)
            assert status == 200 and json.loads(body)["queue"] == "ask"
            # Over the cap: a clear refusal at once. Under it: cut off by the header timeout.
            answers = await asyncio.to_thread(lambda: [_answer(c) for c in flood])
        finally:
            _close_all(flood)
        log = server.log()
    refused = [a for a in answers if a.startswith(b"HTTP/1.1 429")]
    assert len(refused) >= 50
    assert all(a == b"" or a.startswith(b"HTTP/1.1 429") for a in answers)
    assert b"Too many connections" in refused[0]
    assert _tracebacks(log) == 0, log[-3000:]
    # One log line for the flood, not one per connection.
    assert 1 <= len(re.findall(r"connection refused", log)) <= 3, log[-3000:]


def _trickle(port: int, source: str, every: float) -> int:
    """Send a request head one byte of a header value at a time, for ever (well under
    aiohttp's header size limits); return how many bytes went out before the server
    closed the connection."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    sock.settimeout(every)
    sent = 0
    try:
        sock.sendall(b"GET /api/queues/ask/status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        for sent in range(1, 200):
            sock.sendall(b"a")
            with contextlib.suppress(TimeoutError):
                if sock.recv(4096) == b"":
                    return sent
    except (ConnectionResetError, BrokenPipeError):
        return sent
    finally:
        sock.close()
    raise AssertionError("a trickled request head was never cut off")


async def _ws(url: str, source: str) -> tuple[aiohttp.ClientSession, Any]:
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    session = aiohttp.ClientSession(connector=connector)
    try:
        ws = await session.ws_connect(url.replace("http", "ws") + "/ws/ask")
    except BaseException:
        await session.close()
        raise
    return session, ws


async def test_slow_clients_are_cut_off(tmp_path: Path) -> None:
    async with running(tmp_path, header_timeout=HEADER_TIMEOUT) as server:
        # A request head trickled one byte every TRICKLE seconds: closed at the deadline
        # all the same (after a handful of bytes, nowhere near the 200 on offer).
        lines = await asyncio.to_thread(_trickle, server.port, ATTACKER, TRICKLE)
        assert lines < 200
        # A WebSocket that sends "{}" every TRICKLE seconds but never says hello: the
        # hello deadline does not restart with each frame.
        session, ws = await _ws(server.url, ATTACKER)
        try:
            codes = []
            closed = False
            for _ in range(200):
                await asyncio.sleep(TRICKLE)
                await ws.send_str("{}")
                msg = await ws.receive(timeout=10)
                if msg.type == aiohttp.WSMsgType.TEXT:
                    codes.append(json.loads(msg.data)["code"])
                    continue
                closed = True
                break
            assert closed and ws.close_code == 4408, codes
            assert codes[-1] == "hello_expected"
        finally:
            await session.close()
        status, _ = await _status(server.url, BYSTANDER)
        assert status == 200


async def test_many_sockets_on_one_chat_and_from_one_address(tmp_path: Path) -> None:
    async with running(tmp_path, connections_per_address=12) as server:
        sessions = []
        sockets = []  # kept referenced: a collected client socket would close
        try:
            first_session, first = await _ws(server.url, ATTACKER)
            sessions.append(first_session)
            await first.send_str('{"type": "hello"}')
            token = json.loads((await first.receive(timeout=10)).data)["resume"]
            answers = []
            for _ in range(7 + 3):
                session, ws = await _ws(server.url, ATTACKER)
                sessions.append(session)
                sockets.append(ws)
                await ws.send_str(json.dumps({"type": "hello", "resume": token}))
                answers.append(json.loads((await ws.receive(timeout=10)).data))
            # The chat takes 8 connections; the next ones are refused with a reason.
            assert [a["type"] for a in answers[:7]] == ["welcome"] * 7
            assert {a.get("code") for a in answers[7:]} == {"too_many_connections"}, answers
            # And one address gets no more than its cap of connections at all.
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                for _ in range(12):
                    session, ws = await _ws(server.url, ATTACKER)
                    sessions.append(session)
                    sockets.append(ws)
            assert refused.value.status == 429
            status, _ = await _status(server.url, BYSTANDER)
            assert status == 200
        finally:
            for session in sessions:
                await session.close()


_BARE_SERVER = """
import asyncio, logging, sys
from aiohttp import web
from web.connlimits import AddressSlots
from web.listener import ConnectionGuard, GuardedSite

async def main(port):
    app = web.Application()
    app.router.add_get("/", lambda request: web.Response(text="ok"))
    runner = web.AppRunner(app, keepalive_timeout=float(sys.argv[2]))
    await runner.setup()
    # No caps to speak of: only the descriptor limit stops this flood.
    guard = ConnectionGuard(AddressSlots(10_000, 10_000), max_open=10_000)
    await GuardedSite(runner, "127.0.0.1", port, guard).start()
    print("serving", flush=True)
    await asyncio.Event().wait()

logging.basicConfig(level=logging.INFO)
asyncio.run(main(int(sys.argv[1])))
"""


async def test_accept_at_the_descriptor_limit_neither_spins_nor_floods_the_log(
    tmp_path: Path,
) -> None:
    """With the guard's own budget out of the way, the process runs out of descriptors:
    accept() fails, is retried after a pause, is logged once, and service resumes."""
    _enough_descriptors_for_the_test(4 * NOFILE)
    port = free_port()
    log_path = tmp_path / "server.log"

    def lower_limit() -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))

    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _BARE_SERVER,
            str(port),
            str(HEADER_TIMEOUT),
            cwd=REPO,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            preexec_fn=lower_limit,
        )
    try:
        assert process.stdout is not None
        assert (await asyncio.wait_for(process.stdout.readline(), 30)).strip() == b"serving"
        flood: list[socket.socket] = []
        for i in range(100):
            flood += await asyncio.to_thread(_half_open, port, f"127.0.2.{i + 1}", 1)
        try:
            # Sockets beyond the limit wait in the listen backlog; the header timeout
            # closes the half-open ones, and then the waiting ones get in.
            await asyncio.to_thread(lambda: [_answer(c) for c in flood])
        finally:
            _close_all(flood)
        status, text = await _get(f"http://127.0.0.1:{port}/", BYSTANDER)
        assert (status, text) == (200, "ok")
    finally:
        process.terminate()
        await process.wait()
    log_text = log_path.read_text(encoding="utf-8", errors="replace")
    assert "accept() failed" in log_text, log_text[-2000:]
    assert _tracebacks(log_text) == 0, log_text[-3000:]
    assert len(log_text.splitlines()) <= 5, log_text[-3000:]


async def _get(url: str, source: str) -> tuple[int, str]:
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as s,
        s.get(url) as resp,
    ):
        return resp.status, await resp.text()
