"""Run `refdesk` (component.cli) and report how long the garbage collector stopped it.

    python -m bench._gcwatch -- --config refdesk.toml run

At exit it writes one line to standard error (refdesk's log in the benchmarks):
``bench-gc: gen2 N collections, max X ms, total Y ms; gen0/1 ...``. Used by
`python -m bench.capacity --gc-watch` to tell GC pauses from other stalls.
"""

from __future__ import annotations

import atexit
import gc
import sys
import time

_started: dict[int, float] = {}
_pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}


def _callback(phase: str, info: dict[str, int]) -> None:
    generation = info.get("generation", 0)
    if phase == "start":
        _started[generation] = time.perf_counter()
    elif generation in _started:
        _pauses[generation].append(time.perf_counter() - _started.pop(generation))


def _report() -> None:
    parts = []
    for generation, pauses in _pauses.items():
        if pauses:
            parts.append(
                f"gen{generation} {len(pauses)} collections, max {1000 * max(pauses):.1f} ms, "
                f"total {1000 * sum(pauses):.0f} ms"
            )
    print("bench-gc: " + "; ".join(parts or ["no collection"]), file=sys.stderr, flush=True)


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    gc.callbacks.append(_callback)
    atexit.register(_report)
    from component.cli import main as refdesk_main

    return refdesk_main(args)


if __name__ == "__main__":
    sys.exit(main())
