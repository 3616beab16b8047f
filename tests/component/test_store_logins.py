"""The login throttle's records in the store: counted and written in one step, and
forgotten once no rule needs them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from component.core.login_throttle import LoginLimits, allowed
from component.store import Store
from component.store.accounts import PRUNE_EVERY

LIMITS = LoginLimits()


async def test_simultaneous_attempts_are_counted_one_after_the_other(
    store_target: Path | str,
) -> None:
    store = await Store.open(store_target)
    try:
        now = datetime.now(UTC)
        results = await asyncio.gather(
            *(
                store.accounts.reserve_login("boss", "203.0.113.7", now, LIMITS, allowed)
                for _ in range(50)
            )
        )
        granted = [r for r in results if r is not None]
        assert len(granted) == LIMITS.per_user_and_network
        # A success from that network for that user starts the pair's count again...
        await store.accounts.login_succeeded(granted[0])
        later = now + timedelta(seconds=1)
        assert await store.accounts.reserve_login("boss", "203.0.113.7", later, LIMITS, allowed)
        # ...and forgetting an attempt (never checked) gives its place back.
        attempt = await store.accounts.reserve_login("eve", "198.51.100.1", now, LIMITS, allowed)
        assert attempt is not None
        await store.accounts.forget_login(attempt)
        rows = await store.db.all("SELECT id FROM login_attempts WHERE id = ?", (attempt,))
        assert rows == []
    finally:
        await store.close()


async def test_old_attempts_are_pruned(store_target: Path | str) -> None:
    store = await Store.open(store_target)
    try:
        long_ago = datetime.now(UTC) - timedelta(days=400)
        old_success = await store.accounts.reserve_login(
            "boss", "192.0.2.1", long_ago, LIMITS, allowed
        )
        assert old_success is not None
        await store.accounts.login_succeeded(old_success)
        recent = datetime.now(UTC) - timedelta(days=1)
        kept_success = await store.accounts.reserve_login(
            "boss", "192.0.2.2", recent, LIMITS, allowed
        )
        assert kept_success is not None
        await store.accounts.login_succeeded(kept_success)
        # Failures an hour ago, from many networks, until the pruning attempt comes round.
        hour_ago = datetime.now(UTC) - timedelta(hours=1)
        n = 0
        while True:
            n += 1
            attempt = await store.accounts.reserve_login(f"u{n}", f"10.0.{n // 250}.{n % 250}",
                                                hour_ago, LIMITS, allowed)  # fmt: skip
            assert attempt is not None
            if attempt % PRUNE_EVERY == PRUNE_EVERY - 1:
                break
        now_attempt = await store.accounts.reserve_login("boss", "203.0.113.9", datetime.now(UTC),
                                                LIMITS, allowed)  # fmt: skip
        assert now_attempt is not None and now_attempt % PRUNE_EVERY == 0
        left = {r[0] for r in await store.db.all("SELECT id FROM login_attempts")}
        assert left == {kept_success, now_attempt}
    finally:
        await store.close()
