"""Active and standby on one PostgreSQL database (real PostgreSQL, real XMPP servers):
exactly one refdesk holds the active lock and connects the component; another serves 503
and waits; it takes over when the active one stops or loses its database connection."""

from __future__ import annotations

import asyncio
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from component.config import Config, StorageConfig, write_config_toml
from component.config_checks import MIN_LEASE
from component.prosody import free_port
from component.runner import Refdesk
from component.store import Store
from component.store.active import (
    ACTIVE_LOCK_KEY,
    FENCE,
    LEASE,
    ActiveLock,
    check_for,
    fence_for,
    fence_wait,
)
from component.store.pg import probe_postgresql
from tests.conftest import COMPONENT_DOMAIN, SECRET, make_config, seed
from tests.listening import listens_on
from tests.operator_client import OperatorClient
from tests.patron_client import PatronClient
from tests.pg_server import PgServer
from tests.xmpp_servers import XmppServer

# The lease of the processes in these tests, unless a test keeps the shipped one: the
# shortest allowed, so a takeover after a crash fences for at most 2 s instead of 4. The
# fencing argument holds for any allowed lease; the shipped lease stays proven by
# `test_the_fence_waits_only_while_an_old_holder_may_still_serve` (the fence after a
# crash) and by the Prosody run of
# `test_an_active_process_cut_from_the_database_never_serves_with_the_new_one` (never
# two serving, every acknowledged line kept).
# 2 s rather than the least allowed (1 s): a test process on a loaded machine can stall
# its event loop for a second, and a standby running in it then stepped down at once
# after taking over (seen in a clean-clone CI run).
SHORT_LEASE = 2.0


async def cut_lock_sessions(url: str) -> int:
    """End the database sessions holding the active lock, as a network cut would."""
    admin = await asyncpg.connect(url)
    try:
        return int(
            await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
                " WHERE locktype = 'advisory' AND objid = $1 AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                ACTIVE_LOCK_KEY,
            )
        )
    finally:
        await admin.close()


async def xmpp_account(xmpp_server: XmppServer) -> tuple[str, str]:
    """A new account on the XMPP server: (bare JID, password)."""
    user, password = f"op{secrets.token_hex(3)}", secrets.token_hex(8)
    await xmpp_server.register(user, password)
    return f"{user}@{xmpp_server.domain}", password


async def operator_of_ask(url: str, xmpp_server: XmppServer) -> tuple[str, str]:
    """A new XMPP account registered in the PostgreSQL store at `url` as Ana, an operator
    of the queue `ask` (which `seed` made); (bare JID, password). Written before any
    refdesk process starts, as an admin would."""
    jid, password = await xmpp_account(xmpp_server)
    writer = await Store.open(url)
    try:
        operator = await writer.operators.upsert(jid, "Ana", 3, datetime.now(UTC))
        queue = await writer.queues.by_name("ask")
        assert queue is not None
        await writer.operators.assign(queue.id, operator.id)
    finally:
        await writer.close()
    return jid, password


async def test_one_holder_and_a_cut_connection_hands_the_lock_over(
    postgresql: PgServer,
) -> None:
    url = postgresql.fresh_url()
    first = ActiveLock(url, retry=0.05, check=0.05)
    second = ActiveLock(url, retry=0.05, check=0.05)
    try:
        assert await first.try_acquire()
        assert not await second.try_acquire()
        lost = asyncio.Event()
        watching = asyncio.create_task(first.watch(lost.set))
        waiting = asyncio.create_task(second.acquire())
        await asyncio.sleep(0.2)
        assert not waiting.done() and not lost.is_set()
        assert await cut_lock_sessions(url) == 1
        await asyncio.wait_for(lost.wait(), 10)
        await asyncio.wait_for(waiting, 10)
        await watching
        assert second.held and not first.held
    finally:
        await first.release()
        await second.release()


def test_the_check_and_the_fence_follow_the_lease() -> None:
    """The shipped lease gives the check and fence the fencing argument was made with;
    any lease keeps check < lease < fence, the fence 1 s past the lease."""
    assert (check_for(LEASE), LEASE, fence_for(LEASE)) == (1.0, 3.0, 4.0)
    for lease in (MIN_LEASE, 2.5, 60.0):
        assert check_for(lease) < lease < fence_for(lease) == lease + 1.0


def test_a_new_holder_outlasts_an_old_holder_with_a_longer_lease() -> None:
    """Each holder writes its lease into the record; a process taking over from one with
    a longer lease (an instance configured differently) fences for that one, and a
    shorter one leaves its own fence. A holder naming no readable lease (an older
    version) had the shipped one; no holder recorded leaves its own fence."""
    lock = ActiveLock("postgresql://nowhere/x", lease=1.0)
    assert lock._holder.endswith(", lease 1 s")
    assert lock._outlasting("db1 pid 7, lease 3 s") == 4.0
    assert lock._outlasting("db1 pid 7, lease 2.5 s") == 3.5
    assert lock._outlasting("db1 pid 7, lease 0.5 s") == 2.0
    assert lock._outlasting("db1 pid 7") == FENCE
    assert lock._outlasting(None) == 2.0
    assert lock._outlasting("db1 pid 7, lease 1e9 s") == FENCE
    assert lock._outlasting("db1 pid 7, lease 999999 s") == fence_for(60.0)


def test_fence_wait_follows_the_lease_record() -> None:
    """How long a new holder waits, from what the old one left: nothing after a clean
    release; the whole fence when no renewal was recorded; otherwise what is left of
    the fence after the last renewal, never more than the fence (a clock stepped back)."""
    assert fence_wait(released=True, age=0.0, fence=4.0) == 0.0
    assert fence_wait(released=True, age=None, fence=4.0) == 0.0
    assert fence_wait(released=False, age=None, fence=4.0) == 4.0
    assert fence_wait(released=False, age=1.5, fence=4.0) == 2.5
    assert fence_wait(released=False, age=4.0, fence=4.0) == 0.0
    assert fence_wait(released=False, age=60.0, fence=4.0) == 0.0
    assert fence_wait(released=False, age=-30.0, fence=4.0) == 4.0


async def lease_record(url: str) -> asyncpg.Record:
    """The lease record as the database holds it."""
    admin = await asyncpg.connect(url)
    try:
        record = await admin.fetchrow(
            "SELECT holder, renewed_at, released FROM refdesk_active_lease"
        )
    finally:
        await admin.close()
    assert record is not None
    return record


async def test_the_fence_waits_only_while_an_old_holder_may_still_serve(
    postgresql: PgServer,
) -> None:
    """A database set up before any process served (as the CLI does): the first holder
    waits nothing, and renews the lease record. It gives the lock up cleanly: the next
    one waits nothing either. That one is cut from the database instead: the next one
    waits out what is left of its lease, as the fence reports."""
    url = postgresql.fresh_url()
    await seed(url, ("ask",))
    assert (await lease_record(url))["released"] is True
    first, second, third = (ActiveLock(url, retry=0.05, check=0.05) for _ in range(3))
    try:
        assert await first.try_acquire()
        assert await first.fence() == 0.0
        record = await lease_record(url)
        assert record["released"] is False and record["renewed_at"] is not None
        assert record["holder"].endswith(", lease 3 s")
        await first.release()
        assert (await lease_record(url))["released"] is True

        assert await second.try_acquire()
        assert await second.fence() == 0.0
        assert await cut_lock_sessions(url) == 1
        await third.acquire()
        waited = await third.fence()
        assert 0.0 < waited <= FENCE
        assert third.held
    finally:
        for lock in (first, second, third):
            await lock.release()


async def test_a_lease_not_yet_renewed_or_not_fenced_is_waited_out_in_full(
    postgresql: PgServer,
) -> None:
    """The store is migrated while a process holds the lock (the active one at its very
    first start): until a holder renews the record, the next one waits the whole fence.
    A holder stopped during its fence does not mark the record released: the old holder
    it was waiting for may still be serving."""
    url = postgresql.fresh_url()
    first = ActiveLock(url, check=0.05, lease=0.1, fence=0.2)
    second = ActiveLock(url, retry=0.05, check=0.05, lease=0.1, fence=0.2)
    third = ActiveLock(url, retry=0.05, check=0.05, lease=29.0, fence=30.0)
    fencing: asyncio.Task[float] | None = None
    try:
        assert await first.try_acquire()
        assert await first.fence() == 0.2  # no record at all yet
        store = await Store.open(url)  # migrates while `first` holds the lock
        await store.close()
        record = await lease_record(url)
        assert (record["released"], record["renewed_at"]) == (False, None)
        assert await cut_lock_sessions(url) == 1
        await second.acquire()
        assert await second.fence() == 0.2
        renewed = (await lease_record(url))["renewed_at"]

        assert await cut_lock_sessions(url) == 1
        await third.acquire()
        fencing = asyncio.create_task(third.fence())
        while (await lease_record(url))["renewed_at"] == renewed:
            assert not fencing.done()
            await asyncio.sleep(0.02)
        fencing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fencing
        await third.release()
        assert (await lease_record(url))["released"] is False
    finally:
        if fencing is not None and not fencing.done():
            fencing.cancel()
        for lock in (first, second, third):
            await lock.release()


def desk_config(tmp: Path, url: str, server: XmppServer, lease: float = SHORT_LEASE) -> Config:
    config = make_config(tmp, xmpp_port=server.component_port)
    return replace(
        config,
        storage=StorageConfig(url=url, lease=lease),
        web=replace(config.web, port=free_port()),
    )


async def health(port: int) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        return response.status, await response.json()


async def until_serving(process: subprocess.Popen[str], port: int) -> None:
    """Wait until the `refdesk run` process `process` answers /healthz on `port` with 200
    (active, its component connected); it must not exit meanwhile. The answer must come
    from `process` itself: another test's desk may have taken the port first (see
    tests.listening), and answered 200 until it stopped."""
    while True:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            if (await health(port))[0] == 200 and listens_on(process.pid, port):
                return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)


async def connect_once_staffed(patron: PatronClient, op: OperatorClient, port: int) -> PatronClient:
    """Log the operator in, then connect a patron to "ask" on `port` until the queue shows
    the operator available (the offer needs them); returns the connected patron (a new
    one if `patron` had to be replaced)."""
    await op.connect()
    while True:
        await patron.connect()
        if patron.welcome and patron.welcome.get("status") == "available":
            return patron
        await patron.close()
        patron = PatronClient(f"http://127.0.0.1:{port}", "ask")
        await asyncio.sleep(0.2)


async def test_standby_waits_with_503_then_takes_over_the_component(
    xmpp_server: XmppServer, postgresql: PgServer, tmp_path: Path
) -> None:
    url = postgresql.fresh_url()
    await seed(url, ("ask",))
    active = Refdesk(desk_config(tmp_path / "a", url, xmpp_server))
    standby_config = desk_config(tmp_path / "b", url, xmpp_server)
    standby = Refdesk(standby_config)
    await active.start()
    active_running = True
    starting: asyncio.Task[None] | None = None
    try:
        # A fresh database: no process can have served, so no fence to wait.
        assert active.fence_waited == 0.0
        await asyncio.wait_for(active.adapter.online.wait(), 20)
        starting = asyncio.create_task(standby.start())
        port = standby_config.web.port

        async def answers() -> bool:
            try:
                return (await health(port))[0] == 503
            except aiohttp.ClientError:
                return False

        while not await answers():
            assert not starting.done(), "the standby did not wait"
            await asyncio.sleep(0.05)
        status, body = await health(port)
        assert (status, body["status"]) == (503, "standby")
        assert standby._adapter is None  # it never connected the component
        assert active.adapter.online.is_set()

        # The active one goes away: the standby takes the lock and the component.
        active_running = False
        await active.stop()
        await asyncio.wait_for(starting, 30)
        # It stopped cleanly (released the lease): taken over without the fence.
        assert standby.fence_waited == 0.0
        await asyncio.wait_for(standby.adapter.online.wait(), 30)
        status, body = await health(standby.port)
        assert status == 200, body
        assert [q.name for q in await standby.store.queues.all()] == ["ask"]

        # Cutting its lock's database session makes it give up being active.
        assert await cut_lock_sessions(url) == 1
        await asyncio.wait_for(standby.lost.wait(), 30)
    finally:
        if starting is not None and not starting.done():
            starting.cancel()
        await standby.stop()
        if active_running:
            await active.stop()


async def test_health_probe_reports_an_unreachable_database(postgresql: PgServer) -> None:
    url = postgresql.fresh_url()
    assert await probe_postgresql(url) is None
    gone = f"postgresql://{postgresql.user}@127.0.0.1:{free_port()}/nowhere"
    error = await probe_postgresql(gone, 2.0)
    assert error


def run_config(
    tmp: Path, url: str, server: XmppServer, web_port: int, lease: float = SHORT_LEASE
) -> Path:
    """A config file for `refdesk run` on the shared PostgreSQL database."""
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "refdesk.toml"
    path.write_text(
        write_config_toml(
            {
                "xmpp": {
                    "domain": COMPONENT_DOMAIN,
                    "secret": SECRET,
                    "port": server.component_port,
                    "reconnect_max_delay": 1.0,
                },
                "web": {"port": web_port, "password_hashing": "test"},
                "storage": {"url": url, "lease": lease},
            }
        ),
        "utf-8",
    )
    return path


def start_run(config: Path) -> subprocess.Popen[str]:
    """`refdesk run` on `config` as a process of its own; its stderr is kept for the
    test to read (the active process's reasons for stopping)."""
    return subprocess.Popen(
        [sys.executable, "-m", "component.cli", "--config", str(config), "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_a_killed_active_process_is_replaced_by_the_standby(
    xmpp_server: XmppServer, postgresql: PgServer, tmp_path: Path, stop: signal.Signals
) -> None:
    """SIGKILL of the active `refdesk run`: its database session and component stream
    die with it, and the in-process standby takes both over, after waiting out what is
    left of the killed one's lease; the time it took is printed (a figure, not a
    threshold). SIGTERM (a planned stop, `systemctl restart`): the active one stops
    cleanly and releases its lease, and the standby takes over without the fence."""
    url = postgresql.fresh_url()
    await seed(url, ("ask",))
    active_port = free_port()
    active = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "component.cli",
            "--config",
            str(run_config(tmp_path / "a", url, xmpp_server, active_port)),
            "run",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    standby = Refdesk(desk_config(tmp_path / "b", url, xmpp_server))
    starting: asyncio.Task[None] | None = None
    try:
        await until_serving(active, active_port)
        starting = asyncio.create_task(standby.start())
        port = standby.config.web.port
        while True:
            try:
                if (await health(port))[1].get("status") == "standby":
                    break
            except aiohttp.ClientError:
                pass
            assert not starting.done(), "the standby did not wait"
            await asyncio.sleep(0.05)

        killed_at = time.monotonic()
        active.send_signal(stop)
        assert active.wait() == (0 if stop == signal.SIGTERM else -signal.SIGKILL)
        await asyncio.wait_for(starting, 60)
        await asyncio.wait_for(standby.adapter.online.wait(), 60)
        status, body = await health(standby.port)
        assert status == 200, body
        assert standby.fence_waited is not None
        if stop == signal.SIGTERM:
            assert standby.fence_waited == 0.0
        else:
            # The killed holder renewed its lease at most a check before the kill, so the
            # standby waits unless taking the lock itself took longer than the rest of
            # the fence (a stalled machine): then waiting nothing is right.
            took = time.monotonic() - killed_at
            fence = fence_for(SHORT_LEASE)
            assert 0.0 <= standby.fence_waited <= fence
            assert standby.fence_waited > 0.0 or took >= fence - check_for(SHORT_LEASE), took
        print(
            f"takeover after {stop.name}: {time.monotonic() - killed_at:.2f} s"
            f" (fence {standby.fence_waited:.2f} s)"
        )
    finally:
        if active.poll() is None:
            active.kill()
            active.wait()
        if active.stderr:
            active.stderr.close()
        if starting is not None and not starting.done():
            starting.cancel()
        await standby.stop()


async def test_an_active_process_cut_from_its_lock_exits_and_the_standby_takes_over(
    xmpp_server: XmppServer, postgresql: PgServer, tmp_path: Path
) -> None:
    """The database session of the lock is cut: `refdesk run` stops being active and
    exits non-zero (for its supervisor to restart it, as a standby), and the standby
    takes over. The times are printed (figures, not thresholds)."""
    url = postgresql.fresh_url()
    await seed(url, ("ask",))
    port = free_port()
    active = start_run(run_config(tmp_path / "a", url, xmpp_server, port))
    standby = Refdesk(desk_config(tmp_path / "b", url, xmpp_server))
    starting: asyncio.Task[None] | None = None
    try:
        while True:
            assert active.poll() is None
            try:
                if (await health(port))[0] == 200 and listens_on(active.pid, port):
                    break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        starting = asyncio.create_task(standby.start())
        await asyncio.sleep(0.5)
        assert not starting.done()
        cut_at = time.monotonic()
        assert await cut_lock_sessions(url) == 1
        _, err = await asyncio.to_thread(active.communicate, timeout=60)
        assert active.returncode != 0
        assert "lost the database's active lock" in err
        exited = time.monotonic() - cut_at
        # The standby takes over the lock and then the component.
        await asyncio.wait_for(starting, 60)
        await asyncio.wait_for(standby.adapter.online.wait(), 60)
        assert (await health(standby.port))[0] == 200
        print(
            f"after the cut: old active exited in {exited:.2f} s,"
            f" standby serving in {time.monotonic() - cut_at:.2f} s"
            f" (fence {standby.fence_waited:.2f} s)"
        )
    finally:
        if active.poll() is None:
            active.kill()
            active.communicate()
        if starting is not None and not starting.done():
            starting.cancel()
        await standby.stop()


async def test_a_chat_goes_on_after_the_standby_takes_over(
    xmpp_server: XmppServer, postgresql: PgServer, tmp_path: Path
) -> None:
    """A chat in progress on the active instance: after it stops and the standby takes
    over, the patron resumes with the same token and both sides keep talking, with no
    line lost on either side."""
    url = postgresql.fresh_url()
    await seed(url, ("ask",))
    active = Refdesk(desk_config(tmp_path / "a", url, xmpp_server))
    standby_config = desk_config(tmp_path / "b", url, xmpp_server)
    standby = Refdesk(standby_config)
    jid, password = await xmpp_account(xmpp_server)
    op = OperatorClient(jid, password, xmpp_server.host, xmpp_server.c2s_port)
    patron = PatronClient(f"http://127.0.0.1:{active.config.web.port}", "ask")
    resumed: PatronClient | None = None
    starting: asyncio.Task[None] | None = None
    active_running = False
    try:
        await active.start()
        active_running = True
        await asyncio.wait_for(active.adapter.online.wait(), 20)
        store = active.store
        operator = await store.operators.upsert(jid, "Ana", 3, datetime.now(UTC))
        queue = await store.queues.by_name("ask")
        assert queue is not None
        await store.operators.assign(queue.id, operator.id)
        await active.service.reload_directory()
        await op.connect()
        for _ in range(300):
            if active.service.presence_of(jid).takes_chats:
                break
            await asyncio.sleep(0.05)
        patron = PatronClient(f"http://127.0.0.1:{active.port}", "ask")
        await patron.connect()
        await patron.say("Before the takeover?")
        offer = await op.next_message()
        guest = offer["from"].bare
        op.send_message(guest, "Answer one.")
        await patron.next("message", lambda f: f["text"] == "Answer one.")
        assert "You took this chat" in (await op.next_message(guest))["body"]

        starting = asyncio.create_task(standby.start())
        await asyncio.sleep(0.5)
        assert not starting.done()
        await patron.drop()
        active_running = False
        await active.stop()
        await asyncio.wait_for(starting, 30)
        await asyncio.wait_for(standby.adapter.online.wait(), 30)

        resumed = PatronClient(f"http://127.0.0.1:{standby.port}", "ask")
        welcome = await resumed.connect(resume=patron.resume, last_seq=patron.last_seq)
        assert welcome["resumed"] is True and welcome["chat"] == patron.chat_id
        await resumed.say("After the takeover?")
        line = await op.next_message(guest, timeout=30)
        assert line["body"] == "After the takeover?"
        op.send_message(guest, "Answer two.")
        await resumed.next("message", lambda f: f["text"] == "Answer two.", timeout=30)
        texts = [e.text for e in await standby.store.chats.events_after(patron.chat_id, 0)]
        for said in ("Before the takeover?", "Answer one.", "After the takeover?", "Answer two."):
            assert texts.count(said) == 1, texts
    finally:
        if resumed is not None:
            await resumed.close()
        await patron.close()
        await op.disconnect()
        if starting is not None and not starting.done():
            starting.cancel()
        await standby.stop()
        if active_running:
            await active.stop()


async def test_sigkill_mid_chat_loses_no_acknowledged_line(
    xmpp_server: XmppServer, postgresql: PgServer, tmp_path: Path
) -> None:
    """The active `refdesk run` is killed (SIGKILL) in the middle of a chat: the standby
    takes over, the patron resumes with its token, every line acknowledged before the
    kill is in the transcript once, and the chat goes on both ways. The time from the
    kill to the patron's resumed welcome is printed (a figure, not a threshold)."""
    url = postgresql.fresh_url()
    await seed(url, ("ask",))
    jid, password = await operator_of_ask(url, xmpp_server)
    active_port = free_port()
    active = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "component.cli",
            "--config",
            str(run_config(tmp_path / "a", url, xmpp_server, active_port)),
            "run",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    standby = Refdesk(desk_config(tmp_path / "b", url, xmpp_server))
    op = OperatorClient(jid, password, xmpp_server.host, xmpp_server.c2s_port)
    patron = PatronClient(f"http://127.0.0.1:{active_port}", "ask")
    resumed: PatronClient | None = None
    starting: asyncio.Task[None] | None = None
    try:
        await until_serving(active, active_port)
        patron = await connect_once_staffed(patron, op, active_port)
        acknowledged = [await patron.say(f"patron line {n}") for n in range(1, 4)]
        offer = await op.next_message()
        guest = offer["from"].bare
        op.send_message(guest, "operator line 1")
        await patron.next("message", lambda f: f["text"] == "operator line 1")
        # The operator has every acknowledged patron line (the first one in the offer).
        seen = [offer["body"]]
        while not all(any(f"patron line {n}" in b for b in seen) for n in (1, 2, 3)):
            seen.append((await op.next_message(guest))["body"])
        starting = asyncio.create_task(standby.start())
        await asyncio.sleep(0.5)
        assert not starting.done()

        killed_at = time.monotonic()
        active.send_signal(signal.SIGKILL)
        active.wait()
        await asyncio.wait_for(starting, 60)
        resumed = PatronClient(f"http://127.0.0.1:{standby.port}", "ask")
        welcome = await resumed.connect(resume=patron.resume, last_seq=patron.last_seq)
        print(f"patron resumed {time.monotonic() - killed_at:.2f} s after SIGKILL")
        assert welcome["resumed"] is True and welcome["chat"] == patron.chat_id
        await asyncio.wait_for(standby.adapter.online.wait(), 60)
        await resumed.say("patron line 4")
        after = [(await op.next_message(guest, timeout=30))["body"]]
        while after[-1] != "patron line 4":
            after.append((await op.next_message(guest, timeout=30))["body"])
        # Before it may come lines the operator had already: those relayed after the
        # killed process last saved its relay cursors (every two seconds) go out again,
        # at least once rather than at most once. Counted, not judged.
        again = [b for b in after[:-1] if b.startswith("patron line")]
        print(f"patron lines sent to the operator again after the takeover: {len(again)}")
        op.send_message(guest, "operator line 2")
        await resumed.next("message", lambda f: f["text"] == "operator line 2", timeout=30)
        texts = [e.text for e in await standby.store.chats.events_after(patron.chat_id, 0)]
        assert len(acknowledged) == 3
        for n in range(1, 5):
            assert texts.count(f"patron line {n}") == 1, texts
        for n in range(1, 3):
            assert texts.count(f"operator line {n}") == 1, texts
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
