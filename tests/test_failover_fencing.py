"""Active and standby on one PostgreSQL database, the parts that need more than the lock:
changes made by another process reach the active one at once (LISTEN/NOTIFY, not a
poll), and an active process cut from the database is fenced, so that at no moment two
processes serve and no acknowledged line is lost. Real PostgreSQL, real Prosody and
ejabberd, `refdesk run` and the `refdesk` CLI as separate processes."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import asyncpg

from component.config import Config, StorageConfig, write_config_toml
from component.prosody import free_port
from component.runner import Refdesk
from component.store.active import LEASE, check_for, fence_for
from component.store.listen import LISTENER_SESSION_NAME
from tests.component.test_active_lock import (
    SHORT_LEASE,
    connect_once_staffed,
    cut_lock_sessions,
    desk_config,
    operator_of_ask,
    run_config,
    start_run,
    until_serving,
)
from tests.conftest import COMPONENT_DOMAIN, SECRET, seed
from tests.operator_client import OperatorClient
from tests.patron_client import PatronClient
from tests.pg_server import FreezingProxy, PgServer, lock_client_port
from tests.xmpp_servers import XmppServer

# The backstop poll in these tests: far longer than any wait below, so a change that
# arrives came by notification.
LONG_POLL = 600.0


def cli_config(tmp: Path, url: str) -> Path:
    """A config file for the `refdesk` CLI on the shared database (another process)."""
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "refdesk.toml"
    path.write_text(
        write_config_toml(
            {
                "xmpp": {"domain": COMPONENT_DOMAIN, "secret": SECRET},
                "web": {"password_hashing": "test"},
                "storage": {"url": url},
            }
        ),
        "utf-8",
    )
    return path


async def cli(config: Path, *args: str) -> float:
    """Run `refdesk --config CONFIG ARGS…` to completion; returns the loop time it exited
    (the change may be known before: the CLI commits, then takes a moment to exit)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "component.cli",
        "--config",
        str(config),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, (out, err)
    return asyncio.get_running_loop().time()


async def until(condition: object, timeout: float) -> float:
    """Wait for `condition()` to hold (checked every 10 ms); returns the loop time it
    was first seen. Fails after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "the change did not arrive"
        await asyncio.sleep(0.01)
    return loop.time()


def long_poll_config(tmp: Path, url: str, server: XmppServer) -> Config:
    config = desk_config(tmp, url, server)
    return replace(config, storage=StorageConfig(url=url, change_poll=LONG_POLL))


async def test_a_cli_change_reaches_the_active_process_at_once(
    xmpp_server: XmppServer, postgresql: PgServer, tmp_path: Path
) -> None:
    """A queue added and an address banned by the CLI (another process) are known to
    the active process right after the CLI exits, with the backstop poll at ten minutes;
    also after its listening session was cut. The delays are printed."""
    url = postgresql.fresh_url()
    await seed(url, ("ask",))
    active = Refdesk(long_poll_config(tmp_path / "a", url, xmpp_server))
    config = cli_config(tmp_path / "cli", url)
    await active.start()
    try:
        assert active._listener is not None
        await asyncio.wait_for(active._listener.listening.wait(), 30)
        service = active.service
        assert not service.is_queue("late")

        # Watched while the CLI runs: a negative figure means known before it exited.
        watch = asyncio.create_task(until(lambda: service.is_queue("late"), LONG_POLL / 10))
        done = await cli(config, "queue", "add", "late")
        seen = await watch
        print(f"queue added by the CLI: known {seen - done:+.3f} s from the CLI's exit")

        watch = asyncio.create_task(
            until(lambda: service.moderation.banned("203.0.113.7") is not None, LONG_POLL / 10)
        )
        done = await cli(config, "ban", "add", "203.0.113.7", "--days", "1", "--reason", "x")
        seen = await watch
        print(f"ban added by the CLI: known {seen - done:+.3f} s from the CLI's exit")

        # The listening session is cut: the listener reconnects and reloads in full, and
        # what changed meanwhile arrives all the same.
        admin = await asyncpg.connect(url)
        try:
            cut = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = $1",
                LISTENER_SESSION_NAME,
            )
        finally:
            await admin.close()
        assert cut == 1
        watch = asyncio.create_task(
            until(lambda: service.moderation.banned("198.51.100.9") is not None, LONG_POLL / 10)
        )
        done = await cli(config, "ban", "add", "198.51.100.9", "--days", "1", "--reason", "x")
        seen = await watch
        print(f"after a cut listener, a ban: known {seen - done:+.3f} s from the CLI's exit")
        await asyncio.wait_for(active._listener.listening.wait(), 30)
    finally:
        await active.stop()


async def test_an_active_process_cut_from_the_database_never_serves_with_the_new_one(
    xmpp_server: XmppServer, postgresql: PgServer, tmp_path: Path
) -> None:
    """A chat with lines in flight both ways; the network between the active `refdesk
    run` and its lock's database session fails (frozen, then ended on the server, which
    frees the lock). Both processes' /healthz are sampled together all along: at
    no sample do both answer 200. Every patron line acknowledged (by either process)
    reached the operator; every operator line the transcript holds reached the patron;
    each is stored once. On Prosody both run the shipped lease, on ejabberd the tests'
    short one (the lease is the database's business, whichever XMPP server)."""
    lease = LEASE if xmpp_server.kind == "prosody" else SHORT_LEASE
    url = postgresql.fresh_url()
    await seed(url, ("ask",))
    jid, password = await operator_of_ask(url, xmpp_server)
    active_port = free_port()
    proxy = FreezingProxy(postgresql.port)
    via_proxy = url.replace(f":{postgresql.port}/", f":{await proxy.start()}/")
    active = start_run(run_config(tmp_path / "a", via_proxy, xmpp_server, active_port, lease))
    standby = Refdesk(desk_config(tmp_path / "b", url, xmpp_server, lease))
    op = OperatorClient(jid, password, xmpp_server.host, xmpp_server.c2s_port)
    patron = PatronClient(f"http://127.0.0.1:{active_port}", "ask")
    resumed: PatronClient | None = None
    starting: asyncio.Task[None] | None = None
    sampling: asyncio.Task[None] | None = None
    samples: list[tuple[float, int, int]] = []
    stop_sampling = asyncio.Event()

    async def status(http: aiohttp.ClientSession, port: int) -> int:
        try:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                return response.status
        except aiohttp.ClientError:
            return 0

    async def sample() -> None:
        async with aiohttp.ClientSession() as http:
            while not stop_sampling.is_set():
                at = time.monotonic()
                a, b = await asyncio.gather(
                    status(http, active_port), status(http, standby.config.web.port)
                )
                samples.append((at, a, b))
                await asyncio.sleep(0.02)

    try:
        await until_serving(active, active_port)
        patron = await connect_once_staffed(patron, op, active_port)
        acknowledged = [(await patron.say("patron line 0"))["id"]]
        said = {acknowledged[0]: "patron line 0"}
        offer = await op.next_message()
        guest = offer["from"].bare
        to_operator = [str(offer["body"])]
        starting = asyncio.create_task(standby.start())
        sampling = asyncio.create_task(sample())
        await asyncio.sleep(0.5)
        assert not starting.done()

        # Lines in flight both ways while the lock's session is cut.
        talking = asyncio.Event()
        talking.set()
        operator_lines: list[str] = []

        async def patron_talks() -> None:
            n = 1
            while talking.is_set():
                text = f"patron line {n}"
                try:
                    ack = await patron.say(text, f"p{n}")
                except (AssertionError, aiohttp.ClientError, ConnectionError):
                    return
                acknowledged.append(ack["id"])
                said[ack["id"]] = text
                n += 1
                await asyncio.sleep(0.4)  # under the rate limit

        async def operator_talks() -> None:
            n = 1
            while talking.is_set():
                text = f"operator line {n}"
                op.send_message(guest, text)
                operator_lines.append(text)
                n += 1
                await asyncio.sleep(0.4)

        talkers = [asyncio.create_task(patron_talks()), asyncio.create_task(operator_talks())]
        await asyncio.sleep(1.0)
        proxy.freeze(await lock_client_port(url))
        cut_at = time.monotonic()
        assert await cut_lock_sessions(url) == 1
        _, err = await asyncio.to_thread(active.communicate, timeout=60)
        assert active.returncode != 0
        assert "lost the database's active lock" in err
        await asyncio.wait_for(starting, 60)
        await asyncio.wait_for(standby.adapter.online.wait(), 60)
        talking.clear()
        await asyncio.gather(*talkers)
        served_at = time.monotonic()
        while samples[-1][0] < served_at:
            await asyncio.sleep(0.05)
        stop_sampling.set()
        await sampling

        both = [s for s in samples if s[1] == 200 and s[2] == 200]
        assert not both, both
        last_old = max(at for at, a, _ in samples if a == 200)
        first_new = min(at for at, _, b in samples if b == 200)
        print(
            f"{len(samples)} samples: old active last served {last_old - cut_at:.2f} s after"
            f" the cut, the new one first {first_new - cut_at:.2f} s after"
            f" (fence {standby.fence_waited:.2f} s)"
        )
        assert last_old < first_new
        # The old one renewed its lease a moment before the cut: the new one waited,
        # unless taking the lock took longer than the rest of the fence (a stalled
        # machine), when waiting nothing is right.
        assert standby.fence_waited is not None
        assert standby.fence_waited > 0.0 or served_at - cut_at >= fence_for(lease) - check_for(
            lease
        )

        # The patron resumes on the new active process and goes on.
        resumed = PatronClient(f"http://127.0.0.1:{standby.port}", "ask")
        welcome = await resumed.connect(resume=patron.resume, last_seq=patron.last_seq)
        assert welcome["resumed"] is True and welcome["chat"] == patron.chat_id
        await resumed.say("patron line last", "plast")
        while "patron line last" not in to_operator:
            to_operator.append(str((await op.next_message(guest, timeout=30))["body"]))
        op.send_message(guest, "operator line last")
        await resumed.next("message", lambda f: f["text"] == "operator line last", timeout=30)

        texts = [e.text for e in await standby.store.chats.events_after(patron.chat_id, 0)]
        for cid in acknowledged:
            line = said[cid]
            assert texts.count(line) == 1, (line, texts)
            assert any(line == body or line in body for body in to_operator), (line, to_operator)
        to_patron = {f["text"] for f in patron.messages() + resumed.messages()}
        for line in [*operator_lines, "operator line last"]:
            assert texts.count(line) <= 1, (line, texts)
            if line in texts:
                assert line in to_patron, line
        lost_unacknowledged = [t for t in operator_lines if t not in texts]
        print(
            f"patron lines acknowledged: {len(acknowledged)}, operator lines sent:"
            f" {len(operator_lines)} (refused while no process was active:"
            f" {len(lost_unacknowledged)})"
        )
    finally:
        stop_sampling.set()
        if sampling is not None:
            with contextlib.suppress(Exception):
                await sampling
        if active.poll() is None:
            active.kill()
            active.communicate()
        if resumed is not None:
            await resumed.close()
        await patron.close()
        await op.disconnect()
        if starting is not None and not starting.done():
            starting.cancel()
        await standby.stop()
        await proxy.stop()


async def test_a_line_sent_to_a_process_cut_from_the_database_is_not_acknowledged(
    xmpp_server: XmppServer, postgresql: PgServer, tmp_path: Path
) -> None:
    """The whole network between the active `refdesk run` and the database fails (every
    connection frozen; the server ends the sessions, freeing the lock). A line the
    patron sends then cannot commit: it is never acknowledged, the old process steps
    down, and the patron, resumed on the new active process, sends it again (same id):
    stored once, acknowledged, relayed."""
    url = postgresql.fresh_url()
    await seed(url, ("ask",))
    jid, password = await operator_of_ask(url, xmpp_server)
    active_port = free_port()
    proxy = FreezingProxy(postgresql.port)
    via_proxy = url.replace(f":{postgresql.port}/", f":{await proxy.start()}/")
    active = start_run(run_config(tmp_path / "a", via_proxy, xmpp_server, active_port))
    standby = Refdesk(desk_config(tmp_path / "b", url, xmpp_server))
    op = OperatorClient(jid, password, xmpp_server.host, xmpp_server.c2s_port)
    patron = PatronClient(f"http://127.0.0.1:{active_port}", "ask")
    resumed: PatronClient | None = None
    starting: asyncio.Task[None] | None = None
    try:
        await until_serving(active, active_port)
        patron = await connect_once_staffed(patron, op, active_port)
        await patron.say("before the cut", "before")
        offer = await op.next_message()
        guest = offer["from"].bare
        op.send_message(guest, "taken")
        await patron.next("message", lambda f: f["text"] == "taken")
        starting = asyncio.create_task(standby.start())
        await asyncio.sleep(0.5)

        ports = proxy.freeze_all()
        admin = await asyncpg.connect(url)
        try:
            ended = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE client_port = ANY($1::int[])",
                ports,
            )
        finally:
            await admin.close()
        assert ended >= 2  # at least the store and the lock
        await patron.send({"type": "message", "id": "cut", "text": "during the cut"})
        await patron.next("_closed", timeout=60)
        assert not [f for f in patron.frames if f["type"] == "ack" and f.get("id") == "cut"]
        await asyncio.to_thread(active.communicate, timeout=60)
        assert active.returncode != 0

        await asyncio.wait_for(starting, 60)
        await asyncio.wait_for(standby.adapter.online.wait(), 60)
        assert patron.chat_id is not None
        texts = [e.text for e in await standby.store.chats.events_after(patron.chat_id, 0)]
        assert "during the cut" not in texts, texts
        resumed = PatronClient(f"http://127.0.0.1:{standby.port}", "ask")
        welcome = await resumed.connect(resume=patron.resume, last_seq=patron.last_seq)
        assert welcome["resumed"] is True
        await resumed.say("during the cut", "cut")
        body = ""
        while body != "during the cut":
            body = str((await op.next_message(guest, timeout=30))["body"])
        texts = [e.text for e in await standby.store.chats.events_after(patron.chat_id, 0)]
        assert texts.count("during the cut") == 1, texts
        assert texts.count("before the cut") == 1, texts
    finally:
        if active.poll() is None:
            active.kill()
            active.communicate()
        if resumed is not None:
            await resumed.close()
        await patron.close()
        await op.disconnect()
        if starting is not None and not starting.done():
            starting.cancel()
        await standby.stop()
        await proxy.stop()
