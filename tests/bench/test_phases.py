"""bench.phases: the in-process round trip runs through every phase, and py-spy's samples
are sorted into the phases of a round trip."""

from __future__ import annotations

from pathlib import Path

from bench.phases import ANSWER, OPERATOR, PATRON, measure, spy_phases


async def test_each_phase_of_a_round_trip_costs_something() -> None:
    figures = await measure(3)
    assert set(figures) == {PATRON, ANSWER, OPERATOR}
    for main_s, process_s in figures.values():
        assert 0 < main_s <= process_s


def test_py_spy_samples_are_sorted_into_phases(tmp_path: Path) -> None:
    raw = tmp_path / "spy.txt"
    raw.write_text(
        "thread (1): MainThread;run (asyncio/base_events.py:1);"
        "take_raw_answer (component/xmpp_delivery.py:9) 3\n"
        "thread (1): MainThread;_run (component/inbound_lanes.py:53);"
        "execute (component/store/chats.py:1) 2\n"
        "thread (1): MainThread;_run_once (asyncio/base_events.py:1845) 4\n"
        "thread (2): Thread-1;_connection_worker_thread (aiosqlite/core.py:1) 5\n"
        "not a sample line\n"
    )
    assert dict(spy_phases(raw)) == {
        "confirmation ping answered": 3,
        "hand-offs to the database thread (main-thread side)": 2,
        "event loop (epoll, callbacks, tasks)": 4,
        "database thread": 5,
    }
