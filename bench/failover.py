"""Takeover of a standby on PostgreSQL: time to serve again, lines lost and duplicated.

    python -m bench.failover [--quick] [--chats N] [--runs N] [--settle S]

The stack of tests/test_failover_nginx.py: nginx (the shipped site file, TLS, both
instances as upstreams, `proxy_next_upstream ... http_503`), one Prosody, one throwaway
PostgreSQL, two `refdesk run` processes (each reaching PostgreSQL through a relay whose
connections can be frozen). N chats through nginx, patron and operator lines in flight
both ways. Per run, three scenarios:

- **sigkill**: SIGKILL of the active process; the standby takes over.
- **sigterm**: a planned stop of the active process (SIGTERM, as `systemctl stop` sends);
  it releases its lease and the standby takes over without the fence.
- **cut**: the network between the active process and its lock's database session fails
  (frozen, and the session ended on the server, as its keep-alive would); the active
  process steps down when its lease runs out, the standby takes over after its fence.
- **restart** (the baseline): one instance only; SIGKILL and start it again at once, as
  a supervisor would.
- **planned**: one instance only; SIGTERM and start it again at once (`systemctl
  restart`).

The killed (or cut) instance is started again and becomes the standby for the next
scenario. Takeover time: from the event to the first patron line acknowledged again (the
first chat back) and to the last chat back. Lines: every patron line acknowledged must
reach the operator, every operator line stored must reach the patron; duplicates are
counted (only lines in flight may be, with the same id). A patron whose line got no
acknowledgement sends it again with the same id after resuming, as the widget does.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.common import (
    base_parser,
    command_line,
    facts_markdown,
    finish,
    fmt,
    machine_facts,
    md_table,
)
from bench.stack import COMPONENT_DOMAIN, BenchStack, start_child, stop_child, wait_http
from component.config import write_config_toml
from component.prosody import free_port
from component.store import Store
from tests.operator_client import OperatorClient
from tests.patron_client import PatronClient
from tests.pg_server import FreezingProxy, PgServer, lock_client_port
from tests.test_nginx_proxy import (
    NGINX_IP,
    SITE_FILE,
    Nginx,
    fill_site_file,
    free_port_on,
    self_signed,
)

QUEUE = "ask"
PACE = 0.25  # seconds between two lines of one side of one chat
SCENARIOS = ("sigkill", "sigterm", "cut", "restart", "planned")
# Scenarios with one instance (the other is stopped for them).
SINGLE = ("restart", "planned")


@dataclass
class Instance:
    """One `refdesk run` process with its config (web port, database via its relay)."""

    name: str
    config: Path
    port: int
    proxy: FreezingProxy
    log: Path
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await start_child(
            sys.executable, "-m", "component.cli", "--config", str(self.config), "run",
            log=self.log,
        )  # fmt: skip

    async def health(self, http: aiohttp.ClientSession) -> int:
        try:
            async with http.get(f"http://127.0.0.1:{self.port}/healthz") as response:
                return response.status
        except aiohttp.ClientError:
            return 0

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        assert self.process is not None
        self.process.send_signal(sig)


@dataclass
class Chat:
    """One patron through nginx and what each side sent and received."""

    n: int
    patron: PatronClient
    guest: str = ""
    acked: list[str] = field(default_factory=list)
    operator_sent: list[str] = field(default_factory=list)
    back_at: float | None = None
    # Set when the patron reconnected after the event: its acknowledgements now come
    # from the process that took over.
    moved: bool = False


def patron_via(url: str) -> PatronClient:
    patron = PatronClient(url, QUEUE)
    patron.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
    return patron


async def seed(url: str, jid: str, max_chats: int) -> None:
    store = await Store.open(url)
    try:
        now = datetime.now(UTC)
        group = await store.groups.add("bench", "Bench library", now)
        queue = await store.queues.add(QUEUE, group.id, "Ask a librarian", None, now)
        op = await store.operators.upsert(jid, "Operator", max_chats, now)
        await store.operators.assign(queue.id, op.id)
    finally:
        await store.close()


def write_config(path: Path, *, xmpp_port: int, secret: str, web_port: int, url: str,
                 public: str) -> None:  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        write_config_toml(
            {
                "xmpp": {
                    "domain": COMPONENT_DOMAIN,
                    "secret": secret,
                    "port": xmpp_port,
                    "reconnect_max_delay": 1.0,
                },
                "web": {"host": "127.0.0.1", "port": web_port, "public_url": public},
                "storage": {"url": url},
                "limits": {
                    "chats_per_address": 1_000_000,
                    "chats_per_network": 1_000_000,
                    "messages_per_second": 1_000_000.0,
                    "message_burst": 1_000_000,
                },
            }
        ),
        "utf-8",
    )


class Bench:
    """The running stack; `scenario` runs one takeover."""

    def __init__(self, stack: BenchStack, url: str, public: str, instances: list[Instance],
                 op: OperatorClient) -> None:  # fmt: skip
        self.stack = stack
        self.url = url
        self.public = public
        self.instances = instances
        self.op = op
        self.received: list[tuple[str, str]] = []  # (guest, body) the operator got
        self._collector: asyncio.Task[None] | None = None

    async def active_and_standby(self, http: aiohttp.ClientSession, standby: bool) -> Instance:
        """Wait until one instance serves (and the other, if wanted, stands by)."""
        for instance in self.instances:
            stopped = instance.process is None or instance.process.returncode is not None
            if stopped and (standby or instance is self.instances[0]):
                await instance.start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            states = [await i.health(http) for i in self.instances]
            if 200 in states and (not standby or 503 in states):
                return self.instances[states.index(200)]
            await asyncio.sleep(0.1)
        raise RuntimeError(f"no active instance: {states}\n{self.logs()}")

    def logs(self, tail: int = 3000) -> str:
        """The end of each instance's log, for the message of a run that failed (the
        stack's directory is deleted with it)."""
        parts = []
        for instance in self.instances:
            text = instance.log.read_text("utf-8", "replace") if instance.log.exists() else ""
            parts.append(f"--- {instance.name}.log (last {tail} characters) ---\n{text[-tail:]}")
        return "\n".join(parts)

    async def collect(self) -> None:
        """Keep every message the operator gets (offers, relayed lines, notes)."""
        while True:
            msg = await self.op.next_message(None, timeout=3600)
            self.received.append((str(msg["from"].bare), str(msg["body"])))

    async def open_chats(self, count: int, tag: str) -> list[Chat]:
        chats = []
        for n in range(count):
            patron = patron_via(self.public)
            welcome = await patron.connect()
            assert welcome.get("status") == "available", welcome
            chat = Chat(n, patron)
            first = f"{tag} c{n} p0"
            await patron.say(first, f"{tag}-c{n}-p0")
            chat.acked.append(first)
            chats.append(chat)
        deadline = time.monotonic() + 60
        for chat in chats:
            first = chat.acked[0]
            while not chat.guest:
                chat.guest = next((g for g, b in self.received if first in b), "")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no offer for {first}")
                await asyncio.sleep(0.05)
            taken = f"{tag} c{chat.n} o0"
            self.op.send_message(chat.guest, taken)
            chat.operator_sent.append(taken)
            await chat.patron.seen("message", lambda f, t=taken: f["text"] == t, timeout=30)
        return chats

    async def patron_talks(self, chat: Chat, tag: str, event: asyncio.Event,
                           talking: asyncio.Event) -> None:  # fmt: skip
        n = 1
        pending: tuple[str, str] | None = None
        while talking.is_set() or pending is not None:
            if pending is None:
                pending = (f"{tag}-c{chat.n}-p{n}", f"{tag} c{chat.n} p{n}")
                n += 1
            cid, text = pending
            try:
                await chat.patron.say(text, cid)
            except (AssertionError, aiohttp.ClientError, ConnectionError):
                await self.resume(chat)
                chat.moved = event.is_set()
                continue
            chat.acked.append(text)
            pending = None
            if chat.moved and chat.back_at is None:
                chat.back_at = time.monotonic()
            await asyncio.sleep(PACE)

    async def resume(self, chat: Chat) -> None:
        """The widget's reconnection: the same address, the token, the last seq."""
        with contextlib.suppress(Exception):
            await chat.patron.drop()
        while True:
            try:
                welcome = await chat.patron.connect(
                    resume=chat.patron.resume, last_seq=chat.patron.last_seq
                )
                if welcome.get("resumed"):
                    return
            except (AssertionError, aiohttp.ClientError, ConnectionError):
                pass
            with contextlib.suppress(Exception):
                await chat.patron.drop()
            await asyncio.sleep(0.1)

    async def operator_talks(self, chat: Chat, tag: str, talking: asyncio.Event) -> None:
        n = 1
        while talking.is_set():
            text = f"{tag} c{chat.n} o{n}"
            self.op.send_message(chat.guest, text)
            chat.operator_sent.append(text)
            n += 1
            await asyncio.sleep(PACE)

    async def scenario(
        self, kind: str, chats_count: int, tag: str, settle: float
    ) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http:
            if kind in SINGLE:
                await stop_child(self.instances[1].process)
                self.instances[1].process = None
                self.instances.sort(key=lambda i: i.process is None)
            active = await self.active_and_standby(http, standby=kind not in SINGLE)
            chats = await self.open_chats(chats_count, tag)
            event, talking = asyncio.Event(), asyncio.Event()
            talking.set()
            tasks = [asyncio.create_task(self.patron_talks(c, tag, event, talking)) for c in chats]
            tasks += [asyncio.create_task(self.operator_talks(c, tag, talking)) for c in chats]
            await asyncio.sleep(settle)
            if kind == "cut":
                lock_port = await lock_client_port(self.url)
                active.proxy.freeze(lock_port)
            at = time.monotonic()
            event.set()
            if kind == "cut":
                admin = await asyncpg.connect(self.url)
                try:
                    await admin.fetchval(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE client_port = $1",
                        lock_port,
                    )
                finally:
                    await admin.close()
            else:
                active.kill(signal.SIGTERM if kind in ("sigterm", "planned") else signal.SIGKILL)
            assert active.process is not None
            await active.process.wait()
            if kind in SINGLE:
                await active.start()
            deadline = time.monotonic() + 120
            while any(c.back_at is None for c in chats):
                if time.monotonic() > deadline:
                    back = [(c.n, c.moved, len(c.acked)) for c in chats if c.back_at is None]
                    raise RuntimeError(
                        f"chats did not come back (chat, moved, lines acked): {back}\n"
                        + self.logs()
                    )
                await asyncio.sleep(0.05)
            await asyncio.sleep(settle)
            talking.clear()
            await asyncio.gather(*tasks)
            # Drain: a last line each way per chat, then compare.
            for chat in chats:
                last = f"{tag} c{chat.n} p-last"
                await chat.patron.say(last, f"{tag}-c{chat.n}-p-last")
                chat.acked.append(last)
                op_last = f"{tag} c{chat.n} o-last"
                self.op.send_message(chat.guest, op_last)
                chat.operator_sent.append(op_last)
            deadline = time.monotonic() + 60
            for chat in chats:
                while not any(b == f"{tag} c{chat.n} p-last" for _, b in self.received):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the last patron line did not arrive\n" + self.logs())
                    await asyncio.sleep(0.05)
                await chat.patron.seen(
                    "message", lambda f, t=f"{tag} c{chat.n} o-last": f["text"] == t, timeout=60
                )
            result = await self.account(chats, at)
            for chat in chats:
                with contextlib.suppress(Exception):
                    await chat.patron.send({"type": "end"})
                await chat.patron.close()
            # The instance that went down is started again: the standby from now on.
            if active.process is None or active.process.returncode is not None:
                await active.start()
            if kind in SINGLE:
                await self.instances[1].start()
            await self.active_and_standby(http, standby=True)
            await asyncio.sleep(0.5)
        return result

    async def account(self, chats: list[Chat], at: float) -> dict[str, Any]:
        store = await Store.open(self.url)
        try:
            lost = duplicates = op_lost = op_duplicates = stored_twice = 0
            for chat in chats:
                assert chat.patron.chat_id is not None
                texts = Counter(
                    e.text for e in await store.chats.events_after(chat.patron.chat_id, 0)
                )
                stored_twice += sum(1 for count in texts.values() if count > 1)
                bodies = Counter(b for g, b in self.received if g == chat.guest)
                for text in chat.acked:
                    got = bodies[text] + sum(1 for b in bodies if b != text and text in b)
                    lost += got == 0
                    duplicates += got > 1
                # Distinct stored lines (seq) per text: a replay of the same seq after a
                # resume is no duplicate (the widget shows each seq once).
                seen = Counter(
                    f["text"]
                    for f in {
                        f["seq"]: f for f in chat.patron.frames if f["type"] == "message"
                    }.values()
                )
                for text in chat.operator_sent:
                    if texts[text]:
                        op_lost += seen[text] == 0
                    op_duplicates += seen[text] > 1
        finally:
            await store.close()
        backs = sorted(c.back_at - at for c in chats if c.back_at is not None)
        return {
            "first_back_s": backs[0],
            "last_back_s": backs[-1],
            "patron_acked": sum(len(c.acked) for c in chats),
            "patron_lost": lost,
            "patron_duplicates": duplicates,
            "operator_sent": sum(len(c.operator_sent) for c in chats),
            "operator_lost": op_lost,
            "operator_duplicates": op_duplicates,
            "stored_twice": stored_twice,
        }


async def run(chats: int, runs: int, settle: float = 1.0) -> dict[str, Any]:
    result: dict[str, Any] = {"chats": chats, "runs": runs, "settle_s": settle}
    pg = await asyncio.to_thread(PgServer.start)
    try:
        url = await asyncio.to_thread(pg.fresh_url)
        async with BenchStack() as stack:
            prosody = await stack.start_prosody()
            result["facts"] = machine_facts(stack.prosody_config)
            password = "bench-password"
            [jid] = await stack.register(["op0"], password)
            await seed(url, jid, max(chats, 1) * 3)
            https_port, http_port = free_port_on(NGINX_IP), free_port_on(NGINX_IP)
            public = f"https://{NGINX_IP}:{https_port}"
            cert, key = self_signed(stack.workdir, NGINX_IP)
            ports = [free_port(), free_port()]
            site = fill_site_file(
                SITE_FILE.read_text("utf-8"),
                https_port=https_port,
                http_port=http_port,
                upstream=ports[0],
                cert=cert,
                key=key,
            ).replace(
                f"server 127.0.0.1:{ports[0]};",
                f"server 127.0.0.1:{ports[0]} max_fails=0;\n"
                f"    server 127.0.0.1:{ports[1]} max_fails=0;",
            )
            site = "proxy_next_upstream error timeout http_503;\n" + site
            nginx = Nginx(stack.workdir / "nginx", site)
            instances = []
            for name, port in zip("ab", ports, strict=True):
                proxy = FreezingProxy(pg.port)
                via = url.replace(f":{pg.port}/", f":{await proxy.start()}/")
                config = stack.workdir / name / "refdesk.toml"
                write_config(config, xmpp_port=prosody.component_port, secret=stack.secret,
                             web_port=port, url=via, public=public)  # fmt: skip
                instances.append(Instance(name, config, port, proxy, stack.workdir / f"{name}.log"))
            op = OperatorClient(jid, password, prosody.host, prosody.c2s_port)
            bench = Bench(stack, url, public, instances, op)
            try:
                await nginx.start(https_port)
                await instances[0].start()
                await wait_http(f"http://127.0.0.1:{ports[0]}/healthz", 60)
                await op.connect()
                bench._collector = asyncio.create_task(bench.collect())
                async with aiohttp.ClientSession() as http:
                    await bench.active_and_standby(http, standby=True)
                samples: dict[str, list[dict[str, Any]]] = {k: [] for k in SCENARIOS}
                for r in range(runs):
                    for kind in SCENARIOS:
                        print(f"run {r + 1} of {runs}: {kind}", file=sys.stderr, flush=True)
                        tag = f"r{r}s{SCENARIOS.index(kind)}"
                        figures = await bench.scenario(kind, chats, tag, settle)
                        print(f"  {figures}", file=sys.stderr, flush=True)
                        samples[kind].append(figures)
                result["samples"] = samples
            finally:
                if bench._collector is not None:
                    bench._collector.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await bench._collector
                await op.disconnect()
                for instance in instances:
                    await stop_child(instance.process)
                    await instance.proxy.stop()
                await nginx.stop()
    finally:
        await asyncio.to_thread(pg.stop)
    return result


def markdown(result: dict[str, Any]) -> str:
    names = {
        "sigkill": "SIGKILL of the active, standby takes over",
        "sigterm": "SIGTERM of the active (planned stop), standby takes over",
        "cut": "database connection of the active cut",
        "restart": "baseline: one instance, SIGKILL and immediate restart",
        "planned": "one instance, SIGTERM and immediate restart (`systemctl restart`)",
    }
    rows = []
    for kind, name in names.items():
        each = result["samples"][kind]

        def med(key: str, each: list[dict[str, Any]] = each) -> float:
            return float(statistics.median(s[key] for s in each))

        def total(key: str, each: list[dict[str, Any]] = each) -> str:
            return str(sum(int(s[key]) for s in each))

        rows.append(
            [
                name,
                fmt(med("first_back_s"), 2),
                fmt(med("last_back_s"), 2),
                " / ".join(fmt(s["last_back_s"], 2) for s in each),
                f"{total('patron_acked')} / {total('patron_lost')} / {total('patron_duplicates')}",
                f"{total('operator_sent')} / {total('operator_lost')}"
                f" / {total('operator_duplicates')}",
                total("stored_twice"),
            ]
        )
    table = md_table(
        ["scenario", "first chat back s (median)", "last chat back s (median)", "each run",
         "patron lines acked / lost / duplicated", "operator lines sent / lost / duplicated",
         "lines stored twice"],
        rows,
    )  # fmt: skip
    return f"""## Failover: standby takeover on PostgreSQL behind nginx

Command: `{command_line()}`

{facts_markdown(result["facts"])}

Method: nginx (the shipped site file, both instances as upstreams with `max_fails=0` and
`proxy_next_upstream error timeout http_503`), one Prosody, one PostgreSQL, two `refdesk
run` processes; {result["chats"]} chats through nginx with a patron line and an operator
line every {PACE} s per chat; {result["runs"]} runs of each scenario. *Back*: from the
signal (or the cut) to a patron line acknowledged again, for the first and the last chat.
*Lost*: an acknowledged patron line the operator never got, or an operator line stored
but never shown to the patron (must be 0). *Duplicated*: lines received twice (lines in
flight at the event, same ids). Operator lines sent while no process was active are
refused by the XMPP server (bounced to the operator, never stored): not counted as lost.

{table}
"""


def main() -> None:
    parser = base_parser("bench.failover", __doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, help="chats in flight (10; quick 2)")
    parser.add_argument("--runs", type=int, help="runs of each scenario (3; quick 1)")
    parser.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="seconds the chats talk before the event and again once all are back (1.0)",
    )
    args = parser.parse_args()
    q = args.quick
    result = asyncio.run(
        run(
            chats=args.chats or (2 if q else 10),
            runs=args.runs or (1 if q else 3),
            settle=args.settle,
        )
    )
    finish(args, "failover", result, markdown(result))


if __name__ == "__main__":
    main()
