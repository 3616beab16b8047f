"""Smoke test of the benchmarks (bench/): each runs with --quick in its own process and
must produce figures with the expected keys and sane counts (every line answered, every
session held). No timing is asserted: the figures of a smoke run mean nothing.

All eight start at once (module fixture) so the whole smoke takes about as long as the
slowest one, not their sum; they mostly wait on server start-ups, paced sends and sleeps.
`SMOKE` shrinks the windows and sizes below `--quick` for this run only: every phase and
every output line still runs, on as little as proves the command works end to end (eight
benchmarks share two cores here, and the other test worker with them).
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = ("latency", "status", "capacity", "routing", "profile", "soak", "startup", "failover")
TIMEOUT = 170
# Arguments after `--quick`, per benchmark (later arguments win). Each keeps every phase:
SMOKE: dict[str, tuple[str, ...]] = {
    # both levels (floor and refdesk each), half-second windows: a few lines per chat.
    "latency": ("--levels", "1:0.1,10:0.5", "--duration", "0.5", "--warmup", "0.1"),
    # every server and the open-chats row, one second of load each, fewer idle chats.
    "status": ("--duration", "1", "--connections", "5", "--chats", "10"),
    # two steps of each phase (idle, chatting, floor), one-second windows.
    "capacity": (
        "--idle-steps", "5,10", "--chat-steps", "3,6", "--floor-steps", "3,6",
        "--interval", "0.5", "--duration", "1", "--warmup", "0.2",
    ),
    # all four faults, back to back (each waits for the recovery before the next).
    "soak": ("--minutes", "0.15", "--chats", "5"),
    # all five scenarios; a third of a second of talk before each event and after.
    "failover": ("--settle", "0.3"),
}  # fmt: skip


class Run:
    def __init__(self, name: str, tmp: Path) -> None:
        self.name = name
        self.results = tmp / f"{name}.md"
        self.json = tmp / f"{name}.json"
        self.log = tmp / f"{name}.log"
        self._log = open(self.log, "wb")  # noqa: SIM115 - closed in finish()
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"bench.{name}", "--quick", *SMOKE.get(name, ()),
             "--results", str(self.results), "--json", str(self.json)],
            cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def finish(self) -> dict[str, Any]:
        try:
            status = self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.stop()
            status = None
        self._log.close()
        output = self.log.read_text(errors="replace")
        assert status == 0, f"bench.{self.name} --quick exited {status}:\n{output[-4000:]}"
        data: dict[str, Any] = json.loads(self.json.read_text())
        section = self.results.read_text()
        assert f"<!-- bench:{self.name}:start -->" in section
        assert f"<!-- bench:{self.name}:end -->" in section
        return data

    def stop(self) -> None:
        """Interrupt the benchmark as Ctrl-C would, so that it stops the servers it started
        (a SIGKILL left the failover benchmark's PostgreSQL and nginx running when its
        test was deselected); SIGKILL only if it has not ended in 30 s."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        self.stop()
        self._log.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    tmp = tmp_path_factory.mktemp("bench")
    started = {name: Run(name, tmp) for name in BENCHMARKS}
    yield started
    for run in started.values():
        run.kill()


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value >= 0


def check_rtt(figures: dict[str, Any]) -> None:
    for key in ("count", "p50", "p90", "p99", "max", "mean"):
        assert finite(figures[key]), (key, figures)
    assert figures["count"] > 0


def test_latency_quick(runs: dict[str, Run]) -> None:
    data = runs["latency"].finish()
    assert "off" in data["facts"]["nagle"]
    assert [row["chats"] for row in data["levels"]] == [1, 10]
    for row in data["levels"]:
        for side in ("floor", "refdesk"):
            figures = row[side]
            assert figures["sent"] > 0
            assert figures["unanswered"] == 0, (side, row)
            assert figures["answered"] == figures["sent"]
            check_rtt(figures["rtt_ms"])
        check_rtt(row["refdesk"]["ack_ms"])
        check_rtt(row["refdesk"]["to_operator_ms"])
        check_rtt(row["refdesk"]["to_patron_ms"])
        assert row["setup"]["failures"] == 0
        assert row["setup"]["open_chats"] >= row["chats"]
        assert finite(row["ratio_p50"]) and finite(row["ratio_p99"])
    assert data["setup_failures"] == []


def test_status_quick(runs: dict[str, Run]) -> None:
    data = runs["status"].finish()
    assert set(data["runs"]) >= {"minimal aiohttp handler", "refdesk, no open chat"}
    assert data["refdesk_body"]["queue"] == "ask"
    for name, rounds in data["runs"].items():
        for figures in rounds:
            assert figures["requests"] > 0, name
            assert figures["errors"] == 0, name
            assert finite(figures["rps"]) and figures["rps"] > 0
            assert finite(figures["idle_cpu"]), name
            assert finite(figures["server_cpu_us_per_request_net"]), name
    assert data["ratios"]["minimal aiohttp handler"] == 1.0
    assert data["net_cpu_ratios"]["minimal aiohttp handler"] == 1.0


def test_capacity_quick(runs: dict[str, Run]) -> None:
    data = runs["capacity"].finish()
    idle = data["idle"]["steps"]
    assert [row["sessions"] for row in idle] == [5, 10]
    for row in idle:
        assert row["held"] == row["sessions"]
        assert row["rss_kib"] > 0
        assert finite(row["kib_per_session"])
    chatting = data["chatting"]["steps"]
    assert chatting, data["chatting"].get("stopped")
    for row in chatting:
        assert row["sent"] > 0
        assert row["unanswered"] == 0
        check_rtt(row["rtt_ms"])
        assert row["rss_kib"] > 0
    assert data["chatting"]["failures"] == []
    assert "crossing" in data["chatting"]
    floor = data["floor"]
    assert floor["steps"]
    for row in floor["steps"]:
        assert row["sent"] > 0
        assert row["unanswered"] == 0
        check_rtt(row["rtt_ms"])
    assert {"refdesk", "floor", "ratio", "how"} <= set(data["capacity_ratio"])


def test_routing_quick(runs: dict[str, Run]) -> None:
    data = runs["routing"].finish()
    cases = data["cases"]
    assert "trivial function call (baseline)" in cases
    assert any(name.startswith("eligible()") for name in cases)
    assert any(name.startswith("queue_status()") for name in cases)
    assert any(name.startswith("DeskService.queue_info()") for name in cases)
    for figures in cases.values():
        assert finite(figures["median_ns"]) and figures["median_ns"] > 0
        assert finite(figures["ratio"])
    assert any(name.startswith("ban check BanIndex.match()") for name in cases)
    assert any(name.startswith("service.moderation.banned()") for name in cases)
    for key in ("bans", "store_add_ban_s", "service_start_s", "moderation_load_s"):
        assert finite(data["ban_load"][key]), key
    assert "TODO" not in runs["routing"].results.read_text()


def test_profile_quick(runs: dict[str, Run]) -> None:
    data = runs["profile"].finish()
    assert set(data["runs"]) == {"latency", "opening", "status"}
    latency = data["runs"]["latency"]
    assert latency["unanswered"] == 0
    check_rtt(latency["rtt_ms"])
    for run in data["runs"].values():
        analysis = run["analysis"]
        assert analysis["busy_s"] > 0
        assert analysis["categories"] and analysis["top_self"]


def test_soak_quick(runs: dict[str, Run]) -> None:
    data = runs["soak"].finish()
    assert data["open_failures"] == []
    assert set(data["faults"]) == {
        "prosody restart",
        "prosody SIGKILL + start",
        "server closes the component stream",
        "refdesk SIGKILL + restart",
    }
    for side in ("to_operator", "to_patron"):
        counts = data[side]
        for key in ("sent", "received", "lost", "duplicated", "out_of_order"):
            assert isinstance(counts[key], int) and counts[key] >= 0, (side, key, counts)
        assert counts["sent"] > 0 and counts["received"] > 0
    assert data["to_operator"]["acked"] > 0
    # Delivery to the XMPP server is confirmed before a line counts as relayed: whatever the
    # faults cut, nothing acknowledged to a patron is lost on the way to the operator.
    assert data["to_operator"]["lost"] == 0, data["to_operator"]["lost_examples"]
    for key in ("refused_with_error", "down_probes_sent", "down_probes_refused"):
        assert isinstance(data["to_patron"][key], int), key
    assert data["integrity_check"] == "ok"


def test_startup_quick(runs: dict[str, Run]) -> None:
    data = runs["startup"].finish()
    assert set(data["samples"]) == {"empty", "big"}
    for rows in data["samples"].values():
        assert rows
        for figures in rows:
            assert finite(figures["wall_s"]) and finite(figures["cpu_s"])
            assert figures["rss_kib"] > 0
    assert data["db_mib"] > 0


def test_failover_quick(runs: dict[str, Run]) -> None:
    data = runs["failover"].finish()
    assert set(data["samples"]) == {"sigkill", "sigterm", "cut", "restart", "planned"}
    for rows in data["samples"].values():
        assert rows
        for figures in rows:
            assert finite(figures["first_back_s"]) and finite(figures["last_back_s"])
            assert figures["patron_acked"] > 0
            # Every acknowledged line reached the other side, whatever went down.
            assert figures["patron_lost"] == 0 and figures["operator_lost"] == 0
