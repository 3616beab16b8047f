"""A takeover behind nginx: two refdesk instances on one PostgreSQL database as the two
upstreams of the shipped nginx site file (TLS), nginx passing a request on to the other
upstream when one fails or answers 503. The active `refdesk run` is killed (SIGKILL) in
the middle of a chat; the patron's widget reconnects to the same address with its
token and lands on the standby, which has taken over; the chat goes on both ways.
Runs against Prosody and ejabberd."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import aiohttp

from component.config import StorageConfig, write_config_toml
from component.prosody import free_port
from component.runner import Refdesk
from tests.component.test_active_lock import SHORT_LEASE, operator_of_ask
from tests.conftest import COMPONENT_DOMAIN, SECRET, make_config, seed
from tests.listening import listens_on
from tests.operator_client import OperatorClient
from tests.patron_client import PatronClient
from tests.pg_server import PgServer
from tests.test_nginx_proxy import (
    NGINX_IP,
    SITE_FILE,
    Nginx,
    fill_site_file,
    free_port_on,
    self_signed,
)
from tests.xmpp_servers import XmppServer


def patron_via(url: str) -> PatronClient:
    """A patron client that accepts the test's self-signed certificate."""
    patron = PatronClient(url, "ask")
    patron.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
    return patron


async def test_sigkill_of_the_active_behind_nginx(
    xmpp_server: XmppServer, postgresql: PgServer, tmp_path: Path
) -> None:
    url = postgresql.fresh_url()
    await seed(url, ("ask",))
    jid, password = await operator_of_ask(url, xmpp_server)

    https_port, http_port = free_port_on(NGINX_IP), free_port_on(NGINX_IP)
    public = f"https://{NGINX_IP}:{https_port}"
    active_port, standby_port = free_port(), free_port()
    cert, key = self_signed(tmp_path, NGINX_IP)
    site = fill_site_file(
        SITE_FILE.read_text("utf-8"),
        https_port=https_port,
        http_port=http_port,
        upstream=active_port,
        cert=cert,
        key=key,
    ).replace(
        f"server 127.0.0.1:{active_port};",
        # max_fails=0: never set a server aside; a standby's 503 must not keep nginx
        # away from it for fail_timeout once it has become the active one.
        f"server 127.0.0.1:{active_port} max_fails=0;\n"
        f"    server 127.0.0.1:{standby_port} max_fails=0;",
    )
    # Failed connections and a standby's 503 pass the request on to the other upstream.
    site = "proxy_next_upstream error timeout http_503;\n" + site
    nginx = Nginx(tmp_path / "nginx", site)

    config_file = tmp_path / "a" / "refdesk.toml"
    config_file.parent.mkdir()
    config_file.write_text(
        write_config_toml(
            {
                "xmpp": {
                    "domain": COMPONENT_DOMAIN,
                    "secret": SECRET,
                    "port": xmpp_server.component_port,
                    "reconnect_max_delay": 1.0,
                },
                "web": {"port": active_port, "public_url": public, "password_hashing": "test"},
                "storage": {"url": url, "lease": SHORT_LEASE},
            }
        ),
        "utf-8",
    )
    active = subprocess.Popen(
        [sys.executable, "-m", "component.cli", "--config", str(config_file), "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    config = make_config(tmp_path / "b", xmpp_port=xmpp_server.component_port)
    standby = Refdesk(
        replace(
            config,
            storage=StorageConfig(url=url, lease=SHORT_LEASE),
            web=replace(config.web, port=standby_port, public_url=public),
        )
    )
    op = OperatorClient(jid, password, xmpp_server.host, xmpp_server.c2s_port)
    patron = patron_via(public)
    resumed: PatronClient | None = None
    starting: asyncio.Task[None] | None = None
    try:
        await nginx.start(https_port)
        await op.connect()
        while True:  # the active one serves through nginx, the operator available
            assert active.poll() is None
            try:
                welcome = await patron.connect()
                # Served by `active` itself, not by a stranger that took its port first
                # (see tests.listening).
                if welcome.get("status") == "available" and listens_on(active.pid, active_port):
                    break
                await patron.drop()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        starting = asyncio.create_task(standby.start())
        for n in (1, 2):
            await patron.say(f"patron line {n}")
        offer = await op.next_message()
        guest = offer["from"].bare
        op.send_message(guest, "operator line 1")
        await patron.next("message", lambda f: f["text"] == "operator line 1")
        assert not starting.done()

        killed_at = time.monotonic()
        active.send_signal(signal.SIGKILL)
        active.wait()
        await patron.drop()
        while True:  # the widget retries the same address with its token
            resumed = patron_via(public)
            try:
                welcome = await resumed.connect(resume=patron.resume, last_seq=patron.last_seq)
                break
            except (aiohttp.ClientError, AssertionError):
                await resumed.close()
                resumed = None
                await asyncio.sleep(0.2)
        print(
            f"behind nginx, the patron resumed {time.monotonic() - killed_at:.2f} s after SIGKILL"
        )
        assert welcome["resumed"] is True and welcome["chat"] == patron.chat_id
        await asyncio.wait_for(standby.adapter.online.wait(), 60)
        await resumed.say("patron line 3")
        bodies = [(await op.next_message(guest, timeout=30))["body"]]
        while bodies[-1] != "patron line 3":
            bodies.append((await op.next_message(guest, timeout=30))["body"])
        op.send_message(guest, "operator line 2")
        await resumed.next("message", lambda f: f["text"] == "operator line 2", timeout=30)
        texts = [e.text for e in await standby.store.chats.events_after(patron.chat_id, 0)]
        for said in ("patron line 1", "patron line 2", "patron line 3"):
            assert texts.count(said) == 1, texts
        for said in ("operator line 1", "operator line 2"):
            assert texts.count(said) == 1, texts
    finally:
        if active.poll() is None:
            active.kill()
            active.wait()
        if resumed is not None:
            await resumed.close()
        await patron.close()
        await op.disconnect()
        if starting is not None and not starting.done():
            starting.cancel()
        await standby.stop()
        await nginx.stop()
