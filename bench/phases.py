"""CPU per phase of a round trip, measured in one process, and py-spy samples by phase.

    python -m bench.phases [--lines 400] [--rounds 1]
    python -m bench.phases --spy FILE

The first form drives the XMPP adapter and the service on slixmpp's test transport (the
stanza tests' in-process wire: no XMPP server, no network; the database is a real SQLite
file with `synchronous=FULL`) through `--lines` round trips and prints the CPU of each
phase per line: the patron's line (service, commit, stanza to the operator), the answer
to its confirmation ping, the operator's line (parse, dispatch, commit). "main" is the
event loop's thread, "process" adds the database thread. Run it in two work trees, turn
about, to compare two versions of the code: the figures leave out the XMPP server, the
WebSocket and the load generator, so they are steadier than `bench.latency`'s on a
shared machine.

The second form sorts the samples of `py-spy record --format raw` (as `bench._profiled`
writes them with BENCH_PROFILE_CLOCK=py-spy) into the phases of a round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import tempfile
import time
from pathlib import Path

PATRON = "patron line (service, commit, stanza to the operator)"
ANSWER = "answer to its confirmation ping"
OPERATOR = "operator line (parse, dispatch, commit)"
TEXT = "A line of a chat, about as long as the ones people type: sixty-odd chars."

# (phase, substrings of a stack), first match wins; order matters.
SPY_PHASES: list[tuple[str, tuple[str, ...]]] = [
    ("logging", ("logging/__init__.py",)),
    ("confirmation ping answered", ("take_answer", "take_raw_answer", "_confirm")),
    ("stanza to the operator: build", ("_patron_stanzas", "_chat_stanzas")),
    ("stanza to the operator: serialise, size check, write", ("xmpp_delivery.py",)),
    ("frame out to the patron (JSON, WebSocket write)", ("_writer (web/patron.py",)),
    ("hand-offs to the database thread (main-thread side)", ("component/store", "aiosqlite")),
    ("operator line: service (moderation, store call, publish)", ("inbound_lanes.py",)),
    ("inbound XMPP: XML parse, slixmpp dispatch", ("slixmpp/",)),
    ("patron line: service (validation, rate limit, publish)", ("component/chats.py",)),
    ("patron line: frame in, JSON, session", ("web/patron", "aiohttp/")),
    ("event loop (epoll, callbacks, tasks)", ("asyncio/", "selectors.py")),
]


async def measure(lines: int) -> dict[str, tuple[float, float]]:
    """CPU seconds per line of each phase: (main thread, whole process)."""
    # The stanza tests' wire is the one in-process harness of the adapter.
    from tests.component.test_xmpp_stanzas import (
        ANN,
        COMPONENT_DOMAIN,
        chat_offered,
        close_wire,
        is_ping,
        open_wire,
    )

    wire = await open_wire(Path(tempfile.mkdtemp(prefix="refdesk-phases-")))
    try:
        chat = await chat_offered(wire, "Hello?", "m0")
        guest = f"{chat.guest}@{COMPONENT_DOMAIN}"
        totals = {PATRON: [0.0, 0.0], ANSWER: [0.0, 0.0], OPERATOR: [0.0, 0.0]}

        def clocks() -> tuple[float, float]:
            return time.thread_time(), time.process_time()

        def add(phase: str, start: tuple[float, float]) -> None:
            end = clocks()
            totals[phase][0] += end[0] - start[0]
            totals[phase][1] += end[1] - start[1]

        for n in range(lines):
            start = clocks()
            await wire.service.post_patron_message(chat.chat_id, f"m{n + 1}", TEXT)
            await wire.settle()
            pings = [s for s in wire.written() if is_ping(s)]
            add(PATRON, start)
            start = clocks()
            for ping in pings:
                wire.answer(ping)
            await wire.settle()
            add(ANSWER, start)
            start = clocks()
            wire.feed(
                f"<message type='chat' id='o{n}' from='{ANN}/laptop' to='{guest}'>"
                f"<body>{TEXT}</body></message>"
            )
            await wire.settle()
            await wire.confirmed()
            add(OPERATOR, start)
        return {k: (v[0] / lines, v[1] / lines) for k, v in totals.items()}
    finally:
        await close_wire(wire)


def spy_phases(path: Path) -> list[tuple[str, int]]:
    """Samples per phase in a py-spy raw file (threads other than the event loop's are
    one phase: the database thread)."""
    counts: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        if "MainThread" not in stack.split(";", 1)[0]:
            counts["database thread"] += int(n)
            continue
        for phase, marks in SPY_PHASES:
            if any(mark in stack for mark in marks):
                counts[phase] += int(n)
                break
        else:
            counts["other"] += int(n)
    return counts.most_common()


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.phases", description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=400, help="round trips (400)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat and print each (1)")
    parser.add_argument("--spy", type=Path, help="sort this py-spy raw file into phases")
    args = parser.parse_args()
    if args.spy is not None:
        rows = spy_phases(args.spy)
        total = sum(n for _, n in rows) or 1
        for phase, n in rows:
            print(f"{100 * n / total:5.1f} %  {n:6d}  {phase}")
        return
    for _ in range(args.rounds):
        figures = asyncio.run(measure(args.lines))
        for phase, (main_s, process_s) in figures.items():
            print(f"{phase}: main {main_s * 1e6:.0f} µs, process {process_s * 1e6:.0f} µs")
        total_main = sum(m for m, _ in figures.values())
        total_process = sum(p for _, p in figures.values())
        print(f"round trip: main {total_main * 1e6:.0f} µs, process {total_process * 1e6:.0f} µs")


if __name__ == "__main__":
    main()
