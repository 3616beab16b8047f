"""Operators' presence and the routing of chats to them: who is available, how busy each
queue is, offers (to all eligible operators, or round-robin one at a time with a
time-out), taking and letting go of a chat, rollover to a backup queue, hand-back when an
operator stays offline, and on-call escalation.

Owned by the service (`DeskService.routing`). Its changes to a chat take a `Held` (the
chat's lock, see `component.live`); its own timers and presence handlers take the lock
themselves with `hold`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from component.bus import EventBus
from component.clock import Clock, Timer
from component.core.escalation import describe as describe_rule
from component.core.escalation import should_escalate
from component.core.events import (
    ChatAccepted,
    ChatOffered,
    GuestPresence,
    MessagePosted,
    OfferWithdrawn,
    OperatorNotice,
    QueueStatusChanged,
)
from component.core.models import (
    ChatState,
    Operator,
    Presence,
    Queue,
    QueueStatus,
    RoutingMode,
    Sender,
)
from component.core.patron_text import PatronText, line
from component.core.routing import OperatorLoad, eligible, next_in_turn, queue_status
from component.core.sticky import StickyMark, offer_note
from component.directory_cache import DirectoryCache
from component.live import Background, Held, LiveChat, QueueInfo, hold
from component.open_chats import OpenChats
from component.store import Store

log = logging.getLogger(__name__)

# Emails the on-call operators who gave an address: (queue, addresses, text).
OnCallMailer = Callable[[Queue, Sequence[str], str], Awaitable[None]]
# Who ended this patron's (address's) chats as inappropriate lately, newest first.
PickupClaims = Callable[[str | None], Awaitable[list[StickyMark]]]


class Routing:
    """Created once by the service, with the parts it shares."""

    def __init__(
        self,
        *,
        store: Store,
        bus: EventBus,
        scheduler: Clock,
        background: Background,
        directory: DirectoryCache,
        chats: OpenChats,
        operator_grace: float,
        on_call_mailer: OnCallMailer,
        pickup_claims: PickupClaims,
    ) -> None:
        self.store = store
        self.bus = bus
        self.scheduler = scheduler
        self.background = background
        self.directory = directory
        self.chats = chats
        self.operator_grace = operator_grace
        self.on_call_mailer = on_call_mailer
        self.pickup_claims = pickup_claims
        self._presence: dict[str, dict[str, Presence]] = {}  # jid -> resource -> presence
        self._last_chat: dict[str, datetime] = {}  # jid -> when they last took a chat
        self._leaving: dict[str, Timer] = {}  # operators gone offline, with chats
        self._last_status: dict[str, QueueInfo] = {}
        self._info_cache: dict[str, tuple[float, QueueInfo]] = {}

    def close(self) -> None:
        for timer in self._leaving.values():
            timer.cancel()

    # Presence and queue state ----------------------------------------------------------------

    def presence_of(self, jid: str) -> Presence:
        resources = self._presence.get(jid)
        if not resources:
            return Presence.OFFLINE
        return max(resources.values(), key=lambda p: p.rank)

    def is_open(self, queue: Queue) -> bool:
        return self.directory.is_open(queue, self.scheduler.now())

    def active_chats(self, jid: str) -> int:
        return self.chats.active_chats(jid)

    def loads(self, queue: Queue) -> list[OperatorLoad]:
        """The queue's operators as routing sees them now."""
        active = self.chats.active_count()
        return [
            OperatorLoad(
                jid=jid,
                presence=self.presence_of(jid),
                active_chats=active.get(jid, 0),
                max_chats=op.max_chats,
            )
            for jid in self.directory.members(queue)
            if (op := self.directory.operator(jid)) is not None
        ]

    def queue_info(self, name: str) -> QueueInfo:
        """The queue's status now; called by the status endpoint and the widget socket."""
        queue = self.directory.queue(name)
        loads = self.loads(queue)
        open_now = self.is_open(queue)
        return QueueInfo(
            queue=queue.name,
            title=queue.title,
            status=queue_status(loads) if open_now else QueueStatus.OFFLINE,
            waiting=self.chats.waiting(queue),
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

    def publish_status(self, queue_name: str) -> None:
        """Tell the bus the queue's status, if it changed since last told."""
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
                self.chats.positions(self.directory.queue(queue_name)),
            )
        )

    async def on_operator_presence(self, jid: str, resource: str, presence: Presence) -> None:
        """An operator's presence reached a queue JID (the adapter calls this for every
        copy; it is idempotent). Offers waiting chats to an operator who became eligible,
        withdraws offers from one who went away, and hands back the chats of one who
        stayed offline longer than the grace period."""
        if self.directory.operator(jid) is None:
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
                await self.offer_waiting(jid)
            elif before.takes_chats:
                await self._withdraw_offers(jid, "You are no longer available.")
                self._tell_last_one(jid)
            if not after.online and self.active_chats(jid):
                self._leaving[jid] = self.background.later(
                    self.operator_grace, lambda: self._operator_left(jid)
                )
        for queue in self.directory.queues_of(jid):
            self.publish_status(queue)

    def _tell_last_one(self, jid: str) -> None:
        """An operator turned away or offline: if they were the last one available in a
        queue inside its service hours, tell them the queue is now unstaffed (a line from
        the queue's JID; an offline operator's server keeps it for them)."""
        for name in self.directory.queues_of(jid):
            queue = self.directory.queue(name)
            if not self.is_open(queue):
                continue
            if any(load.presence.takes_chats for load in self.loads(queue)):
                continue
            self.bus.publish(
                OperatorNotice(
                    jid,
                    queue.name,
                    f"You were the last one available in {queue.title} ({queue.name}): it is "
                    "now unstaffed during its service hours. New patrons will be asked to "
                    "wait or to email.",
                    ephemeral=True,
                )
            )

    async def _operator_left(self, jid: str) -> None:
        """End of shift without handing over: the operator's open chats go back to their
        queues and are offered to someone else; their patrons are told."""
        self._leaving.pop(jid, None)
        if self.presence_of(jid).online:
            return
        for live in self.chats.all():
            if live.operator is None or live.operator.jid != jid:
                continue
            async with hold(live) as held:
                if not self.chats.is_open(live) or live.operator is None:
                    continue
                name = live.operator.name
                await self.release(
                    held,
                    line("operator_left", name=name),
                )
                await self.route(held, via=f"handed back: {name} went offline")

    # Offers ----------------------------------------------------------------------------------

    async def route(self, held: Held, *, via: str = "") -> None:
        """Offer an unanswered chat according to its queue's routing mode. With nobody
        eligible (or the queue closed) the chat simply waits."""
        live = held.live
        queue = live.queue
        if not self.is_open(queue):
            self.publish_status(queue.name)
            return
        loads = self.loads(queue)
        if live.sticky_hold:
            if live.offered_to:
                return  # the returning patron's earlier operator has it alone for now
            live.sticky_hold = False  # they went away: routed as usual
        elif not live.sticky_checked and not live.offered_to:
            live.sticky_checked = True
            if await self._offer_sticky(held, loads, via):
                self.publish_status(queue.name)
                return
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
            await self._offer(held, targets, via=via)
        self.publish_status(queue.name)

    async def _offer_sticky(self, held: Held, loads: list[OperatorLoad], via: str) -> bool:
        """A new chat's first offer: if an operator of this queue who can take it now
        ended this patron's chat as inappropriate lately, offer it to them alone for the
        offer timeout (then it is routed as usual). True if offered."""
        live = held.live
        if live.passed or live.visited - {live.queue.id}:
            return False  # moved on already (a transfer or rollover): not a first offer
        claims = await self.pickup_claims(live.ip)
        ready = set(eligible(loads))
        mark = next((m for m in claims if m.operator_jid in ready), None)
        if mark is None:
            return False
        note = offer_note(mark, await self.store.chats.tags(mark.chat_id))
        await self._offer(held, [mark.operator_jid], via=f"{via}; {note}" if via else note)
        live.sticky_hold = True
        if live.queue.routing is RoutingMode.RING_ALL:
            # Round-robin's own offer timer moves on; ring-all needs one for this offer.
            live.offer_timer = self.background.later(
                live.queue.offer_timeout, lambda: self._sticky_timed_out(live)
            )
        return True

    async def _sticky_timed_out(self, live: LiveChat) -> None:
        """The earlier operator did not take the returning patron in time: everyone
        eligible gets the offer too (they keep theirs)."""
        async with hold(live) as held:
            live.offer_timer = None
            if not self.chats.is_open(live) or live.operator is not None or not live.sticky_hold:
                return
            live.sticky_hold = False
            await self.route(held, via="not taken in time by the earlier operator")

    async def route_waiting(self) -> None:
        """Route every unanswered, unoffered chat of an open queue (the clock alone may
        have opened its queue). Called by the service's `tick`."""
        for live in self.chats.unanswered():
            if live.unanswered and not live.offered_to and self.is_open(live.queue):
                async with hold(live) as held:
                    if self.chats.is_open(live) and live.unanswered:
                        await self.route(held)

    async def _offer(self, held: Held, targets: list[str], *, via: str = "") -> None:
        live = held.live
        live.offered_to.update(targets)
        await self.chats.set_state(held, ChatState.OFFERED)
        history = tuple(await self.store.chats.events_after(live.id, 0))
        self.bus.publish(
            ChatOffered(
                live.id,
                live.guest,
                live.queue.name,
                live.queue.title,
                tuple(targets),
                history,
                via,
                patron_connected=live.connections > 0,
            )
        )
        if live.queue.routing is RoutingMode.ROUND_ROBIN:
            if live.offer_timer is not None:
                live.offer_timer.cancel()
            live.offer_timer = self.background.later(
                live.queue.offer_timeout, lambda: self._offer_timed_out(live, targets[0])
            )

    async def _offer_timed_out(self, live: LiveChat, jid: str) -> None:
        async with hold(live) as held:
            if not self.chats.is_open(live) or live.operator is not None:
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
            await self.chats.set_state(held, ChatState.WAITING)
            await self.route(held)

    async def offer_waiting(self, jid: str) -> None:
        """An operator became eligible: route every unanswered chat of their queues."""
        queues = {self.directory.queue(name).id for name in self.directory.queues_of(jid)}
        for live in self.chats.all():
            if live.queue.id not in queues or not live.unanswered:
                continue
            async with hold(live) as held:
                if self.chats.is_open(live) and live.unanswered:
                    await self.route(held)

    async def _withdraw_offers(self, jid: str, reason: str) -> None:
        for live in self.chats.all():
            if jid not in live.offered_to or live.operator is not None:
                continue
            async with hold(live) as held:
                if jid not in live.offered_to or live.operator is not None:
                    continue
                live.offered_to.discard(jid)
                self.bus.publish(OfferWithdrawn(live.id, live.guest, (jid,), reason))
                if not live.offered_to:
                    if live.offer_timer is not None:
                        live.offer_timer.cancel()
                        live.offer_timer = None
                    await self.chats.set_state(held, ChatState.WAITING)
                    await self.route(held)

    async def offer_to_operator(self, held: Held, target: Operator, via: str) -> None:
        """Transfer to a named colleague: only they get the offer."""
        live = held.live
        if live.offer_timer is not None:
            live.offer_timer.cancel()
            live.offer_timer = None
        # A chat only offered (not taken) is no longer anyone else's to take: their offers
        # are withdrawn, which also takes the guest out of their clients' view.
        withdrawn = tuple(sorted(live.offered_to - {target.jid}))
        if withdrawn:
            self.bus.publish(
                OfferWithdrawn(live.id, live.guest, withdrawn, f"Offered to {target.name}.")
            )
        live.offered_to = set()
        live.passed = set()
        await self._offer(held, [target.jid], via=via)

    async def accept(self, held: Held, op: Operator, *, explicit: bool) -> None:
        """The operator takes the chat."""
        live = held.live
        others = tuple(sorted(live.offered_to - {op.jid}))
        had_offer = op.jid in live.offered_to
        live.operator = op
        live.state = ChatState.ACTIVE
        live.offered_to = set()
        live.passed = set()
        now = self.scheduler.now()
        live.accepted_at = live.accepted_at or now
        self._last_chat[op.jid] = now
        for timer in (live.offer_timer, live.rollover_timer, live.max_wait_timer):
            if timer is not None:
                timer.cancel()
        live.offer_timer = live.rollover_timer = live.max_wait_timer = None
        await self.store.chats.set_state(live.id, ChatState.ACTIVE, now, operator_id=op.id)
        self.bus.publish(
            ChatAccepted(
                live.id,
                live.guest,
                op.jid,
                op.name,
                others,
                explicit,
                patron_connected=live.connections > 0,
                had_offer=had_offer,
            )
        )
        event = await self.chats.append(held, Sender.SYSTEM, "", line("joined", name=op.name))
        self.bus.publish(MessagePosted(live.id, live.guest, event, ()))
        self.publish_status(live.queue.name)

    async def release(self, held: Held, patron_text: PatronText) -> None:
        """The chat's operator lets go of it (left, transferring); it waits again. The
        caller routes it afterwards."""
        live = held.live
        if live.operator is not None:
            # The chat is no longer theirs: the guest leaves their client's view.
            self.bus.publish(GuestPresence(live.id, live.guest, (live.operator.jid,), False))
            self.operator_freed(live.operator.jid)
        live.operator = None
        live.offered_to = set()
        await self.chats.set_state(held, ChatState.WAITING)
        event = await self.chats.append(held, Sender.SYSTEM, "", patron_text)
        self.bus.publish(MessagePosted(live.id, live.guest, event, ()))

    def operator_freed(self, jid: str) -> None:
        """An operator has room again: offer them what waits. In a task, because the
        caller holds one chat's lock and routing takes the others'."""
        if self.presence_of(jid).takes_chats:
            self.background.spawn(self.offer_waiting(jid))

    # Rollover, transfer to a queue, escalation -----------------------------------------------

    def arm_rollover(self, held: Held) -> None:
        """Start (or restart) the chat's clock towards its queue's backup queue."""
        live = held.live
        after = live.queue.rollover_after
        backup = live.queue.backup_queue_id
        if live.rollover_timer is not None:
            live.rollover_timer.cancel()
            live.rollover_timer = None
        if after is None or backup is None or backup in live.visited:
            return
        live.rollover_timer = self.background.later(after, lambda: self._roll_over(live))

    async def _roll_over(self, live: LiveChat) -> None:
        """Nobody took the chat in time: move it to the queue's backup queue."""
        async with hold(live) as held:
            live.rollover_timer = None
            if not self.chats.is_open(live) or live.operator is not None:
                return
            backup = self.directory.find_queue_by_id(live.queue.backup_queue_id)
            if backup is None or backup.id in live.visited:
                return
            origin = live.queue
            await self.move_to_queue(
                held,
                backup,
                patron_text=line("rolled_over", **{"from": origin.title, "to": backup.title}),
                via=f"rolled over from {origin.name}",
            )

    async def move_to_queue(
        self,
        held: Held,
        queue: Queue,
        *,
        patron_text: PatronText,
        via: str,
        exclude: str | None = None,
    ) -> None:
        """Put the chat in another queue and route it there (transfer, rollover).
        `exclude` is an operator who must not get it back (the one transferring)."""
        live = held.live
        withdrawn = tuple(sorted(live.offered_to - {exclude}))
        if withdrawn:
            self.bus.publish(
                OfferWithdrawn(live.id, live.guest, withdrawn, f"Moved to {queue.name}.")
            )
        if exclude is not None and exclude in live.offered_to:
            # The one moving an offered chat away has their command's answer, not a
            # withdrawal notice; the guest must still leave their client's view, as it
            # leaves the others'.
            self.bus.publish(GuestPresence(live.id, live.guest, (exclude,), False))
        if live.offer_timer is not None:
            live.offer_timer.cancel()
            live.offer_timer = None
        old = live.queue
        live.offered_to = set()
        live.passed = {exclude} if exclude else set()
        live.queue = queue
        live.visited.add(queue.id)
        await self.store.chats.set_queue(live.id, queue.id)
        await self.chats.set_state(held, ChatState.WAITING)
        event = await self.chats.append(held, Sender.SYSTEM, "", patron_text)
        self.bus.publish(MessagePosted(live.id, live.guest, event, ()))
        self.arm_rollover(held)
        await self.route(held, via=via)
        self.publish_status(old.name)

    async def check_escalation(self, queue: Queue) -> None:
        """A chat arrived in the queue: alert the on-call operators if its rule says so."""
        runtime = self.directory.runtime(queue)
        if runtime is None:
            return
        now = self.scheduler.now()
        runtime.arrivals.append(now)
        rule = runtime.escalation
        on_call = self.directory.on_call(queue)
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
            self.bus.publish(OperatorNotice(jid, queue.name, text, ephemeral=True))
        emails = [op.email for jid in on_call if (op := self.directory.operator(jid)) and op.email]
        if emails:
            await self.on_call_mailer(queue, emails, text)


__all__ = ["OnCallMailer", "Routing"]
