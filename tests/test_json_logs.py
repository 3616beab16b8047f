"""`[log] format = "json"`: `refdesk run` logs one JSON object per line."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import aiohttp

from component.config import write_config_toml
from component.prosody import free_port
from tests.conftest import COMPONENT_DOMAIN, SECRET
from tests.listening import listens_on
from tests.xmpp_servers import XmppServer


async def test_run_logs_one_json_object_per_line(xmpp_server: XmppServer, tmp_path: Path) -> None:
    web_port = free_port()
    config = tmp_path / "refdesk.toml"
    config.write_text(
        write_config_toml(
            {
                "xmpp": {
                    "domain": COMPONENT_DOMAIN,
                    "secret": SECRET,
                    "port": xmpp_server.component_port,
                },
                "web": {"port": web_port},
                "storage": {"path": "db.sqlite3"},
                "log": {"format": "json"},
            }
        ),
        "utf-8",
    )
    config.chmod(0o644)  # so that the start-up warning is logged too
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "component.cli",
        "--config",
        str(config),
        "run",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(f"http://127.0.0.1:{web_port}/healthz") as response:
                        # From our process, not another that took the port first.
                        if response.status == 200 and listens_on(proc.pid, web_port):
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("refdesk did not become healthy")
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = await proc.communicate()
    assert proc.returncode == 0
    records = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
    assert records, "no log lines"
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
    messages = [r["message"] for r in records]
    assert any("refdesk is serving" in m for m in messages), messages
    assert any(f"component {COMPONENT_DOMAIN} is online" in m for m in messages), messages
    assert any(
        "open to other users" in m and r["level"] == "WARNING"
        for r, m in zip(records, messages, strict=True)
    )
    assert any("refdesk stopped" in m for m in messages), messages
