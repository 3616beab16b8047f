"""Start-up time and memory of refdesk on a big database: `--bans` active bans and
`--lines` stored chat lines, against the same refdesk on an empty (seeded) database.

    python -m bench.startup [--quick] [--bans 100000] [--lines 1000000] [--runs 3]

The big database is built once (schema and seed through the store, then the bans, chats
and lines in bulk) and kept under the temporary directory, named by its sizes, so later
runs reuse it (`--rebuild` builds it again). Each run starts refdesk (`python -m
component.cli --config F run`, no XMPP server: start-up does not wait for it) on a fresh
copy of a database and measures, once its status endpoint answers: the wall time from the
process start, the process's CPU time (user + system, from /proc: the figure that does not
depend on how much of a core it got on a shared machine) and its RSS. Runs alternate
between the empty and the big database.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    base_parser,
    command_line,
    cpu_seconds,
    facts_markdown,
    finish,
    fmt,
    machine_facts,
    md_table,
    rss_kib,
)
from bench.routing import make_bans
from bench.stack import QUEUE, BenchStack, stop_child

# Lines per stored chat: a short reference chat.
LINES_PER_CHAT = 20


def _iso(value: datetime) -> str:
    # The store's format (component.store.db.iso), so that its comparisons hold.
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def fill(path: Path, bans: int, lines: int) -> None:
    """Add `bans` active bans (each with its audit line) and `lines` lines of ended chats
    (LINES_PER_CHAT per chat, both sides speaking) to a seeded database, in bulk."""
    now = datetime.now(UTC)
    rng = random.Random(11)
    db = sqlite3.connect(path)
    try:
        queue_id, operator_id = db.execute(
            "SELECT q.id, o.id FROM queues q, operators o WHERE q.name = ? LIMIT 1", (QUEUE,)
        ).fetchone()
        db.executemany(
            "INSERT INTO bans (id, network, offence, reason, created_by, starts_at, ends_at,"
            " created_at) VALUES (?, ?, ?, 'bench', 'bench', ?, ?, ?)",
            (
                (b.id, str(b.network), b.offence, _iso(b.starts_at), _iso(b.ends_at), _iso(now))
                for b in make_bans(bans, now)
                if b.ends_at is not None
            ),
        )
        db.executemany(
            "INSERT INTO ban_audit (ban_id, action, actor, detail, created_at)"
            " VALUES (?, 'create', 'bench', 'bench', ?)",
            ((n, _iso(now)) for n in range(1, bans + 1)),
        )
        chats = -(-lines // LINES_PER_CHAT)
        start = now - timedelta(days=365)
        db.executemany(
            "INSERT INTO chats (id, queue_id, guest, resume_hash, state, operator_id,"
            " origin_ip, created_at, accepted_at, ended_at, ended_by)"
            " VALUES (?, ?, ?, ?, 'ended', ?, NULL, ?, ?, ?, 'patron')",
            (
                (
                    c,
                    queue_id,
                    f"guest-{c}",
                    f"resume-{c}",
                    operator_id,
                    _iso(start + timedelta(minutes=c)),
                    _iso(start + timedelta(minutes=c, seconds=30)),
                    _iso(start + timedelta(minutes=c + 10)),
                )
                for c in range(1, chats + 1)
            ),
        )
        words = [
            "where",
            "can",
            "I",
            "find",
            "the",
            "book",
            "about",
            "local",
            "history",
            "please",
            "thanks",
        ]
        db.executemany(
            "INSERT INTO chat_events (chat_id, seq, kind, sender, operator_id, name, text,"
            " created_at) VALUES (?, ?, 'message', ?, ?, ?, ?, ?)",
            (
                (
                    1 + n // LINES_PER_CHAT,
                    1 + n % LINES_PER_CHAT,
                    "patron" if n % 2 == 0 else "operator",
                    None if n % 2 == 0 else operator_id,
                    "Guest" if n % 2 == 0 else "Operator 1",
                    " ".join(rng.choices(words, k=8)),
                    _iso(start + timedelta(minutes=n // LINES_PER_CHAT, seconds=n % 60)),
                )
                for n in range(lines)
            ),
        )
        db.commit()
        db.execute("VACUUM")
    finally:
        db.close()


async def build(stack: BenchStack, target: Path, bans: int, lines: int) -> float:
    """The seeded database, filled; returns the seconds it took."""
    began = time.monotonic()
    await stack.seed([f"op{i}@localhost" for i in range(10)], 3)
    # The schema and seed come from the store itself, so the database is what refdesk
    # would have made; the bulk rows go in with plain SQLite.
    await asyncio.to_thread(fill, stack.db_path, bans, lines)
    shutil.copyfile(stack.db_path, target)
    return time.monotonic() - began


async def one_start(stack: BenchStack, source: Path) -> dict[str, float]:
    """Start refdesk on a fresh copy of `source`; its figures once it answers."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(stack.db_path) + suffix).unlink(missing_ok=True)
    shutil.copyfile(source, stack.db_path)
    began = time.monotonic()
    pid = await stack.start_refdesk()
    wall = time.monotonic() - began
    figures = {"wall_s": wall, "cpu_s": cpu_seconds(pid), "rss_kib": float(rss_kib(pid))}
    await stop_child(stack.refdesk)
    stack.refdesk = None
    return figures


async def run(bans: int, lines: int, runs: int, rebuild: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"bans": bans, "lines": lines, "runs": runs}
    cache = Path(tempfile.gettempdir()) / f"refdesk-bench-startup-{bans}-{lines}.sqlite3"
    async with BenchStack() as stack:
        stack.write_config()
        result["facts"] = machine_facts(None)
        empty = stack.workdir / "empty.sqlite3"
        await stack.seed([f"op{i}@localhost" for i in range(10)], 3)
        shutil.copyfile(stack.db_path, empty)
        stack.db_path.unlink()
        if rebuild or not cache.exists():
            partial = cache.with_suffix(".partial")
            result["build_s"] = await build(stack, partial, bans, lines)
            os.replace(partial, cache)
        result["db_mib"] = cache.stat().st_size / 2**20
        samples: dict[str, list[dict[str, float]]] = {"empty": [], "big": []}
        for r in range(runs):
            print(f"run {r + 1} of {runs}", file=sys.stderr, flush=True)
            samples["empty"].append(await one_start(stack, empty))
            samples["big"].append(await one_start(stack, cache))
        result["samples"] = samples
    result["median"] = {
        name: {key: statistics.median(s[key] for s in rows) for key in rows[0]}
        for name, rows in samples.items()
    }
    return result


def markdown(result: dict[str, Any]) -> str:
    big = f"{result['bans']:,} bans, {result['lines']:,} lines"
    names = {"empty": "empty (seeded) database", "big": big}
    rows = []
    for key, name in names.items():
        med = result["median"][key]
        each = result["samples"][key]
        rows.append(
            [
                name,
                fmt(med["wall_s"], 2),
                " / ".join(fmt(s["wall_s"], 2) for s in each),
                fmt(med["cpu_s"], 2),
                " / ".join(fmt(s["cpu_s"], 2) for s in each),
                fmt(med["rss_kib"] / 1024, 1),
            ]
        )
    extra = result["median"]["big"]
    base = result["median"]["empty"]
    built = (
        f"built in {fmt(result['build_s'], 0)} s this run"
        if "build_s" in result
        else "reused from an earlier run"
    )
    mib = fmt((extra["rss_kib"] - base["rss_kib"]) / 1024, 1)
    table = md_table(
        ["database", "start-up wall s (median)", "each run", "start-up CPU s (median)",
         "each run", "RSS MiB (median)"],
        rows,
    )  # fmt: skip
    return f"""## Start-up on a big database

Command: `{command_line()}`

{facts_markdown(result["facts"])}

Method: refdesk started as its own process (`python -m component.cli --config F run`, no
XMPP server) on a fresh copy of each database, {result["runs"]} runs alternating between
the two; figures taken when its status endpoint first answers. The big database
({fmt(result["db_mib"], 0)} MiB, {built}) holds {big} ({LINES_PER_CHAT} per ended chat).
*CPU s* (user + system of the process, from /proc) does not depend on how much of a core
it got on this shared machine; wall time does.

{table}

The big database costs {fmt(extra["cpu_s"] - base["cpu_s"], 2)} s more CPU and {mib} MiB more
RSS at start-up than the empty one.
"""


def main() -> None:
    parser = base_parser("bench.startup", __doc__.split("\n\n")[0])
    parser.add_argument("--bans", type=int, help="active bans (100000; quick 2000)")
    parser.add_argument("--lines", type=int, help="stored chat lines (1000000; quick 20000)")
    parser.add_argument("--runs", type=int, help="start-ups per database (3; quick 1)")
    parser.add_argument("--rebuild", action="store_true", help="build the big database again")
    args = parser.parse_args()
    q = args.quick
    result = asyncio.run(
        run(
            bans=args.bans or (2_000 if q else 100_000),
            lines=args.lines or (20_000 if q else 1_000_000),
            runs=args.runs or (1 if q else 3),
            rebuild=args.rebuild,
        )
    )
    finish(args, "startup", result, markdown(result))


if __name__ == "__main__":
    main()
