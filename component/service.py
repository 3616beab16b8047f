"""The service: live state of queues, operators and open chats, as one object that both
transports call. The web side calls it for patrons (`open_chat`, `post_patron_message`...),
the XMPP adapter for operators (`on_operator_message`, `on_operator_presence`...). It
commits every change through the store before telling anyone, and tells through events
on its bus. It never sends anything itself.

`DeskService` is a thin composition of parts, each a module a newcomer finds by name:

- `component.directory_cache`: queues, groups, operators and subscriptions as loaded
  from the store;
- `component.open_chats`: the open chats in memory, their transcripts, relay cursors;
- `component.presence_routing`: operators' presence, queue status, offers, round-robin,
  rollover, hand-back, escalation;
- `component.chats`: a chat's life, from a patron's hello to its end;
- `component.followup`, `component.moderation`, `component.operator_commands`: email
  follow-up, bans and rate limits, `!commands` (they reach the service through narrow
  Protocols);
- `component.notices`: who is told of bans, incidents and unstaffed queues.

The locking rule is stated once, in `component.live`: a change to a chat needs a `Held`,
which only `hold(live)` (the chat's lock) gives out. The methods below that take a `Held`
are the building blocks of operator commands (`component.operator_commands`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from component.bus import EventBus
from component.chats import GUEST_PREFIX, MAX_CLIENT_ID, ChatHandle, ChatLifecycle, hash_token
from component.clock import Clock, LoopClock
from component.core import commands
from component.core.bans import Ladder, Network
from component.core.errors import ChatClosed, NotAnOperator, NotYourChat
from component.core.events import DirectoryChanged, GuestPresence, SubscriptionWanted
from component.core.models import (
    ChatEvent,
    ChatState,
    Group,
    Operator,
    Presence,
    Queue,
)
from component.core.patron_text import PatronText
from component.core.routing import OperatorLoad
from component.directory_cache import DirectoryCache
from component.followup import FollowUp
from component.live import TYPING_INTERVAL, Background, Held, LiveChat, QueueInfo, hold
from component.moderation import BanNotice, BanPolicy, Limits, Moderation
from component.notices import Notices
from component.open_chats import OpenChats
from component.operator_commands import run_chat_command, run_queue_command
from component.presence_routing import Routing
from component.staff import StaffChannel
from component.store import Store

log = logging.getLogger(__name__)

PURGE_EVERY = timedelta(hours=1)


class DeskService:
    """Created once by the composition root (or a test) with an open store. Most methods
    below delegate to one part and are documented there; the callers (the XMPP adapter,
    `web/`, the CLI, `component/operations.py`, the tests) keep calling the service."""

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
        admin_url: str = "",
        unstaffed_alert_after: float = 600.0,
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
        self.background = Background(self.scheduler)
        self.directory = DirectoryCache(store)
        self.open = OpenChats(store, self.clock)
        # Called with (chat id, seq) whenever a chat's relay cursor moves (metrics).
        self.relay_observers: list[Callable[[int, int], None]] = self.open.relay_observers
        self.followup = FollowUp(self, from_address)
        self.moderation = Moderation(
            self,
            ban_policy or BanPolicy(Ladder(), "You have been blocked.", "desk@localhost"),
            limits or Limits(),
        )
        self.routing = Routing(
            store=store,
            bus=self.bus,
            scheduler=self.scheduler,
            background=self.background,
            directory=self.directory,
            chats=self.open,
            operator_grace=operator_grace,
            on_call_mailer=self.followup.on_call_alert,
            pickup_claims=self.moderation.sticky.claims,
        )
        self.lifecycle = ChatLifecycle(
            store=store,
            bus=self.bus,
            scheduler=self.scheduler,
            background=self.background,
            directory=self.directory,
            chats=self.open,
            routing=self.routing,
            moderation=self.moderation,
            max_message_chars=max_message_chars,
            resume_ttl=self.resume_ttl,
        )
        self.notices = Notices(
            self, from_address, admin_url=admin_url, unstaffed_after=unstaffed_alert_after
        )
        limits = limits or Limits()
        self.staff = StaffChannel(
            store=store,
            bus=self.bus,
            scheduler=self.scheduler,
            directory=self.directory,
            presence_of=self.routing.presence_of,
            check_text=self.lifecycle.check_text,
            lines_per_second=limits.messages_per_second,
            line_burst=limits.message_burst,
        )
        self._data_version = 0
        self._last_purge: datetime | None = None

    # Start-up, shutdown, background work ------------------------------------------------------

    async def start(self) -> None:
        """Load queues, operators and open chats. Called once before the transports start."""
        await self.reload_directory()
        await self.moderation.load()
        for chat in await self.store.chats.open_ones():
            await self.lifecycle.load_live(chat)
        self._data_version = await self.store.data_version()
        await self.notices.resume_staffing()

    async def close(self) -> None:
        """Stop timers and background work; called by the composition root at shutdown."""
        self.open.cancel_timers()
        await self.save_relay_cursors()
        self.routing.close()
        self.notices.close()
        await self.background.close()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run background work owned by the service (cancelled at `close`)."""
        self.background.spawn(coro)

    async def idle(self) -> None:
        """Wait until the background work running now (and any it starts) is done. Tests
        call it after moving a manual clock, so they see what the timers did."""
        await self.background.idle()

    async def tick(self) -> None:
        """Re-evaluate what changes with the clock alone (service hours opening and
        closing, bans running out). Called every few seconds by the composition root."""
        await self.moderation.expire()
        await self.save_relay_cursors()
        now = self.clock()
        if self._last_purge is None or now - self._last_purge >= PURGE_EVERY:
            self._last_purge = now
            await self.purge_expired()
        for name in self.directory.queue_names():
            self.routing.publish_status(name)
        await self.routing.route_waiting()
        await self.notices.check_staffing()

    async def purge_expired(self) -> int:
        """Forget what each queue's retention period says to forget (addresses; and
        transcripts where the queue says so). Called hourly from `tick`, and by the CLI."""
        total = 0
        now = self.clock()
        for queue in self.directory.queues():
            if queue.retention_days:
                total += await self.store.chats.purge(
                    queue.id,
                    now - timedelta(days=queue.retention_days),
                    transcripts=queue.purge_transcripts,
                )
        # Sticky pickup marks outlive no patron's memory: gone once expired.
        await self.store.sticky.forget_expired(now)
        return total

    # Directory ---------------------------------------------------------------------------------

    async def reload_directory(self) -> None:
        """Read queues, operators and memberships from the store. Called at start and when
        `poll_directory` sees another process (the CLI, the admin page) change them."""
        wanted = await self.directory.load()
        self.lifecycle.refresh_directory()
        for queue_name, jid in wanted:
            self.bus.publish(SubscriptionWanted(queue_name, jid))
        self.bus.publish(DirectoryChanged(tuple(self.directory.queue_names())))

    async def poll_directory(self) -> bool:
        """Reload the directory if another connection committed since last time.
        Called every few seconds by the composition root. Returns whether it reloaded."""
        version = await self.store.data_version()
        if version == self._data_version:
            return False
        await self.refresh_directory()
        return True

    async def refresh_directory(self) -> None:
        """Reload the directory and the bans, whatever the change counter says. Called by
        `poll_directory`, and by the composition root when PostgreSQL notifies it of a
        change by another process (or its listener reconnected)."""
        self._data_version = await self.store.data_version()
        await self.reload_directory()
        await self.moderation.load()
        for name in self.directory.queue_names():
            self.routing.publish_status(name)

    async def _note_own_write(self) -> None:
        """Our own commits must not look like another process's changes."""
        self._data_version = await self.store.data_version()

    def queue_names(self) -> list[str]:
        return self.directory.queue_names()

    def is_queue(self, name: str) -> bool:
        return self.directory.is_queue(name)

    def queue(self, name: str) -> Queue:
        return self.directory.queue(name)

    def queue_by_id(self, queue_id: int) -> Queue:
        return self.directory.queue_by_id(queue_id)

    def group_of(self, queue: Queue) -> Group | None:
        return self.directory.group_of(queue)

    def operator(self, jid: str) -> Operator | None:
        return self.directory.operator(jid)

    def operators(self) -> list[Operator]:
        return self.directory.operators()

    def find_operator(self, text: str) -> Operator | None:
        return self.directory.find_operator(text)

    def subscriptions(self) -> dict[tuple[str, str], str]:
        """(queue, operator JID) -> 'none' | 'asked' | 'granted'; read by the XMPP adapter
        on every session start to ask for missing subscriptions and probe granted ones."""
        return self.directory.subscriptions()

    def subscribers(self, queue_name: str) -> list[str]:
        return self.directory.subscribers(queue_name)

    def queues_of(self, jid: str) -> list[str]:
        return self.directory.queues_of(jid)

    def is_member(self, jid: str, queue: Queue) -> bool:
        return self.directory.is_member(jid, queue)

    async def on_subscription(self, queue_name: str, jid: str, kind: str) -> bool:
        """A subscription stanza from `jid` to a queue JID. Returns whether `jid` is an
        operator of that queue (the adapter answers accordingly). `kind` is the stanza's
        type: subscribe, subscribed, unsubscribe or unsubscribed."""
        known = await self.directory.on_subscription(queue_name, jid, kind)
        if known:
            await self._note_own_write()
        return known

    async def mark_subscription_asked(self, queue_name: str, jid: str) -> None:
        """The adapter sent a subscription request; remember so it is not re-sent blindly."""
        if await self.directory.mark_subscription_asked(queue_name, jid):
            await self._note_own_write()

    def ban_text(self, queue_name: str | None, seen: str | None = None) -> str:
        """What a banned patron of this queue reads (the group's appeal address if it has
        one), with `seen`, the address refdesk saw for them, when the text is shown to
        them rather than stored."""
        return self.ban_notice(queue_name, seen).text

    def ban_notice(self, queue_name: str | None, seen: str | None) -> BanNotice:
        """Called by the web transports whenever they refuse a banned patron: the ban
        message with the address refdesk saw and the appeal address of the queue's group."""
        queue = self.directory.find_queue(queue_name or "")
        group = self.group_of(queue) if queue else None
        return self.moderation.ban_notice(group.appeal_email if group else None, seen)

    # Presence and queue state (component.presence_routing) ------------------------------------

    def presence_of(self, jid: str) -> Presence:
        return self.routing.presence_of(jid)

    def is_open(self, queue: Queue) -> bool:
        """Within the queue's service hours (outside them it is offline whatever the
        operators' presence)."""
        return self.routing.is_open(queue)

    def active_chats(self, jid: str) -> int:
        return self.routing.active_chats(jid)

    def loads(self, queue: Queue) -> list[OperatorLoad]:
        return self.routing.loads(queue)

    def queue_info(self, name: str) -> QueueInfo:
        return self.routing.queue_info(name)

    def recent_queue_info(self, name: str, max_age: float = 1.0) -> QueueInfo:
        return self.routing.recent_queue_info(name, max_age)

    def position(self, chat_id: int) -> int | None:
        return self.open.position(chat_id)

    async def on_operator_presence(
        self, jid: str, resource: str, presence: Presence, *, rediscovered: bool = False
    ) -> None:
        """An operator's presence reached a queue JID: routing first; then an operator
        who just came online is shown the patrons of their chats as online again, and
        gets the hand-over notes waiting for them. The adapter sets `rediscovered` for the
        answer to the probe it sends every operator at session start: that operator was
        online before refdesk looked (all along a restart) and is not starting a shift,
        so hand-over notes are not theirs."""
        was_online = self.routing.presence_of(jid).online
        await self.routing.on_operator_presence(jid, resource, presence)
        await self.notices.check_staffing()
        if not was_online and self.routing.presence_of(jid).online:
            # Their client starts afresh: it knows no guest's presence yet.
            for live in self.open.all():
                if live.connections > 0 and jid in live.recipients():
                    self.bus.publish(GuestPresence(live.id, live.guest, (jid,), True))
            if not rediscovered:
                await self.staff.came_online(jid)

    # Patrons (component.chats) ----------------------------------------------------------------

    async def open_chat(
        self,
        queue_name: str,
        resume: str | None,
        *,
        origin_ip: str | None = None,
        referrer: str | None = None,
    ) -> ChatHandle:
        return await self.lifecycle.open_chat(
            queue_name, resume, origin_ip=origin_ip, referrer=referrer
        )

    async def post_patron_message(self, chat_id: int, client_id: object, text: object) -> ChatEvent:
        return await self.lifecycle.post_patron_message(chat_id, client_id, text)

    async def patron_typing(self, chat_id: int, composing: bool) -> None:
        await self.lifecycle.patron_typing(chat_id, composing)

    def patron_connected(self, chat_id: int) -> None:
        self.lifecycle.patron_connected(chat_id)

    def patron_disconnected(self, chat_id: int) -> None:
        self.lifecycle.patron_disconnected(chat_id)

    async def end_chat_by_patron(self, chat_id: int) -> None:
        await self.lifecycle.end_chat_by_patron(chat_id)

    async def end_chats_from(self, network: Network, text: str) -> int:
        return await self.lifecycle.end_chats_from(network, text)

    async def history(self, chat_id: int, after_seq: int) -> list[ChatEvent]:
        return await self.lifecycle.history(chat_id, after_seq)

    async def rate_chat(self, chat_id: int, rating: object, comment: object) -> None:
        await self.lifecycle.rate(chat_id, rating, comment)

    async def feedback_state(self, chat_id: int) -> str | None:
        return await self.lifecycle.feedback_state(chat_id)

    async def chat_for_token(self, resume: str) -> LiveChat | None:
        return await self.lifecycle.chat_for_token(resume)

    async def close_as_followed_up(self, live: LiveChat, ticket_id: int) -> None:
        await self.lifecycle.close_as_followed_up(live, ticket_id)

    def last_seq(self, chat_id: int) -> int | None:
        return self.open.last_seq(chat_id)

    def chat_state(self, chat_id: int) -> ChatState:
        return self.open.state(chat_id)

    def chat_queue(self, chat_id: int) -> str | None:
        return self.open.queue_name(chat_id)

    def live_by_guest(self, guest: str) -> LiveChat | None:
        return self.open.by_guest(guest)

    def open_chat_ids(self) -> set[int]:
        return self.open.ids()

    def open_chats(self, queue: Queue | None = None) -> list[LiveChat]:
        return self.open.all(queue)

    # Operators: entry points, and the building blocks of commands ------------------------------

    async def on_operator_message(
        self,
        jid: str,
        guest: str,
        text: str,
        *,
        stanza_id: str | None = None,
        replaces: str | None = None,
    ) -> str | None:
        """An operator wrote to a guest JID. Returns a line to answer with (command
        confirmations), or None; raises DeskError for the adapter to turn into an error.
        `stanza_id` is the message's id (a line with one may be corrected later);
        `replaces` the id of the line this message corrects (XEP-0308), whose text is then
        taken as it is, never as a command."""
        op = self.directory.require_operator(jid)
        live = self.open.by_guest(guest)
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
        async with hold(live) as held:
            if not self.open.is_open(live):
                raise ChatClosed("This chat has ended.")
            if replaces is not None:
                await self.lifecycle.correct_last_line(held, op, replaces, stanza_id, text)
                return None
            if isinstance(parsed, commands.Say):
                event = await self.lifecycle.operator_says(held, op, parsed.text)
                if stanza_id:
                    live.last_line = (jid, frozenset({stanza_id}), event.seq)
                return None
            return await run_chat_command(self, held, op, parsed)

    async def on_queue_message(self, jid: str, queue_name: str, text: str) -> str:
        """An operator wrote to a queue JID: a queue command, or a line for the colleagues
        online (`component.staff`). Returns the reply ("" for none)."""
        op = self.directory.require_operator(jid)
        queue = self.queue(queue_name)
        if not self.is_member(jid, queue):
            raise NotAnOperator(f"You are not an operator of the {queue.name} queue.")
        parsed = commands.parse_line(text)
        if isinstance(parsed, commands.Say):
            # The staff back-channel: to the queue's other operators online.
            return await self.staff.relay(op, queue, parsed.text, group_wide=False)
        return await run_queue_command(self, jid, queue, parsed)

    async def operator_typing(self, jid: str, guest: str, composing: bool) -> None:
        await self.lifecycle.operator_typing(jid, guest, composing)

    async def take_next(self, jid: str, queue_name: str) -> LiveChat | None:
        return await self.lifecycle.take_next(jid, queue_name)

    def check_text(self, text: str) -> str:
        return self.lifecycle.check_text(text)

    def require_mine(self, held: Held, op: Operator) -> None:
        self.lifecycle.require_mine(held, op)

    def admit_command(self, jid: str) -> None:
        self.staff.admit_command(jid)

    async def operator_says(self, held: Held, op: Operator, text: str) -> None:
        await self.lifecycle.operator_says(held, op, text)

    async def note(self, held: Held, op: Operator, text: str) -> None:
        await self.lifecycle.note(held, op, text)

    async def system_message(self, held: Held, text: str | PatronText) -> None:
        await self.lifecycle.system_message(held, text)

    async def end(
        self,
        held: Held,
        *,
        by: str,
        text: str | PatronText,
        state: ChatState = ChatState.ENDED,
    ) -> None:
        await self.lifecycle.end(held, by=by, text=text, state=state)

    async def accept(self, held: Held, op: Operator, *, explicit: bool) -> None:
        await self.routing.accept(held, op, explicit=explicit)

    async def release(self, held: Held, patron_text: PatronText) -> None:
        await self.routing.release(held, patron_text)

    async def offer_to_operator(self, held: Held, target: Operator, via: str) -> None:
        await self.routing.offer_to_operator(held, target, via)

    async def move_to_queue(
        self,
        held: Held,
        queue: Queue,
        *,
        patron_text: PatronText,
        via: str,
        exclude: str | None = None,
    ) -> None:
        await self.routing.move_to_queue(
            held, queue, patron_text=patron_text, via=via, exclude=exclude
        )

    # Relaying patron messages to XMPP (component.open_chats) ----------------------------------

    def note_relayed(self, chat_id: int, seq: int) -> None:
        self.open.note_relayed(chat_id, seq)

    async def save_relay_cursors(self) -> None:
        await self.open.save_relay_cursors()

    async def unrelayed(self) -> list[tuple[str, tuple[str, ...], list[ChatEvent]]]:
        return await self.open.unrelayed()


__all__ = [
    "GUEST_PREFIX",
    "MAX_CLIENT_ID",
    "TYPING_INTERVAL",
    "ChatHandle",
    "DeskService",
    "LiveChat",
    "QueueInfo",
    "hash_token",
]
