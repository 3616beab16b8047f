"""Shared helpers of the benchmarks: statistics, machine facts, per-process CPU and memory
from /proc, the command line every benchmark accepts, and the RESULTS.md section writer.

Nothing here talks to refdesk; `bench.stack` starts the servers.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import os
import platform
import resource
import shlex
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "RESULTS.md"
CLK_TCK = os.sysconf("SC_CLK_TCK")

RESULTS_HEADER = """\
# refdesk benchmarks

Each section below is written by one benchmark (`python -m bench.<name>`); `python -m bench`
runs them all with their default sizes. A run replaces only its own section. Every figure
is paired with a baseline measured in the same run on the same machine, so the ratio means
more than the absolute numbers (the machine is shared and small). `--quick` runs (the smoke
test's sizes) print their figures but do not touch this file unless `--results` is given.

All traffic is on 127.0.0.1. Prosody is a throwaway `LocalProsody` whose generated config
has `network_settings = { nagle = false }` (checked by reading the config at every run).
"""


# --- statistics -------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize_ms(seconds: Iterable[float]) -> dict[str, float]:
    """count, p50, p90, p99, max and mean of durations given in seconds, in milliseconds."""
    values = sorted(v * 1000 for v in seconds)
    if not values:
        return {
            "count": 0,
            "p50": math.nan,
            "p90": math.nan,
            "p99": math.nan,
            "max": math.nan,
            "mean": math.nan,
        }
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": values[-1],
        "mean": statistics.fmean(values),
    }


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def fmt(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if abs(value) >= 1000 and digits <= 1:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


# --- /proc ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads), from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = raw.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """{tid: (thread name, CPU seconds)} for every thread of a process."""
    out: dict[int, tuple[str, float]] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir(f"/proc/{pid}/task"):
            try:
                raw = Path(f"/proc/{pid}/task/{entry}/stat").read_text()
                name = Path(f"/proc/{pid}/task/{entry}/comm").read_text().strip()
            except OSError:
                continue
            fields = raw.rsplit(")", 1)[1].split()
            out[int(entry)] = (name, (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return out


def rss_kib(pid: int) -> int:
    """Resident set size (VmRSS) of a process in KiB, from /proc/<pid>/status."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return math.nan, math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


class CpuMeter:
    """CPU used by named processes between `start()` and `stop()`, plus what the rest of
    the machine used meanwhile ("others": other processes on this shared machine)."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid}
        self._start: dict[str, float] = {}
        self._machine = (0.0, 0.0)
        self._t0 = 0.0
        self.result: dict[str, float] = {}

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._machine = machine_cpu()

    def stop(self) -> dict[str, float]:
        """Share of one core (1.0 = one core busy all the time) per process, and for
        "others" (the machine's busy time not spent in these processes or this one's
        children) and "steal" (time the hypervisor gave to other guests)."""
        wall = max(time.monotonic() - self._t0, 1e-9)
        self.result = {
            name: (cpu_seconds(pid) - self._start[name]) / wall for name, pid in self.pids.items()
        }
        busy, steal = machine_cpu()
        ours = sum(self.result.values())
        self.result["others"] = max(0.0, (busy - self._machine[0]) / wall - ours)
        self.result["steal"] = (steal - self._machine[1]) / wall
        self.result["wall_s"] = wall
        return self.result


def filesystem_of(path: Path) -> str:
    """The kind of file system holding `path` ("ext4", "tmpfs"...): what matters for
    commit speed, without naming this machine's devices or paths."""
    best = ("?", "?", "")
    with contextlib.suppress(OSError):
        target = str(path.resolve())
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, fstype = line.split()[:3]
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best[2]):
                best = (fstype, device, mount)
    return best[0]


async def wait_quiet(
    pids: dict[str, int | None], limit: float = 0.5, max_wait: float = 60.0
) -> dict[str, float]:
    """Wait (up to `max_wait` s) until the rest of the machine uses less than `limit` of a
    core over a 1 s sample: this machine is shared, and a window measured while another
    test suite runs measures that suite. Returns how long it waited and the last sample."""
    import asyncio

    if max_wait <= 0:
        return {"waited_s": 0.0, "others": math.nan}
    began = time.monotonic()
    while True:
        meter = CpuMeter(pids)
        meter.start()
        await asyncio.sleep(1.0)
        others = meter.stop()["others"]
        waited = time.monotonic() - began
        if others < limit or waited >= max_wait:
            return {"waited_s": waited, "others": others}


def commit_probe(directory: Path, seconds: float = 1.0) -> dict[str, float]:
    """How fast this disk commits: SQLite in WAL mode with synchronous=FULL (as refdesk
    opens its store), one small INSERT per transaction for `seconds`, in `directory`."""
    import tempfile

    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="refdesk-bench-commit-", dir=directory) as tmp:
        db = sqlite3.connect(Path(tmp) / "probe.sqlite3", isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("CREATE TABLE t (a INTEGER, b TEXT)")
            end = time.perf_counter() + seconds
            while (now := time.perf_counter()) < end:
                db.execute("INSERT INTO t VALUES (?, ?)", (len(times), "x" * 60))
                times.append(time.perf_counter() - now)
        finally:
            db.close()
    summary = summarize_ms(times)
    summary["per_second"] = len(times) / seconds
    return summary


def commit_text(probe: dict[str, float]) -> str:
    return (
        f"{probe['per_second']:,.0f} commits/s, p50 {probe['p50']:.2f} ms, p99 "
        f"{probe['p99']:.2f} ms (1 s of single-row SQLite commits, WAL, synchronous=FULL, "
        "same file system, measured at start)"
    )


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def raise_nofile() -> tuple[int, int]:
    """Raise the soft limit of open files to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# --- machine facts ----------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _package_version(name: str) -> str:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", name],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.stdout.strip() or "not installed"


def _module_version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return "?"


def _from_prosody_config(prosody_config: Path | None, judge: Callable[[str], str]) -> str:
    """`judge` applied to the text of the Prosody config used in this run, or why there
    is none to judge."""
    if prosody_config is None:
        return "no Prosody in this benchmark"
    try:
        text = prosody_config.read_text()
    except OSError:
        return f"unknown ({prosody_config} unreadable)"
    return judge(text)


def _nagle(text: str) -> str:
    if "network_settings={nagle=false}" in "".join(text.split()):
        return "off (`network_settings = { nagle = false }` in the generated prosody.cfg.lua)"
    return "ON — the generated config does not switch it off"


def _archive_limit(text: str) -> str:
    for line in text.splitlines():
        if line.strip().startswith("storage_archive_item_limit"):
            value = line.split("=", 1)[1].strip()
            return f"mod_mam archives every chat message; at most {value} per account"
    return "mod_mam archives every chat message; Prosody's default quota (10,000 per account)"


def nagle_state(prosody_config: Path | None) -> str:
    """What the Prosody config used in this run says about Nagle's algorithm."""
    return _from_prosody_config(prosody_config, _nagle)


def archive_limit_state(prosody_config: Path | None) -> str:
    """What the Prosody config used in this run says about the per-account archive quota
    (past Prosody's default of 10,000 messages, every message costs far more)."""
    return _from_prosody_config(prosody_config, _archive_limit)


def machine_facts(prosody_config: Path | None = None) -> dict[str, str]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "memory": _mem_total(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "prosody": _package_version("prosody"),
        "nagle": nagle_state(prosody_config),
        "prosody archive": archive_limit_state(prosody_config),
        "slixmpp": _module_version("slixmpp"),
        "aiohttp": _module_version("aiohttp"),
        "sqlite": sqlite3.sqlite_version,
        "open files": f"{soft} (soft) / {hard} (hard)",
        "load average at start": loadavg(),
    }


def _mem_total() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "?"


def facts_markdown(facts: dict[str, str]) -> str:
    return "\n".join(f"- {k}: {v}" for k, v in facts.items())


# --- command line and results -----------------------------------------------------------


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for a smoke test (a few seconds)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help=f"Markdown file whose section to update (default: {RESULTS.relative_to(REPO)} "
        "for full runs; --quick runs write nothing unless this is given)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the raw figures to this JSON file"
    )
    return parser


def command_line() -> str:
    """The command as typed, for RESULTS.md."""
    module = sys.argv[0]
    if module.endswith("__main__.py"):
        module = Path(module).parent.name
    elif module.endswith(".py"):
        rel = Path(module).resolve()
        with contextlib.suppress(ValueError):
            rel = rel.relative_to(REPO)
        module = ".".join(rel.with_suffix("").parts)
    return "python -m " + " ".join([module, *map(shlex.quote, sys.argv[1:])])


def update_section(path: Path, name: str, markdown: str) -> None:
    """Replace the section `name` of a results file (created if missing) by `markdown`."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else RESULTS_HEADER
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def finish(args: argparse.Namespace, name: str, result: dict[str, Any], markdown: str) -> None:
    """Print the section, write it to RESULTS.md (see --results) and the JSON if asked."""
    print(markdown)
    target = args.results
    if target is None and not args.quick:
        target = RESULTS
    if target is not None:
        update_section(target, name, markdown)
        print(f"\n(section {name!r} written to {target})")
    if args.json is not None:
        args.json.write_text(json.dumps(_jsonable(result), indent=2), encoding="utf-8")


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
