"""The password workers: hashing off the event loop, at most so many at a time."""

from __future__ import annotations

import asyncio
import threading

import argon2
import pytest

from component.config import WebConfig
from component.passwords import PasswordsBusy, PasswordWorkers, check_password, hash_password
from tests.conftest import wait_for


async def test_hash_and_verify_off_the_loop() -> None:
    workers = PasswordWorkers(threads=1, backlog=0)
    seen: list[str] = []

    def where() -> str:
        seen.append(threading.current_thread().name)
        return "done"

    try:
        stored = await workers.hash("a long enough password")
        assert stored.startswith("$argon2id$")
        assert check_password(stored, "a long enough password")
        assert await workers.verify(stored, "a long enough password")
        assert not await workers.verify(stored, "wrong")
        assert not await workers.verify("not a hash", "wrong")
        assert await workers.run(where) == "done"
        assert seen[0].startswith("refdesk-passwords") and seen[0] != "MainThread"
    finally:
        workers.close()


async def test_a_full_waiting_room_refuses_and_a_hung_up_caller_keeps_its_slot() -> None:
    workers = PasswordWorkers(threads=1, backlog=1)
    release = threading.Event()
    try:
        running = asyncio.ensure_future(workers.run(release.wait))
        waiting = asyncio.ensure_future(workers.run(release.wait))
        await wait_for(lambda: workers.running == 1 and workers.in_flight == 2, what="busy")
        assert workers.full
        with pytest.raises(PasswordsBusy):
            await workers.run(release.wait)
        # The caller of the running job gives up: its thread still works, so no room.
        running.cancel()
        await asyncio.sleep(0.05)
        assert workers.full
        release.set()
        assert await waiting is True
        await wait_for(lambda: workers.in_flight == 0 and workers.running == 0, what="idle")
        assert await workers.run(lambda: 42) == 42
    finally:
        release.set()
        workers.close()


async def test_closed_workers_refuse() -> None:
    workers = PasswordWorkers(threads=1, backlog=0)
    workers.close()
    with pytest.raises(PasswordsBusy):
        await workers.run(lambda: 1)
    assert workers.in_flight == 0


async def test_new_hashes_are_strong_unless_the_config_says_test() -> None:
    """The production default is argon2id as RFC 9106 recommends (3 passes, 64 MiB, 4
    lanes), from the config, the blocking helper and the workers alike; "test" exists only
    for test suites. A hash verifies whatever parameters made it."""
    assert WebConfig().password_hashing == "strong"
    strong = (3, 64 * 1024, 4)
    made = argon2.extract_parameters(hash_password("a long enough password"))
    assert (made.time_cost, made.memory_cost, made.parallelism) == strong
    workers = PasswordWorkers(threads=1, backlog=0)
    cheap_workers = PasswordWorkers(threads=1, backlog=0, hashing="test")
    try:
        made = argon2.extract_parameters(await workers.hash("a long enough password"))
        assert (made.time_cost, made.memory_cost, made.parallelism) == strong
        cheap = await cheap_workers.hash("a long enough password")
        assert argon2.extract_parameters(cheap).memory_cost < strong[1]
        # Verifying reads the parameters from the hash, whichever workers do it.
        assert await workers.verify(cheap, "a long enough password")
        assert not await workers.verify(cheap, "wrong")
    finally:
        workers.close()
        cheap_workers.close()
