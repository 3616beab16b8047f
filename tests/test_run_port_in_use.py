"""`refdesk run` when its web port is taken (another refdesk, a second unit, a development
server): one line naming the address, a non-zero exit, and the process really ends, so
systemd's Restart= can act. It used to print the error and then hang for ever, with the
database's and the outbox's threads still open."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

from component.config import write_config_toml
from component.prosody import free_port

VENV_BIN = Path(sys.executable).parent


async def test_run_on_a_port_in_use_exits_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "refdesk.toml"
        config.write_text(
            write_config_toml(
                {
                    # Nobody listens there: the XMPP side never gets going, as on a
                    # server whose XMPP service is still starting.
                    "xmpp": {"domain": "desk.example.org", "secret": "s3cret", "port": free_port()},
                    "web": {"host": "127.0.0.1", "port": port},
                    "storage": {"path": "refdesk.sqlite3"},
                }
            ),
            "utf-8",
        )
        config.chmod(0o600)
        process = await asyncio.create_subprocess_exec(
            str(VENV_BIN / "refdesk"),
            "--config",
            str(config),
            "run",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _out, err = await asyncio.wait_for(process.communicate(), 60)
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise AssertionError("refdesk run did not exit after failing to listen") from None
    text = err.decode()
    assert process.returncode == 1, text
    errors = [line for line in text.splitlines() if line.startswith("refdesk: error")]
    assert errors == [f"refdesk: error: Address already in use: 127.0.0.1:{port}"], text
    assert "Traceback" not in text, text
