"""Where refdesk's CPU goes: cProfile of the refdesk process during benchmark windows.

    python -m bench.profile [--quick] [--what latency,opening,status]

- **latency**: `bench.latency` at 100 chats (one line every 2 s per chat), the profiler
  on only during the recorded window;
- **opening**: opening and accepting `--opening-chats` chats on one queue (the set-up
  phase of the latency benchmark), the profiler on only while they open;
- **status**: `GET /api/queues/ask/status` under `wrk` (or `bench.loadgen`).

refdesk runs under `bench._profiled` (cProfile of the main thread, switched by signals).
The aiosqlite worker thread is not profiled: its CPU time comes from /proc per thread.
cProfile slows Python code down, so the latency figures of a profiled run are not the
benchmark's figures; the shares are what matter.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import re
import shutil
import signal
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench import latency
from bench.common import (
    base_parser,
    command_line,
    facts_markdown,
    finish,
    fmt,
    machine_facts,
    md_table,
    raise_nofile,
)
from bench.stack import QUEUE, BenchStack

# (category, substrings of the file path or of a builtin's name), first match wins.
_CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("idle: waiting in epoll", ("method 'poll' of 'select.epoll'",)),
    (
        "socket send/recv (system calls)",
        ("_socket.socket", "'send' of", "'recv' of", "'sendall'", "'recv_into'"),
    ),
    (
        "XML parsing/serialising (expat, ElementTree)",
        ("xml/etree", "pyexpat", "xmlparser", "XMLParser", "ElementTree"),
    ),
    ("slixmpp (stanzas, XML stream, plugins)", ("slixmpp",)),
    ("aiohttp (HTTP, WebSocket)", ("aiohttp", "multidict", "yarl", "propcache")),
    ("json", ("json",)),
    ("SQLite via aiosqlite (main-thread side)", ("aiosqlite", "sqlite3")),
    ("logging", ("logging",)),
    ("refdesk web/", ("/web/",)),
    ("refdesk component/ (service, store, adapter, core)", ("/component/",)),
    (
        "asyncio event loop, futures, tasks",
        (
            "asyncio",
            "selectors",
            "_asyncio",
            "'run' of '_contextvars",
            "concurrent/futures",
            "threading",
        ),
    ),
    ("datetime, zoneinfo", ("datetime", "zoneinfo")),
]


def _category(key: tuple[str, int, str]) -> str:
    filename, _line, name = key
    text = f"{filename} {name}"
    for label, needles in _CATEGORIES:
        if any(n in text for n in needles):
            return label
    return "other (builtins, stdlib)"


def _where(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    if filename == "~":
        return name
    path = re.sub(r"^.*/(site-packages|lib/python3\.\d+)/", "", filename)
    repo = str(Path(__file__).resolve().parent.parent) + "/"
    return f"{path.replace(repo, '')}:{line}({name})"


def analyse(path: Path, top: int = 15) -> dict[str, Any]:
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    by_cat: dict[str, float] = defaultdict(float)
    total = 0.0
    for key, (_cc, _nc, tottime, _ct, _callers) in raw.items():
        by_cat[_category(key)] += tottime
        total += tottime
    idle = by_cat.get("idle: waiting in epoll", 0.0)
    busy = max(total - idle, 1e-9)
    functions = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)
    top_self = [
        {"function": _where(k), "calls": v[1], "tottime_s": v[2], "share_busy": v[2] / busy}
        for k, v in functions
        if _category(k) != "idle: waiting in epoll"
    ][:top]
    ours = sorted(
        ((k, v) for k, v in raw.items() if "/component/" in k[0] or "/web/" in k[0]),
        key=lambda kv: kv[1][3],
        reverse=True,
    )
    top_ours = [
        {"function": _where(k), "calls": v[1], "cumtime_s": v[3], "share_busy": v[3] / busy}
        for k, v in ours[:top]
    ]
    return {
        "total_s": total,
        "idle_s": idle,
        "busy_s": busy,
        "categories": sorted(
            ((c, t, t / busy) for c, t in by_cat.items() if c != "idle: waiting in epoll"),
            key=lambda item: item[1],
            reverse=True,
        ),
        "top_self": top_self,
        "top_refdesk_cumulative": top_ours,
    }


async def profile_status(out: Path, duration: float, tool: str) -> dict[str, Any]:
    from bench.status import load

    async with BenchStack() as stack:
        stack.write_config()
        await stack.seed([f"op{i}@localhost" for i in range(10)], 3)
        pid = await stack.start_refdesk(profile_out=out)
        url = f"{stack.url}/api/queues/{QUEUE}/status"
        os.kill(pid, signal.SIGUSR1)
        figures, _ = await load(url, tool, 50, duration, stack.workdir / "load.log")
        os.kill(pid, signal.SIGUSR2)
        await asyncio.sleep(1.0)
    return figures


def _section(title: str, analysis: dict[str, Any], extra: str) -> str:
    cats = [[c, fmt(t, 2), f"{100 * share:.1f} %"] for c, t, share in analysis["categories"]]
    top = [
        [
            f"`{f['function']}`",
            f"{f['calls']:,}",
            fmt(f["tottime_s"], 3),
            f"{100 * f['share_busy']:.1f} %",
        ]
        for f in analysis["top_self"]
    ]
    ours = [
        [
            f"`{f['function']}`",
            f"{f['calls']:,}",
            fmt(f["cumtime_s"], 3),
            f"{100 * f['share_busy']:.1f} %",
        ]
        for f in analysis["top_refdesk_cumulative"]
    ]
    return f"""### {title}

{extra}

Main thread: {fmt(analysis["busy_s"], 2)} s busy, {fmt(analysis["idle_s"], 2)} s waiting in
epoll (profiled time {fmt(analysis["total_s"], 2)} s).

Self time by kind of code (share of the busy time):

{md_table(["code", "self s", "share"], cats)}

Top functions by self time:

{md_table(["function", "calls", "self s", "share of busy"], top)}

refdesk's own functions by cumulative time (includes what they call; coroutines count each
resumption, so awaited I/O is not included):

{md_table(["function", "calls", "cumulative s", "share of busy"], ours)}
"""


async def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_nofile()
    workdir = Path(tempfile.mkdtemp(prefix="refdesk-bench-profile-"))
    result: dict[str, Any] = {"runs": {}}
    try:
        if "latency" in args.what:
            out = workdir / "latency.prof"
            level = latency.Level(args.chats, args.interval)
            run = await latency.run(
                [level],
                operators=args.operators,
                duration=args.duration,
                warmup=args.warmup,
                profile_out=out,
                profile_phase="measure",
                quiet_wait=0.0 if args.quick else 60.0,
            )
            result["facts"] = run["facts"]
            row = run["levels"][0]
            result["runs"]["latency"] = {
                "level": {"chats": level.chats, "interval_s": level.interval},
                "rtt_ms": row["refdesk"]["rtt_ms"],
                "floor_rtt_ms": row["floor"]["rtt_ms"],
                "unanswered": row["refdesk"]["unanswered"],
                "cpu": row["refdesk"]["cpu"],
                "threads": run.get("profile_threads", {}),
                "wall_s": run.get("profile_wall_s"),
                "analysis": analyse(out),
            }
        if "opening" in args.what:
            out = workdir / "opening.prof"
            level = latency.Level(args.opening_chats, 5.0)
            run = await latency.run(
                [level],
                operators=args.operators,
                duration=1.0,
                warmup=0.0,
                profile_out=out,
                profile_phase="setup",
                quiet_wait=0.0 if args.quick else 60.0,
            )
            result.setdefault("facts", run["facts"])
            row = run["levels"][0]
            result["runs"]["opening"] = {
                "chats": level.chats,
                "setup": row["setup"],
                "threads": run.get("profile_threads", {}),
                "wall_s": run.get("profile_wall_s"),
                "analysis": analyse(out),
            }
        if "status" in args.what:
            out = workdir / "status.prof"
            tool = "wrk" if shutil.which("wrk") else "python"
            figures = await profile_status(out, args.status_seconds, tool)
            result["runs"]["status"] = {"tool": tool, "figures": figures, "analysis": analyse(out)}
        result.setdefault("facts", machine_facts(None))
    finally:
        if args.keep:
            print(f"(profiles kept in {workdir})", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def _threads(run: dict[str, Any]) -> str:
    threads = run.get("threads") or {}
    wall = run.get("wall_s") or 0
    if not threads or not wall:
        return ""
    parts = [
        f"{name}: {seconds:.2f} s ({100 * seconds / wall:.0f} % of a core)"
        for name, seconds in sorted(threads.items(), key=lambda kv: -kv[1])
    ]
    return "refdesk CPU per thread over the window (from /proc): " + "; ".join(parts) + "."


def markdown(result: dict[str, Any], args: argparse.Namespace) -> str:
    parts = [
        f"""## Profile: what limits the figures

Command: `{command_line()}`

{facts_markdown(result["facts"])}

refdesk ran under `bench._profiled` (cProfile on the main thread, on only during the
window named). cProfile inflates pure-Python code, so read shares, not absolute times.
"""
    ]
    runs = result["runs"]
    if "latency" in runs:
        r = runs["latency"]
        extra = (
            f"`bench.latency` at {r['level']['chats']} chats, one line every "
            f"{r['level']['interval_s']:g} s per chat ({args.duration:g} s recorded). Under the "
            f"profiler: refdesk p50 {fmt(r['rtt_ms']['p50'], 2)} ms, p99 "
            f"{fmt(r['rtt_ms']['p99'], 2)} ms (floor {fmt(r['floor_rtt_ms']['p50'], 2)} / "
            f"{fmt(r['floor_rtt_ms']['p99'], 2)} ms); {r['unanswered']} unanswered. " + _threads(r)
        )
        parts.append(_section("Chatting: latency benchmark at 100 chats", r["analysis"], extra))
    if "opening" in runs:
        r = runs["opening"]
        s = r["setup"]
        extra = (
            f"Opening {r['chats']} chats on one queue (20 at a time: connect, hello, ask, "
            f"operator accepts): {s['seconds']:.1f} s, {s['status_frames_to_patrons']:,} "
            f"status frames pushed to patrons. " + _threads(r)
        )
        parts.append(_section(f"Opening {r['chats']} chats on one queue", r["analysis"], extra))
    if "status" in runs:
        r = runs["status"]
        f = r["figures"]
        extra = (
            f"`GET /api/queues/ask/status` with {r['tool']}, 50 connections: "
            f"{fmt(f['rps'], 0)} requests/s under the profiler."
        )
        parts.append(_section("Status endpoint under load", r["analysis"], extra))
    return "\n".join(parts)


def main() -> None:
    parser = base_parser("bench.profile", __doc__.split("\n\n")[0])
    parser.add_argument(
        "--what", default="latency,opening,status", help="comma-separated: latency, opening, status"
    )
    parser.add_argument("--chats", type=int, help="chats of the latency run (100)")
    parser.add_argument("--interval", type=float, help="seconds between a chat's lines (2)")
    parser.add_argument("--duration", type=float, help="recorded seconds (30)")
    parser.add_argument("--warmup", type=float, help="unrecorded seconds (3)")
    parser.add_argument("--operators", type=int, help="operator accounts (10)")
    parser.add_argument("--opening-chats", type=int, help="chats opened in 'opening' (400)")
    parser.add_argument("--status-seconds", type=float, help="seconds of status load (5)")
    parser.add_argument("--keep", action="store_true", help="keep the .prof files")
    parser.add_argument(
        "--cpu-clock",
        action="store_true",
        help="profile the main thread's CPU time, not wall-clock time (for a loaded machine)",
    )
    args = parser.parse_args()
    if args.cpu_clock:
        # Read by bench._profiled in the refdesk process, which inherits the environment.
        os.environ["BENCH_PROFILE_CLOCK"] = "cpu"
    q = args.quick
    args.what = [w.strip() for w in args.what.split(",") if w.strip()]
    args.chats = args.chats or (10 if q else 100)
    args.interval = args.interval or (0.5 if q else 2.0)
    args.duration = args.duration or (2.0 if q else 30.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if q else 3.0)
    args.operators = args.operators or (2 if q else 10)
    args.opening_chats = args.opening_chats or (20 if q else 400)
    args.status_seconds = args.status_seconds or (1.0 if q else 5.0)
    result = asyncio.run(run(args))
    finish(args, "profile", result, markdown(result, args))


if __name__ == "__main__":
    main()
