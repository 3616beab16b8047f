"""Two ejabberd nodes clustered on one machine, as docs/deploy-ha.md describes: refdesk's
component connected to node A, an operator logged in to node B, and a chat goes both
ways through the cluster's shared routing table. Then node A dies (SIGKILL): the
component reconnects to node B, named in `[xmpp] fallback_hosts`, and the same chat goes
on both ways.

The nodes share one Erlang cookie and one distribution port, each on its own loopback
address (127.0.0.1 and 127.0.0.2): with a fixed distribution port (no epmd), Erlang
reaches every other node on that same port, at the address in the node's name.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import replace
from pathlib import Path

from component.prosody import free_port
from component.runner import Refdesk
from tests import conftest
from tests.conftest import COMPONENT_DOMAIN, SECRET, Desk, make_config, seed, wait_for
from tests.xmpp_servers import EjabberdServer


class ClusterNode(EjabberdServer):
    """A throwaway ejabberd node with a long node name on its own loopback address and
    a cookie and distribution port shared with the other nodes of its cluster."""

    def __init__(self, tmp: Path, *, address: str, label: str, cookie: str, dist_port: int) -> None:
        super().__init__(tmp, component_domain=COMPONENT_DOMAIN, component_secret=SECRET)
        self.address = address
        self.node = f"refdesk-{label}-{secrets.token_hex(6)}@{address}"
        self._cookie = cookie
        self.dist_port = dist_port

    def ctl_config_text(self) -> str:
        interface = self.address.replace(".", ",")
        return super().ctl_config_text().replace("{127,0,0,1}", "{" + interface + "}")

    async def ctl(self, *argv: str) -> str:
        """One ejabberdctl command against this node; raises with its output on failure."""
        process = await asyncio.create_subprocess_exec(
            *self._ctl_args(),
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=str(self.workdir),
        )
        out, _ = await asyncio.wait_for(process.communicate(), 120)
        text = out.decode(errors="replace")
        if process.returncode != 0:
            raise RuntimeError(f"ejabberdctl {' '.join(argv)}: {text}\n{self.log_tail()}")
        return text


async def test_component_on_one_node_serves_an_operator_on_the_other(tmp_path: Path) -> None:
    cookie = secrets.token_hex(16)
    dist_port = free_port()
    node_a = ClusterNode(
        tmp_path, address="127.0.0.1", label="a", cookie=cookie, dist_port=dist_port
    )
    node_b = ClusterNode(
        tmp_path, address="127.0.0.2", label="b", cookie=cookie, dist_port=dist_port
    )
    refdesk: Refdesk | None = None
    desk: Desk | None = None
    try:
        # B first: the start-up check of a free distribution port looks at 127.0.0.1.
        await node_b.start(timeout=60)
        await node_a.start(timeout=60)
        await node_b.ctl("join_cluster", node_a.node)
        running = await node_a.ctl("list_cluster")
        assert node_b.node in running, running
        # The joining node restarted ejabberd; wait for its client port again.
        await node_b._wait_listening(60)

        config = make_config(tmp_path, xmpp_port=node_a.component_port)
        config = replace(
            config,
            xmpp=replace(config.xmpp, fallback_hosts=(f"127.0.0.1:{node_b.component_port}",)),
        )
        await seed(config.storage.target, ("ask",))
        refdesk = Refdesk(config, clock=conftest.TestClock())
        await refdesk.start()
        await asyncio.wait_for(refdesk.adapter.online.wait(), 30)
        # Operators log in to node B; Desk registers them there (the accounts are in the
        # cluster's shared database).
        desk = Desk(refdesk, node_b, conftest.TestClock())
        op = await desk.add_operator(name="Bea")
        patron = await desk.patron()
        await patron.say("Is the library open on Sunday?")
        offer = await op.next_message()
        assert "Is the library open on Sunday?" in offer["body"]
        op.send_message(offer["from"].bare, "Yes, from noon.")
        reply = await patron.next("message", lambda f: f["from"] == "operator")
        assert reply["text"] == "Yes, from noon."
        assert refdesk.adapter.sessions == 1

        # Node A dies; the operator, on node B, stays logged in.
        await node_a.kill()
        killed_at = time.monotonic()
        await wait_for(
            lambda: (
                refdesk is not None
                and refdesk.adapter.sessions == 2
                and refdesk.adapter.online.is_set()
            ),
            timeout=60,
            what="the component online again through node B",
        )
        print(f"component online through node B {time.monotonic() - killed_at:.2f} s after kill")
        await patron.say("And on Monday?")
        # The component's notices of the new session may come first.
        bodies = [str((await op.next_message(timeout=30))["body"])]
        while not bodies[-1].endswith("And on Monday?") and len(bodies) < 5:
            bodies.append(str((await op.next_message(timeout=30))["body"]))
        assert bodies[-1].endswith("And on Monday?"), bodies
        op.send_message(offer["from"].bare, "From nine.")
        reply = await patron.next("message", lambda f: f["from"] == "operator", timeout=30)
        assert reply["text"] == "From nine."
    finally:
        if desk is not None:
            await desk.close()
        elif refdesk is not None:
            await refdesk.stop()
        await node_a.stop()
        await node_b.stop()
