"""The open chats the service holds in memory, their transcripts and their relay cursors.

`OpenChats` is the one registry of `LiveChat`s (by id and by guest JID): routing reads it
to count loads and places in line, the chat lifecycle adds and removes chats. It commits
transcript entries (`append`, which needs the chat's lock: it takes a `Held`, see
`component.live`) and keeps track of how far the XMPP server confirmed relaying each
chat's patron messages.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Mapping
from datetime import datetime

from component.core.errors import ChatClosed
from component.core.models import ChatEvent, ChatState, EventKind, Operator, Queue, Sender
from component.core.patron_text import PatronText
from component.live import Held, LiveChat
from component.store import Store


class OpenChats:
    """Created once by the service; shared by routing and the chat lifecycle."""

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock
        self._chats: dict[int, LiveChat] = {}
        self._by_guest: dict[str, int] = {}
        self._relayed_dirty: dict[int, int] = {}
        # Indexes kept up to date as chats change (see `_reindex`), so that a hello or a
        # status costs the same with ten or ten thousand chats open:
        self._queue_chats: dict[int, set[int]] = {}  # queue id -> open chat ids
        self._unanswered: dict[int, list[int]] = {}  # queue id -> sorted unanswered ids
        self._active: dict[str, int] = {}  # operator JID -> chats they have
        self._keys: dict[int, tuple[int, bool, str | None]] = {}  # chat id -> indexed as
        # Called with (chat id, seq) whenever a chat's relay cursor moves (metrics).
        self.relay_observers: list[Callable[[int, int], None]] = []

    # The registry ----------------------------------------------------------------------------

    def add(self, live: LiveChat) -> None:
        self._chats[live.id] = live
        self._by_guest[live.guest] = live.id
        live.on_change = self._reindex
        self._reindex(live)

    def remove(self, live: LiveChat) -> None:
        if self._chats.get(live.id) is live:
            del self._chats[live.id]
            self._unindex(live.id)
            live.on_change = None
        self._by_guest.pop(live.guest, None)

    def _reindex(self, live: LiveChat) -> None:
        """A held chat's queue, operator or newest seq changed (LiveChat tells us)."""
        if self._chats.get(live.id) is not live:
            return
        key = (live.queue.id, live.unanswered, live.operator.jid if live.operator else None)
        if self._keys.get(live.id) == key:
            return
        self._unindex(live.id)
        self._keys[live.id] = key
        queue_id, unanswered, jid = key
        self._queue_chats.setdefault(queue_id, set()).add(live.id)
        if unanswered:
            insort(self._unanswered.setdefault(queue_id, []), live.id)
        if jid is not None:
            self._active[jid] = self._active.get(jid, 0) + 1

    def _unindex(self, chat_id: int) -> None:
        key = self._keys.pop(chat_id, None)
        if key is None:
            return
        queue_id, unanswered, jid = key
        members = self._queue_chats[queue_id]
        members.discard(chat_id)
        if not members:
            del self._queue_chats[queue_id]
        if unanswered:
            ids = self._unanswered[queue_id]
            del ids[bisect_left(ids, chat_id)]
            if not ids:
                del self._unanswered[queue_id]
        if jid is not None:
            left = self._active[jid] - 1
            if left:
                self._active[jid] = left
            else:
                del self._active[jid]

    def is_open(self, live: LiveChat) -> bool:
        """Still open (checked again after taking its lock: it may have ended meanwhile)."""
        return self._chats.get(live.id) is live

    def get(self, chat_id: int) -> LiveChat | None:
        return self._chats.get(chat_id)

    def require(self, chat_id: int) -> LiveChat:
        live = self._chats.get(chat_id)
        if live is None:
            raise ChatClosed("This chat has ended.")
        return live

    def by_guest(self, guest: str) -> LiveChat | None:
        chat_id = self._by_guest.get(guest)
        return self._chats.get(chat_id) if chat_id is not None else None

    def all(self, queue: Queue | None = None) -> list[LiveChat]:
        """Open chats (of one queue, or all), oldest first."""
        if queue is None:
            return [self._chats[i] for i in sorted(self._chats)]
        return [self._chats[i] for i in sorted(self._queue_chats.get(queue.id, ()))]

    def unanswered(self) -> list[LiveChat]:
        """Every unanswered chat, oldest first (routing's tick)."""
        return [self._chats[i] for i in heapq.merge(*self._unanswered.values())]

    def ids(self) -> set[int]:
        return set(self._chats)

    def last_seq(self, chat_id: int) -> int | None:
        """The newest seq of an open chat (None once it has ended)."""
        live = self._chats.get(chat_id)
        return live.last_seq if live else None

    def state(self, chat_id: int) -> ChatState:
        live = self._chats.get(chat_id)
        return live.state if live else ChatState.ENDED

    def queue_name(self, chat_id: int) -> str | None:
        """The queue a chat is in now (transfers move it); None once it has ended."""
        live = self._chats.get(chat_id)
        return live.queue.name if live else None

    def active_count(self) -> Mapping[str, int]:
        """Operator JID -> how many chats they have now (kept as chats change; read-only)."""
        return self._active

    def active_chats(self, jid: str) -> int:
        return self._active.get(jid, 0)

    def position(self, chat_id: int) -> int | None:
        """1-based place among the queue's unanswered chats, or None once answered."""
        live = self._chats.get(chat_id)
        if live is None or not live.unanswered:
            return None
        return bisect_right(self._unanswered.get(live.queue.id, []), live.id)

    def positions(self, queue: Queue) -> dict[int, int | None]:
        """Every open chat of the queue with its place in line (None once answered)."""
        positions: dict[int, int | None] = dict.fromkeys(self._queue_chats.get(queue.id, ()))
        for place, chat_id in enumerate(self._unanswered.get(queue.id, ()), start=1):
            positions[chat_id] = place
        return positions

    def waiting(self, queue: Queue) -> int:
        return len(self._unanswered.get(queue.id, ()))

    def cancel_timers(self) -> None:
        """Shutdown: no chat timer may fire after the service closed."""
        for live in self._chats.values():
            live.cancel_timers()

    # Transcript ------------------------------------------------------------------------------

    async def append(
        self,
        held: Held,
        sender: Sender,
        name: str,
        text: str | PatronText,
        *,
        kind: EventKind = EventKind.MESSAGE,
        client_id: str | None = None,
        operator: Operator | None = None,
    ) -> ChatEvent:
        """Commit the chat's next transcript entry; the held lock is what keeps seq
        numbers dense and in commit order. A `PatronText` is stored as its English text
        with its code and parameters, for the widget to render in the patron's language."""
        live = held.live
        coded = text if isinstance(text, PatronText) else None
        event = ChatEvent(
            chat_id=live.id,
            seq=live.last_seq + 1,
            kind=kind,
            sender=sender,
            name=name,
            text=coded.english if coded else str(text),
            ts=self.clock(),
            client_id=client_id,
            operator_jid=operator.jid if operator else None,
            code=coded.code if coded else None,
            params=coded.params if coded else None,
        )
        await self.store.chats.append_event(event, operator.id if operator else None)
        live.last_seq = event.seq
        return event

    async def set_state(self, held: Held, state: ChatState) -> None:
        """Change the chat's state in memory and in the store, if it differs."""
        live = held.live
        if live.state is not state:
            live.state = state
            await self.store.chats.set_state(live.id, state, self.clock())

    # Relay cursors ---------------------------------------------------------------------------

    def note_relayed(self, chat_id: int, seq: int) -> None:
        """The XMPP server has confirmed reading the chat's patron messages up to `seq`
        (called by the XMPP adapter when its confirmation ping is answered; a line merely
        written to the socket does not count). Kept in memory at once and saved by
        `save_relay_cursors` (every second or so): after a crash, at worst the last
        second's messages go out twice, never zero times."""
        live = self._chats.get(chat_id)
        if live is not None and seq > live.relayed_seq:
            live.relayed_seq = seq
            self._relayed_dirty[chat_id] = seq
            for observe in self.relay_observers:
                observe(chat_id, seq)

    async def save_relay_cursors(self) -> None:
        """Called periodically by the composition root and at shutdown."""
        dirty, self._relayed_dirty = self._relayed_dirty, {}
        await self.store.chats.set_relayed(dirty)

    async def unrelayed(self) -> list[tuple[str, tuple[str, ...], list[ChatEvent]]]:
        """Patron messages of active chats that were acknowledged but never reached the
        operator (the process stopped first): (guest, recipients, events). The adapter
        sends them after every session start."""
        out = []
        for live in self.all():
            if live.operator is None or live.last_seq <= live.relayed_seq:
                continue
            found = await self.store.chats.events_after(live.id, live.relayed_seq)
            # Only what was passed on already (`last_seq` moves as a line is passed on, in
            # the same step): a line committed while this read ran, but not yet passed on,
            # will be by its poster, behind the lines queued before it. Sent from here too,
            # it would go out ahead of those: out of order.
            events = [e for e in found if e.sender is Sender.PATRON and e.seq <= live.last_seq]
            if events:
                out.append((live.guest, live.recipients(), events))
        return out


__all__ = ["OpenChats"]
