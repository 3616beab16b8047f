"""The test servers and the operator client work, on Prosody and on ejabberd alike.

Everything else in the suite builds on ``tests/xmpp_servers.py`` and
``tests/operator_client.py``; these tests pin down what it relies on: clients talk to each
other, a bare XEP-0114 component is reachable both ways, offline messages are stored, a
restart keeps the data and lets everybody reconnect, and `stop` leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
from pathlib import Path

import pytest
from slixmpp import ComponentXMPP, Message
from slixmpp.jid import JID

from tests.operator_client import OperatorClient
from tests.xmpp_servers import EjabberdServer, ProsodyServer, XmppServer, start_server

COMPONENT_DOMAIN = "desk.localhost"
BOT = f"bot@{COMPONENT_DOMAIN}"


@pytest.fixture
def server(xmpp_server: XmppServer) -> XmppServer:
    """The suite's shared server of each kind (conftest), started once per session rather
    than once per test: these tests register accounts of their own (`_unique` names) and
    leave it running, restarted at most."""
    return xmpp_server


def _unique(*users: str) -> list[str]:
    """Account names no other test on the shared server uses."""
    tag = secrets.token_hex(3)
    return [f"{user}-{tag}" for user in users]


class Component:
    """A bare slixmpp component on the server's component port, collecting messages."""

    def __init__(self, server: XmppServer) -> None:
        self.server = server
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.xmpp: ComponentXMPP | None = None

    async def connect(self, timeout: float = 15) -> None:
        """Open a new component session; built here so slixmpp binds the running loop."""
        server = self.server
        # slixmpp leaves ComponentXMPP.__init__ unannotated.
        xmpp = ComponentXMPP(  # type: ignore[no-untyped-call]
            server.component_domain, server.component_secret, server.host, server.component_port
        )
        xmpp.register_plugin("xep_0199")
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_start(_event: object) -> None:
            if not ready.done():
                ready.set_result(None)

        xmpp.add_event_handler("session_start", on_start)
        xmpp.add_event_handler("message", self.messages.put_nowait)
        self.xmpp = xmpp
        xmpp.connect(server.host, server.component_port)
        await asyncio.wait_for(ready, timeout)

    def send(self, to: str, body: str, sender: str = BOT) -> None:
        assert self.xmpp is not None
        self.xmpp.send_message(mto=JID(to), mbody=body, mtype="chat", mfrom=JID(sender))

    async def flush(self) -> None:
        """Ping the server: it handles the component stream in order, so everything sent
        before has been routed (delivered or stored offline) once the pong is back."""
        assert self.xmpp is not None
        await self.xmpp.plugin["xep_0199"].ping(JID(self.server.domain), ifrom=JID(BOT), timeout=10)

    async def next_message(self, timeout: float = 10) -> Message:
        return await asyncio.wait_for(self.messages.get(), timeout)

    async def disconnect(self) -> None:
        xmpp, self.xmpp = self.xmpp, None
        if xmpp is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(xmpp.disconnect(wait=1), 3)
            xmpp.abort()


def _client(server: XmppServer, user: str) -> OperatorClient:
    return OperatorClient(f"{user}@{server.domain}", f"pw-{user}", server.host, server.c2s_port)


async def _assert_component_round_trip(
    component: Component, client: OperatorClient, label: str
) -> None:
    component.send(client.bare_jid, f"hello from the desk ({label})")
    got = await client.next_message(BOT)
    assert got["body"] == f"hello from the desk ({label})"
    assert got["type"] == "chat"

    client.send_message(BOT, f"hello desk ({label})")
    got = await component.next_message()
    assert got["from"].bare == client.bare_jid
    assert got["to"].bare == BOT
    assert got["body"] == f"hello desk ({label})"


async def test_clients_component_and_restart(server: XmppServer) -> None:
    users = _unique("alice", "bob")
    for user in users:
        await server.register(user, f"pw-{user}")
    alice, bob = (_client(server, user) for user in users)
    component = Component(server)
    try:
        await alice.connect()
        await bob.connect()

        alice.send_message(bob.bare_jid, "hi bob")
        assert (await bob.next_message(alice.bare_jid))["body"] == "hi bob"
        bob.send_message(alice.bare_jid, "hi alice")
        assert (await alice.next_message(bob.bare_jid))["body"] == "hi alice"

        await component.connect()
        await _assert_component_round_trip(component, alice, "before restart")

        # Bob goes offline before the restart; what the desk tells him meanwhile must be
        # kept across it.
        await bob.disconnect()
        component.send(bob.bare_jid, "while you were out")
        await component.flush()

        await server.restart()

        await alice.connect()
        await component.disconnect()
        await component.connect()
        await _assert_component_round_trip(component, alice, "after restart")

        await bob.connect()
        got = await bob.next_message(BOT)
        assert got["body"] == "while you were out"
        await bob.expect_no_message(BOT, within=0.3)
    finally:
        await alice.disconnect()
        await bob.disconnect()
        await component.disconnect()


async def test_offline_message_delivered_at_login(server: XmppServer) -> None:
    (user,) = _unique("carol")
    await server.register(user, f"pw-{user}")
    carol = _client(server, user)
    component = Component(server)
    try:
        await component.connect()
        component.send(carol.bare_jid, "a patron is waiting")
        component.send(carol.bare_jid, "and another one")
        await component.flush()

        intruder = OperatorClient(carol.jid, "wrong password", server.host, server.c2s_port)
        with pytest.raises(RuntimeError, match="authentication failed"):
            await intruder.connect()

        await carol.connect()
        first = await carol.next_message(BOT)
        second = await carol.next_message(BOT)
        assert [first["body"], second["body"]] == ["a patron is waiting", "and another one"]
        # Stored messages carry XEP-0203 delay stamps: proof they came from storage.
        assert first.xml.find("{urn:xmpp:delay}delay") is not None
    finally:
        await carol.disconnect()
        await component.disconnect()


async def test_next_message_keeps_skipped_messages(server: XmppServer) -> None:
    users = _unique("dave", "erin", "frank")
    for user in users:
        await server.register(user, f"pw-{user}")
    dave, erin, frank = (_client(server, user) for user in users)
    try:
        for client in (dave, erin, frank):
            await client.connect()
        erin.send_message(dave.bare_jid, "from erin")
        frank.send_message(dave.bare_jid, "from frank")
        assert (await dave.next_message(frank.bare_jid))["body"] == "from frank"
        assert (await dave.next_message(erin.bare_jid))["body"] == "from erin"
        with pytest.raises(TimeoutError, match="no message from"):
            await dave.next_message(erin.bare_jid, timeout=0.3)
        await dave.expect_no_message(None, within=0.2)

        # Erin asks for Dave's presence; Dave's client approves and asks back.
        erin.subscribe(dave.bare_jid)
        await erin.next_presence(dave.bare_jid, ptype="subscribed")
        await dave.next_presence(erin.bare_jid, ptype="subscribed")
        dave.set_presence("away", "at lunch")
        pres = await erin.next_presence(dave.bare_jid, ptype="away")
        assert pres["status"] == "at lunch"
        dave.set_presence(None)
        await erin.next_presence(dave.bare_jid, ptype="available")
        assert any(p["type"] == "subscribe" for p in dave.presences)
    finally:
        for client in (dave, erin, frank):
            await client.disconnect()


def _processes_mentioning(text: str) -> dict[int, str]:
    """{pid: command line} of every process whose command line contains *text*."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
                if text in cmdline.decode(errors="replace"):
                    found[int(entry)] = cmdline.decode(errors="replace")
    return found


async def test_stop_leaves_nothing_behind(tmp_path: Path) -> None:
    prosody = await start_server("prosody", tmp_path, COMPONENT_DOMAIN, "s1")
    try:
        ejabberd = await start_server("ejabberd", tmp_path, COMPONENT_DOMAIN, "s2")
    except BaseException:
        await prosody.stop()
        raise
    assert isinstance(prosody, ProsodyServer)
    assert isinstance(ejabberd, EjabberdServer)
    prosody_dir = prosody.log_path.parent
    ejabberd_dir = ejabberd.workdir
    try:
        running = _processes_mentioning(ejabberd.node)
        # No epmd: the node listens on its own distribution port (ERL_DIST_PORT), so no
        # shared name server is started, and none is ever killed.
        assert any("-start_epmd false" in cmdline for cmdline in running.values())
        assert _processes_mentioning(str(prosody.log_path.parent))
    finally:
        await prosody.stop()
        await ejabberd.stop()

    assert not prosody_dir.exists()
    assert not ejabberd_dir.exists()
    assert _processes_mentioning(str(prosody_dir)) == {}
    assert _processes_mentioning(ejabberd.node) == {}
    # The logs are kept next to the test's files for post-mortems.
    assert (tmp_path / f"{prosody_dir.name}.log").exists()
    assert (tmp_path / f"{ejabberd_dir.name}.log").exists()


_ORPHAN_SCRIPT = """
import asyncio, os, sys
from pathlib import Path
from tests.xmpp_servers import start_server

async def main():
    server = await start_server("ejabberd", Path(sys.argv[1]), "desk.localhost", "x")
    print(server.workdir, server.node, flush=True)
    os._exit(0)  # a test run killed before its teardown

asyncio.run(main())
"""


async def test_orphaned_ejabberd_is_reaped_by_the_next_start(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _ORPHAN_SCRIPT,
        str(tmp_path),
        cwd=repo,
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await asyncio.wait_for(child.communicate(), 60)
    workdir_text, node = output.decode().split()
    assert _processes_mentioning(node), "the orphan should still be running"

    server = await start_server("ejabberd", tmp_path, COMPONENT_DOMAIN, "s")
    await server.stop()

    assert _processes_mentioning(node) == {}
    assert not Path(workdir_text).exists()


async def test_missing_binaries_fail_loudly(tmp_path: Path) -> None:
    prosody = ProsodyServer(tmp_path, component_domain=COMPONENT_DOMAIN, component_secret="s")
    prosody._prosody.prosody_bin = "no-such-prosody"
    with pytest.raises(RuntimeError, match="not found"):
        await prosody.start()
    await prosody.stop()

    ejabberd = EjabberdServer(
        tmp_path,
        component_domain=COMPONENT_DOMAIN,
        component_secret="s",
        ejabberdctl_bin="no-such-ejabberdctl",
    )
    with pytest.raises(RuntimeError, match="not found"):
        await ejabberd.start()
    await ejabberd.stop()

    with pytest.raises(ValueError, match="unknown XMPP server kind"):
        await start_server("openfire", tmp_path, COMPONENT_DOMAIN, "s")
