"""Run every benchmark, one after the other, each in its own process:

    python -m bench [--quick]
                    [--only routing,status,latency,capacity,profile,startup,failover]
                    [--results FILE]

With default sizes each benchmark updates its own section of bench/RESULTS.md; with
--quick they print their figures only (unless --results is given). Takes about half an
hour with default sizes on a 2-core machine (opening 1,000 chats on one queue alone takes
minutes: see RESULTS.md), about a minute with --quick.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench.common import REPO
from bench.stack import _die_with_parent

ORDER = ["routing", "status", "latency", "capacity", "profile", "startup", "failover"]


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes")
    parser.add_argument("--only", help="comma-separated subset of " + ",".join(ORDER))
    parser.add_argument("--results", help="Markdown file to update instead of the default")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",")] if args.only else ORDER
    unknown = sorted(set(names) - set(ORDER))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    failed = []
    for name in names:
        command = [sys.executable, "-m", f"bench.{name}"]
        if args.quick:
            command.append("--quick")
        if args.results:
            command += ["--results", args.results]
        print(f"\n=== {' '.join(command[1:])} ===", flush=True)
        began = time.monotonic()
        status = subprocess.call(command, cwd=REPO, preexec_fn=_die_with_parent)
        print(f"=== bench.{name}: exit {status} after {time.monotonic() - began:.0f} s ===",
              flush=True)  # fmt: skip
        if status != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
