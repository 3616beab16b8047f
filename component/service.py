"""The service layer: live state of queues, operators and open chats.

Both transports call it: the web side for patrons (`open_chat`, `post_patron_message`...),
the XMPP adapter for operators (`on_operator_message`, `on_operator_presence`...). It
commits every change through the store before telling anyone, and tells through events
on its bus. It never sends anything itself.

Every change to one chat happens under that chat's lock (`LiveChat.lock`), which keeps
sequence numbers dense and decisions (who took the chat, where it went) race-free.
Methods documented "caller holds the lock" are the building blocks of operator commands
(`component/operator_commands.py`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from component.bus import EventBus
from component.clock import Clock, LoopClock, Timer
from component.core import commands
from component.core.bans import Ladder, Network, canonical_address
from component.core.errors import (
    ChatClosed,
    InvalidInput,
    NotAnOperator,
    NotYourChat,
    UnknownQueue,
)
from component.core.escalation import (
    EscalationRule,
    RuleError,
    parse_rule,
    should_escalate,
)
from component.core.escalation import describe as describe_rule
from component.core.events import (
    ChatAccepted,
    ChatEnded,
    ChatOffered,
    DirectoryChanged,
    EmailOffered,
    MessagePosted,
    OfferWithdrawn,
    OperatorNotice,
    QueueStatusChanged,
    SubscriptionWanted,
    TypingChanged,
)
from component.core.hours import HoursError, ServiceHours, is_open, parse_hours
from component.core.models import (
    Chat,
    ChatEvent,
    ChatState,
    EventKind,
    Group,
    Operator,
    Presence,
    Queue,
    QueueStatus,
    RoutingMode,
    Sender,
)
from component.core.privacy import stored_address
from component.core.routing import OperatorLoad, eligible, next_in_turn, queue_status
from component.core.text import TextRejected, clean_message
from component.followup import FollowUp
from component.live import TYPING_INTERVAL, LiveChat, QueueInfo
from component.moderation import BanPolicy, Limits, Moderation
from component.operator_commands import run_chat_command, run_queue_command
from component.store import Store

log = logging.getLogger(__name__)

MAX_CLIENT_ID = 64
GUEST_PREFIX = "guest-"
# Lower-case letters and digits without look-alikes, for guest JIDs people may read aloud.
_GUEST_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
PURGE_EVERY = timedelta(hours=1)
# Arrival times kept per queue for escalation rules (enough for any sane rule).
_ARRIVALS_KEPT = 200


def hash_token(token: str) -> str:
    """Resume tokens are stored hashed: a database leak must not let anyone join a chat."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class ChatHandle:
    """What the web side gets when a patron says hello."""

    chat_id: int
    guest: str
    queue: str
    resume: str
    resumed: bool
    state: ChatState


@dataclass
class _QueueRuntime:
    """Parsed settings and recent history of one queue."""

    hours: ServiceHours
    escalation: EscalationRule | None
    arrivals: deque[datetime] = field(default_factory=lambda: deque(maxlen=_ARRIVALS_KEPT))
    last_escalation: datetime | None = None
    open_at_minute: tuple[datetime, bool] | None = None


class DeskService:
    """Created once by the composition root (or a test) with an open store."""

    def __init__(
        self,
        store: Store,
        *,
        domain: str,
        max_message_chars: int = 4000,
        from_address: str = "desk@localhost",
        ban_policy: BanPolicy | None = None,
        limits: Limits | None = None,
        resume_ttl: float = 300.0,
        operator_grace: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.domain = domain
        self.bus = EventBus()
        self.max_message_chars = max_message_chars
        self.resume_ttl = timedelta(seconds=resume_ttl)
        self.operator_grace = operator_grace
        # Every timer and every timestamp of the service and its parts comes from here.
        self.scheduler: Clock = clock or LoopClock()
        # The wall clock alone, as the admin pages and the parts read it.
        self.clock = self.scheduler.now
        self._groups: dict[int, Group] = {}
        self._queues: dict[str, Queue] = {}
        self._queues_by_id: dict[int, Queue] = {}
        self._runtime: dict[int, _QueueRuntime] = {}
        self._operators: dict[str, Operator] = {}
        self._members: dict[int, set[str]] = {}  # queue id -> operator JIDs
        self._on_call: dict[int, set[str]] = {}  # queue id -> on-call operator JIDs
        self._subscriptions: dict[tuple[str, str], str] = {}  # (queue, jid) -> state
        self._presence: dict[str, dict[str, Presence]] = {}  # jid -> resource -> presence
        self._last_chat: dict[str, datetime] = {}  # jid -> when they last took a chat
        self._leaving: dict[str, Timer] = {}  # operators gone offline
        self._chats: dict[int, LiveChat] = {}
        self._by_guest: dict[str, int] = {}
        self._data_version = 0
        self._last_status: dict[str, QueueInfo] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_purge: datetime | None = None
        self._relayed_dirty: dict[int, int] = {}
        # Called with (chat id, seq) whenever a chat's relay cursor moves (metrics).
        self.relay_observers: list[Callable[[int, int], None]] = []
        self._info_cache: dict[str, tuple[float, QueueInfo]] = {}
        self.followup = FollowUp(self, from_address)
        self.moderation = Moderation(
            self,
            ban_policy or BanPolicy(Ladder(), "You have been blocked.", "desk@localhost"),
            limits or Limits(),
        )

    # Start-up, shutdown, background work ----------------------------------------------------

    async def start(self) -> None:
        """Load queues, operators and open chats. Called once before the transports start."""
        await self.reload_directory()
        await self.moderation.load()
        for chat in await self.store.open_chats():
            await self._load_live(chat)
        self._data_version = await self.store.data_version()

    async def close(self) -> None:
        """Stop timers and background work; called by the composition root at shutdown."""
        for live in self._chats.values():
            live.cancel_timers()
        await self.save_relay_cursors()
        for timer in self._leaving.values():
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run background work owned by the service (cancelled at `close`)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait until the background work running now (and any it starts) is done. Tests
        call it after moving a manual clock, so they see what the timers did."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _later(self, delay: float, job: Callable[[], Coroutine[Any, Any, None]]) -> Timer:
        """Run `job` as background work `delay` seconds from now, on the injected clock."""
        return self.scheduler.call_later(delay, lambda: self.spawn(job()))

    async def tick(self) -> None:
        """Re-evaluate what changes with the clock alone (service hours opening and
        closing, bans running out). Called every few seconds by the composition root."""
        await self.moderation.expire()
        await self.save_relay_cursors()
        now = self.clock()
        if self._last_purge is None or now - self._last_purge >= PURGE_EVERY:
            self._last_purge = now
            await self.purge_expired()
        for name in list(self._queues):
            self._publish_status_if_changed(name)
        for live in sorted(self._chats.values(), key=lambda c: c.id):
            if live.unanswered and not live.offered_to and self.is_open(live.queue):
                async with live.lock:
                    if live.id in self._chats and live.unanswered:
                        await self._route(live)

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
            asked_at=chat.asked_at,
            accepted_at=chat.accepted_at,
            origin_ip=chat.origin_ip,
            referrer=chat.referrer,
            visited={queue.id},
            relayed_seq=chat.relayed_seq,
        )
        self._chats[chat.id] = live
        self._by_guest[chat.guest] = chat.id
        # Nobody is connected yet: after a restart, patrons have resume_ttl to come back.
        self._arm_gone_timer(live)
        return live

    # Directory -----------------------------------------------------------------------------

    async def reload_directory(self) -> None:
        """Read queues, operators and memberships from the store. Called at start and when
        `poll_directory` sees another process (the CLI, the admin page) change them."""
        queues = await self.store.list_queues()
        self._groups = {g.id: g for g in await self.store.list_groups()}
        operators = await self.store.list_operators()
        assignments = await self.store.list_assignments()
        self._queues = {q.name: q for q in queues}
        self._queues_by_id = {q.id: q for q in queues}
        self._runtime = {q.id: self._queue_runtime(q) for q in queues}
        self._operators = {op.jid: op for op in operators}
        ops_by_id = {op.id: op for op in operators}
        members: dict[int, set[str]] = {q.id: set() for q in queues}
        on_call: dict[int, set[str]] = {q.id: set() for q in queues}
        subscriptions: dict[tuple[str, str], str] = {}
        for a in assignments:
            queue = self._queues_by_id.get(a.queue_id)
            op = ops_by_id.get(a.operator_id)
            if queue is None or op is None:
                continue
            members[queue.id].add(op.jid)
            if a.on_call:
                on_call[queue.id].add(op.jid)
            subscriptions[(queue.name, op.jid)] = a.subscription
        new = [k for k in subscriptions if k not in self._subscriptions]
        self._members = members
        self._on_call = on_call
        self._subscriptions = subscriptions
        for live in self._chats.values():
            live.queue = self._queues_by_id.get(live.queue.id, live.queue)
            if live.operator is not None:
                live.operator = self._operators.get(live.operator.jid, live.operator)
        for queue_name, jid in new:
            if subscriptions[(queue_name, jid)] != "granted":
                self.bus.publish(SubscriptionWanted(queue_name, jid))
        self.bus.publish(DirectoryChanged(tuple(sorted(self._queues))))

    def _queue_runtime(self, queue: Queue) -> _QueueRuntime:
        old = self._runtime.get(queue.id)
        try:
            hours = parse_hours(queue.hours, queue.timezone, queue.closed_days)
        except HoursError as exc:
            # Stored settings were validated on the way in; a bad one must not take the
            # queue down, so it stays open and the problem is logged.
            log.error("queue %s: bad service hours (%s); treating as always open", queue.name, exc)
            hours = ServiceHours.always()
        rule = None
        if queue.escalation:
            try:
                rule = parse_rule(queue.escalation)
            except RuleError as exc:
                log.error("queue %s: bad escalation rule (%s); ignored", queue.name, exc)
        runtime = _QueueRuntime(hours, rule)
        if old is not None:
            runtime.arrivals = old.arrivals
            runtime.last_escalation = old.last_escalation
        return runtime

    async def poll_directory(self) -> bool:
        """Reload the directory if another connection committed since last time.
        Called every few seconds by the composition root. Returns whether it reloaded."""
        version = await self.store.data_version()
        if version == self._data_version:
            return False
        self._data_version = version
        await self.reload_directory()
        await self.moderation.load()
        for name in self._queues:
            self._publish_status_if_changed(name)
        return True

    async def _note_own_write(self) -> None:
        """Our own commits must not look like another process's changes."""
        self._data_version = await self.store.data_version()

    def queue_names(self) -> list[str]:
        return sorted(self._queues)

    def is_queue(self, name: str) -> bool:
        return name in self._queues

    def queue(self, name: str) -> Queue:
        queue = self._queues.get(name)
        if queue is None:
            raise UnknownQueue(f"There is no queue called {name!r}.")
        return queue

    def operator(self, jid: str) -> Operator | None:
        return self._operators.get(jid)

    def operators(self) -> list[Operator]:
        return sorted(self._operators.values(), key=lambda op: op.jid)

    def find_operator(self, text: str) -> Operator | None:
        """An operator by bare JID or by display name (case-insensitive), for `!transfer`."""
        if text in self._operators:
            return self._operators[text]
        wanted = text.casefold()
        matches = [op for op in self._operators.values() if op.name.casefold() == wanted]
        return matches[0] if len(matches) == 1 else None

    def subscriptions(self) -> dict[tuple[str, str], str]:
        """(queue, operator JID) -> 'none' | 'asked' | 'granted'; read by the XMPP adapter
        on every session start to ask for missing subscriptions and probe granted ones."""
        return dict(self._subscriptions)

    def subscribers(self, queue_name: str) -> list[str]:
        """Operators of the queue who granted it their presence (they see its presence)."""
        return [
            jid for (q, jid), s in self._subscriptions.items() if q == queue_name and s == "granted"
        ]

    def queues_of(self, jid: str) -> list[str]:
        return sorted(q.name for q in self._queues.values() if jid in self._members[q.id])

    def is_member(self, jid: str, queue: Queue) -> bool:
        return jid in self._members.get(queue.id, set())

    # Presence and queue state --------------------------------------------------------------

    def presence_of(self, jid: str) -> Presence:
        resources = self._presence.get(jid)
        if not resources:
            return Presence.OFFLINE
        return max(resources.values(), key=lambda p: p.rank)

    def is_open(self, queue: Queue) -> bool:
        """Within the queue's service hours (outside them it is offline whatever the
        operators' presence)."""
        runtime = self._runtime.get(queue.id)
        if runtime is None or runtime.hours.is_always:
            return True
        # Hours change on whole minutes: one real check per queue and minute is enough.
        minute = self.clock().replace(second=0, microsecond=0)
        if runtime.open_at_minute is None or runtime.open_at_minute[0] != minute:
            runtime.open_at_minute = (minute, is_open(runtime.hours, minute))
        return runtime.open_at_minute[1]

    def active_chats(self, jid: str) -> int:
        return sum(
            1
            for live in self._chats.values()
            if live.operator is not None and live.operator.jid == jid
        )

    def loads(self, queue: Queue) -> list[OperatorLoad]:
        """The queue's operators as routing sees them now."""
        active: dict[str, int] = {}
        for live in self._chats.values():
            if live.operator is not None:
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
        queue = self.queue(name)
        loads = self.loads(queue)
        waiting = sum(1 for c in self._chats.values() if c.queue.id == queue.id and c.unanswered)
        open_now = self.is_open(queue)
        return QueueInfo(
            queue=queue.name,
            title=queue.title,
            status=queue_status(loads) if open_now else QueueStatus.OFFLINE,
            waiting=waiting,
            operators_available=sum(1 for op in loads if op.presence.takes_chats),
            open_now=open_now,
        )

    def recent_queue_info(self, name: str, max_age: float = 1.0) -> QueueInfo:
        """`queue_info`, reused for up to `max_age` seconds: the status endpoint is hit on
        every page view of every partner site, and a second's staleness is harmless
        there (the widget's own socket gets changes as they happen)."""
        now = self.scheduler.monotonic()
        cached = self._info_cache.get(name)
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        info = self.queue_info(name)
        self._info_cache[name] = (now, info)
        return info

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
            QueueStatusChanged(
                info.queue,
                info.status,
                info.waiting,
                info.operators_available,
                self._positions(self.queue(queue_name)),
            )
        )

    def _positions(self, queue: Queue) -> dict[int, int | None]:
        """Every open chat of the queue with its place in line (None once answered)."""
        positions: dict[int, int | None] = {}
        place = 0
        for live in sorted(self._chats.values(), key=lambda c: c.id):
            if live.queue.id != queue.id:
                continue
            if live.unanswered:
                place += 1
                positions[live.id] = place
            else:
                positions[live.id] = None
        return positions

    async def on_operator_presence(self, jid: str, resource: str, presence: Presence) -> None:
        """An operator's presence reached a queue JID (the adapter calls this for every
        copy; it is idempotent). Offers waiting chats to an operator who became eligible,
        withdraws offers from one who went away, and hands back the chats of one who
        stayed offline longer than the grace period."""
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
            if after.online and jid in self._leaving:
                self._leaving.pop(jid).cancel()
            if after.takes_chats:
                await self._offer_waiting(jid)
            elif before.takes_chats:
                await self._withdraw_offers(jid, "You are no longer available.")
            if not after.online and self.active_chats(jid):
                self._leaving[jid] = self._later(
                    self.operator_grace, lambda: self._operator_left(jid)
                )
        for queue in self.queues_of(jid):
            self._publish_status_if_changed(queue)

    async def _operator_left(self, jid: str) -> None:
        """End of shift without handing over: the operator's open chats go back to their
        queues and are offered to someone else; their patrons are told."""
        self._leaving.pop(jid, None)
        if self.presence_of(jid).online:
            return
        for live in sorted(self._chats.values(), key=lambda c: c.id):
            if live.operator is None or live.operator.jid != jid:
                continue
            async with live.lock:
                if live.id not in self._chats or live.operator is None:
                    continue
                name = live.operator.name
                await self.release(
                    live,
                    f"{name} had to leave. We are finding another librarian for you; "
                    "please stay in the chat.",
                )
                await self._route(live, via=f"handed back: {name} went offline")

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
        await self._note_own_write()
        return True

    async def mark_subscription_asked(self, queue_name: str, jid: str) -> None:
        """The adapter sent a subscription request; remember so it is not re-sent blindly."""
        key = (queue_name, jid)
        if self._subscriptions.get(key) == "none":
            self._subscriptions[key] = "asked"
            await self.store.set_subscription(
                self._queues[queue_name].id, self._operators[jid].id, "asked"
            )
            await self._note_own_write()

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
        start a new one. Called by the widget's transports after the ban check. A new
        chat counts against the address's rate limit and waits, unoffered, until the
        patron's first message. The address is stored as the queue's privacy mode says."""
        queue = self.queue(queue_name)
        if resume:
            chat = await self.store.chat_by_resume(hash_token(resume))
            if chat is not None and self._resumable(chat):
                current = self._chats.get(chat.id)
                if current is not None:
                    current.ip = origin_ip
                name = current.queue.name if current else self._queues_by_id[chat.queue_id].name
                return ChatHandle(chat.id, chat.guest, name, resume, True, chat.state)
        await self.moderation.admit_new_chat(origin_ip, queue.id)
        token = secrets.token_urlsafe(24)
        guest = GUEST_PREFIX + "".join(secrets.choice(_GUEST_ALPHABET) for _ in range(8))
        chat = await self.store.create_chat(
            queue.id,
            guest,
            hash_token(token),
            stored_address(origin_ip, queue.privacy),
            referrer,
            self.clock(),
        )
        live = await self._load_live(chat)
        if live is not None:
            live.ip = origin_ip
        return ChatHandle(chat.id, guest, queue.name, token, False, chat.state)

    async def end_chats_from(self, network: Network, text: str) -> int:
        """A ban took effect: end every open chat whose patron is connected from the
        network, telling them why and their operator what happened."""
        ended = 0
        for live in list(self._chats.values()):
            if live.ip is None:
                continue
            try:
                address = canonical_address(live.ip)
            except ValueError:
                continue
            if address.version != network.version or address not in network:
                continue
            async with live.lock:
                if live.id in self._chats:
                    # A banned patron gets no email: the transcript copy they asked for
                    # is forgotten before the end would send it.
                    await self.store.set_transcript_email(live.id, None)
                    await self.end(live, by="system", text=text)
                    ended += 1
        return ended

    def _resumable(self, chat: Chat) -> bool:
        if chat.state.open:
            return chat.id in self._chats
        return chat.ended_at is not None and self.clock() - chat.ended_at < self.resume_ttl

    async def history(self, chat_id: int, after_seq: int) -> list[ChatEvent]:
        """What the patron may see of the transcript after `after_seq` (no staff notes),
        for a patron who (re)connects."""
        events = await self.store.events_after(chat_id, max(0, after_seq))
        return [e for e in events if e.kind.patron_sees]

    def last_seq(self, chat_id: int) -> int | None:
        """The newest seq of an open chat (None once it has ended)."""
        live = self._chats.get(chat_id)
        return live.last_seq if live else None

    def chat_state(self, chat_id: int) -> ChatState:
        live = self._chats.get(chat_id)
        return live.state if live else ChatState.ENDED

    def chat_queue(self, chat_id: int) -> str | None:
        """The queue a chat is in now (transfers move it); None once it has ended."""
        live = self._chats.get(chat_id)
        return live.queue.name if live else None

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
        if chat_id not in self._chats:
            # A resend whose ack was lost before the chat ended still gets its ack.
            stored = await self.store.event_by_client_id(chat_id, client_id)
            if stored is not None:
                return self._resent(stored, text)
        live = self._live(chat_id)
        async with live.lock:
            existing = await self.store.event_by_client_id(chat_id, client_id)
            if existing is not None:
                return self._resent(existing, text)
            try:
                clean = clean_message(text, self.max_message_chars)
            except TextRejected as exc:
                raise InvalidInput(exc.code, exc.text) from exc
            if live.id not in self._chats:
                raise ChatClosed("This chat has ended.")
            first = live.last_seq == 0
            event = await self.append(live, Sender.PATRON, "You", clean, client_id=client_id)
            self.bus.publish(MessagePosted(live.id, live.guest, event, live.recipients()))
            if first:
                await self._first_question(live)
        return event

    def _resent(self, stored: ChatEvent, text: object) -> ChatEvent:
        """A message id seen before: the same message sent again (its ack was lost) is
        answered with the stored event; other text under a used id is refused, since
        acknowledging it would tell the patron a message arrived that nobody will read."""
        try:
            same = clean_message(text, self.max_message_chars) == stored.text
        except TextRejected:
            same = False
        if not same:
            raise InvalidInput(
                "duplicate_id",
                "This message id was already used for another message; it was not sent. "
                "Send it again with a new id.",
            )
        return stored

    async def _first_question(self, live: LiveChat) -> None:
        """The chat now needs an operator: note the arrival, start the rollover clock,
        route it, and check the on-call rule. Caller holds the lock."""
        now = self.clock()
        live.asked_at = now
        await self.store.set_asked_at(live.id, now)
        self._arm_rollover(live)
        if live.queue.max_wait and live.queue.followup_email:
            live.max_wait_timer = self._later(
                live.queue.max_wait, lambda: self._max_wait_passed(live.id)
            )
        await self._route(live)
        await self._check_escalation(live.queue)

    async def _max_wait_passed(self, chat_id: int) -> None:
        """Nobody answered in time: offer the email form (research finds patrons leave
        after about 90 seconds). The patron may keep waiting."""
        live = self._chats.get(chat_id)
        if live is None or not live.unanswered:
            return
        live.max_wait_timer = None
        self.bus.publish(
            EmailOffered(
                live.id,
                "Sorry for the wait. If you prefer, leave your question and your email "
                "address and we will answer by email; or keep waiting here.",
            )
        )

    async def patron_typing(self, chat_id: int, composing: bool) -> None:
        """A patron's typing frame. Throttled per chat (`TypingThrottle`): each
        notification fans out to every operator the chat is offered to."""
        live = self._chats.get(chat_id)
        if live is None or not live.recipients():
            return
        decision = live.typing.offer(composing, self.scheduler.monotonic())
        if decision is True:
            self.bus.publish(TypingChanged(live.id, live.guest, True, composing, live.recipients()))
        elif decision is not False:
            self._later(decision, lambda: self._flush_typing(chat_id))

    async def _flush_typing(self, chat_id: int) -> None:
        live = self._chats.get(chat_id)
        if live is None:
            return
        composing = live.typing.flush(self.scheduler.monotonic())
        if composing is not None and live.recipients():
            self.bus.publish(TypingChanged(live.id, live.guest, True, composing, live.recipients()))

    async def end_chat_by_patron(self, chat_id: int) -> None:
        live = self._chats.get(chat_id)
        if live is None:
            return
        async with live.lock:
            if live.id in self._chats:
                await self.end(live, by="patron", text="You ended the chat.")

    def _arm_gone_timer(self, live: LiveChat) -> None:
        if live.gone_timer is not None:
            live.gone_timer.cancel()
        live.gone_timer = self._later(
            self.resume_ttl.total_seconds(), lambda: self._patron_gone(live.id)
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
                await self.end(
                    live,
                    by="system",
                    text=f"The patron left the chat (no connection for {minutes} min).",
                )

    # Routing -------------------------------------------------------------------------------

    async def _route(self, live: LiveChat, *, via: str = "") -> None:
        """Offer an unanswered chat according to its queue's routing mode. Caller holds
        the lock. With nobody eligible (or the queue closed) the chat simply waits."""
        queue = live.queue
        if not self.is_open(queue):
            self._publish_status_if_changed(queue.name)
            return
        loads = self.loads(queue)
        if queue.routing is RoutingMode.ROUND_ROBIN:
            if live.offered_to:
                return  # one operator at a time: wait for the offer to be taken or time out
            choice = next_in_turn(loads, self._last_chat, live.passed)
            if choice is None and live.passed:
                # Everyone had a turn: start a new round rather than leave the patron alone.
                live.passed.clear()
                choice = next_in_turn(loads, self._last_chat)
            targets = [choice] if choice else []
        else:
            targets = [jid for jid in eligible(loads) if jid not in live.offered_to]
        if targets:
            await self._offer(live, targets, via=via)
        self._publish_status_if_changed(queue.name)

    async def _offer(self, live: LiveChat, targets: list[str], *, via: str = "") -> None:
        live.offered_to.update(targets)
        if live.state is not ChatState.OFFERED:
            live.state = ChatState.OFFERED
            await self.store.set_chat_state(live.id, ChatState.OFFERED, self.clock())
        history = tuple(await self.store.events_after(live.id, 0))
        self.bus.publish(
            ChatOffered(
                live.id,
                live.guest,
                live.queue.name,
                live.queue.title,
                tuple(targets),
                history,
                via,
            )
        )
        if live.queue.routing is RoutingMode.ROUND_ROBIN:
            if live.offer_timer is not None:
                live.offer_timer.cancel()
            live.offer_timer = self._later(
                live.queue.offer_timeout, lambda: self._offer_timed_out(live.id, targets[0])
            )

    async def _offer_timed_out(self, chat_id: int, jid: str) -> None:
        live = self._chats.get(chat_id)
        if live is None:
            return
        async with live.lock:
            if live.id not in self._chats or live.operator is not None:
                return
            if jid not in live.offered_to:
                return
            live.offer_timer = None
            live.offered_to.discard(jid)
            live.passed.add(jid)
            self.bus.publish(
                OfferWithdrawn(
                    live.id,
                    live.guest,
                    (jid,),
                    "Not answered in time: offered to the next operator.",
                )
            )
            await self._back_to_waiting(live)
            await self._route(live)

    async def _back_to_waiting(self, live: LiveChat) -> None:
        if live.state is not ChatState.WAITING:
            live.state = ChatState.WAITING
            await self.store.set_chat_state(live.id, ChatState.WAITING, self.clock())

    async def _offer_waiting(self, jid: str) -> None:
        """An operator became eligible: route every unanswered chat of their queues."""
        queues = {self._queues[name].id for name in self.queues_of(jid)}
        for live in sorted(self._chats.values(), key=lambda c: c.id):
            if live.queue.id not in queues or not live.unanswered:
                continue
            async with live.lock:
                if live.id in self._chats and live.unanswered:
                    await self._route(live)

    async def _withdraw_offers(self, jid: str, reason: str) -> None:
        for live in list(self._chats.values()):
            if jid not in live.offered_to or live.operator is not None:
                continue
            async with live.lock:
                if jid not in live.offered_to or live.operator is not None:
                    continue
                live.offered_to.discard(jid)
                self.bus.publish(OfferWithdrawn(live.id, live.guest, (jid,), reason))
                if not live.offered_to:
                    if live.offer_timer is not None:
                        live.offer_timer.cancel()
                        live.offer_timer = None
                    await self._back_to_waiting(live)
                    await self._route(live)

    def _arm_rollover(self, live: LiveChat) -> None:
        after = live.queue.rollover_after
        backup = live.queue.backup_queue_id
        if live.rollover_timer is not None:
            live.rollover_timer.cancel()
            live.rollover_timer = None
        if after is None or backup is None or backup in live.visited:
            return
        live.rollover_timer = self._later(after, lambda: self._roll_over(live.id))

    async def _roll_over(self, chat_id: int) -> None:
        """Nobody took the chat in time: move it to the queue's backup queue."""
        live = self._chats.get(chat_id)
        if live is None:
            return
        async with live.lock:
            live.rollover_timer = None
            if live.id not in self._chats or live.operator is not None:
                return
            backup_id = live.queue.backup_queue_id
            backup = self._queues_by_id.get(backup_id) if backup_id is not None else None
            if backup is None or backup.id in live.visited:
                return
            origin = live.queue
            await self.move_to_queue(
                live,
                backup,
                patron_text=f"Nobody was free in {origin.title}; your question is now with "
                f"{backup.title}. Please stay in the chat.",
                via=f"rolled over from {origin.name}",
            )

    async def move_to_queue(
        self,
        live: LiveChat,
        queue: Queue,
        *,
        patron_text: str,
        via: str,
        exclude: str | None = None,
    ) -> None:
        """Put the chat in another queue and route it there (transfer, rollover). Caller
        holds the lock. `exclude` is an operator who must not get it back (the one
        transferring)."""
        withdrawn = tuple(sorted(live.offered_to))
        if withdrawn:
            self.bus.publish(
                OfferWithdrawn(live.id, live.guest, withdrawn, f"Moved to {queue.name}.")
            )
        if live.offer_timer is not None:
            live.offer_timer.cancel()
            live.offer_timer = None
        old = live.queue
        live.offered_to = set()
        live.passed = {exclude} if exclude else set()
        live.queue = queue
        live.visited.add(queue.id)
        await self.store.set_chat_queue(live.id, queue.id)
        await self._back_to_waiting(live)
        event = await self.append(live, Sender.SYSTEM, "", patron_text)
        self.bus.publish(MessagePosted(live.id, live.guest, event, ()))
        self._arm_rollover(live)
        await self._route(live, via=via)
        self._publish_status_if_changed(old.name)

    async def _check_escalation(self, queue: Queue) -> None:
        runtime = self._runtime.get(queue.id)
        if runtime is None:
            return
        now = self.clock()
        runtime.arrivals.append(now)
        rule = runtime.escalation
        on_call = sorted(self._on_call.get(queue.id, ()))
        if rule is None or not on_call:
            return
        if not should_escalate(
            rule, list(runtime.arrivals), now, runtime.hours.tz, runtime.last_escalation
        ):
            return
        runtime.last_escalation = now
        text = (
            f"On call: {queue.title} ({queue.name}) is busy — {describe_rule(rule)} reached. "
            f"{self.queue_info(queue.name).waiting} waiting. Please sign in to help."
        )
        for jid in on_call:
            self.bus.publish(OperatorNotice(jid, queue.name, text))
        emails = [op.email for jid in on_call if (op := self._operators.get(jid)) and op.email]
        if emails:
            await self.followup.on_call_alert(queue, emails, text)

    # Operators' chats: the building blocks of commands --------------------------------------

    def _require_operator(self, jid: str) -> Operator:
        op = self._operators.get(jid)
        if op is None:
            raise NotAnOperator("You are not an operator of this service.")
        return op

    def live_by_guest(self, guest: str) -> LiveChat | None:
        chat_id = self._by_guest.get(guest)
        return self._chats.get(chat_id) if chat_id is not None else None

    async def on_operator_message(self, jid: str, guest: str, text: str) -> str | None:
        """An operator wrote to a guest JID. Returns a line to answer with (command
        confirmations), or None; raises DeskError for the adapter to turn into an error."""
        op = self._require_operator(jid)
        live = self.live_by_guest(guest)
        if live is None:
            raise ChatClosed("This chat has ended.")
        if live.operator is not None and live.operator.jid != jid:
            raise NotYourChat(f"{live.operator.name} has this chat.")
        allowed = (
            self.is_member(jid, live.queue)
            or jid in live.offered_to
            or (live.operator is not None and live.operator.jid == jid)
        )
        if not allowed:
            raise NotAnOperator(f"You are not an operator of the {live.queue.name} queue.")
        parsed = commands.parse_line(text)
        async with live.lock:
            if live.id not in self._chats:
                raise ChatClosed("This chat has ended.")
            if isinstance(parsed, commands.Say):
                await self.operator_says(live, op, parsed.text)
                return None
            return await run_chat_command(self, live, op, parsed)

    def check_text(self, text: str) -> str:
        try:
            return clean_message(text, self.max_message_chars)
        except TextRejected as exc:
            raise InvalidInput(exc.code, exc.text) from exc

    def require_mine(self, live: LiveChat, op: Operator) -> None:
        """Raise unless the operator has this chat (accepting it first if it is theirs to
        take). Caller holds the lock."""
        if live.operator is not None and live.operator.id != op.id:
            raise NotYourChat(f"{live.operator.name} has this chat.")

    async def operator_says(self, live: LiveChat, op: Operator, text: str) -> None:
        """Relay an operator's line to the patron, taking the chat if it was on offer.
        Caller holds the lock."""
        clean = self.check_text(text)
        self.require_mine(live, op)
        if live.operator is None:
            await self.accept(live, op, explicit=False)
        event = await self.append(live, Sender.OPERATOR, op.name, clean, operator=op)
        self.bus.publish(MessagePosted(live.id, live.guest, event, ()))

    async def accept(self, live: LiveChat, op: Operator, *, explicit: bool) -> None:
        """The operator takes the chat. Caller holds the lock."""
        others = tuple(sorted(live.offered_to - {op.jid}))
        live.operator = op
        live.state = ChatState.ACTIVE
        live.offered_to = set()
        live.passed = set()
        now = self.clock()
        live.accepted_at = live.accepted_at or now
        self._last_chat[op.jid] = now
        for timer in (live.offer_timer, live.rollover_timer, live.max_wait_timer):
            if timer is not None:
                timer.cancel()
        live.offer_timer = live.rollover_timer = live.max_wait_timer = None
        await self.store.set_chat_state(live.id, ChatState.ACTIVE, now, operator_id=op.id)
        self.bus.publish(ChatAccepted(live.id, live.guest, op.jid, op.name, others, explicit))
        event = await self.append(live, Sender.SYSTEM, "", f"{op.name} joined the chat.")
        self.bus.publish(MessagePosted(live.id, live.guest, event, ()))
        self._publish_status_if_changed(live.queue.name)

    async def release(self, live: LiveChat, patron_text: str) -> None:
        """The chat's operator lets go of it (left, transferring); it waits again. Caller
        holds the lock; the caller routes it afterwards."""
        if live.operator is not None:
            self._operator_freed(live.operator.jid)
        live.operator = None
        live.offered_to = set()
        await self._back_to_waiting(live)
        event = await self.append(live, Sender.SYSTEM, "", patron_text)
        self.bus.publish(MessagePosted(live.id, live.guest, event, ()))

    async def offer_to_operator(self, live: LiveChat, target: Operator, via: str) -> None:
        """Transfer to a named colleague: only they get the offer. Caller holds the lock."""
        if live.offer_timer is not None:
            live.offer_timer.cancel()
            live.offer_timer = None
        live.passed = set()
        await self._offer(live, [target.jid], via=via)

    async def end(
        self, live: LiveChat, *, by: str, text: str, state: ChatState = ChatState.ENDED
    ) -> None:
        """End the chat. `by` is "patron", "operator" or "system". Caller holds the lock."""
        recipients = live.recipients()
        event = await self.append(live, Sender.SYSTEM, by, text, kind=EventKind.ENDED)
        live.state = state
        await self.store.set_chat_state(live.id, state, self.clock(), ended_by=by)
        del self._chats[live.id]
        self._by_guest.pop(live.guest, None)
        live.cancel_timers()
        self.bus.publish(ChatEnded(live.id, live.guest, event, by, recipients))
        self._publish_status_if_changed(live.queue.name)
        if live.operator is not None:
            self._operator_freed(live.operator.jid)

    def _operator_freed(self, jid: str) -> None:
        """An operator has room again: offer them what waits. In a task, because the
        caller holds one chat's lock and routing takes the others'."""
        if self.presence_of(jid).takes_chats:
            self.spawn(self._offer_waiting(jid))

    async def system_message(self, live: LiveChat, text: str) -> None:
        """A line from the service to the patron (and the transcript). Caller holds the
        lock."""
        event = await self.append(live, Sender.SYSTEM, "", text)
        self.bus.publish(MessagePosted(live.id, live.guest, event, ()))

    async def chat_for_token(self, resume: str) -> LiveChat | None:
        """The open chat a patron's resume token names, if any (the email form uses it to
        attach the chat so far)."""
        if not resume or len(resume) > 128:
            return None
        chat = await self.store.chat_by_resume(hash_token(resume))
        return self._chats.get(chat.id) if chat is not None else None

    async def close_as_followed_up(self, live: LiveChat, ticket_id: int) -> None:
        """The patron left their question by email: the chat ends as followed up."""
        async with live.lock:
            if live.id in self._chats:
                await self.end(
                    live,
                    by="system",
                    text=f"Your question was sent by email (ticket #{ticket_id}); "
                    "we will answer you there.",
                    state=ChatState.FOLLOWED_UP,
                )

    def group_of(self, queue: Queue) -> Group | None:
        return self._groups.get(queue.group_id)

    def ban_text(self, queue_name: str | None) -> str:
        """What a banned patron of this queue reads (the group's appeal address if it has
        one)."""
        queue = self._queues.get(queue_name or "")
        group = self.group_of(queue) if queue else None
        return self.moderation.ban_text(group.appeal_email if group else None)

    async def purge_expired(self) -> int:
        """Forget what each queue's retention period says to forget (addresses; and
        transcripts where the queue says so). Called hourly from `tick`, and by the CLI."""
        total = 0
        now = self.clock()
        for queue in self._queues.values():
            if queue.retention_days:
                total += await self.store.purge(
                    queue.id,
                    now - timedelta(days=queue.retention_days),
                    transcripts=queue.purge_transcripts,
                )
        return total

    def queue_by_id(self, queue_id: int) -> Queue:
        queue = self._queues_by_id.get(queue_id)
        if queue is None:
            raise UnknownQueue(f"There is no queue number {queue_id}.")
        return queue

    async def note(self, live: LiveChat, op: Operator, text: str) -> None:
        """A line for the transcript only. Caller holds the lock."""
        await self.append(
            live, Sender.OPERATOR, op.name, self.check_text(text), kind=EventKind.NOTE, operator=op
        )

    async def take_next(self, jid: str, queue_name: str) -> LiveChat | None:
        """`!next` on a queue JID: the operator takes the oldest unanswered chat of the
        queue. Returns it, or None if nobody is waiting."""
        op = self._require_operator(jid)
        queue = self.queue(queue_name)
        if not self.is_member(jid, queue):
            raise NotAnOperator(f"You are not an operator of the {queue.name} queue.")
        for live in sorted(self._chats.values(), key=lambda c: c.id):
            if live.queue.id != queue.id or not live.unanswered:
                continue
            async with live.lock:
                if live.id in self._chats and live.unanswered:
                    await self.accept(live, op, explicit=True)
                    return live
        return None

    async def operator_typing(self, jid: str, guest: str, composing: bool) -> None:
        live = self.live_by_guest(guest)
        if live is None or live.operator is None or live.operator.jid != jid:
            return
        self.bus.publish(TypingChanged(live.id, live.guest, False, composing, ()))

    async def on_queue_message(self, jid: str, queue_name: str, text: str) -> str:
        """An operator wrote to a queue JID: queue commands. Returns the reply."""
        self._require_operator(jid)
        queue = self.queue(queue_name)
        if not self.is_member(jid, queue):
            raise NotAnOperator(f"You are not an operator of the {queue.name} queue.")
        parsed = commands.parse_line(text)
        if isinstance(parsed, commands.Say):
            return f"This is the {queue.name} queue. Send !help for the commands."
        return await run_queue_command(self, jid, queue, parsed)

    # Relaying patron messages to XMPP ---------------------------------------------------------

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
        await self.store.set_relayed(dirty)

    async def unrelayed(self) -> list[tuple[str, tuple[str, ...], list[ChatEvent]]]:
        """Patron messages of active chats that were acknowledged but never reached the
        operator (the process stopped first): (guest, recipients, events). The adapter
        sends them after every session start."""
        out = []
        for live in self.open_chats():
            if live.operator is None or live.last_seq <= live.relayed_seq:
                continue
            events = [
                e
                for e in await self.store.events_after(live.id, live.relayed_seq)
                if e.sender is Sender.PATRON
            ]
            if events:
                out.append((live.guest, live.recipients(), events))
        return out

    def open_chat_ids(self) -> set[int]:
        return set(self._chats)

    def open_chats(self, queue: Queue | None = None) -> list[LiveChat]:
        return sorted(
            (c for c in self._chats.values() if queue is None or c.queue.id == queue.id),
            key=lambda c: c.id,
        )

    # Transcript ----------------------------------------------------------------------------

    async def append(
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
            ts=self.clock(),
            client_id=client_id,
            operator_jid=operator.jid if operator else None,
        )
        await self.store.append_event(event, operator.id if operator else None)
        live.last_seq = event.seq
        return event


__all__ = [
    "TYPING_INTERVAL",
    "ChatHandle",
    "DeskService",
    "LiveChat",
    "QueueInfo",
    "hash_token",
]
