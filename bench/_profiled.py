"""Run `refdesk` (component.cli) under cProfile, switched on and off from outside.

    python -m bench._profiled --out FILE -- --config refdesk.toml run

SIGUSR1 starts profiling the main thread (the event loop: slixmpp, aiohttp, the service),
SIGUSR2 stops it and writes the accumulated statistics to FILE (pstats format), so a
benchmark profiles only its measurement window, not start-up and set-up. The aiosqlite
worker thread is not profiled (cProfile sees one thread); `bench.profile` reports its CPU
time from /proc instead.

With BENCH_PROFILE_CLOCK=cpu in the environment (`bench.profile --cpu-clock`), the
profiler counts the main thread's CPU time instead of wall-clock time: on a shared
machine, wall-clock time charges the function running when the process was preempted
(mostly `socket.send`) with the time other processes ran. With BENCH_PROFILE_CLOCK=py-spy
(and py-spy installed beside Python), SIGUSR1 starts `py-spy record` on this process
instead, which samples every thread's stacks from outside (native frames included, no
slow-down of the code measured), and SIGUSR2 stops it: FILE is then py-spy's collapsed
stacks ("raw" format), one line per distinct stack with its count of samples.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench._profiled")
    parser.add_argument("--out", required=True)
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    if os.environ.get("BENCH_PROFILE_CLOCK") in ("py-spy", "perf"):
        return _sampled(args.out, rest, os.environ["BENCH_PROFILE_CLOCK"])
    if os.environ.get("BENCH_PROFILE_CLOCK") == "cpu":
        profiler = cProfile.Profile(time.thread_time)
    else:
        profiler = cProfile.Profile()

    def on(_sig: int, _frame: FrameType | None) -> None:
        profiler.enable()

    def off(_sig: int, _frame: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(args.out)

    signal.signal(signal.SIGUSR1, on)
    signal.signal(signal.SIGUSR2, off)
    from component.cli import main as refdesk_main

    return refdesk_main(rest)


def _sampled(out: str, rest: list[str], tool: str) -> int:
    """Run refdesk with `py-spy record` or `perf record` (CPU samples of every thread,
    kernel and native code included; FILE is perf.data) switched on and off by the same
    signals."""
    spy = str(Path(sys.executable).with_name("py-spy"))
    recorder: list[subprocess.Popen[bytes]] = []

    def on(_sig: int, _frame: FrameType | None) -> None:
        pid = str(os.getpid())
        if tool == "perf":
            command = ["perf", "record", "-F", "999", "-g", "-p", pid, "-o", out]
        else:
            command = [spy, "record", "--pid", pid, "--format", "raw", "--rate", "250"]
            command += ["--threads", "--nonblocking", "--gil", "--output", out]
        recorder.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))

    def off(_sig: int, _frame: FrameType | None) -> None:
        for proc in recorder:
            proc.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
        recorder.clear()

    signal.signal(signal.SIGUSR1, on)
    signal.signal(signal.SIGUSR2, off)
    from component.cli import main as refdesk_main

    return refdesk_main(rest)


if __name__ == "__main__":
    sys.exit(main())
