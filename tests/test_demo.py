"""`refdesk demo` (what scripts/demo runs) tells the truth: the commands its banner prints
work as printed, from a shell that does not have the virtual environment on its PATH, and
the mail it sends (tickets, transcripts) is caught and shown instead of retried forever."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from component.prosody import free_port

VENV_BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def shell_env() -> dict[str, str]:
    """A tryer's shell: the system PATH, without this virtual environment."""
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != VENV_BIN]
    return {**os.environ, "PATH": os.pathsep.join(path or ["/usr/bin", "/bin"])}


@dataclass
class RunningDemo:
    process: asyncio.subprocess.Process
    port: int
    directory: Path
    lines: list[str] = field(default_factory=list)

    async def read_until(self, pattern: str, timeout: float = 90) -> str:
        """The first output line (old or new) matching `pattern`."""
        regex = re.compile(pattern)
        for line in self.lines:
            if regex.search(line):
                return line
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    raise AssertionError("demo exited:\n" + "\n".join(self.lines))
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                if regex.search(line):
                    return line


@contextlib.asynccontextmanager
async def start_demo(tmp_path: Path, *extra: str) -> AsyncIterator[RunningDemo]:
    """`refdesk demo` on a free web port in its own directory, until its banner is out."""
    port = free_port()
    directory = tmp_path / "demo"
    process = await asyncio.create_subprocess_exec(
        str(VENV_BIN / "refdesk"),
        "demo",
        "--dir",
        str(directory),
        "--port",
        str(port),
        *extra,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**shell_env(), "PYTHONUNBUFFERED": "1"},
        cwd=str(ROOT),
        start_new_session=True,
    )
    running = RunningDemo(process, port, directory)
    try:
        await running.read_until(r"Admin page:")
        yield running
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[RunningDemo]:
    async with start_demo(tmp_path) as running:
        yield running


async def test_banner_commands_work_as_printed(demo: RunningDemo) -> None:
    commands = [
        line.split(":", 1)[1].strip() if ":" in line.split("--config")[0] else line.strip()
        for line in demo.lines
        if "--config" in line
    ]
    assert commands, "\n".join(demo.lines)
    for command in commands:
        process = await asyncio.create_subprocess_shell(
            command,
            env=shell_env(),
            cwd=str(ROOT),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        assert process.returncode == 0, (command, output.decode())
    # The URLs it prints answer.
    urls = re.findall(r"https?://[^/\s]+/\S*", "\n".join(demo.lines))
    assert urls
    async with aiohttp.ClientSession() as http:
        for url in urls:
            async with http.get(url) as response:
                assert response.status == 200, url
        # The browser client's page names the demo Prosody's WebSocket endpoint, which
        # opens an XMPP stream (RFC 7395).
        operator_url = next(url for url in urls if url.endswith("/operator/"))
        async with http.get(operator_url) as response:
            page = await response.text()
        settings = json.loads(
            re.search(r'id="rd-operator-settings">(.*?)</script>', page, re.S).group(1)  # type: ignore[union-attr]
        )
        async with http.ws_connect(settings["websocket_url"], protocols=("xmpp",)) as ws:
            await ws.send_str(
                '<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0"/>'
            )
            reply = await ws.receive_str(timeout=10)
            assert reply.startswith("<open"), reply


async def test_demo_mail_is_caught_and_shown(demo: RunningDemo) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{demo.port}/api/queues/ask/questions",
            json={"email": "tryer@example.org", "name": "Tryer", "question": "Any maps?"},
        ) as response,
    ):
        assert response.status == 201, await response.text()
    line = await demo.read_until(r"Mail to .*", timeout=60)
    saved = Path(shlex.split(line.split("saved in", 1)[1].strip())[0])
    assert saved.is_file() and saved.is_relative_to(demo.directory / "mail"), line
    assert "Any maps?" in saved.read_text("utf-8", errors="replace")
    # The tryer sees one line per message, not the SMTP conversation behind it: the
    # demo's own mail server keeps its protocol log to itself.
    await demo.read_until(r"Mail to tryer@example\.org", timeout=60)
    await demo.read_until(r"mail \d+ \(confirmation\) sent", timeout=60)
    chatter = [line for line in demo.lines if "mail.log" in line]
    assert chatter == [], "\n".join(chatter)


async def test_demo_stops_cleanly_on_ctrl_c(demo: RunningDemo) -> None:
    os.killpg(demo.process.pid, signal.SIGINT)
    assert await asyncio.wait_for(demo.process.wait(), 30) == 0


async def test_demo_host_listens_beyond_loopback_with_a_warning(tmp_path: Path) -> None:
    async with start_demo(tmp_path, "--host", "0.0.0.0") as running:
        await running.read_until(r"WARNING: listening on 0\.0\.0\.0")
        # Reachable on another local address than 127.0.0.1, as from another machine.
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.3:{running.port}/api/queues/ask/status") as response,
        ):
            assert response.status == 200
        widget = await running.read_until(r"Patron widget:")
        assert "127.0.0.1" not in widget, widget


async def test_demo_refuses_a_host_that_is_not_an_address(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        str(VENV_BIN / "refdesk"),
        "demo",
        "--dir",
        str(tmp_path / "demo"),
        "--host",
        "every interface",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 2
    assert b"--host must be an IP address" in output


async def test_demo_on_a_web_port_in_use_says_which_and_what_to_do(tmp_path: Path) -> None:
    """Port 8080 is often taken (another refdesk, a development server): the demo says
    which port and how to pick another, instead of a bare "Address already in use", and
    leaves no Prosody behind."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            str(VENV_BIN / "refdesk"),
            "demo",
            "--dir",
            str(tmp_path / "demo"),
            "--port",
            str(port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), 90)
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise AssertionError("the demo did not exit after refusing the port") from None
    text = output.decode()
    assert process.returncode == 2, text
    assert f"port {port}" in text and "--port" in text, text
    assert "Traceback" not in text, text
    assert not (tmp_path / "demo" / "prosody" / "prosody.pid").exists()
