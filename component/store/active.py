"""Which of several refdesk processes on one PostgreSQL database is the active one: the
holder of a PostgreSQL advisory lock, taken on a connection of its own.

Only the active process connects the XMPP component and serves chats; the others wait
for the lock (serving /healthz as 503). PostgreSQL releases a session's advisory lock
when the session ends, so when the active process dies, or its connection to the
database does, a waiting one gets the lock. The active process checks its lock
connection every few seconds; when it fails, it must stop being active at once (the
composition root stops the process; its supervisor restarts it, as a standby).
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
# How long a query on the lock connection may take before the lock counts as lost.
_CHECK_TIMEOUT = 5.0


class ActiveLock:
    """The lock that makes one process the active one. Created by the composition root
    for a PostgreSQL store; `acquire` waits for it, `watch` runs while it is held and
    calls `on_lost` if it goes, `release` gives it up at shutdown."""

    def __init__(self, url: str, *, retry: float = 2.0, check: float = 2.0) -> None:
        self._url = url
        self._retry = retry
        self._check = check
        self._connection: asyncpg.Connection | None = None

    @property
    def held(self) -> bool:
        connection = self._connection
        return connection is not None and not connection.is_closed()

    async def try_acquire(self) -> bool:
        """One attempt: True if this process now holds the lock. Connection failures
        are StoreError (the caller waits and tries again)."""
        try:
            if self._connection is None or self._connection.is_closed():
                self._connection = await asyncpg.connect(self._url, timeout=_CHECK_TIMEOUT)
            got = await self._connection.fetchval(
                "SELECT pg_try_advisory_lock($1)", ACTIVE_LOCK_KEY, timeout=_CHECK_TIMEOUT
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            await self._drop()
            raise StoreError(f"cannot reach {safe_url(self._url)}: {exc}") from None
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

    async def watch(self, on_lost: Callable[[], None]) -> None:
        """Check every `check` seconds that the lock's session is alive; call `on_lost`
        once, and return, when it is not. Run as a task by the composition root while
        active."""
        while True:
            await asyncio.sleep(self._check)
            connection = self._connection
            try:
                if connection is None or connection.is_closed():
                    raise StoreError("the lock's connection is closed")
                held = await connection.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND objid = $1 AND pid = pg_backend_pid() AND granted",
                    ACTIVE_LOCK_KEY,
                    timeout=_CHECK_TIMEOUT,
                )
                if not held:
                    raise StoreError("the lock is no longer held")
            except Exception as exc:
                # Any failure to confirm the lock counts as losing it: staying active
                # without it could make two active processes.
                log.critical("lost the active lock (%s): stopping", exc)
                await self._drop()
                on_lost()
                return

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


__all__ = ["ACTIVE_LOCK_KEY", "ActiveLock"]
