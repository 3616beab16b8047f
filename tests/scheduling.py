"""How `scripts/test` shares the tests between its pytest-xdist workers.

Tests are handed out one at a time, so that a slow file does not hold one worker while the
others idle at the end of the run; only the files below go to one worker as a whole, each
for a reason of its own. Each worker starts its own Prosody, ejabberd, PostgreSQL and
Chromium once, on first use (tests/conftest.py), whatever tests it is given.

xdist's own `--dist loadgroup` would read `xdist_group` marks, but the marks never reach
its scheduler under pytest 9.2 (xdist marks a group by rewriting the test's node id, which
pytest now computes afresh), so the scheduler, which sees only node ids, is told the files
here. `tests/conftest.py` installs it for `--dist loadgroup`.
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadScopeScheduling

# Test files whose tests must run on one worker.
ONE_WORKER_FILES = frozenset(
    {
        # A module fixture starts all seven benchmarks at once; a second worker would start
        # all seven again.
        "tests/bench/test_bench_smoke.py",
        # The session fixture builds the sdist and wheel and installs the wheel (about 20 s
        # of CPU): once per run, not once per worker.
        "tests/test_installed_wheel.py",
        # Each demo prefers the usual ports 5222, 5347 and 5280 when they look free: two
        # demos started at once could both pick them, and one would fail to start.
        "tests/test_demo.py",
    }
)


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to: its file for `ONE_WORKER_FILES`, else itself.
    Called by the scheduler on the controller, for every test collected."""
    path = nodeid.split("::", 1)[0]
    return path if path in ONE_WORKER_FILES else nodeid


class SuiteScheduling(LoadScopeScheduling):  # type: ignore[misc]
    """xdist's scope scheduler (units in order of size, largest first; a worker gets the
    next unit when it has at most two tests left) with `work_unit` as the scope."""

    def __init__(self, config: Any, log: Any = None) -> None:
        super().__init__(config, log)

    def _split_scope(self, nodeid: str) -> str:
        return work_unit(nodeid)
