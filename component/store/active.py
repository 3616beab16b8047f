"""Which of several refdesk processes on one PostgreSQL database is the active one: the
holder of a PostgreSQL advisory lock, taken on a connection of its own.

Only the active process connects the XMPP component and serves chats; the others wait
for the lock (serving /healthz as 503). PostgreSQL releases a session's advisory lock
when the session ends, so when the active process dies, or its connection to the
database does, a waiting one gets the lock.

Two processes must never serve at once, and a cut connection is noticed late: the
database may release the lock (and a standby take it) while the old holder does not yet
know. So the lock is a lease. The holder confirms it every `check` seconds; it stops
being active (calls `on_lost`) as soon as `lease` seconds have passed since the last
confirmation was *sent*, even while that query is still waiting for an answer. A process
that gets the lock waits `fence` seconds (longer than the lease) before it serves. The
lock was released after the old holder's last confirmation was sent, and this process
got it after the release, so the old holder had stopped before this one starts. Only
durations are compared, each on one machine's monotonic clock, so the machines' clocks
need not agree; every instance must use the same lease (a constant here).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from component.store.db import StoreError
from component.store.pg import safe_url

log = logging.getLogger(__name__)

# Advisory locks are per database, so one constant key serves every deployment.
ACTIVE_LOCK_KEY = 7262002
# How long connecting or taking the lock may take.
_CHECK_TIMEOUT = 5.0
# Seconds an unconfirmed lock still counts as held (see the module's docstring), how
# often the holder confirms it, and how long a new holder waits before it serves.
LEASE = 3.0
CHECK = 1.0
FENCE = LEASE + 1.0
# What the lock's session calls itself (visible in pg_stat_activity).
LOCK_SESSION_NAME = "refdesk active lock"
# The database closes the lock's session (releasing the lock) when the network to the
# holder is cut, after about 5 + 2 × 2 seconds without an answer to its keep-alive
# probes, instead of the system's default of hours. Ignored on Unix sockets.
_KEEPALIVE = {
    "application_name": LOCK_SESSION_NAME,
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "2",
}


class ActiveLock:
    """The lock that makes one process the active one. Created by the composition root
    for a PostgreSQL store; `acquire` waits for it and `fence` then waits out any old
    holder's lease; `watch` runs while it is held and calls `on_lost` when it can no
    longer be confirmed within the lease; `release` gives it up at shutdown."""

    def __init__(
        self,
        url: str,
        *,
        retry: float = 0.5,
        check: float = CHECK,
        lease: float = LEASE,
        fence: float = FENCE,
    ) -> None:
        if not check < lease < fence:
            raise ValueError("the lock needs check < lease < fence")
        self._url = url
        self._retry = retry
        self._check = check
        self._lease = lease
        self._fence = fence
        self._connection: asyncpg.Connection | None = None
        # Loop time at which the last confirmation that the lock is held was sent.
        self._confirmed = 0.0
        self._expiry: asyncio.TimerHandle | None = None
        self._on_lost: Callable[[], None] | None = None
        self._lost = False

    @property
    def held(self) -> bool:
        connection = self._connection
        return connection is not None and not connection.is_closed() and not self._lost

    async def try_acquire(self) -> bool:
        """One attempt: True if this process now holds the lock. Connection failures
        are StoreError (the caller waits and tries again)."""
        loop = asyncio.get_running_loop()
        try:
            if self._connection is None or self._connection.is_closed():
                self._connection = await asyncpg.connect(
                    self._url, timeout=_CHECK_TIMEOUT, server_settings=_KEEPALIVE
                )
            sent = loop.time()
            got = await self._connection.fetchval(
                "SELECT pg_try_advisory_lock($1)", ACTIVE_LOCK_KEY, timeout=_CHECK_TIMEOUT
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            await self._drop()
            raise StoreError(f"cannot reach {safe_url(self._url)}: {exc}") from None
        if got:
            self._confirmed = sent
            self._lost = False
        return bool(got)

    async def acquire(self) -> None:
        """Wait until this process holds the lock, trying every `retry` seconds (and
        through database outages). Called by the composition root before it connects the
        component."""
        while True:
            try:
                if await self.try_acquire():
                    return
            except StoreError as exc:
                log.warning("waiting to become active: %s", exc)
            await asyncio.sleep(self._retry)

    async def fence(self) -> None:
        """Wait `fence` seconds after taking the lock, then confirm it is still held:
        an old holder cut from the database has stopped serving by then. Called by the
        composition root after `acquire` (or a successful `try_acquire`), before it
        serves; raises StoreError when the lock went meanwhile."""
        await asyncio.sleep(self._fence)
        loop = asyncio.get_running_loop()
        sent = loop.time()
        try:
            held = await self._is_held(_CHECK_TIMEOUT)
        except Exception as exc:
            await self._drop()
            raise StoreError(f"lost the active lock while fencing: {exc}") from None
        if not held:
            await self._drop()
            raise StoreError("lost the active lock while fencing")
        self._confirmed = sent

    async def _is_held(self, timeout: float) -> bool:
        connection = self._connection
        if connection is None or connection.is_closed():
            raise StoreError("the lock's connection is closed")
        held = await connection.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND objid = $1 AND pid = pg_backend_pid() AND granted",
            ACTIVE_LOCK_KEY,
            timeout=timeout,
        )
        return bool(held)

    async def watch(self, on_lost: Callable[[], None]) -> None:
        """Confirm the lock every `check` seconds; call `on_lost` once, and return, when
        a confirmation fails or none has been sent successfully for `lease` seconds (a
        timer, so a query hanging on a cut connection does not delay it). Run as a task
        by the composition root from the moment it holds the lock (after `fence`)."""
        loop = asyncio.get_running_loop()
        self._on_lost = on_lost
        self._expiry = loop.call_at(self._confirmed + self._lease, self._expire, "lease ran out")
        try:
            while not self._lost:
                await asyncio.sleep(self._check)
                sent = loop.time()
                remaining = self._confirmed + self._lease - sent
                try:
                    if remaining <= 0 or not await self._is_held(remaining):
                        raise StoreError("the lock is no longer held")
                except Exception as exc:
                    # Any failure to confirm the lock counts as losing it: staying active
                    # without it could make two active processes.
                    self._expire(str(exc) or type(exc).__name__)
                    break
                if self._lost:
                    break
                self._confirmed = sent
                self._expiry.cancel()
                self._expiry = loop.call_at(sent + self._lease, self._expire, "lease ran out")
        finally:
            self._expiry.cancel()

    def _expire(self, why: str) -> None:
        """Stop being active: once, synchronously (from the lease timer or `watch`)."""
        if self._lost:
            return
        self._lost = True
        log.critical("lost the active lock (%s): stopping", why)
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()
        if self._on_lost is not None:
            self._on_lost()

    async def release(self) -> None:
        """Give the lock up (closing its session does); called at shutdown."""
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await asyncio.wait_for(connection.close(), _CHECK_TIMEOUT)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                connection.terminate()

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()


__all__ = ["ACTIVE_LOCK_KEY", "CHECK", "FENCE", "LEASE", "LOCK_SESSION_NAME", "ActiveLock"]
