"""The open chats the service holds in memory, their transcripts and their relay cursors.

`OpenChats` is the one registry of `LiveChat`s (by id and by guest JID): routing reads it
to count loads and places in line, the chat lifecycle adds and removes chats. It commits
transcript entries (`append`, which needs the chat's lock: it takes a `Held`, see
`component.live`) and keeps track of how far the XMPP server confirmed relaying each
chat's patron messages.
"""

from __future__ import annotations

from collections.abc import Callable
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
        # Called with (chat id, seq) whenever a chat's relay cursor moves (metrics).
        self.relay_observers: list[Callable[[int, int], None]] = []

    # The registry ----------------------------------------------------------------------------

    def add(self, live: LiveChat) -> None:
        self._chats[live.id] = live
        self._by_guest[live.guest] = live.id

    def remove(self, live: LiveChat) -> None:
        self._chats.pop(live.id, None)
        self._by_guest.pop(live.guest, None)

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
        return sorted(
            (c for c in self._chats.values() if queue is None or c.queue.id == queue.id),
            key=lambda c: c.id,
        )

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

    def active_count(self) -> dict[str, int]:
        """Operator JID -> how many chats they have now."""
        active: dict[str, int] = {}
        for live in self._chats.values():
            if live.operator is not None:
                active[live.operator.jid] = active.get(live.operator.jid, 0) + 1
        return active

    def position(self, chat_id: int) -> int | None:
        """1-based place among the queue's unanswered chats, or None once answered."""
        live = self._chats.get(chat_id)
        if live is None or not live.unanswered:
            return None
        return sum(
            1
            for c in self._chats.values()
            if c.queue.id == live.queue.id and c.unanswered and c.id <= live.id
        )

    def positions(self, queue: Queue) -> dict[int, int | None]:
        """Every open chat of the queue with its place in line (None once answered)."""
        positions: dict[int, int | None] = {}
        place = 0
        for live in self.all(queue):
            if live.unanswered:
                place += 1
                positions[live.id] = place
            else:
                positions[live.id] = None
        return positions

    def waiting(self, queue: Queue) -> int:
        return sum(1 for c in self._chats.values() if c.queue.id == queue.id and c.unanswered)

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
            events = [
                e
                for e in await self.store.chats.events_after(live.id, live.relayed_seq)
                if e.sender is Sender.PATRON
            ]
            if events:
                out.append((live.guest, live.recipients(), events))
        return out


__all__ = ["OpenChats"]
