"""Round-trip latency of a chat line: patron WebSocket → refdesk → Prosody → operator's XMPP
client, which answers at once → Prosody → refdesk → patron WebSocket.

    python -m bench.latency [--quick] [--levels 1:0.05,100:2,1000:5] [--duration 20]

For each level "CHATS:INTERVAL", CHATS chats are open and accepted (each its own patron
WebSocket; operators accept them first, so lines flow both ways), and every chat sends one
line every INTERVAL seconds at its own random phase (a steady paced rate, open loop, not a
burst). The floor is measured in the same run, through the same Prosody, at the same levels
and rates: two plain XMPP clients, one echoing (in its own process, as refdesk is).

refdesk runs as its own process (`python -m component.cli --config F run`); the patrons,
the operators' clients and the floor's sending clients run in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    CpuMeter,
    base_parser,
    command_line,
    commit_probe,
    commit_text,
    facts_markdown,
    filesystem_of,
    finish,
    fmt,
    machine_facts,
    md_table,
    raise_nofile,
    ratio,
    rss_kib,
    summarize_ms,
    thread_cpu,
    wait_quiet,
)
from bench.patrons import Fleet, Tracker, paced
from bench.stack import QUEUE, BenchStack, start_child, stop_child
from bench.xmpp_clients import FloorSender

PASSWORD = "bench-password"


@dataclass(frozen=True)
class Level:
    chats: int
    interval: float

    @property
    def rate(self) -> float:
        return self.chats / self.interval


def parse_levels(text: str) -> list[Level]:
    levels = []
    for part in text.split(","):
        chats, _, interval = part.partition(":")
        levels.append(Level(int(chats), float(interval or 1.0)))
    return levels


DEFAULT_LEVELS = "1:0.05,100:2,1000:5"
QUICK_LEVELS = "1:0.1,10:0.5"


async def run(
    levels: list[Level],
    *,
    operators: int,
    duration: float,
    warmup: float,
    profile_out: Path | None = None,
    profile_phase: str = "measure",
    keep: bool = False,
    db_dir: Path | None = None,
    quiet_wait: float = 60.0,
) -> dict[str, Any]:
    raise_nofile()
    top = max(level.chats for level in levels)
    max_chats = math.ceil(top / operators) * 2 + 10
    result: dict[str, Any] = {"levels": [], "operators": operators, "max_chats": max_chats}
    async with BenchStack(keep=keep, db_dir=db_dir) as stack:
        if profile_out is None:
            stack.timeline = stack.workdir / "timeline.jsonl"
        prosody = await stack.start_prosody()
        sender_jids = await stack.register([f"floor-s{i}" for i in range(operators)], PASSWORD)
        echo_jids = await stack.register([f"floor-e{i}" for i in range(operators)], PASSWORD)
        ops, refdesk_pid = await stack.desk_with_operators(
            operators, max_chats, PASSWORD, profile_out=profile_out
        )
        result["facts"] = machine_facts(stack.prosody_config)
        result["facts"]["refdesk database"] = (
            f"a temporary directory on {filesystem_of(stack.db_path)}; SQLite WAL, "
            "synchronous=FULL as refdesk opens it"
        )
        result["facts"]["disk commits"] = commit_text(commit_probe(stack.db_path.parent))
        host, port = prosody.host, prosody.c2s_port

        echo = await start_child(
            sys.executable,
            "-m",
            "bench.echo",
            "--host",
            host,
            "--port",
            str(port),
            "--password",
            PASSWORD,
            *echo_jids,
            log=stack.workdir / "echo.log",
            stdout_pipe=True,
        )
        assert echo.stdout is not None
        line = await asyncio.wait_for(echo.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise RuntimeError("the floor's echo process did not start")
        floor_tracker = Tracker()
        senders = [
            FloorSender(jid, PASSWORD, host, port, lambda t, at: floor_tracker.on_answer(t, at))
            for jid in sender_jids
        ]
        await asyncio.gather(*(s.connect() for s in senders))

        desk = Fleet(stack.url)
        pids = {
            "refdesk": refdesk_pid,
            "prosody": stack.prosody_pid,
            "bench client": os.getpid(),
            "echo": echo.pid,
        }
        try:
            for level in levels:
                print(
                    f"level {level.chats} chats, one line every {level.interval} s per chat",
                    file=sys.stderr,
                    flush=True,
                )
                row: dict[str, Any] = {
                    "chats": level.chats,
                    "interval_s": level.interval,
                    "rate_per_s": level.rate,
                }
                # --- floor ---
                floor_tracker.__init__()  # type: ignore[misc]
                await wait_quiet(pids, max_wait=quiet_wait)
                meter = CpuMeter(pids)
                meter.start()
                await paced(
                    level.chats,
                    level.interval,
                    warmup,
                    duration,
                    lambda i, _tok, body: senders[i % operators].send(
                        echo_jids[i % operators], body
                    ),
                    floor_tracker,
                    f"f{level.chats}",
                )
                await floor_tracker.drain(max(10.0, 3 * level.interval))
                row["floor"] = floor_tracker.summary()
                row["floor"]["cpu"] = meter.stop()
                # --- refdesk: open and accept the chats, then the same paced load ---
                status_before = desk.status_frames()
                new_chats = max(0, level.chats - len(desk.patrons))
                if profile_out and profile_phase == "setup":
                    threads_before = thread_cpu(refdesk_pid)
                    os.kill(refdesk_pid, signal.SIGUSR1)
                setup_meter = CpuMeter(pids)
                setup_meter.start()
                setup_s = await desk.open_chats(level.chats, [QUEUE])
                setup_cpu = setup_meter.stop()
                if profile_out and profile_phase == "setup":
                    os.kill(refdesk_pid, signal.SIGUSR2)
                    result["profile_threads"] = thread_delta(threads_before, refdesk_pid)
                    result["profile_wall_s"] = setup_cpu["wall_s"]
                row["setup"] = {
                    "new_chats": new_chats,
                    "open_chats": len(desk.patrons),
                    "seconds": setup_s,
                    "failures": len(desk.failures),
                    "status_frames_to_patrons": desk.status_frames() - status_before,
                    "cpu": setup_cpu,
                }
                active = desk.patrons[: level.chats]
                tracker = Tracker()
                for p in desk.patrons:
                    p.tracker = tracker
                for op in ops:
                    op.arrivals.clear()
                await wait_quiet(pids, max_wait=quiet_wait)
                if profile_out and profile_phase == "measure":
                    threads_before = thread_cpu(refdesk_pid)
                    os.kill(refdesk_pid, signal.SIGUSR1)
                meter = CpuMeter(pids)
                meter.start()
                await paced(
                    len(active),
                    level.interval,
                    warmup,
                    duration,
                    lambda i, tok, body, active=active: active[i].send(tok, body),
                    tracker,
                    f"r{level.chats}",
                )
                await tracker.drain(max(10.0, 3 * level.interval))
                cpu = meter.stop()
                if profile_out and profile_phase == "measure":
                    os.kill(refdesk_pid, signal.SIGUSR2)
                    result["profile_threads"] = thread_delta(threads_before, refdesk_pid)
                    result["profile_wall_s"] = cpu["wall_s"]
                arrivals: dict[str, float] = {}
                for op in ops:
                    arrivals.update(op.arrivals)
                row["refdesk"] = tracker.summary(arrivals)
                if stack.timeline is not None:
                    row["timeline"] = timeline_rows(tracker, stack.timeline)
                row["refdesk"]["cpu"] = cpu
                row["refdesk"]["chats_measured"] = len(active)
                row["refdesk_rss_kib"] = rss_kib(refdesk_pid)
                row["ratio_p50"] = ratio(
                    row["refdesk"]["rtt_ms"]["p50"], row["floor"]["rtt_ms"]["p50"]
                )
                row["ratio_p99"] = ratio(
                    row["refdesk"]["rtt_ms"]["p99"], row["floor"]["rtt_ms"]["p99"]
                )
                result["levels"].append(row)
                _print_row(row)
        finally:
            result["setup_failures"] = desk.failures[:10]
            result["patron_errors"] = [e for p in desk.patrons for e in p.errors][:10]
            result["operator_warnings"] = [w for op in ops for w in op.unexpected][:10]
            result["operators_accepted"] = [op.accepted for op in ops]
            await desk.close()
            await asyncio.gather(*(s.disconnect() for s in senders), return_exceptions=True)
            await asyncio.gather(*(op.disconnect() for op in ops), return_exceptions=True)
            await stop_child(echo)
            if profile_out:
                # Make sure the profile is written even if a window was cut short.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(refdesk_pid, signal.SIGUSR2)
                await asyncio.sleep(0.5)
            result["refdesk_log"] = stack.log_problems()
            result["refdesk_first_problem"] = stack.first_problem()
    return result


def timeline_rows(tracker: Tracker, path: Path) -> list[dict[str, float]]:
    """Per second of the recorded window: the lines sent in it with their round-trip and
    ack p99, next to refdesk's worst event-loop lag and its garbage-collection time in
    that second (from the timeline `bench._gcwatch` writes; both sides use the machine's
    monotonic clock)."""
    sent = {t: tracker.sent[t] for t in tracker.recorded}
    if not sent:
        return []
    start = min(sent.values())
    seconds = int(max(sent.values()) - start) + 1
    rows: list[dict[str, Any]] = [
        {"second": s, "rtt": [], "ack": [], "lag_ms": 0.0, "gc_ms": 0.0, "gc2": 0}
        for s in range(seconds)
    ]
    for token, at in sent.items():
        row = rows[int(at - start)]
        if token in tracker.answered:
            row["rtt"].append(tracker.answered[token] - at)
        if token in tracker.acked:
            row["ack"].append(tracker.acked[token] - at)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        sample = json.loads(line)
        index = math.floor(sample["t"] - start)
        if 0 <= index < seconds:
            row = rows[index]
            row["lag_ms"] = max(row["lag_ms"], sample["lag_ms"])
            row["gc_ms"] += sample["gc_ms"]
            row["gc2"] += sample["gc2"]
    out = []
    for row in rows:
        rtt, ack = summarize_ms(row.pop("rtt")), summarize_ms(row.pop("ack"))
        out.append(
            {
                **row,
                "lines": rtt["count"],
                "rtt_p99_ms": rtt["p99"],
                "rtt_max_ms": rtt["max"],
                "ack_p99_ms": ack["p99"],
            }
        )
    return out


def thread_delta(before: dict[int, tuple[str, float]], pid: int) -> dict[str, float]:
    """CPU seconds per thread of `pid` since `before` ("main" is the event loop)."""
    out: dict[str, float] = {}
    for tid, (name, seconds) in thread_cpu(pid).items():
        label = "main (event loop)" if tid == pid else f"{name} [{tid}]"
        out[label] = seconds - before.get(tid, (name, 0.0))[1]
    return out


def _print_row(row: dict[str, Any]) -> None:
    f, r = row["floor"]["rtt_ms"], row["refdesk"]["rtt_ms"]
    print(
        f"  {row['chats']:>5} chats: floor p50 {fmt(f['p50'], 2)} p99 {fmt(f['p99'], 2)} ms | "
        f"refdesk p50 {fmt(r['p50'], 2)} p99 {fmt(r['p99'], 2)} ms | "
        f"unanswered {row['refdesk']['unanswered']} | setup {row['setup']['seconds']:.1f} s | "
        f"loop lag max {fmt(_worst_lag(row), 1)} ms",
        file=sys.stderr,
        flush=True,
    )


def _worst_lag(row: dict[str, Any]) -> float:
    return max((t["lag_ms"] for t in row.get("timeline", [])), default=math.nan)


def _per_trip(side: dict[str, Any], process: str) -> str:
    """CPU milliseconds a process spent per round trip over the window (warm-up and
    drain included, so divided by every line sent in the window)."""
    cpu = side.get("cpu", {})
    sent = side.get("sent_total") or 0
    if process not in cpu or not sent:
        return "—"
    return fmt(cpu[process] * cpu["wall_s"] / sent * 1000, 2)


def _cpu(cpu: dict[str, float], keys: tuple[str, ...]) -> str:
    return " / ".join(fmt(100 * cpu.get(k, math.nan), 0) for k in keys)


def markdown(result: dict[str, Any], args: argparse.Namespace) -> str:
    rows = []
    legs = []
    cpu_rows = []
    for row in result["levels"]:
        f, r = row["floor"], row["refdesk"]
        rows.append(
            [
                str(row["chats"]),
                f"{row['interval_s']:g} s",
                fmt(row["rate_per_s"]),
                f"{r['sent']} / {f['sent']}",
                fmt(f["rtt_ms"]["p50"], 2),
                fmt(f["rtt_ms"]["p99"], 2),
                fmt(r["rtt_ms"]["p50"], 2),
                fmt(r["rtt_ms"]["p99"], 2),
                f"{fmt(row['ratio_p50'], 1)}×",
                f"{fmt(row['ratio_p99'], 1)}×",
                f"{r['unanswered']} / {f['unanswered']}",
            ]
        )
        lags = [t["lag_ms"] for t in row.get("timeline", [])]
        legs.append(
            [
                str(row["chats"]),
                fmt(max(lags), 1) if lags else "—",
                f"{fmt(r['ack_ms']['p50'], 2)} / {fmt(r['ack_ms']['p99'], 2)}"
                if "ack_ms" in r
                else "—",
                f"{fmt(r['to_operator_ms']['p50'], 2)} / {fmt(r['to_operator_ms']['p99'], 2)}",
                f"{fmt(r['to_patron_ms']['p50'], 2)} / {fmt(r['to_patron_ms']['p99'], 2)}",
                f"{fmt(r['send_lag_ms']['p99'], 1)}",
                f"{row['setup']['seconds']:.1f} s ({row['setup']['failures']} failed)",
                fmt(row["setup"]["status_frames_to_patrons"], 0),
                fmt(row["refdesk_rss_kib"] / 1024, 0) + " MiB",
                _per_trip(r, "refdesk"),
                _per_trip(r, "prosody") + " / " + _per_trip(f, "prosody"),
            ]
        )
        c, fc, sc = r["cpu"], f["cpu"], row["setup"]["cpu"]
        cpu_rows.append(
            [
                str(row["chats"]),
                _cpu(c, ("refdesk", "prosody", "bench client", "others")),
                _cpu(fc, ("prosody", "echo", "bench client", "others")),
                _cpu(sc, ("refdesk", "prosody", "bench client", "others"))
                if sc.get("wall_s", 0) >= 1.0
                else "— (under 1 s)",
            ]
        )
    problems = result.get("refdesk_log", {})
    notes = []
    if result.get("setup_failures"):
        notes.append(
            "Chats that could not be opened and accepted: "
            + "; ".join(result["setup_failures"][:3])
        )
    if result.get("patron_errors"):
        notes.append(f"Error frames seen by patrons: {result['patron_errors'][:3]}")
    if result.get("operator_warnings"):
        notes.append(f"Refusals seen by operators: {result['operator_warnings'][:3]}")
    if problems and any(problems.values()):
        notes.append(f"refdesk log: {problems}; first: `{result.get('refdesk_first_problem')}`")
    facts = facts_markdown(result["facts"])
    main_table = md_table(
        [
            "chats", "interval", "lines/s", "samples refdesk / floor", "floor p50 ms",
            "floor p99 ms", "refdesk p50 ms", "refdesk p99 ms", "ratio p50", "ratio p99",
            "unanswered refdesk / floor",
        ],
        rows,
    )  # fmt: skip
    legs_table = md_table(
        [
            "chats", "refdesk loop lag max ms", "ack", "to operator", "to patron",
            "pacer lag p99 ms",
            "opening + accepting the chats", "status frames pushed while opening",
            "refdesk RSS", "refdesk CPU ms per round trip",
            "Prosody CPU ms per round trip, refdesk / floor",
        ],
        legs,
    )  # fmt: skip
    cpu_table = md_table(
        [
            "chats",
            "refdesk run: refdesk / prosody / bench client / others",
            "floor run: prosody / echo / bench client / others",
            "opening chats: refdesk / prosody / bench client / others",
        ],
        cpu_rows,
    )
    timeline_text = ""
    timed = [row for row in result["levels"] if row.get("timeline")]
    if timed:
        top = timed[-1]
        worst = max(top["timeline"], key=lambda r: r["lag_ms"])
        timeline_text = (
            f"Timeline of the {top['chats']}-chat window, one row per second: the lines sent "
            "in that second (their round-trip and ack p99 and the slowest round trip), "
            "next to refdesk's worst event-loop lag in that second (a task in refdesk "
            f"asks to wake every {5} ms and notes how late it woke) and the time refdesk's "
            "garbage collector ran in it (full collections counted). Worst lag: "
            f"{fmt(worst['lag_ms'], 1)} ms in second {worst['second']}.\n\n"
            + md_table(
                [
                    "second",
                    "lines",
                    "round trip p99 ms",
                    "slowest ms",
                    "ack p99 ms",
                    "loop lag max ms",
                    "GC ms (full collections)",
                ],
                [
                    [
                        str(r["second"]),
                        str(r["lines"]),
                        fmt(r["rtt_p99_ms"], 1),
                        fmt(r["rtt_max_ms"], 1),
                        fmt(r["ack_p99_ms"], 1),
                        fmt(r["lag_ms"], 1),
                        f"{fmt(r['gc_ms'], 1)} ({r['gc2']})",
                    ]
                    for r in top["timeline"]
                ],
            )
        )
    if not notes:
        notes = ["No errors: every chat opened, every line answered, no WARNING/ERROR in the "
                 "refdesk log."]  # fmt: skip
    note_lines = "\n".join("- " + n for n in notes)
    return f"""## Latency: patron ⇄ operator round trip

Command: `{command_line()}`

{facts}

Method: refdesk runs as its own process (`python -m component.cli --config F run`) against
a throwaway Prosody. Each chat has its own patron WebSocket; {result["operators"]} operator
accounts (max_chats {result["max_chats"]}) are real XMPP clients that accept the chats first
(ring-all: every operator gets every offer, one accepts), then answer every line at once.
Each chat sends one line every *interval* seconds, each at its own random phase — a steady
paced rate, open loop, not a burst — for {args.warmup:g} s of warm-up (not recorded) and
{args.duration:g} s recorded. Round trip = patron sends → operator client receives → answers
→ patron receives. **Floor** = the same paced round trip between two plain XMPP clients
through the same Prosody in the same run (the echoing client in its own process).
Percentiles are nearest-rank over all recorded lines. Before each window the benchmark
waits (up to 60 s) for the rest of this shared machine to use under half a core. Patrons
connect with distinct X-Forwarded-For addresses (127.0.0.1 is a trusted proxy in the bench
config) and the config's rate limits are set far above the load (they are still checked).

{main_table}

Where the time goes (refdesk runs, p50 / p99 in ms): *ack* = patron's line committed and
acknowledged; *to operator* = patron sends → operator's client has it; *to patron* =
operator's client answers → patron has it. *Pacer lag p99* = how late the load generator
sent lines (large values mean the load generator itself was short of CPU). *CPU ms per
round trip* = the process's CPU time over the window divided by the lines sent in it; unlike
the latencies it does not depend on what else ran on the machine.

{legs_table}

CPU during the windows, % of one core (2 cores in all). *others* = the rest of the
machine (other processes and the kernel): the machine is shared and not always quiet.

{cpu_table}

{timeline_text}

{note_lines}
"""


def main() -> None:
    parser = base_parser("bench.latency", __doc__.split("\n\n")[0])
    parser.add_argument("--levels", help=f"CHATS:INTERVAL,... (default {DEFAULT_LEVELS})")
    parser.add_argument("--duration", type=float, help="recorded seconds per level (default 20)")
    parser.add_argument("--warmup", type=float, help="unrecorded seconds per level (default 3)")
    parser.add_argument("--operators", type=int, help="operator accounts (default 10)")
    parser.add_argument("--keep", action="store_true", help="keep logs and data of the run")
    parser.add_argument(
        "--db-dir", type=Path, help="put refdesk's database there (e.g. /dev/shm: no fsync cost)"
    )
    args = parser.parse_args()
    levels = parse_levels(args.levels or (QUICK_LEVELS if args.quick else DEFAULT_LEVELS))
    args.duration = args.duration or (1.0 if args.quick else 20.0)
    args.warmup = args.warmup if args.warmup is not None else (0.25 if args.quick else 3.0)
    args.operators = args.operators or (2 if args.quick else 10)
    result = asyncio.run(
        run(
            levels,
            operators=args.operators,
            duration=args.duration,
            warmup=args.warmup,
            keep=args.keep,
            db_dir=args.db_dir,
            quiet_wait=0.0 if args.quick else 60.0,
        )
    )
    finish(args, "latency", result, markdown(result, args))


if __name__ == "__main__":
    main()
