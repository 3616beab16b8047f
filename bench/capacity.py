"""How many patron sessions one refdesk process holds, what each costs in memory, and the
number of chatting sessions at which the p99 round trip passes 100 ms.

    python -m bench.capacity [--quick] [--idle-steps 500,1000,2000,3000]
                             [--chat-steps 250,500,1000,1500,2000,2500,3000] [--queues 10]
                             [--floor-steps 250,...,6000] [--floor-repeats 2]
                             [--quiet-wait 60]

refdesk runs as its own process (`python -m component.cli --config F run`, config written
here) against a throwaway Prosody; its resident memory is read from /proc/<pid>/status.
Three phases, each on a fresh Prosody (and refdesk) so that one does not inherit the other's
memory:

1. **idle**: patron WebSockets that said hello and nothing else, stepped up to the cap;
   RSS per session = (RSS with N sessions − RSS before the first) / N.
2. **chatting**: chats opened, asked and accepted by operators, then every chat sends one
   line every `--interval` seconds (random phase per chat) and the operator answers it at
   once: one line every few seconds each way. Stepped up until the p99 round trip passes
   100 ms, the cap is reached, opening chats fails, or the next step's opening would not
   fit in `--budget` seconds (opening chats gets slower as chats accumulate; see
   RESULTS.md).
3. **floor**: the same paced lines between plain XMPP clients through a fresh Prosody (no
   refdesk), stepped over `--floor-steps` until its p99 passes 100 ms; refdesk's
   sustainable chatting sessions are reported as a fraction of the floor's. The floor is
   measured `--floor-repeats` times (once before the chatting phase, the others after)
   and its spread reported: it is noisy, and a ratio to one run of it says too much.

Each chatting step also reports what a chat opened and a line cost: refdesk's and
Prosody's CPU, the stanzas the operators' clients read and wrote (all routed by Prosody),
and the largest operator archive (Prosody's message archive fills with every offer; see
`bench.stack.ARCHIVE_ITEM_LIMIT`).

The chats are spread over `--queues` queues (all operators in all queues): a queue's
status changes reach every patron socket of that queue, so one queue with thousands of
sockets makes opening chats far slower than the steady state this measures (the latency
benchmark uses one queue and shows that cost).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import time
from collections import Counter
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
    rss_kib,
    wait_quiet,
)
from bench.patrons import Fleet, Tracker, paced
from bench.stack import QUEUE, BenchStack, start_child, stop_child
from bench.xmpp_clients import FloorSender, count_stanzas

PASSWORD = "bench-password"
THRESHOLD_MS = 100.0


def queue_names(count: int) -> tuple[str, ...]:
    return (QUEUE, *(f"{QUEUE}-{n}" for n in range(2, count + 1)))


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


async def idle_phase(
    steps: list[int], queues: tuple[str, ...], keep: bool, settle: float = 1.0
) -> dict[str, Any]:
    out: dict[str, Any] = {"steps": []}
    async with BenchStack(keep=keep) as stack:
        ops, pid = await stack.desk_with_operators(2, 3, PASSWORD, queues)
        out["facts"] = machine_facts(stack.prosody_config)
        fleet = Fleet(stack.url)
        await asyncio.sleep(1.0)
        base = rss_kib(pid)
        out["rss_base_kib"] = base
        try:
            for step in steps:
                new = step - len(fleet.patrons)
                open_meter = CpuMeter({"refdesk": pid})
                open_meter.start()
                seconds = await fleet.open_idle(step, list(queues))
                opened = open_meter.stop()
                await asyncio.sleep(settle)
                meter = CpuMeter({"refdesk": pid})
                meter.start()
                await asyncio.sleep(3 * settle)
                idle_cpu = meter.stop()["refdesk"]
                rss = rss_kib(pid)
                held = sum(1 for p in fleet.patrons if not p.closed)
                row = {
                    "sessions": step,
                    "held": held,
                    "open_seconds": seconds,
                    "failures": len(fleet.failures),
                    "rss_kib": rss,
                    "kib_per_session": (rss - base) / max(1, held),
                    "refdesk_fds": fds(pid),
                    "idle_cpu": idle_cpu,
                    # refdesk's CPU per session opened in this step (WebSocket + hello):
                    # it must not grow with the sessions already open.
                    "cpu_ms_per_hello": 1000 * opened["refdesk"] * opened["wall_s"] / max(1, new),
                }
                out["steps"].append(row)
                print(
                    f"  idle {step}: held {held}, RSS {rss / 1024:.0f} MiB "
                    f"({row['kib_per_session']:.1f} KiB/session), opened in {seconds:.1f} s, "
                    f"{row['cpu_ms_per_hello']:.2f} ms CPU per hello",
                    file=sys.stderr,
                    flush=True,
                )
                if fleet.failures:
                    out["stopped"] = f"sessions failed to open: {fleet.failures[:3]}"
                    break
        finally:
            out["failures"] = fleet.failures[:5]
            await fleet.close()
            await asyncio.gather(*(op.disconnect() for op in ops), return_exceptions=True)
            out["refdesk_log"] = stack.log_problems()
            out["refdesk_first_problem"] = stack.first_problem()
    return out


async def chatting_phase(
    steps: list[int],
    queues: tuple[str, ...],
    *,
    operators: int,
    interval: float,
    warmup: float,
    duration: float,
    budget: float,
    keep: bool,
    quiet_wait: float = 60.0,
    db_dir: Path | None = None,
    gc_watch: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {"steps": [], "stopped": "cap reached"}
    max_chats = math.ceil(max(steps) / operators) * 2 + 10
    out["max_chats"] = max_chats
    phase_began = time.monotonic()
    async with BenchStack(keep=keep, db_dir=db_dir) as stack:
        stack.gc_watch = gc_watch
        ops, pid = await stack.desk_with_operators(operators, max_chats, PASSWORD, queues)
        out["facts"] = machine_facts(stack.prosody_config)
        out["facts"]["refdesk database"] = (
            f"a temporary directory on {filesystem_of(stack.db_path)}; SQLite WAL, "
            "synchronous=FULL as refdesk opens it"
        )
        out["facts"]["disk commits"] = commit_text(commit_probe(stack.db_path.parent))
        fleet = Fleet(stack.url)
        await asyncio.sleep(1.0)
        base = rss_kib(pid)
        out["rss_base_kib"] = base
        pids = {"refdesk": pid, "prosody": stack.prosody_pid, "bench client": os.getpid()}
        last_open: tuple[int, int, float] | None = None  # (from, to, seconds)
        try:
            for step in steps:
                have = len(fleet.patrons)
                if last_open is not None:
                    projected = project_open_seconds(last_open, have, step)
                    left = budget - (time.monotonic() - phase_began)
                    if projected > left:
                        out["stopped"] = (
                            f"opening chats {have}→{step} would take about {projected:.0f} s "
                            f"(the last step, {last_open[0]}→{last_open[1]}, took "
                            f"{last_open[2]:.0f} s), more than the {left:.0f} s left of the "
                            f"{budget:.0f} s budget"
                        )
                        break
                status_before = fleet.status_frames()
                stanzas_before = count_stanzas(ops)
                meter = CpuMeter(pids)
                meter.start()
                seconds = await fleet.open_chats(step, list(queues))
                open_cpu = meter.stop()
                opened = len(fleet.patrons) - have
                open_stanzas = stanzas_since(stanzas_before, count_stanzas(ops))
                last_open = (have, step, seconds)
                if fleet.failures:
                    out["stopped"] = f"chats failed to open or be accepted: {fleet.failures[:3]}"
                    break
                attempts = []
                for attempt in range(2):
                    # A step over the threshold is measured once more: on this shared
                    # machine one window can be spoilt by another process's burst.
                    quiet = await wait_quiet(pids, max_wait=quiet_wait)
                    tracker = Tracker()
                    for patron in fleet.patrons:
                        patron.tracker = tracker
                    window_before = count_stanzas(ops)
                    meter = CpuMeter(pids)
                    meter.start()
                    await paced(
                        len(fleet.patrons),
                        interval,
                        warmup,
                        duration,
                        lambda i, tok, body: fleet.patrons[i].send(tok, body),
                        tracker,
                        f"c{step}.{attempt}",
                    )
                    await tracker.drain(max(10.0, 3 * interval))
                    cpu = meter.stop()
                    window_stanzas = stanzas_since(window_before, count_stanzas(ops))
                    summary = tracker.summary()
                    attempts.append((summary, cpu, quiet, window_stanzas))
                    if summary["rtt_ms"]["p99"] <= THRESHOLD_MS and not summary["unanswered"]:
                        break
                summary, cpu, quiet, window_stanzas = min(
                    attempts, key=lambda a: a[0]["rtt_ms"]["p99"]
                )
                rss = rss_kib(pid)
                row = {
                    "attempts_p99_ms": [a[0]["rtt_ms"]["p99"] for a in attempts],
                    "quiet": quiet,
                    "sessions": step,
                    "rate_per_s": step / interval,
                    "open_seconds": seconds,
                    "open_cpu": open_cpu,
                    "opened": opened,
                    # What refdesk and Prosody spent per chat opened, and the stanzas the
                    # operators' clients read / wrote per chat opened (Prosody routed them).
                    "open_cpu_ms": per_unit(open_cpu, opened),
                    "open_stanzas": open_stanzas,
                    # The same per line in the measured window (warm-up included: the CPU
                    # window saw those lines too); a line is one patron line and its answer.
                    "line_cpu_ms": per_unit(cpu, summary["sent_total"]),
                    "line_stanzas": window_stanzas,
                    "archive_max": max(stack.archive_items().values(), default=0),
                    "status_frames_while_opening": fleet.status_frames() - status_before,
                    "rss_kib": rss,
                    "kib_per_session": (rss - base) / step,
                    "refdesk_fds": fds(pid),
                    "cpu": cpu,
                    **summary,
                }
                out["steps"].append(row)
                rtt = summary["rtt_ms"]
                print(
                    f"  chatting {step}: p50 {rtt['p50']:.1f} p99 {rtt['p99']:.1f} ms, "
                    f"unanswered {summary['unanswered']}, opened in {seconds:.1f} s "
                    f"(CPU ms per chat opened: refdesk {row['open_cpu_ms'].get('refdesk', 0):.1f}"
                    f", Prosody {row['open_cpu_ms'].get('prosody', 0):.1f}), "
                    f"RSS {rss / 1024:.0f} MiB, largest archive {row['archive_max']}",
                    file=sys.stderr,
                    flush=True,
                )
                if rtt["p99"] > THRESHOLD_MS or summary["unanswered"]:
                    out["stopped"] = (
                        f"p99 {rtt['p99']:.0f} ms > {THRESHOLD_MS:.0f} ms"
                        if rtt["p99"] > THRESHOLD_MS
                        else f"{summary['unanswered']} lines unanswered"
                    )
                    break
        finally:
            out["failures"] = fleet.failures[:5]
            out["patron_errors"] = [e for p in fleet.patrons for e in p.errors][:5]
            await fleet.close()
            await asyncio.gather(*(op.disconnect() for op in ops), return_exceptions=True)
            out["refdesk_log"] = stack.log_problems()
            out["refdesk_first_problem"] = stack.first_problem()
            if gc_watch:
                await stop_child(stack.refdesk)
                out["gc"] = stack.gc_report()
    out["crossing"] = crossing(out["steps"])
    return out


async def floor_phase(
    steps: list[int],
    *,
    pairs: int,
    interval: float,
    warmup: float,
    duration: float,
    keep: bool,
    quiet_wait: float = 60.0,
) -> dict[str, Any]:
    """The floor's own capacity: the same paced lines (one every `interval` s per chat,
    answered at once) between plain XMPP clients through a throwaway Prosody, stepped up
    until its p99 passes the threshold. `pairs` sending clients (in this process, like the
    patrons) and as many echo clients (their own process, like refdesk) carry the chats,
    as the latency benchmark's floor does; no refdesk runs."""
    out: dict[str, Any] = {"steps": [], "stopped": "last step reached", "pairs": pairs}
    async with BenchStack(keep=keep) as stack:
        prosody = await stack.start_prosody()
        out["facts"] = machine_facts(stack.prosody_config)
        senders_jids = await stack.register([f"floor-s{i}" for i in range(pairs)], PASSWORD)
        echo_jids = await stack.register([f"floor-e{i}" for i in range(pairs)], PASSWORD)
        host, port = prosody.host, prosody.c2s_port
        echo = await start_child(
            sys.executable, "-m", "bench.echo", "--host", host, "--port", str(port),
            "--password", PASSWORD, *echo_jids,
            log=stack.workdir / "echo.log", stdout_pipe=True,
        )  # fmt: skip
        senders: list[FloorSender] = []
        try:
            assert echo.stdout is not None
            if (await asyncio.wait_for(echo.stdout.readline(), 60)).strip() != b"ready":
                raise RuntimeError("the floor's echo process did not start")
            tracker = Tracker()
            senders = [
                FloorSender(jid, PASSWORD, host, port, lambda t, at: tracker.on_answer(t, at))
                for jid in senders_jids
            ]
            await asyncio.gather(*(sender.connect() for sender in senders))
            pids = {"prosody": stack.prosody_pid, "echo": echo.pid, "bench client": os.getpid()}
            for step in steps:
                quiet = await wait_quiet(pids, max_wait=quiet_wait)
                tracker.__init__()  # type: ignore[misc]
                before = count_stanzas(senders)
                meter = CpuMeter(pids)
                meter.start()
                await paced(
                    step,
                    interval,
                    warmup,
                    duration,
                    lambda i, _tok, body: senders[i % pairs].send(echo_jids[i % pairs], body),
                    tracker,
                    f"fl{step}",
                )
                await tracker.drain(max(10.0, 3 * interval))
                cpu = meter.stop()
                summary = tracker.summary()
                out["steps"].append(
                    {"sessions": step, "rate_per_s": step / interval, "quiet": quiet,
                     "cpu": cpu, "line_cpu_ms": per_unit(cpu, summary["sent_total"]),
                     "line_stanzas": stanzas_since(before, count_stanzas(senders)),
                     "archive_max": max(stack.archive_items().values(), default=0),
                     **summary}
                )  # fmt: skip
                rtt = summary["rtt_ms"]
                print(
                    f"  floor {step}: p50 {rtt['p50']:.1f} p99 {rtt['p99']:.1f} ms, "
                    f"unanswered {summary['unanswered']}",
                    file=sys.stderr,
                    flush=True,
                )
                if rtt["p99"] > THRESHOLD_MS or summary["unanswered"]:
                    out["stopped"] = (
                        f"p99 {rtt['p99']:.0f} ms > {THRESHOLD_MS:.0f} ms"
                        if rtt["p99"] > THRESHOLD_MS
                        else f"{summary['unanswered']} lines unanswered"
                    )
                    break
        finally:
            await asyncio.gather(*(s.disconnect() for s in senders), return_exceptions=True)
            await stop_child(echo)
    out["crossing"] = crossing(out["steps"])
    return out


def stanzas_since(
    before: tuple[Counter[str], Counter[str]], after: tuple[Counter[str], Counter[str]]
) -> dict[str, dict[str, int]]:
    """The stanzas read ("in") and written ("out") between two `count_stanzas` readings,
    by kind."""
    return {
        side: {k: n for k, n in sorted((a - b).items()) if n}
        for side, a, b in (("in", after[0], before[0]), ("out", after[1], before[1]))
    }


def per_unit(cpu: dict[str, float], units: int) -> dict[str, float]:
    """Milliseconds of CPU per unit (chat opened, line) for each process a `CpuMeter`
    measured (its figures are shares of one core over `wall_s` seconds)."""
    wall = cpu.get("wall_s", math.nan)
    return {
        name: 1000 * share * wall / units if units else math.nan
        for name, share in cpu.items()
        if name not in ("wall_s", "steal")
    }


def kinds_text(counts: dict[str, int], units: int) -> str:
    """Stanzas per unit by kind, biggest first: ``10.0 message/chat body, 9.0 ...``."""
    if not units or not counts:
        return "–"
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{n / units:.2f} {kind}" for kind, n in ranked if n / units >= 0.005)


def project_open_seconds(last: tuple[int, int, float], have: int, want: int) -> float:
    """Seconds to open chats have→want if the cost of the n-th chat grows like n² (as
    measured: every status change costs sockets × open chats)."""
    a, b, seconds = last
    done = b**3 - a**3
    if done <= 0:
        return 0.0
    return seconds * (want**3 - have**3) / done


def crossing(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Where p99 passed the threshold, interpolated between the two steps around it."""
    below = None
    for row in steps:
        p99 = row["rtt_ms"]["p99"]
        # A step where no line was answered has no p99 (NaN): it failed, it did not pass.
        if math.isnan(p99) or p99 > THRESHOLD_MS:
            if below is None:
                return {"sessions": row["sessions"], "how": "already at the first step"}
            if math.isnan(p99):
                return {
                    "sessions": below["sessions"],
                    "how": f"the last step below it (no line answered at {row['sessions']})",
                }
            x0, y0 = below["sessions"], below["rtt_ms"]["p99"]
            x1, y1 = row["sessions"], p99
            x = x0 + (THRESHOLD_MS - y0) * (x1 - x0) / (y1 - y0)
            return {"sessions": round(x), "how": f"interpolated between {x0} and {x1}"}
        below = row
    return {"sessions": None, "how": "not reached"}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_nofile()
    queues = queue_names(args.queues)
    result: dict[str, Any] = {"queues": len(queues), "interval_s": args.interval}
    print("idle sessions", file=sys.stderr, flush=True)
    result["idle"] = await idle_phase(
        args.idle_steps, queues, args.keep, settle=0.2 if args.quick else 1.0
    )
    floors: list[dict[str, Any]] = []

    async def one_floor() -> None:
        which = f"floor {len(floors) + 1} of {args.floor_repeats}"
        print(f"{which}: plain XMPP clients through Prosody", file=sys.stderr, flush=True)
        floors.append(
            await floor_phase(
                args.floor_steps,
                pairs=args.operators,
                interval=args.interval,
                warmup=args.warmup,
                duration=args.duration,
                keep=args.keep,
                quiet_wait=args.quiet_wait,
            )
        )

    # The floor's runs bracket refdesk's (one before, the others after), so that a machine
    # getting busier or quieter during the run shows as the floor's spread.
    if args.floor_steps and args.floor_repeats > 1:
        await one_floor()
    print("chatting sessions", file=sys.stderr, flush=True)
    result["chatting"] = await chatting_phase(
        args.chat_steps,
        queues,
        operators=args.operators,
        interval=args.interval,
        warmup=args.warmup,
        duration=args.duration,
        budget=args.budget,
        keep=args.keep,
        quiet_wait=args.quiet_wait,
        db_dir=args.db_dir,
        gc_watch=args.gc_watch,
    )
    if args.floor_steps:
        while len(floors) < args.floor_repeats:
            await one_floor()
        result["floor"] = floors[0]
        result["floor_repeats"] = floors
        result["capacity_ratio"] = capacity_ratio(result["chatting"], floors[0])
        result["ratio_over_floors"] = ratio_over_floors(result["chatting"], floors)
    result["facts"] = result["chatting"].get("facts") or result["idle"].get("facts")
    return result


def sustained(phase: dict[str, Any]) -> tuple[float, str]:
    """A phase's sustainable sessions and what kind of figure it is: "exact" (it crossed
    the threshold between two steps), "at least" (it never did: its last step), "at most"
    (already over at its first step)."""
    cross = phase["crossing"]
    if cross["sessions"] is None:
        steps = phase["steps"]
        return (float(steps[-1]["sessions"]) if steps else math.nan), "at least"
    if cross["how"] == "already at the first step":
        return float(cross["sessions"]), "at most"
    return float(cross["sessions"]), "exact"


def ratio_over_floors(chat: dict[str, Any], floors: list[dict[str, Any]]) -> dict[str, Any]:
    """refdesk's sustainable sessions against each repeat of the floor (the floor is run
    more than once because it is noisy), and against their mean: the figure to quote,
    with the floor's spread beside it."""
    each = [capacity_ratio(chat, floor) for floor in floors]
    values = [r["floor"] for r in each if not math.isnan(r["floor"])]
    ratios = [r["ratio"] for r in each if not math.isnan(r["ratio"])]
    mean = statistics.fmean(values) if values else math.nan
    refdesk = each[0]["refdesk"] if each else math.nan
    kinds = [sustained(floor)[1] for floor in floors]
    return {
        "each": each,
        "floor_sessions": [r["floor"] for r in each],
        "floor_kinds": kinds,
        "floor_mean": mean,
        # (highest − lowest) / mean: how far two runs of the same floor disagree (only
        # when each run crossed the threshold between two steps: bounds have no spread).
        "floor_spread": (
            (max(values) - min(values)) / mean
            if len(values) > 1 and set(kinds) == {"exact"}
            else math.nan
        ),
        # Only when every run gave a ratio (a bound on both sides gives none).
        "ratio_mean": (
            refdesk / mean
            if mean and len(ratios) == len(each) and not math.isnan(mean)
            else math.nan
        ),
        "ratio_low": min(ratios, default=math.nan),
        "ratio_high": max(ratios, default=math.nan),
        "hows": sorted({r["how"] for r in each}),
    }


def capacity_ratio(chat: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """refdesk's sustainable chatting sessions over the floor's, each the step where p99
    passed the threshold (interpolated). A side that never passed it gives its last step
    (at least that many), one that passed it at its first step gives that step (at most
    that many): the ratio is then a bound, and `how` says which, or that none can be read."""
    ours, ours_kind = sustained(chat)
    theirs, theirs_kind = sustained(floor)
    # Which way each bound pushes refdesk / floor.
    pushes = {
        {"at least": "≥", "at most": "≤"}.get(ours_kind),
        {"at least": "≤", "at most": "≥"}.get(theirs_kind),
    } - {None}
    value = ours / theirs if theirs and not math.isnan(theirs) else math.nan
    if not pushes:
        how = "both crossed the threshold"
    elif len(pushes) == 1:
        bound = "a lower" if pushes == {"≥"} else "an upper"
        how = f"refdesk {ours_kind}, floor {theirs_kind}: the ratio is {bound} bound"
    else:
        how = f"refdesk {ours_kind}, floor {theirs_kind}: no ratio can be read"
        value = math.nan
    return {"refdesk": ours, "floor": theirs, "ratio": value, "how": how}


def markdown(result: dict[str, Any], args: argparse.Namespace) -> str:
    idle, chat = result["idle"], result["chatting"]
    idle_rows = [
        [
            str(r["sessions"]),
            str(r["held"]),
            f"{r['open_seconds']:.1f} s",
            fmt(r["rss_kib"] / 1024, 0) + " MiB",
            fmt(r["kib_per_session"], 1),
            str(r["refdesk_fds"]),
            fmt(100 * r["idle_cpu"], 1),
            fmt(r.get("cpu_ms_per_hello", float("nan")), 2),
        ]
        for r in idle["steps"]
    ]
    chat_rows = []
    for r in chat["steps"]:
        c = r["cpu"]
        chat_rows.append(
            [
                str(r["sessions"]),
                fmt(r["rate_per_s"], 0),
                str(r["sent"]),
                fmt(r["rtt_ms"]["p50"], 1),
                fmt(r["rtt_ms"]["p99"], 1)
                + (
                    " (1st try " + fmt(r["attempts_p99_ms"][0], 0) + ")"
                    if len(r.get("attempts_p99_ms", [])) > 1
                    else ""
                ),
                fmt(r["rtt_ms"]["max"], 0),
                str(r["unanswered"]),
                fmt(r["send_lag_ms"]["p99"], 0),
                " / ".join(
                    fmt(100 * c.get(k, math.nan), 0)
                    for k in ("refdesk", "prosody", "bench client", "others")
                ),
                fmt(r["rss_kib"] / 1024, 0) + " MiB",
                fmt(r["kib_per_session"], 1),
                f"{r['open_seconds']:.1f} s",
                fmt(r["status_frames_while_opening"], 0),
            ]
        )
    cross = chat["crossing"]
    if cross["sessions"] is None:
        verdict = (
            f"p99 stayed under {THRESHOLD_MS:.0f} ms at every step measured; stepping "
            f"stopped because: {chat['stopped']}."
        )
    else:
        verdict = (
            f"**p99 passed {THRESHOLD_MS:.0f} ms at about {cross['sessions']} chatting "
            f"sessions** ({cross['how']}); stopped because: {chat['stopped']}."
        )
    notes = []
    for label, phase in (("idle", idle), ("chatting", chat)):
        if phase.get("failures"):
            notes.append(f"{label}: failures {phase['failures'][:3]}")
        if phase.get("patron_errors"):
            notes.append(f"{label}: error frames {phase['patron_errors'][:3]}")
        problems = phase.get("refdesk_log") or {}
        if any(problems.values()):
            notes.append(
                f"{label}: refdesk log {problems}; first: `{phase.get('refdesk_first_problem')}`"
            )
    if chat.get("gc"):
        notes.append(f"refdesk's garbage collector over the chatting phase: `{chat['gc']}`")
    if idle.get("stopped"):
        notes.append(f"idle phase stopped: {idle['stopped']}")
    idle_table = md_table(
        ["sessions", "held", "time to open", "refdesk RSS", "KiB per session", "refdesk fds",
         "CPU idle %", "refdesk CPU ms per session opened in the step"],
        idle_rows,
    )  # fmt: skip
    chat_table = md_table(
        [
            "sessions", "lines/s each way", "samples", "p50 ms", "p99 ms", "max ms",
            "unanswered", "pacer lag p99 ms", "CPU refdesk / prosody / bench client / others",
            "refdesk RSS", "KiB per session", "time to open the step's chats",
            "status frames pushed while opening",
        ],
        chat_rows,
    )  # fmt: skip
    cost_rows = []
    for r in chat["steps"]:
        if "open_cpu_ms" not in r:
            continue
        o, line = r["open_cpu_ms"], r["line_cpu_ms"]
        cost_rows.append(
            [
                str(r["sessions"]),
                str(r["opened"]),
                f"{fmt(o.get('refdesk', math.nan), 2)} / {fmt(o.get('prosody', math.nan), 2)}",
                kinds_text(r["open_stanzas"]["in"], r["opened"]),
                kinds_text(r["open_stanzas"]["out"], r["opened"]),
                f"{fmt(line.get('refdesk', math.nan), 3)} / "
                f"{fmt(line.get('prosody', math.nan), 3)}",
                kinds_text(r["line_stanzas"]["in"], r["sent_total"]),
                kinds_text(r["line_stanzas"]["out"], r["sent_total"]),
                f"{r['archive_max']:,}",
            ]
        )
    cost_table = md_table(
        [
            "sessions", "chats opened in the step",
            "CPU ms per chat opened: refdesk / prosody",
            "stanzas per chat opened, to the operators' clients",
            "from them",
            "CPU ms per line: refdesk / prosody",
            "stanzas per line, to the operators' clients", "from them",
            "largest operator archive (messages)",
        ],
        cost_rows,
    )  # fmt: skip
    floor_text = floor_markdown(result, args)
    if not notes:
        notes = ["No failures, no error frames, no WARNING/ERROR in the refdesk logs."]
    note_lines = "\n".join("- " + n for n in notes)
    idle_base = fmt(idle["rss_base_kib"] / 1024, 0)
    chat_base = fmt(chat.get("rss_base_kib", math.nan) / 1024, 0)
    return f"""## Capacity: sessions held, memory per session, where p99 passes 100 ms

Command: `{command_line()}`

{facts_markdown(result["facts"])}

Method: refdesk as its own process (`python -m component.cli --config F run`, config
written by the benchmark) against a throwaway Prosody; RSS from `/proc/<pid>/status`
(VmRSS). Sessions are spread over {result["queues"]} queue(s), every operator in every
queue. Each phase starts a fresh refdesk and Prosody.

**Idle sessions** (WebSocket + hello, nothing asked; refdesk RSS before the first session
{idle_base} MiB with 2 operators online). *CPU idle* = refdesk's CPU over 3 s with the
sessions open and silent.

{idle_table}

**Chatting sessions**: {args.operators} operators (max_chats {chat.get("max_chats")}); every
chat sends one line every {result["interval_s"]:g} s (random phase per chat, open loop) and
the operator answers at once; {args.warmup:g} s warm-up, {args.duration:g} s recorded per
step. Before each window the benchmark waits (up to {args.quiet_wait:g} s) for the rest of
the machine to use under half a core; a step whose p99 is over the threshold is measured
a second time and the better window kept (both shown). RSS per session counts from {chat_base} MiB
(operators online, no chat). CPU in % of
one core (2 cores in all); *others* = the rest of the machine (other processes, kernel)
during the step: the machine is shared and not always quiet.

{chat_table}

What each chat opened and each line cost (a line: one patron line and the operator's
answer, warm-up included; stanzas counted in the operators' own clients, all of which
Prosody routed; refdesk's confirmation pings to the server are not in them):

{cost_table}

{verdict}

{floor_text}
{note_lines}
"""


def floor_markdown(result: dict[str, Any], args: argparse.Namespace) -> str:
    """The floor's steps (each repeat), and the capacity ratio, or nothing if the floor
    was not run."""
    floors = result.get("floor_repeats") or ([result["floor"]] if result.get("floor") else [])
    if not floors:
        return ""
    tables = []
    for n, floor in enumerate(floors, 1):
        rows = [
            [
                str(r["sessions"]),
                fmt(r["rate_per_s"], 0),
                str(r["sent"]),
                fmt(r["rtt_ms"]["p50"], 1),
                fmt(r["rtt_ms"]["p99"], 1),
                fmt(r["rtt_ms"]["max"], 0),
                str(r["unanswered"]),
                " / ".join(
                    fmt(100 * r["cpu"].get(k, math.nan), 0)
                    for k in ("prosody", "echo", "bench client", "others")
                ),
                fmt(r.get("line_cpu_ms", {}).get("prosody", math.nan), 3),
                kinds_text(r.get("line_stanzas", {}).get("in", {}), r.get("sent_total", 0))
                + " / "
                + kinds_text(r.get("line_stanzas", {}).get("out", {}), r.get("sent_total", 0)),
                f"{r.get('archive_max', 0):,}",
            ]
            for r in floor["steps"]
        ]
        when = (
            "before refdesk's chatting phase"
            if n == 1 and len(floors) > 1
            else "after refdesk's chatting phase"
        )
        cross = floor["crossing"]
        tables.append(
            f"Floor run {n} of {len(floors)} ({when}; stopped because: {floor['stopped']}; "
            f"crossed at {cross['sessions']}, {cross['how']}):\n\n"
            + md_table(
                ["sessions", "lines/s each way", "samples", "p50 ms", "p99 ms", "max ms",
                 "unanswered", "CPU prosody / echo / bench client / others",
                 "Prosody CPU ms per line",
                 "stanzas per line to / from the sending clients",
                 "largest archive (messages)"],
                rows,
            )
        )  # fmt: skip
    over = result.get("ratio_over_floors") or ratio_over_floors(result["chatting"], floors)
    first = floors[0]
    if len(floors) > 1:
        marks = {"at most": "≤ ", "at least": "≥ ", "exact": ""}
        runs = ", ".join(
            marks[kind] + fmt(x, 0)
            for x, kind in zip(over["floor_sessions"], over["floor_kinds"], strict=True)
        )
        spread = f"The floor's runs: {runs} sustained sessions" + (
            f" (mean {fmt(over['floor_mean'], 0)}; the runs disagree by "
            f"{fmt(100 * over['floor_spread'], 0)} % of the mean)."
            if not math.isnan(over["floor_spread"])
            else " (a bound has no spread)."
        )
        verdict = (
            f"**no ratio** ({'; '.join(over['hows'])})"
            if math.isnan(over["ratio_mean"])
            else f"**{fmt(over['ratio_mean'], 2)}× the floor's mean** (against each run: "
            f"{fmt(over['ratio_low'], 2)}–{fmt(over['ratio_high'], 2)}×; "
            f"{'; '.join(over['hows'])})"
        )
    else:
        spread = "The floor was measured once: its noise is not known from this run."
        ratio_ = result["capacity_ratio"]
        verdict = (
            f"**no ratio** ({ratio_['how']})"
            if math.isnan(ratio_["ratio"])
            else f"**{fmt(ratio_['ratio'], 2)}× the floor** ({ratio_['how']})"
        )
    tables_text = "\n\n".join(tables)
    return f"""**Floor** (the limit refdesk sits on): the same paced lines between plain XMPP
clients through a fresh Prosody ({first["pairs"]} sending clients in the benchmark's process,
{first["pairs"]} echo clients in their own), no refdesk, no chat opened; each run on its own
Prosody. A line is one message each way, two client streams; every message is archived
for its sender and its recipient (refdesk's path: one archive per message).

{tables_text}

{spread}

Sustainable chatting sessions (p99 ≤ {THRESHOLD_MS:.0f} ms): refdesk
{fmt(over["each"][0]["refdesk"], 0)}: {verdict}.
"""


def _steps(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = base_parser("bench.capacity", __doc__.split("\n\n")[0])
    parser.add_argument("--idle-steps", type=_steps)
    parser.add_argument("--chat-steps", type=_steps)
    parser.add_argument(
        "--floor-steps",
        type=_steps,
        help="steps of the floor (plain XMPP clients through Prosody; default: the chat "
        "steps and beyond, up to twice the last)",
    )
    parser.add_argument(
        "--floor-repeats",
        type=int,
        help="how many times the floor is measured, each on a fresh Prosody: the first "
        "before refdesk's chatting phase, the others after it (2; 1 with --quick)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="seconds to wait at most, before each measured window, for the rest of the "
        "machine to use under half a core (60; 0 with --quick: measure at once)",
    )
    parser.add_argument("--queues", type=int, help="queues the sessions are spread over (10)")
    parser.add_argument("--operators", type=int, help="operator accounts (10)")
    parser.add_argument("--interval", type=float, help="seconds between a chat's lines (5)")
    parser.add_argument("--duration", type=float, help="recorded seconds per step (15)")
    parser.add_argument("--warmup", type=float, help="unrecorded seconds per step (3)")
    parser.add_argument("--budget", type=float, help="seconds for the chatting phase (900)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--gc-watch", action="store_true", help="report refdesk's garbage-collector pauses"
    )
    parser.add_argument(
        "--db-dir", type=Path, help="put refdesk's database there (e.g. /dev/shm: no fsync cost)"
    )
    args = parser.parse_args()
    q = args.quick
    args.idle_steps = args.idle_steps or ([10, 30] if q else [500, 1000, 2000, 3000])
    args.chat_steps = args.chat_steps or (
        [5, 15] if q else [250, 500, 1000, 1500, 2000, 2500, 3000]
    )
    if args.floor_steps is None:
        last = args.chat_steps[-1]
        args.floor_steps = [*args.chat_steps, round(1.5 * last), 2 * last]
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if q else 60.0
    args.floor_repeats = max(1, args.floor_repeats or (1 if q else 2))
    args.queues = args.queues or (2 if q else 10)
    args.operators = args.operators or (2 if q else 10)
    args.interval = args.interval or (1.0 if q else 5.0)
    args.duration = args.duration or (2.0 if q else 15.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if q else 3.0)
    args.budget = args.budget or (120.0 if q else 900.0)
    result = asyncio.run(run(args))
    finish(args, "capacity", result, markdown(result, args))


if __name__ == "__main__":
    main()
