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
need not agree. The lease is a setting (`[storage] lease`); the check interval (a third
of it) and the fence (1 s longer) follow from it. Every instance should use the same
lease; each writes its own into the lease record, and a process taking over from one
with a longer lease fences for that longer one (and says so in its log).

The fence is needed only while an old holder may still be serving, so each confirmation
also renews the lease record (the table refdesk_active_lease, one row): the database
writes its own clock (`clock_timestamp()`) when it runs the confirmation, which is after
the holder sent it. The holder stops `lease` seconds after sending its last successful
confirmation, so it has stopped by the recorded time + `lease`; the fence adds
`fence - lease` (1 s) for the two clocks' rates, a late timer on the holder and small
steps of the database's clock. A process that gets the lock therefore waits only until
the database's clock reads the last renewal + `fence`, and never longer than `fence`
(the bound above holds whatever the record says): nothing when the record is older, or
when the last holder released the lock at a clean shutdown (`release`, after it stopped
serving). The migration that creates the record marks it released when no process holds
the lock (a new database set up by the CLI; no process can serve before migrating), and
the whole fence is waited while no holder has renewed it. A holder renews only while it
holds the lock, and the next one reads the record only once it got the lock, after the
old holder's session ended, so every renewal of the old holder is committed by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
from collections.abc import Callable

import asyncpg

from component.config_checks import MAX_LEASE
from component.store.db import StoreError
from component.store.pg import safe_url

log = logging.getLogger(__name__)

# Advisory locks are per database, so one constant key serves every deployment.
ACTIVE_LOCK_KEY = 7262002
# How long connecting or taking the lock may take.
_CHECK_TIMEOUT = 5.0
# How much longer than the lease the fence lasts (see the module's docstring): it covers
# a late timer on the old holder, the two clocks' rates and a small step of the database's
# clock, none of which grows with the lease.
FENCE_MARGIN = 1.0
# Confirmations per lease: one slow or lost confirmation does not yet end the lease.
CHECKS_PER_LEASE = 3


def check_for(lease: float) -> float:
    """How often a holder with this lease confirms the lock (used by `ActiveLock`)."""
    return lease / CHECKS_PER_LEASE


def fence_for(lease: float) -> float:
    """How long a new holder waits at most after a holder with this lease (used by
    `ActiveLock`)."""
    return lease + FENCE_MARGIN


# The shipped lease (the default of `[storage] lease`): seconds an unconfirmed lock still
# counts as held, how often the holder confirms it, and how long a new holder waits at
# most before it serves.
LEASE = 3.0
CHECK = check_for(LEASE)
FENCE = fence_for(LEASE)
# How a holder's lease is written at the end of the record's `holder` (read back by the
# next holder, which must outlast it; the rest of `holder` is for people).
_HOLDER_LEASE = re.compile(r", lease ([0-9]{1,6}(?:\.[0-9]{1,6})?) s$")
# What the lock's session calls itself (visible in pg_stat_activity).
LOCK_SESSION_NAME = "refdesk active lock"
# Whether this session holds the lock.
_HELD = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
    " AND objid = $1 AND pid = pg_backend_pid() AND granted"
)
# Confirm the lock and, when held, renew the lease record in the same statement (so a
# renewal is never recorded without the lock): (held, renewed).
_RENEW = (
    f"WITH held AS ({_HELD}), renewed AS ("
    "UPDATE refdesk_active_lease SET holder = $2, renewed_at = clock_timestamp(),"
    " released = FALSE WHERE id = 1 AND (SELECT count FROM held) > 0 RETURNING 1)"
    " SELECT (SELECT count FROM held), (SELECT count(*) FROM renewed)"
)
# Right after taking the lock: the record as the old holder left it, and how far its
# last renewal lies behind the database's clock (seconds); renews it for this process.
_TAKE_OVER = (
    "WITH old AS (SELECT holder, renewed_at, released FROM refdesk_active_lease WHERE id = 1),"
    " renewed AS (UPDATE refdesk_active_lease SET holder = $1,"
    " renewed_at = clock_timestamp(), released = FALSE WHERE id = 1 RETURNING renewed_at)"
    " SELECT old.holder, old.released,"
    " EXTRACT(EPOCH FROM renewed.renewed_at - old.renewed_at) AS age"
    " FROM old, renewed"
)
# At a clean shutdown, while still holding the lock.
_RELEASE = f"UPDATE refdesk_active_lease SET released = TRUE WHERE id = 1 AND ({_HELD}) > 0"
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
        lease: float = LEASE,
        check: float | None = None,
        fence: float | None = None,
    ) -> None:
        # `check` and `fence` follow from `lease` unless given (tests of the lock alone).
        check = check_for(lease) if check is None else check
        fence = fence_for(lease) if fence is None else fence
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
        # Set once `fence` has waited out any old holder: only then may `release` mark
        # the lease record released (before, an old holder may still be serving).
        self._fenced = False
        # Who renews the lease record (for people reading it), and with which lease (for
        # the next holder).
        self._holder = f"{socket.gethostname()} pid {os.getpid()}, lease {lease:g} s"

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

    async def fence(self) -> float:
        """Wait until any old holder has stopped serving (see the module's docstring:
        at most `fence` seconds, nothing after a clean release or on a new database),
        then confirm the lock is still held. Called by the composition root after
        `acquire` (or a successful `try_acquire`), before it serves; returns the seconds
        it waited; raises StoreError when the lock went meanwhile."""
        self._fenced = False
        wait = await self._take_over()
        if wait > 0:
            await asyncio.sleep(wait)
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
        self._fenced = True
        return wait

    async def _take_over(self) -> float:
        """Read the lease record an old holder left and record this process as the
        holder; returns how long `fence` must wait. Called by `fence` right after the
        lock was taken."""
        connection = self._connection
        try:
            if connection is None or connection.is_closed():
                raise StoreError("the lock's connection is closed")
            try:
                row = await connection.fetchrow(_TAKE_OVER, self._holder, timeout=_CHECK_TIMEOUT)
            except asyncpg.UndefinedTableError:
                # No record yet: a database whose schema predates it, or one no refdesk has
                # opened, where a holder that got the lock a moment ago may be starting.
                return self._fence
        except Exception as exc:
            await self._drop()
            raise StoreError(f"lost the active lock while fencing: {exc}") from None
        if row is None:
            return self._fence
        age = row["age"]
        return fence_wait(
            released=bool(row["released"]),
            age=None if age is None else float(age),
            fence=self._outlasting(row["holder"]),
        )

    def _outlasting(self, holder: str | None) -> float:
        """The fence that outlasts the old holder named in the lease record: this
        process's own, or a longer one when the old holder wrote a longer lease (an
        instance configured differently, which is logged). A holder that names no lease
        ran a version whose lease was the constant `LEASE`; with no holder recorded at
        all, its lease is unknown and taken to be this process's own. Called by
        `_take_over`."""
        if holder is None:
            return self._fence
        found = _HOLDER_LEASE.search(holder)
        theirs = LEASE if found is None else min(float(found.group(1)), MAX_LEASE)
        if theirs != self._lease:
            log.warning(
                "the previous active process used a lease of %g s, this one %g s:"
                " every instance should use the same [storage] lease",
                theirs,
                self._lease,
            )
        return max(self._fence, fence_for(theirs))

    async def _is_held(self, timeout: float) -> bool:
        """Confirm the lock, renewing the lease record with it (a plain check before the
        store's migrations have created the record)."""
        connection = self._connection
        if connection is None or connection.is_closed():
            raise StoreError("the lock's connection is closed")
        try:
            row = await connection.fetchrow(_RENEW, ACTIVE_LOCK_KEY, self._holder, timeout=timeout)
        except asyncpg.UndefinedTableError:
            return bool(await connection.fetchval(_HELD, ACTIVE_LOCK_KEY, timeout=timeout))
        return row is not None and bool(row[0])

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
        """Give the lock up (closing its session does); called at shutdown, once this
        process has stopped serving. After a completed fence the lease record is first
        marked released, so the next holder starts at once."""
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                if self._fenced and not self._lost:
                    with contextlib.suppress(asyncpg.UndefinedTableError):
                        await connection.execute(_RELEASE, ACTIVE_LOCK_KEY, timeout=_CHECK_TIMEOUT)
                await asyncio.wait_for(connection.close(), _CHECK_TIMEOUT)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                connection.terminate()

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()


def fence_wait(*, released: bool, age: float | None, fence: float) -> float:
    """How long a process that just took the lock waits before it serves, from the lease
    record the old holder left: nothing if it released the lock cleanly; the whole
    `fence` if it never recorded a renewal (`age` None); otherwise until `fence` seconds
    after its last renewal, `age` seconds ago by the database's clock, and never more
    than `fence` (a clock stepped back gives a negative age). Called by `fence`."""
    if released:
        return 0.0
    if age is None:
        return fence
    return min(fence, max(0.0, fence - age))


__all__ = [
    "ACTIVE_LOCK_KEY",
    "CHECK",
    "FENCE",
    "LEASE",
    "LOCK_SESSION_NAME",
    "ActiveLock",
    "fence_wait",
]
