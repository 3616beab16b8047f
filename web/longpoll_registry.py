"""The registry of open long-poll sessions (see `web.longpoll`)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from web.patron_session import PatronSession

# A session nobody has polled for this long is closed (the patron's resume still works).
IDLE_TIMEOUT = 60.0


@dataclass
class Entry:
    session: PatronSession
    queue: str
    last_seen: float = field(default_factory=time.monotonic)
    polling: int = 0
    # Called once when the session closes (gives back the patron's connection slot).
    on_close: Callable[[], None] | None = None


class LongPollSessions:
    """The open long-poll sessions; one per app, swept by `sweep` in the background."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        # Set when the server begins to shut down: waiting polls answer at once (see
        # `web.longpoll.poll`) rather than hold the shutdown until it cuts them off.
        self.stopping = asyncio.Event()

    def add(
        self, session: PatronSession, queue: str, on_close: Callable[[], None] | None = None
    ) -> str:
        sid = secrets.token_urlsafe(18)
        self._entries[sid] = Entry(session, queue, on_close=on_close)
        return sid

    def get(self, sid: str, queue: str) -> Entry | None:
        entry = self._entries.get(sid)
        if entry is None or entry.queue != queue:
            return None
        entry.last_seen = time.monotonic()
        return entry

    def expire(self, now: float) -> None:
        for sid, entry in list(self._entries.items()):
            if entry.polling == 0 and now - entry.last_seen > IDLE_TIMEOUT:
                self.close(sid)

    def close(self, sid: str) -> None:
        entry = self._entries.pop(sid, None)
        if entry is not None:
            entry.session.close()
            if entry.on_close is not None:
                entry.on_close()

    def close_all(self) -> None:
        for sid in list(self._entries):
            self.close(sid)

    def __len__(self) -> int:
        return len(self._entries)
