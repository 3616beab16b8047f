"""The service's building blocks that `!commands` use, named as a Protocol.

`component.operator_commands` (the command tables and everyday commands) and
`component.moderation_commands` (`!ban`, `!tag`, `!banpolicy`: incidents and sticky pickup)
take a `CommandHost`; `DeskService` provides it. Naming it here lets the command modules
never import the service, which calls them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from component.bus import EventBus
from component.core.models import ChatEvent, ChatState, Group, Operator, Presence, Queue
from component.core.patron_text import PatronText
from component.core.routing import OperatorLoad
from component.followup import FollowUp
from component.live import Held, LiveChat, QueueInfo
from component.moderation import Moderation
from component.staff import StaffChannel
from component.store import Store


class CommandHost(Protocol):
    """The service's building blocks the commands use (`CommandHost` provides them;
    named here so this module never imports the service, which calls it)."""

    store: Store
    bus: EventBus
    domain: str
    followup: FollowUp
    moderation: Moderation
    staff: StaffChannel

    def clock(self) -> datetime: ...

    def is_queue(self, name: str) -> bool: ...

    def queue(self, name: str) -> Queue: ...

    def operator(self, jid: str) -> Operator | None: ...

    def find_operator(self, text: str) -> Operator | None: ...

    def presence_of(self, jid: str) -> Presence: ...

    def loads(self, queue: Queue) -> list[OperatorLoad]: ...

    def queue_info(self, name: str) -> QueueInfo: ...

    def group_of(self, queue: Queue) -> Group | None: ...

    def open_chats(self, queue: Queue | None = None) -> list[LiveChat]: ...

    async def history(self, chat_id: int, after_seq: int) -> list[ChatEvent]: ...

    def require_mine(self, held: Held, op: Operator) -> None: ...

    def admit_command(self, jid: str) -> None: ...

    async def operator_says(self, held: Held, op: Operator, text: str) -> None: ...

    async def accept(self, held: Held, op: Operator, *, explicit: bool) -> None: ...

    async def release(self, held: Held, patron_text: PatronText) -> None: ...

    async def offer_to_operator(self, held: Held, target: Operator, via: str) -> None: ...

    async def move_to_queue(
        self,
        held: Held,
        queue: Queue,
        *,
        patron_text: PatronText,
        via: str,
        exclude: str | None = None,
    ) -> None: ...

    async def end(
        self,
        held: Held,
        *,
        by: str,
        text: str | PatronText,
        state: ChatState = ChatState.ENDED,
    ) -> None: ...

    async def note(self, held: Held, op: Operator, text: str) -> None: ...

    async def take_next(self, jid: str, queue_name: str) -> LiveChat | None: ...


ChatCommand = Callable[[CommandHost, Held, Operator, str], Awaitable[str]]
QueueCommand = Callable[[CommandHost, str, Queue, str], Awaitable[str]]
