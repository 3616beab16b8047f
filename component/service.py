"""The service layer: live state of queues, operators and open chats.

Both transports call it: the web side for patrons (`open_chat`, `post_patron_message`...),
the XMPP adapter for operators (`on_operator_message`, `on_operator_presence`...). It
commits every change through the store before telling anyone, and tells through events
on its bus. It never sends anything itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from component.bus import EventBus
from component.core import commands
from component.core.errors import (
    BadCommand,
    ChatClosed,
    DeskError,
    InvalidInput,
    NotAnOperator,
    NotYourChat,
    UnknownChat,
    UnknownQueue,
)
from component.core.events import (
    ChatAccepted,
    ChatEnded,
    ChatOffered,
    MessagePosted,
    QueueStatusChanged,
    SubscriptionWanted,
    TypingChanged,
)
from component.core.models import (
    Chat,
    ChatEvent,
    ChatState,
    EventKind,
    Operator,
    Presence,
    Queue,
    QueueStatus,
    Sender,
)
from component.core.routing import OperatorLoad, eligible, queue_status
from component.core.text import TextRejected, clean_message
from component.store import Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

MAX_CLIENT_ID = 64
GUEST_PREFIX = "guest-"
# Lower-case letters and digits without look-alikes, for guest JIDs people may read aloud.
_GUEST_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def utcnow() -> datetime:
    return datetime.now(UTC)


def hash_token(token: str) -> str:
    """Resume tokens are stored hashed: a database leak must not let anyone join a chat."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class LiveChat:
    """An open chat as the service holds it between events. Mutated under `lock` only."""

    id: int
    queue: Queue
    guest: str
    state: ChatState
    operator: Operator | None
    created_at: datetime
    last_seq: int
    offered_to: set[str] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Open patron connections, and the timer that ends the chat when none comes back.
    connections: int = 0
    gone_timer: asyncio.TimerHandle | None = None

    @property
    def unanswered(self) -> bool:
        """The patron has asked and no operator has taken the chat yet."""
        return self.operator is None and self.last_seq > 0

    def recipients(self) -> tuple[str, ...]:
        """Operators who must see what the patron writes now."""
        if self.operator is not None:
            return (self.operator.jid,)
        return tuple(sorted(self.offered_to))


@dataclass(frozen=True, slots=True)
class ChatHandle:
    """What the web side gets when a patron says hello."""

    chat_id: int
    guest: str
    queue: str
    resume: str
    resumed: bool
    state: ChatState


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """The queue's state for the status endpoint and the widget."""

    queue: str
    title: str
    status: QueueStatus
    waiting: int
    operators_available: int


class DeskService:
    """Created once by the composition root (or a test) with an open store."""

    def __init__(
        self,
        store: Store,
        *,
        domain: str,
        max_message_chars: int = 4000,
        resume_ttl: float = 3600.0,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store
        self.domain = domain
        self.bus = EventBus()
        self.max_message_chars = max_message_chars
        self.resume_ttl = timedelta(seconds=resume_ttl)
        self._clock = clock
        self._queues: dict[str, Queue] = {}
        self._queues_by_id: dict[int, Queue] = {}
        self._operators: dict[str, Operator] = {}
        self._members: dict[int, set[str]] = {}  # queue id -> operator JIDs
        self._subscriptions: dict[tuple[str, str], str] = {}  # (queue, jid) -> state
        self._presence: dict[str, dict[str, Presence]] = {}  # jid -> resource -> presence
        self._chats: dict[int, LiveChat] = {}
        self._by_guest: dict[str, int] = {}
        self._data_version = 0
        self._last_status: dict[str, QueueInfo] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # Start-up and directory ----------------------------------------------------------------

    async def start(self) -> None:
        """Load queues, operators and open chats. Called once before the transports start."""
        await self.reload_directory()
        for chat in await self.store.open_chats():
            await self._load_live(chat)
        self._data_version = await self.store.data_version()

    async def _load_live(self, chat: Chat) -> LiveChat | None:
        queue = self._queues_by_id.get(chat.queue_id)
        if queue is None:
            return None
        operator = None
        if chat.operator_id is not None:
            operator = next(
                (op for op in self._operators.values() if op.id == chat.operator_id), None
            )
        state = chat.state
        if state is ChatState.OFFERED:
            # Offers are not remembered across restarts: the chat is offered afresh.
            state = ChatState.WAITING
        live = LiveChat(
            id=chat.id,
            queue=queue,
            guest=chat.guest,
            state=state,
            operator=operator,
            created_at=chat.created_at,
            last_seq=await self.store.last_seq(chat.id),
        )
        self._chats[chat.id] = live
        self._by_guest[chat.guest] = chat.id
        # Nobody is connected yet: after a restart, patrons have resume_ttl to come back.
        self._arm_gone_timer(live)
        return live

    async def close(self) -> None:
        """Stop timers and background work; called by the composition root at shutdown."""
        for live in self._chats.values():
            if live.gone_timer is not None:
                live.gone_timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _arm_gone_timer(self, live: LiveChat) -> None:
        if live.gone_timer is not None:
            live.gone_timer.cancel()
        live.gone_timer = asyncio.get_running_loop().call_later(
            self.resume_ttl.total_seconds(), lambda: self._spawn(self._patron_gone(live.id))
        )

    def patron_connected(self, chat_id: int) -> None:
        """A patron socket joined the chat (called by the web side after welcome)."""
        live = self._chats.get(chat_id)
        if live is None:
            return
        live.connections += 1
        if live.gone_timer is not None:
            live.gone_timer.cancel()
            live.gone_timer = None

    def patron_disconnected(self, chat_id: int) -> None:
        """A patron socket closed. When the last one has been gone for `resume_ttl`, the
        chat ends: the operator must not keep a seat for someone who left."""
        live = self._chats.get(chat_id)
        if live is None:
            return
        live.connections = max(0, live.connections - 1)
        if live.connections == 0:
            self._arm_gone_timer(live)

    async def _patron_gone(self, chat_id: int) -> None:
        live = self._chats.get(chat_id)
        if live is None:
            return
        async with live.lock:
            if live.id in self._chats and live.connections == 0:
                minutes = max(1, round(self.resume_ttl.total_seconds() / 60))
                await self._end(
                    live,
                    by="system",
                    text=f"The patron left the chat (no connection for {minutes} min).",
                )

    async def reload_directory(self) -> None:
        """Read queues, operators and memberships from the store. Called at start and when
        `poll_directory` sees another process (the CLI, the admin page) change them."""
        queues = await self.store.list_queues()
        operators = await self.store.list_operators()
        assignments = await self.store.list_assignments()
        self._queues = {q.name: q for q in queues}
        self._queues_by_id = {q.id: q for q in queues}
        self._operators = {op.jid: op for op in operators}
        ops_by_id = {op.id: op for op in operators}
        members: dict[int, set[str]] = {q.id: set() for q in queues}
        subscriptions: dict[tuple[str, str], str] = {}
        for a in assignments:
            queue = self._queues_by_id.get(a.queue_id)
            op = ops_by_id.get(a.operator_id)
            if queue is None or op is None:
                continue
            members[queue.id].add(op.jid)
            key = (queue.name, op.jid)
            subscriptions[key] = a.subscription
        new = [k for k, state in subscriptions.items() if k not in self._subscriptions]
        self._members = members
        self._subscriptions = subscriptions
        for live in self._chats.values():
            live.queue = self._queues_by_id.get(live.queue.id, live.queue)
        for queue_name, jid in new:
            if subscriptions[(queue_name, jid)] != "granted":
                self.bus.publish(SubscriptionWanted(queue_name, jid))

    async def poll_directory(self) -> bool:
        """Reload the directory if another connection committed since last time.
        Called every few seconds by the composition root. Returns whether it reloaded."""
        version = await self.store.data_version()
        if version == self._data_version:
            return False
        self._data_version = version
        await self.reload_directory()
        for name in self._queues:
            self._publish_status_if_changed(name)
        return True

    def queue_names(self) -> list[str]:
        return sorted(self._queues)

    def is_queue(self, name: str) -> bool:
        return name in self._queues

    def operator(self, jid: str) -> Operator | None:
        return self._operators.get(jid)

    def subscriptions(self) -> dict[tuple[str, str], str]:
        """(queue, operator JID) -> 'none' | 'asked' | 'granted'; read by the XMPP adapter
        on every session start to ask for missing subscriptions and probe granted ones."""
        return dict(self._subscriptions)

    def queues_of(self, jid: str) -> list[str]:
        return sorted(q.name for q in self._queues.values() if jid in self._members[q.id])

    def _queue(self, name: str) -> Queue:
        queue = self._queues.get(name)
        if queue is None:
            raise UnknownQueue(f"There is no queue called {name!r}.")
        return queue

    # Presence ------------------------------------------------------------------------------

    def presence_of(self, jid: str) -> Presence:
        resources = self._presence.get(jid)
        if not resources:
            return Presence.OFFLINE
        return max(resources.values(), key=lambda p: p.rank)

    def _loads(self, queue: Queue) -> list[OperatorLoad]:
        active: dict[str, int] = {}
        for live in self._chats.values():
            if live.operator is not None and live.state is ChatState.ACTIVE:
                active[live.operator.jid] = active.get(live.operator.jid, 0) + 1
        return [
            OperatorLoad(
                jid=jid,
                presence=self.presence_of(jid),
                active_chats=active.get(jid, 0),
                max_chats=self._operators[jid].max_chats,
            )
            for jid in sorted(self._members.get(queue.id, ()))
            if jid in self._operators
        ]

    def queue_info(self, name: str) -> QueueInfo:
        """The queue's status now; called by the status endpoint and the widget socket."""
        queue = self._queue(name)
        loads = self._loads(queue)
        waiting = sum(1 for c in self._chats.values() if c.queue.id == queue.id and c.unanswered)
        return QueueInfo(
            queue=queue.name,
            title=queue.title,
            status=queue_status(loads),
            waiting=waiting,
            operators_available=sum(1 for op in loads if op.presence.takes_chats),
        )

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

    def _publish_status_if_changed(self, queue_name: str) -> None:
        info = self.queue_info(queue_name)
        if self._last_status.get(queue_name) == info:
            return
        self._last_status[queue_name] = info
        self.bus.publish(
            QueueStatusChanged(info.queue, info.status, info.waiting, info.operators_available)
        )

    async def on_operator_presence(self, jid: str, resource: str, presence: Presence) -> None:
        """An operator's presence reached a queue JID (the adapter calls this for every
        copy; it is idempotent). Offers waiting chats to an operator who became eligible
        and withdraws offers from one who went away."""
        if jid not in self._operators:
            return
        resources = self._presence.setdefault(jid, {})
        before = self.presence_of(jid)
        if presence is Presence.OFFLINE:
            resources.pop(resource, None)
            if not resources:
                del self._presence[jid]
        else:
            resources[resource] = presence
        after = self.presence_of(jid)
        if before != after:
            log.info("operator %s is now %s", jid, after.value)
            if after.takes_chats:
                await self._offer_waiting(jid)
            elif before.takes_chats:
                await self._withdraw_offers(jid)
        for queue in self.queues_of(jid):
            self._publish_status_if_changed(queue)

    async def on_subscription(self, queue_name: str, jid: str, kind: str) -> bool:
        """A subscription stanza from `jid` to a queue JID. Returns whether `jid` is an
        operator of that queue (the adapter answers accordingly). `kind` is the stanza's
        type: subscribe, subscribed, unsubscribe or unsubscribed."""
        key = (queue_name, jid)
        if key not in self._subscriptions:
            return False
        queue = self._queues[queue_name]
        op = self._operators[jid]
        if kind == "subscribed" and self._subscriptions[key] != "granted":
            self._subscriptions[key] = "granted"
            await self.store.set_subscription(queue.id, op.id, "granted")
        elif kind == "unsubscribed" and self._subscriptions[key] != "none":
            self._subscriptions[key] = "none"
            await self.store.set_subscription(queue.id, op.id, "none")
        self._data_version = await self.store.data_version()
        return True

    async def mark_subscription_asked(self, queue_name: str, jid: str) -> None:
        """The adapter sent a subscription request; remember so it is not re-sent blindly."""
        key = (queue_name, jid)
        if self._subscriptions.get(key) == "none":
            self._subscriptions[key] = "asked"
            await self.store.set_subscription(
                self._queues[queue_name].id, self._operators[jid].id, "asked"
            )
            self._data_version = await self.store.data_version()

    # Patrons -------------------------------------------------------------------------------

    async def open_chat(
        self,
        queue_name: str,
        resume: str | None,
        *,
        origin_ip: str | None = None,
        referrer: str | None = None,
    ) -> ChatHandle:
        """A patron's hello: resume the chat named by `resume` if it is still known, else
        start a new one. Called by the widget socket. A new chat waits, unoffered, until
        the patron's first message."""
        queue = self._queue(queue_name)
        if resume:
            chat = await self.store.chat_by_resume(hash_token(resume))
            if chat is not None and chat.queue_id == queue.id and self._resumable(chat):
                return ChatHandle(chat.id, chat.guest, queue.name, resume, True, chat.state)
        token = secrets.token_urlsafe(24)
        guest = GUEST_PREFIX + "".join(secrets.choice(_GUEST_ALPHABET) for _ in range(8))
        chat = await self.store.create_chat(
            queue.id, guest, hash_token(token), origin_ip, referrer, self._clock()
        )
        await self._load_live(chat)
        return ChatHandle(chat.id, guest, queue.name, token, False, chat.state)

    def _resumable(self, chat: Chat) -> bool:
        if chat.state.open:
            return chat.id in self._chats
        return chat.ended_at is not None and self._clock() - chat.ended_at < self.resume_ttl

    async def history(self, chat_id: int, after_seq: int) -> list[ChatEvent]:
        """Transcript entries after `after_seq`, for a patron who (re)connects."""
        return await self.store.events_after(chat_id, max(0, after_seq))

    def chat_state(self, chat_id: int) -> ChatState:
        live = self._chats.get(chat_id)
        return live.state if live else ChatState.ENDED

    def _live(self, chat_id: int) -> LiveChat:
        live = self._chats.get(chat_id)
        if live is None:
            raise ChatClosed("This chat has ended.")
        return live

    async def post_patron_message(self, chat_id: int, client_id: object, text: object) -> ChatEvent:
        """Store a patron's message and pass it on. Idempotent on `client_id`: a resend
        returns the stored event and tells nobody twice. The returned event is committed."""
        if not isinstance(client_id, str) or not 0 < len(client_id) <= MAX_CLIENT_ID:
            raise InvalidInput("bad_id", "Each message needs an id of 1 to 64 characters.")
        live = self._live(chat_id)
        async with live.lock:
            existing = await self.store.event_by_client_id(chat_id, client_id)
            if existing is not None:
                return existing
            try:
                clean = clean_message(text, self.max_message_chars)
            except TextRejected as exc:
                raise InvalidInput(exc.code, exc.text) from exc
            if live.state is ChatState.ENDED:
                raise ChatClosed("This chat has ended.")
            event = await self._append(live, Sender.PATRON, "You", clean, client_id=client_id)
            self.bus.publish(MessagePosted(live.id, live.guest, event, live.recipients()))
            if live.state is ChatState.WAITING:
                await self._offer(live)
        return event

    async def patron_typing(self, chat_id: int, composing: bool) -> None:
        live = self._chats.get(chat_id)
        if live is None or not live.recipients():
            return
        self.bus.publish(TypingChanged(live.id, live.guest, True, composing, live.recipients()))

    async def end_chat_by_patron(self, chat_id: int) -> None:
        live = self._chats.get(chat_id)
        if live is None:
            return
        async with live.lock:
            if live.id in self._chats:
                await self._end(live, by="patron", text="You ended the chat.")

    # Routing -------------------------------------------------------------------------------

    async def _offer(self, live: LiveChat) -> None:
        """Offer a waiting chat to every eligible operator (ring-all). Caller holds the lock."""
        targets = [jid for jid in eligible(self._loads(live.queue)) if jid not in live.offered_to]
        if not targets:
            self._publish_status_if_changed(live.queue.name)
            return
        live.offered_to.update(targets)
        if live.state is ChatState.WAITING:
            live.state = ChatState.OFFERED
            await self.store.set_chat_state(live.id, ChatState.OFFERED, self._clock())
        history = tuple(await self.store.events_after(live.id, 0))
        self.bus.publish(
            ChatOffered(
                live.id, live.guest, live.queue.name, live.queue.title, tuple(targets), history
            )
        )
        self._publish_status_if_changed(live.queue.name)

    async def _offer_waiting(self, jid: str) -> None:
        """An operator became eligible: extend every unanswered chat of their queues to them."""
        queues = {self._queues[name].id for name in self.queues_of(jid)}
        for live in sorted(self._chats.values(), key=lambda c: c.id):
            if live.queue.id not in queues or not live.unanswered:
                continue
            async with live.lock:
                if live.operator is None and live.id in self._chats:
                    await self._offer(live)

    async def _withdraw_offers(self, jid: str) -> None:
        for live in list(self._chats.values()):
            if jid in live.offered_to and live.operator is None:
                async with live.lock:
                    live.offered_to.discard(jid)
                    if not live.offered_to and live.state is ChatState.OFFERED:
                        live.state = ChatState.WAITING
                        await self.store.set_chat_state(live.id, ChatState.WAITING, self._clock())

    # Operators -----------------------------------------------------------------------------

    def _require_operator(self, jid: str) -> Operator:
        op = self._operators.get(jid)
        if op is None:
            raise NotAnOperator("You are not an operator of this service.")
        return op

    async def on_operator_message(self, jid: str, guest: str, text: str) -> str | None:
        """An operator wrote to a guest JID. Returns a line to answer with (command
        confirmations), or None; raises DeskError for the adapter to turn into an error."""
        op = self._require_operator(jid)
        chat_id = self._by_guest.get(guest)
        if chat_id is None or chat_id not in self._chats:
            raise ChatClosed("This chat has ended.")
        live = self._chats[chat_id]
        if jid not in self._members.get(live.queue.id, set()) and live.operator != op:
            raise NotAnOperator(f"You are not an operator of the {live.queue.name} queue.")
        parsed = commands.parse_line(text)
        async with live.lock:
            if live.id not in self._chats:
                raise ChatClosed("This chat has ended.")
            if isinstance(parsed, commands.Say):
                await self._operator_says(live, op, parsed.text)
                return None
            return await self._chat_command(live, op, parsed)

    async def _operator_says(self, live: LiveChat, op: Operator, text: str) -> None:
        try:
            clean = clean_message(text, self.max_message_chars)
        except TextRejected as exc:
            raise BadCommand(exc.text) from exc
        if live.operator is None:
            await self._accept(live, op, explicit=False)
        elif live.operator.id != op.id:
            raise NotYourChat(f"{live.operator.name} has this chat.")
        event = await self._append(live, Sender.OPERATOR, op.name, clean, operator=op)
        self.bus.publish(MessagePosted(live.id, live.guest, event, ()))

    async def _chat_command(self, live: LiveChat, op: Operator, cmd: commands.Command) -> str:
        if cmd.name == "help":
            return commands.help_text(commands.CHAT_COMMANDS)
        if cmd.name == "accept":
            if live.operator is not None:
                if live.operator.id == op.id:
                    return "This chat is already yours."
                raise NotYourChat(f"{live.operator.name} has this chat.")
            await self._accept(live, op, explicit=True)
            return "You have this chat. Your messages now go to the patron."
        if cmd.name == "end":
            if live.operator is not None and live.operator.id != op.id:
                raise NotYourChat(f"{live.operator.name} has this chat.")
            await self._end(live, by="operator", text=f"{op.name} ended the chat.")
            return "Chat ended."
        name = f"!{cmd.name}" if cmd.name else "!"
        raise BadCommand(f"Unknown command {name}. Send !help for the list.")

    async def _accept(self, live: LiveChat, op: Operator, *, explicit: bool) -> None:
        others = tuple(sorted(live.offered_to - {op.jid}))
        live.operator = op
        live.state = ChatState.ACTIVE
        live.offered_to = set()
        await self.store.set_chat_state(live.id, ChatState.ACTIVE, self._clock(), operator_id=op.id)
        self.bus.publish(ChatAccepted(live.id, live.guest, op.jid, op.name, others, explicit))
        event = await self._append(live, Sender.SYSTEM, op.name, f"{op.name} joined the chat.")
        self.bus.publish(MessagePosted(live.id, live.guest, event, ()))
        self._publish_status_if_changed(live.queue.name)

    async def _end(self, live: LiveChat, *, by: str, text: str) -> None:
        recipients = live.recipients()
        event = await self._append(live, Sender.SYSTEM, "", text, kind=EventKind.ENDED)
        live.state = ChatState.ENDED
        await self.store.set_chat_state(live.id, ChatState.ENDED, self._clock(), ended_by=by)
        del self._chats[live.id]
        self._by_guest.pop(live.guest, None)
        if live.gone_timer is not None:
            live.gone_timer.cancel()
        self.bus.publish(ChatEnded(live.id, live.guest, event, by, recipients))
        self._publish_status_if_changed(live.queue.name)

    async def operator_typing(self, jid: str, guest: str, composing: bool) -> None:
        chat_id = self._by_guest.get(guest)
        live = self._chats.get(chat_id) if chat_id is not None else None
        if live is None or live.operator is None or live.operator.jid != jid:
            return
        self.bus.publish(TypingChanged(live.id, live.guest, False, composing, ()))

    async def on_queue_message(self, jid: str, queue_name: str, text: str) -> str:
        """An operator wrote to a queue JID: queue commands. Returns the reply."""
        self._require_operator(jid)
        queue = self._queue(queue_name)
        if jid not in self._members.get(queue.id, set()):
            raise NotAnOperator(f"You are not an operator of the {queue.name} queue.")
        parsed = commands.parse_line(text)
        if isinstance(parsed, commands.Say):
            return f"This is the {queue.name} queue. Send !help for the commands."
        if parsed.name == "help":
            return commands.help_text(commands.QUEUE_COMMANDS)
        if parsed.name == "status":
            info = self.queue_info(queue.name)
            return (
                f"{queue.name}: {info.status.value}; {info.waiting} waiting; "
                f"{info.operators_available} operator(s) taking chats."
            )
        if parsed.name == "who":
            lines = [
                f"{op.jid}: {op.presence.value}, {op.active_chats} chat(s)"
                for op in self._loads(queue)
            ]
            return "\n".join(lines) or "No operators in this queue."
        if parsed.name == "list":
            rows = [
                f"{c.guest} — {c.state.value}" + (f" with {c.operator.name}" if c.operator else "")
                for c in sorted(self._chats.values(), key=lambda c: c.id)
                if c.queue.id == queue.id
            ]
            return "\n".join(rows) or "No open chats."
        name = f"!{parsed.name}" if parsed.name else "!"
        raise BadCommand(f"Unknown command {name}. Send !help for the list.")

    # Transcript ----------------------------------------------------------------------------

    async def _append(
        self,
        live: LiveChat,
        sender: Sender,
        name: str,
        text: str,
        *,
        kind: EventKind = EventKind.MESSAGE,
        client_id: str | None = None,
        operator: Operator | None = None,
    ) -> ChatEvent:
        """Commit the chat's next transcript entry. Caller holds `live.lock`, which is what
        keeps seq numbers dense and in commit order."""
        event = ChatEvent(
            chat_id=live.id,
            seq=live.last_seq + 1,
            kind=kind,
            sender=sender,
            name=name,
            text=text,
            ts=self._clock(),
            client_id=client_id,
            operator_jid=operator.jid if operator else None,
        )
        await self.store.append_event(event, operator.id if operator else None)
        live.last_seq = event.seq
        return event

    def open_chat_ids(self) -> Iterable[int]:
        return list(self._chats)


def describe_error(exc: DeskError) -> str:
    return exc.text


__all__ = [
    "ChatHandle",
    "DeskService",
    "LiveChat",
    "QueueInfo",
    "UnknownChat",
    "hash_token",
    "utcnow",
]
