"""Time per routing decision with 500 operators, against a trivial function call.

    python -m bench.routing [--quick] [--operators 500] [--chats 1000] [--bans 100000]

- the pure functions of `component/core/routing.py` (`eligible`, `queue_status`, and
  `next_in_turn` when present) over 500 `OperatorLoad`s;
- `DeskService.queue_info` (what the status endpoint and every patron status frame cost)
  with 500 operators loaded from a real SQLite store (no XMPP), their presence set
  through `on_operator_presence`, with no open chat and with `--chats` open chats;
- `DeskService.loads` + `eligible`: the decision as the service makes it for a new chat;
- ban checks: `BanIndex.match` over `--bans` bans built in memory, and
  `service.moderation.banned(address)` through a real `DeskService` whose `--stored-bans`
  bans were stored with `store.bans.add`, plus the time of `Moderation.load()`.

Baseline: a call of a trivial Python function (returns its argument), measured in the same
run with the same loop, so the ratio says how many plain calls one decision is worth.
Each figure is the median of `--repeat` timed loops (the minimum is shown too).
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from pathlib import Path
from typing import Any

from bench.common import (
    base_parser,
    command_line,
    facts_markdown,
    finish,
    fmt,
    machine_facts,
    md_table,
)
from component.core import routing
from component.core.models import Presence
from component.core.routing import OperatorLoad, eligible, queue_status
from component.service import DeskService
from component.store import Store

QUEUE = "ask"
_PRESENCE_MIX = (
    [Presence.AVAILABLE] * 50
    + [Presence.CHAT] * 10
    + [Presence.AWAY] * 15
    + [Presence.XA] * 5
    + [Presence.DND] * 5
    + [Presence.OFFLINE] * 15
)


def trivial(value: object) -> object:
    return value


def time_per_call(fn: Callable[[], object], number: int, repeat: int) -> dict[str, float]:
    """Median and minimum nanoseconds per call of `fn` over `repeat` loops of `number`."""
    fn()  # warm caches
    per_call = []
    for _ in range(repeat):
        began = time.perf_counter_ns()
        for _ in range(number):
            fn()
        per_call.append((time.perf_counter_ns() - began) / number)
    return {
        "median_ns": statistics.median(per_call),
        "min_ns": min(per_call),
        "number": number,
        "repeat": repeat,
    }


def make_loads(count: int, rng: random.Random) -> list[OperatorLoad]:
    loads = []
    for n in range(count):
        max_chats = rng.choice((2, 3, 4, 5))
        loads.append(
            OperatorLoad(
                jid=f"op{n:04d}@example.org",
                presence=rng.choice(_PRESENCE_MIX),
                active_chats=rng.randint(0, max_chats),
                max_chats=max_chats,
            )
        )
    return loads


async def service_with(operators: int, workdir: Path, rng: random.Random) -> DeskService:
    store = await Store.open(workdir / "routing.sqlite3")
    now = datetime.now(UTC)
    group = await store.groups.add("bench", "Bench library", now)
    queue = await store.queues.add(QUEUE, group.id, "Ask a librarian (bench)", None, now)
    for n in range(operators):
        op = await store.operators.upsert(f"op{n:04d}@example.org", f"Op {n}", 5, now)
        await store.operators.assign(queue.id, op.id)
    service = DeskService(store, domain="desk.localhost")
    await service.start()
    for n in range(operators):
        presence = rng.choice(_PRESENCE_MIX)
        if presence is not Presence.OFFLINE:
            await service.on_operator_presence(f"op{n:04d}@example.org", "bench", presence)
    return service


def make_bans(count: int, now: datetime) -> list[Any]:
    """`count` active bans with a fixed random mix: 60 % single IPv4 addresses, 20 % IPv4
    /24 networks, 20 % IPv6 /64 networks (ids 1..count)."""
    from component.core.bans import Ban

    rng = random.Random(7)
    start, end = now - timedelta(days=1), now + timedelta(days=30)
    bans = []
    for n in range(count):
        kind = n % 5
        if kind < 3:
            net = ip_network(f"203.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}")
        elif kind == 3:
            net = ip_network(f"198.{rng.randrange(256)}.{rng.randrange(256)}.0/24")
        else:
            net = ip_network(f"2001:db8:{rng.randrange(65536):x}:{rng.randrange(65536):x}::/64")
        bans.append(Ban(n + 1, net, 1, "bench", start, end))
    return bans


def probe_addresses(bans: list[Any]) -> dict[str, str]:
    """Addresses to check: not banned and banned, IPv4 and IPv6."""
    return {
        "IPv4 not banned": "192.0.2.45",
        "IPv4 banned (single address)": str(bans[0].network.network_address),
        "IPv4 in a banned /24": str(next(b.network for b in bans if b.network.prefixlen == 24)[7]),
        "IPv6 not banned": "2001:db8:ffff:1::5",
        "IPv6 in a banned /64": str(
            next(b.network for b in bans if b.network.version == 6)[0x1234]
        ),
    }


def ban_cases(count: int, number: int, repeat: int) -> dict[str, dict[str, float]]:
    """`BanIndex.match` (the pure look-up at every patron entry) with `count` active bans
    built in memory, if this version of refdesk has bans."""
    try:
        from component.core.ban_index import BanIndex
    except ImportError:  # before the index had a module of its own
        try:
            from component.core.bans import BanIndex  # type: ignore[attr-defined,no-redef]
        except ImportError:
            return {}
    now = datetime.now(UTC)
    bans = make_bans(count, now)
    began = time.perf_counter()
    index = BanIndex(bans)
    build_s = time.perf_counter() - began
    cases = {}
    for label, address in probe_addresses(bans).items():
        cases[f"ban check BanIndex.match(), {count:,} bans, {label}"] = time_per_call(
            lambda a=address: index.match(a, now), number, repeat
        )
    cases[f"ban check BanIndex.match(), {count:,} bans, IPv4 not banned"]["build_s"] = build_s
    return cases


async def ban_service_cases(
    count: int, number: int, repeat: int, workdir: Path
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """The check as a patron meets it: `service.moderation.banned(address)` (what
    `web/patron_session.py` calls at every hello) through a real `DeskService` whose
    `count` bans were stored with `store.bans.add` one by one. The store is opened with
    synchronous=OFF for that loading only (it is set-up, not measured; 100,000 fsyncs would
    take minutes), then closed and reopened as refdesk opens it. Also times
    `Moderation.load()` (the start-up load, repeated whenever the store changed)."""
    if importlib.util.find_spec("component.core.ban_index") is None:
        try:
            from component.core.bans import BanIndex  # type: ignore[attr-defined] # noqa: F401
        except ImportError:
            return {}, {}
    now = datetime.now(UTC)
    bans = make_bans(count, now)
    path = workdir / "bans.sqlite3"
    loading = await Store.open(path, synchronous="OFF")
    began = time.perf_counter()
    try:
        group = await loading.groups.add("bench", "Bench library", now)
        await loading.queues.add(QUEUE, group.id, "Ask a librarian (bench)", None, now)
        for ban in bans:
            await loading.bans.add(ban, now)
    finally:
        await loading.close()
    stored_s = time.perf_counter() - began
    store = await Store.open(path)
    service = DeskService(store, domain="desk.localhost")
    began = time.perf_counter()
    await service.start()
    start_s = time.perf_counter() - began
    cases: dict[str, dict[str, float]] = {}
    try:
        loads = []
        for _ in range(3):
            began = time.perf_counter()
            await service.moderation.load()
            loads.append(time.perf_counter() - began)
        moderation = service.moderation
        for label, address in probe_addresses(bans).items():
            if "single" in label or "/64" in label:
                continue
            cases[f"service.moderation.banned(), {count:,} stored bans, {label}"] = time_per_call(
                lambda a=address: moderation.banned(a), number, repeat
            )
        found = moderation.banned(probe_addresses(bans)["IPv4 in a banned /24"])
        assert found is not None, "the banned address was not found through the service"
        assert moderation.banned("192.0.2.45") is None
    finally:
        await service.close()
        await store.close()
    return cases, {
        "bans": count,
        "store_add_ban_s": stored_s,
        "service_start_s": start_s,
        "moderation_load_s": min(loads),
        "moderation_load_median_s": statistics.median(loads),
    }


async def run(
    operators: int,
    chats: int,
    number: int,
    repeat: int,
    bans: int = 100_000,
    stored_bans: int = 100_000,
) -> dict[str, Any]:
    rng = random.Random(42)
    cases: dict[str, dict[str, float]] = {}
    loads = make_loads(operators, rng)
    offline = [OperatorLoad(o.jid, Presence.OFFLINE, o.active_chats, o.max_chats) for o in loads]
    cases["trivial function call (baseline)"] = time_per_call(
        lambda: trivial(loads), number * 100, repeat
    )
    cases[f"eligible(), {operators} operators"] = time_per_call(
        lambda: eligible(loads), number, repeat
    )
    cases[f"queue_status(), {operators} operators, mixed presence"] = time_per_call(
        lambda: queue_status(loads), number, repeat
    )
    cases[f"queue_status(), {operators} operators, all offline (full scans)"] = time_per_call(
        lambda: queue_status(offline), number, repeat
    )
    next_in_turn = getattr(routing, "next_in_turn", None)
    if next_in_turn is not None:
        last = {o.jid: datetime(2026, 1, 1, tzinfo=UTC) for o in loads[::2]}
        cases[f"next_in_turn() (round-robin), {operators} operators"] = time_per_call(
            lambda: next_in_turn(loads, last), number, repeat
        )
    with tempfile.TemporaryDirectory(prefix="refdesk-bench-routing-") as tmp:
        service = await service_with(operators, Path(tmp), rng)
        try:
            queue = service.queue(QUEUE) if hasattr(service, "queue") else None
            small = max(1, number // 10)
            cases[f"DeskService.queue_info(), {operators} operators, 0 open chats"] = time_per_call(
                lambda: service.queue_info(QUEUE), small, repeat
            )
            service_loads = getattr(service, "loads", None)
            if queue is not None and service_loads is not None:
                cases[f"DeskService.loads() + eligible(), {operators} operators, 0 chats"] = (
                    time_per_call(lambda: eligible(service_loads(queue)), small, repeat)
                )
            for _ in range(chats):
                await service.open_chat(QUEUE, None)
            cases[f"DeskService.queue_info(), {operators} operators, {chats} open chats"] = (
                time_per_call(lambda: service.queue_info(QUEUE), small, repeat)
            )
            if queue is not None and service_loads is not None:
                cases[f"DeskService.loads() + eligible(), {operators} operators, {chats} chats"] = (
                    time_per_call(lambda: eligible(service_loads(queue)), small, repeat)
                )
        finally:
            await service.close()
            await service.store.close()
    cases.update(ban_cases(bans, number, repeat))
    with tempfile.TemporaryDirectory(prefix="refdesk-bench-bans-") as tmp:
        service_cases, ban_load = await ban_service_cases(stored_bans, number, repeat, Path(tmp))
    cases.update(service_cases)
    # The minimum over the loops is the least disturbed by other processes on this shared
    # machine; ratios use it (medians are shown too).
    base = cases["trivial function call (baseline)"]["min_ns"]
    for figures in cases.values():
        figures["ratio"] = figures["min_ns"] / base
    return {
        "operators": operators,
        "chats": chats,
        "bans": bans,
        "ban_load": ban_load,
        "cases": cases,
        "facts": machine_facts(None),
    }


def markdown(result: dict[str, Any]) -> str:
    load = result.get("ban_load") or {}
    build_s = next((f["build_s"] for f in result["cases"].values() if "build_s" in f), math.nan)
    rows = [
        [
            name,
            fmt(f["min_ns"] / 1000, 3),
            fmt(f["median_ns"] / 1000, 3),
            f"{fmt(f['ratio'], 0)}×",
            f"{f['number']:,} × {f['repeat']}",
        ]
        for name, f in result["cases"].items()
    ]
    return f"""## Routing: time per decision with {result["operators"]} operators

Command: `{command_line()}`

{facts_markdown(result["facts"])}

Method: in-process loops timed with `perf_counter_ns`; per call, the minimum over the
timed loops (least disturbed by other processes on this shared machine; ratios use it) and
the median. The loads for the pure functions are {result["operators"]} `OperatorLoad`s
with a fixed random mix of presence (60 % available/chat, 25 % away/xa/dnd, 15 % offline)
and load. The `DeskService` rows use a real SQLite store with {result["operators"]}
operators assigned to the queue and their presence set through `on_operator_presence`
(no XMPP); "open chats" are chats opened by `open_chat` (patron connected, nothing asked),
which every `queue_info` call walks. Baseline: a call of a trivial Python function through
the same loop.

{md_table(["what", "µs per call (min)", "µs (median)", "ratio to trivial call", "calls"], rows)}

**Bans.** The "ban check `BanIndex.match()`" rows time the pure look-up
(`component/core/bans.py`) over {result.get("bans", 0):,} active bans built in memory
(60 % single IPv4 addresses, 20 % IPv4 /24, 20 % IPv6 /64; building that index took
{fmt(build_s, 2)} s). The "`service.moderation.banned()`" rows are the check as a patron
meets it at every WebSocket hello (`web/patron_session.py` `_hello`): a real `DeskService`
on a real store holding {load.get("bans", 0):,} bans, stored one by one with
`store.bans.add` (with the store opened `synchronous=OFF` for that set-up only:
{fmt(load.get("store_add_ban_s", math.nan))} s), then reopened as refdesk opens it.
`DeskService.start()` on that store took {fmt(load.get("service_start_s", math.nan), 2)} s;
`Moderation.load()` (the same index rebuild, run at start-up and again whenever another
process changed the store) {fmt(load.get("moderation_load_s", math.nan) * 1000, 0)} ms (min
of 3; median {fmt(load.get("moderation_load_median_s", math.nan) * 1000, 0)} ms).
"""


def main() -> None:
    parser = base_parser("bench.routing", __doc__.split("\n\n")[0])
    parser.add_argument("--operators", type=int, help="operators (500)")
    parser.add_argument("--chats", type=int, help="open chats for the last rows (1000)")
    parser.add_argument("--bans", type=int, help="bans in the in-memory index (100000)")
    parser.add_argument(
        "--stored-bans", type=int, help="bans stored for the service rows (100000; quick 2000)"
    )
    parser.add_argument("--number", type=int, help="calls per timed loop (2000)")
    parser.add_argument("--repeat", type=int, help="timed loops (7)")
    args = parser.parse_args()
    q = args.quick
    result = asyncio.run(
        run(
            operators=args.operators or 500,
            chats=args.chats if args.chats is not None else (100 if q else 1000),
            number=args.number or (100 if q else 2000),
            repeat=args.repeat or (3 if q else 7),
            bans=args.bans or (10_000 if q else 100_000),
            stored_bans=args.stored_bans or (2_000 if q else 100_000),
        )
    )
    print(f"(routing: {len(result['cases'])} cases)", file=sys.stderr)
    finish(args, "routing", result, markdown(result))


if __name__ == "__main__":
    main()
