"""Inbound XMPP work in lanes: one lane per sender, handled in the order received, and
different senders' lanes at the same time.

One lane for everything made every operator's line wait for the commit of every line
received before it, from anyone: the group commit could never share a transaction between
two operators' lines, and at a few hundred lines per second the operators' side queued
(the patrons' side, one handler per WebSocket, did not). What must keep its order is one
sender's stanzas: an operator's line, then their presence change, then their next line.
Lanes are started in the order their first stanza arrived, so two operators answering the
same offer still reach the chat's lock in arrival order (asyncio's locks are fair).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


class InboundLanes:
    """Runs jobs one at a time per key and different keys concurrently. Owned by the XMPP
    adapter: its stanza callbacks `put` work keyed by the sender's bare JID, `join` waits
    until everything put so far is done (in-process tests), `close` stops at shutdown."""

    def __init__(self) -> None:
        self._lanes: dict[str, deque[Job]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    def put(self, key: str, job: Job) -> None:
        """Queue `job` behind the other jobs of `key`; called from slixmpp's callbacks."""
        if self._closed:
            return
        self._pending += 1
        self._idle.clear()
        lane = self._lanes.get(key)
        if lane is not None:
            lane.append(job)
            return
        self._lanes[key] = deque([job])
        task = asyncio.create_task(self._run(key), name="xmpp-inbound")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: str) -> None:
        lane = self._lanes[key]
        try:
            while lane:
                try:
                    await lane[0]()
                except Exception:
                    log.exception("failed to handle an inbound stanza")
                finally:
                    lane.popleft()
                    self._done(1)
        finally:
            # Cancelled (shutdown): what was still queued is dropped with the lane.
            self._done(len(lane))
            lane.clear()
            del self._lanes[key]

    def _done(self, count: int) -> None:
        self._pending -= count
        if self._pending == 0:
            self._idle.set()

    async def join(self) -> None:
        """Wait until every job put so far (and those they led to) has run."""
        await self._idle.wait()

    async def close(self) -> None:
        """Stop every lane; called once by the adapter's `stop`."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["InboundLanes", "Job"]
