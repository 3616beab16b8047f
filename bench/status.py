"""Requests per second of `GET /api/queues/{q}/status` on a running refdesk, against the
smallest aiohttp handler returning a similar JSON, with the same load generator.

    python -m bench.status [--quick] [--duration 10] [--connections 50] [--chats 1000]

Servers (each its own process, one at a time, same port range, same client):
- **minimal**: `bench.minimal_server` — one aiohttp route, no middleware, a constant dict;
- **refdesk**: `python -m component.cli --config F run` with 10 operators on the queue
  (offline: no XMPP server is needed for this endpoint), first with no open chat, then with
  `--chats` idle patron WebSockets open (their chats are in memory; the status is computed
  from the open chats and the operators).

The load generator is `wrk` (one thread, keep-alive) when installed, else `bench.loadgen`
(aiohttp, its own process); the section says which. Rounds alternate between the servers
and the best round of each is reported.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import resource
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    CpuMeter,
    base_parser,
    command_line,
    facts_markdown,
    finish,
    fmt,
    machine_facts,
    md_table,
    raise_nofile,
    ratio,
    rss_kib,
    wait_quiet,
)
from bench.patrons import Patron
from bench.stack import QUEUE, BenchStack, start_child, stop_child, wait_http
from component.prosody import free_port

# Seconds the server's idle CPU is measured before each round.
IDLE_SECONDS = 2.0
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        return math.nan
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket_errors = sum(int(g) for g in errors.groups()) if errors else 0
    if not rps or not total:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    return {
        "requests": int(total.group(1)),
        "errors": (int(non2xx.group(1)) if non2xx else 0) + socket_errors,
        "rps": float(rps.group(1)),
        "p50_ms": _ms(p50.group(1)) if p50 else math.nan,
        "p99_ms": _ms(p99.group(1)) if p99 else math.nan,
    }


async def load(
    url: str, tool: str, connections: int, duration: float, log: Path
) -> tuple[dict[str, Any], int]:
    """Run the load generator against `url`; returns its figures and its pid."""
    if tool == "wrk":
        # wrk takes whole seconds only.
        args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", url]
    else:
        args = [
            sys.executable,
            "-m",
            "bench.loadgen",
            url,
            "--connections",
            str(connections),
            "--duration",
            str(duration),
        ]
    process = await start_child(*args, log=log, stdout_pipe=True)
    assert process.stdout is not None
    output = (await asyncio.wait_for(process.stdout.read(), duration + 60)).decode()
    await process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"{tool} failed ({process.returncode}): {output}")
    figures = parse_wrk(output) if tool == "wrk" else json.loads(output)
    return figures, process.pid


async def measure(
    name: str,
    url: str,
    server_pid: int,
    tool: str,
    connections: int,
    duration: float,
    log: Path,
    quiet_wait: float = 60.0,
) -> dict[str, Any]:
    figures_quiet = await wait_quiet({"server": server_pid}, max_wait=quiet_wait)
    # The server's own background work (timers, open sockets) with no request coming: it
    # is in the CPU of the loaded round too, and per request it weighs more the fewer
    # requests the load generator manages to send on a busy machine.
    idle_meter = CpuMeter({"server": server_pid})
    idle_meter.start()
    await asyncio.sleep(IDLE_SECONDS)
    idle_cpu = idle_meter.stop()["server"]
    meter = CpuMeter({"server": server_pid})
    meter.start()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures, _pid = await load(url, tool, connections, duration, log)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = meter.stop()
    figures["server_cpu"] = cpu["server"]
    figures["quiet"] = figures_quiet
    # Server CPU per request: unlike requests/s, it does not depend on how much of a core
    # the server got while other processes ran.
    # The requests the load generator counted (its start-up is inside the window too, so
    # requests/s × window would count requests that were never sent).
    served = max(1, figures["requests"])
    server_s = cpu["server"] * cpu["wall_s"]
    figures["server_cpu_us_per_request"] = server_s / served * 1e6
    figures["idle_cpu"] = idle_cpu
    figures["server_cpu_us_per_request_net"] = (
        max(0.0, server_s - idle_cpu * cpu["wall_s"]) / served * 1e6
    )
    client = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    figures["client_cpu"] = client / cpu["wall_s"]
    # The load generator has exited: its time is in "others" too; take it out.
    figures["others_cpu"] = max(0.0, cpu["others"] - figures["client_cpu"])
    figures["server_rss_kib"] = rss_kib(server_pid)
    print(
        f"  {name}: {figures['rps']:.0f} req/s, p50 {figures['p50_ms']:.2f} ms, "
        f"p99 {figures['p99_ms']:.2f} ms, errors {figures['errors']}",
        file=sys.stderr,
        flush=True,
    )
    return figures


async def run(
    *,
    duration: float,
    connections: int,
    chats: int,
    rounds: int,
    tool: str,
    keep: bool,
    quiet_wait: float = 60.0,
) -> dict[str, Any]:
    raise_nofile()
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    result: dict[str, Any] = {
        "tool": tool,
        "connections": connections,
        "duration_s": duration,
        "chats": chats,
        "rounds": rounds,
        "runs": {},
    }
    async with BenchStack(keep=keep) as stack:
        stack.write_config()
        await stack.seed([f"op{i}@localhost" for i in range(10)], 3)
        refdesk_pid = await stack.start_refdesk()
        result["facts"] = machine_facts(None)
        port = free_port()
        minimal = await start_child(
            sys.executable,
            "-m",
            "bench.minimal_server",
            "--port",
            str(port),
            log=stack.workdir / "minimal.log",
        )
        path = f"/api/queues/{QUEUE}/status"
        targets = {
            "minimal aiohttp handler": (f"http://127.0.0.1:{port}{path}", minimal.pid),
            "refdesk, no open chat": (f"{stack.url}{path}", refdesk_pid),
        }
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        patrons: list[Patron] = []
        try:
            await wait_http(targets["minimal aiohttp handler"][0])
            async with session.get(f"{stack.url}{path}") as resp:
                result["refdesk_body"] = await resp.json()
            log = stack.workdir / "load.log"
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
            for r in range(rounds):
                print(f"round {r + 1} of {rounds}", file=sys.stderr, flush=True)
                for name, (url, pid) in targets.items():
                    runs[name].append(
                        await measure(name, url, pid, tool, connections, duration, log, quiet_wait)
                    )
            if chats:
                name = f"refdesk, {chats} open chats"
                sem = asyncio.Semaphore(50)

                async def one() -> None:
                    async with sem:
                        patron = Patron(session, stack.url, QUEUE, None)
                        await patron.open()
                        patrons.append(patron)

                await asyncio.gather(*(one() for _ in range(chats)))
                runs[name] = []
                for _ in range(rounds):
                    runs[name].append(
                        await measure(
                            name,
                            f"{stack.url}{path}",
                            refdesk_pid,
                            tool,
                            connections,
                            duration,
                            log,
                            quiet_wait,
                        )
                    )
            result["runs"] = runs
        finally:
            await asyncio.gather(*(p.close() for p in patrons), return_exceptions=True)
            await session.close()
            await stop_child(minimal)
            result["refdesk_log"] = stack.log_problems()
    best = {name: max(rs, key=lambda f: f["rps"]) for name, rs in result["runs"].items()}
    result["best"] = best
    base = best["minimal aiohttp handler"]["rps"]
    result["ratios"] = {name: ratio(f["rps"], base) for name, f in best.items()}
    # CPU per request: the median over the rounds, against the baseline's.
    per_request = {
        name: statistics.median(r["server_cpu_us_per_request"] for r in rs)
        for name, rs in result["runs"].items()
    }
    result["cpu_us_per_request"] = per_request
    base_cpu = per_request["minimal aiohttp handler"]
    result["cpu_ratios"] = {name: ratio(v, base_cpu) for name, v in per_request.items()}
    net = {
        name: statistics.median(r["server_cpu_us_per_request_net"] for r in rs)
        for name, rs in result["runs"].items()
    }
    result["net_cpu_us_per_request"] = net
    base_net = net["minimal aiohttp handler"]
    result["net_cpu_ratios"] = {name: ratio(v, base_net) for name, v in net.items()}
    result["idle_cpu"] = {
        name: statistics.median(r["idle_cpu"] for r in rs) for name, rs in result["runs"].items()
    }
    return result


def markdown(result: dict[str, Any]) -> str:
    rows = []
    for name, runs in result["runs"].items():
        best = result["best"][name]
        rows.append(
            [
                name,
                fmt(best["rps"], 0),
                " / ".join(fmt(r["rps"], 0) for r in runs),
                f"{fmt(result['ratios'][name], 2)}",
                fmt(best["p50_ms"], 2),
                fmt(best["p99_ms"], 2),
                fmt(result["cpu_us_per_request"][name], 0),
                f"{fmt(result['cpu_ratios'][name], 2)}",
                fmt(100 * result["idle_cpu"][name], 1),
                fmt(result["net_cpu_us_per_request"][name], 0),
                f"{fmt(result['net_cpu_ratios'][name], 2)}",
                fmt(100 * best["server_cpu"], 0),
                fmt(100 * best.get("client_cpu", math.nan), 0),
                fmt(100 * best.get("others_cpu", math.nan), 0),
                str(sum(r["errors"] for r in runs)),
            ]
        )
    tool = result["tool"]
    tool_text = (
        "`wrk -t1 -c{c} -d{d:g}s --latency` (keep-alive)"
        if tool == "wrk"
        else "`python -m bench.loadgen --connections {c} --duration {d:g}` (aiohttp client, "
        "its own process; being Python too, it may limit the figures before the servers do)"
    ).format(c=result["connections"], d=result["duration_s"])
    body = json.dumps(result.get("refdesk_body"))
    problems = result.get("refdesk_log") or {}
    table = md_table(
        ["server", "requests/s (best)", "each round", "ratio to baseline", "p50 ms", "p99 ms",
         "server CPU µs per request (median)", "CPU ratio to baseline",
         "server idle CPU % (median)", "CPU µs per request net of idle (median)",
         "net CPU ratio to baseline", "server CPU %",
         "load generator CPU %", "others CPU %", "errors"],
        rows,
    )  # fmt: skip
    return f"""## Status endpoint: requests per second

Command: `{command_line()}`

{facts_markdown(result["facts"])}

Method: each server in its own process, measured one at a time with the same load generator:
{tool_text}, {result["rounds"]} alternating rounds, best round shown. **Baseline** = a
minimal aiohttp handler (`bench/minimal_server.py`: one route, no middleware, no access
log, a constant dict, the same two headers). refdesk runs as
`python -m component.cli --config F run` with 10 operators assigned to the queue (offline;
no XMPP server is needed for this endpoint); its answer was `{body}`. The last row has
{result["chats"]} idle patron WebSockets open (chats opened, nothing asked). CPU in % of one
core over the best round (2 cores in all); *others* = the rest of the machine. Before each
round the benchmark waits (up to 60 s) for the rest of this shared machine to use under
half a core. *Server CPU µs per request* (server CPU time / requests served) does not
depend on how much of a core the server got, so it is the steadier comparison on a shared
machine; its ratio is refdesk's cost per request over the baseline's. Requests are those
the load generator counted. *Idle CPU* is the server's over {IDLE_SECONDS:g} s with no
request, just before each round (its timers and open sockets); *net of idle* takes that
rate out of the round's CPU, leaving what the requests cost.

{table}

refdesk log: {problems or "clean"}.
"""


def main() -> None:
    parser = base_parser("bench.status", __doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, help="seconds per round and server (10)")
    parser.add_argument("--connections", type=int, help="concurrent connections (50)")
    parser.add_argument("--chats", type=int, help="idle open chats for the last row (1000)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (2)")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    q = args.quick
    result = asyncio.run(
        run(
            duration=args.duration or (2.0 if q else 10.0),
            connections=args.connections or (10 if q else 50),
            chats=args.chats if args.chats is not None else (20 if q else 1000),
            rounds=args.rounds or (1 if q else 2),
            tool=args.loadgen,
            keep=args.keep,
            quiet_wait=0.0 if q else 60.0,
        )
    )
    finish(args, "status", result, markdown(result))


if __name__ == "__main__":
    main()
