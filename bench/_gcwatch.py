"""Run `refdesk` (component.cli) and report how long the garbage collector stopped it, and
how late its event loop ran, as a timeline.

    python -m bench._gcwatch -- --config refdesk.toml run

At exit it writes one line to standard error (refdesk's log in the benchmarks):
``bench-gc: gen2 N collections, max X ms, total Y ms; gen0/1 ...``. Used by
`python -m bench.capacity --gc-watch` to tell GC pauses from other stalls.

With the environment variable ``BENCH_TIMELINE`` set to a file name, it also samples the
event loop's lag (a task asks to wake every `SAMPLE_S` seconds and notes how late it
woke) and appends, once a second, one JSON line per elapsed tenth of a second:
``{"t": perf_counter at the start of the tenth, "lag_ms": worst lag in it, "gc_ms": time
in collections that started in it, "gc2": full collections in it}``. `perf_counter` is
CLOCK_MONOTONIC on Linux, shared by every process, so `bench.latency` lines the
timeline up with its own send and answer times.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import json
import os
import sys
import time
from collections.abc import Coroutine
from typing import Any

_started: dict[int, tuple[float, float]] = {}
_pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
# CPU time of each collection (the thread's own CPU clock: what the collector cost,
# however little of a core the process got on a busy machine).
_cpu: dict[int, list[float]] = {0: [], 1: [], 2: []}
# (start, duration, generation) of every collection, for the timeline.
_collections: list[tuple[float, float, int]] = []

SAMPLE_S = 0.005
BUCKET_S = 0.1


def _callback(phase: str, info: dict[str, int]) -> None:
    generation = info.get("generation", 0)
    if phase == "start":
        _started[generation] = (time.perf_counter(), time.thread_time())
    elif generation in _started:
        start, cpu_start = _started.pop(generation)
        pause = time.perf_counter() - start
        _pauses[generation].append(pause)
        _cpu[generation].append(time.thread_time() - cpu_start)
        _collections.append((start, pause, generation))


def _report() -> None:
    parts = []
    for generation, pauses in _pauses.items():
        if pauses:
            parts.append(
                f"gen{generation} {len(pauses)} collections, max {1000 * max(pauses):.1f} ms, "
                f"total {1000 * sum(pauses):.0f} ms (CPU max {1000 * max(_cpu[generation]):.1f}"
                f" ms, total {1000 * sum(_cpu[generation]):.0f} ms)"
            )
    print("bench-gc: " + "; ".join(parts or ["no collection"]), file=sys.stderr, flush=True)


class _Timeline:
    """The loop-lag sampler and its writer (one per process)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.buckets: dict[int, float] = {}  # bucket index -> worst lag (s)
        self.written_gc = 0

    async def sample(self) -> None:
        last_flush = time.perf_counter()
        while True:
            before = time.perf_counter()
            await asyncio.sleep(SAMPLE_S)
            now = time.perf_counter()
            lag = max(0.0, now - before - SAMPLE_S)
            key = int(before / BUCKET_S)
            if lag > self.buckets.get(key, -1.0):
                self.buckets[key] = lag
            if now - last_flush >= 1.0:
                last_flush = now
                self.flush(int(now / BUCKET_S))

    def flush(self, upto: int | None = None) -> None:
        """Write the finished tenths (all of them when `upto` is None)."""
        gcs: dict[int, list[tuple[float, int]]] = {}
        for start, pause, generation in _collections[self.written_gc :]:
            gcs.setdefault(int(start / BUCKET_S), []).append((pause, generation))
        self.written_gc = len(_collections)
        keys = sorted(k for k in self.buckets if upto is None or k < upto)
        lines = []
        for key in keys:
            pauses = gcs.pop(key, [])
            lines.append(
                json.dumps(
                    {
                        "t": round(key * BUCKET_S, 3),
                        "lag_ms": round(1000 * self.buckets.pop(key), 3),
                        "gc_ms": round(1000 * sum(p for p, _ in pauses), 3),
                        "gc2": sum(1 for _, g in pauses if g == 2),
                    }
                )
            )
        # Collections in a tenth not yet written wait for the next flush.
        for key, pauses in gcs.items():
            for pause, generation in pauses:
                _collections.append((key * BUCKET_S, pause, generation))
        if lines:
            with open(self.path, "a", encoding="utf-8") as out:
                out.write("\n".join(lines) + "\n")


def _with_timeline(path: str) -> None:
    """Run the sampler next to whatever `asyncio.run` runs (refdesk's `serve_forever`)."""
    timeline = _Timeline(path)
    real_run = asyncio.run

    async def wrapped(main: Coroutine[Any, Any, Any]) -> Any:
        sampler = asyncio.create_task(timeline.sample())
        try:
            return await main
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            timeline.flush()

    def run(main: Coroutine[Any, Any, Any], **kwargs: Any) -> Any:
        return real_run(wrapped(main), **kwargs)

    asyncio.run = run  # type: ignore[assignment]


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    gc.callbacks.append(_callback)
    atexit.register(_report)
    path = os.environ.get("BENCH_TIMELINE")
    if path:
        _with_timeline(path)
    from component.cli import main as refdesk_main

    return refdesk_main(args)


if __name__ == "__main__":
    sys.exit(main())
