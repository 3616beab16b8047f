"""How the active process hears at once that another process (the CLI, the admin page of
a standby instance) changed the shared PostgreSQL database: it LISTENs on the channel
the change trigger notifies (see `CHANGES_CHANNEL` in component/store/pg.py), on a
connection of its own.

A notification can be lost: the listening connection breaks, or a change commits while
it reconnects. So every (re)connection counts as a change (the service then reloads in
full), the connection is checked every few seconds so that a silently cut one is
noticed, and the composition root keeps a slow poll of the change counter as a backstop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from component.store.pg import CHANGES_CHANNEL, safe_url

log = logging.getLogger(__name__)

# What the listening session calls itself (visible in pg_stat_activity).
LISTENER_SESSION_NAME = "refdesk change listener"
_TIMEOUT = 5.0


class ChangeListener:
    """Calls `on_change` when another session commits a change, and whenever it
    (re)connects. Created by the composition root of the active process on a
    PostgreSQL store; `run` is its task, cancelled at shutdown. `own_session` returns the
    session id of the process's own store connection, whose notifications are its own
    writes and are ignored."""

    def __init__(
        self,
        url: str,
        on_change: Callable[[], None],
        own_session: Callable[[], int],
        *,
        check: float = 5.0,
        retry: float = 1.0,
    ) -> None:
        self._url = url
        self._on_change = on_change
        self._own_session = own_session
        self._check = check
        self._retry = retry
        # Set once a listening connection is up; tests wait for it.
        self.listening = asyncio.Event()

    async def run(self) -> None:
        """Listen, reconnecting after any failure, until cancelled."""
        while True:
            try:
                await self._listen_once()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("change listener on %s: %s; reconnecting", safe_url(self._url), exc)
            self.listening.clear()
            await asyncio.sleep(self._retry)

    async def _listen_once(self) -> None:
        """One listening connection, from connecting until it fails."""
        connection = await asyncpg.connect(
            self._url,
            timeout=_TIMEOUT,
            server_settings={"application_name": LISTENER_SESSION_NAME},
        )
        closed = asyncio.Event()
        connection.add_termination_listener(lambda _connection: closed.set())
        try:
            await connection.add_listener(CHANGES_CHANNEL, self._notified)
            self.listening.set()
            # Whatever changed while no connection listened was not heard: reload it all.
            self._on_change()
            while not connection.is_closed():
                try:
                    await asyncio.wait_for(closed.wait(), self._check)
                except TimeoutError:
                    # A connection cut without a goodbye only shows when it is used.
                    await connection.fetchval("SELECT 1", timeout=_TIMEOUT)
            raise asyncpg.InterfaceError("the listening connection closed")
        finally:
            connection.terminate()

    def _notified(self, _connection: object, session: int, _channel: str, _payload: object) -> None:
        """asyncpg's callback for one notification."""
        if session != self._own_session():
            self._on_change()


__all__ = ["LISTENER_SESSION_NAME", "ChangeListener"]
