"""The life of a chat: a patron opens or resumes it, posts and types, connects and goes
away; operators write in it; it ends (by the patron, the operator, the system, a ban,
or a follow-up by email).

Owned by the service (`DeskService.lifecycle`). Changes that need the chat's lock take a
`Held` (see `component.live`); the entry points called by the transports take the lock
themselves with `hold`. Routing decisions are `component.presence_routing`'s.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from component.bus import EventBus
from component.clock import Clock
from component.core.bans import Network, canonical_address
from component.core.errors import ChatClosed, InvalidInput, NotAnOperator, NotYourChat
from component.core.events import (
    ChatEnded,
    EmailOffered,
    GuestPresence,
    MessageCorrected,
    MessagePosted,
    TypingChanged,
)
from component.core.feedback import RatingRefused, parse_rating
from component.core.models import Chat, ChatEvent, ChatState, EventKind, Operator, Sender
from component.core.patron_text import PatronText, line
from component.core.privacy import stored_address
from component.core.text import TextRejected, clean_message
from component.directory_cache import DirectoryCache
from component.live import Background, Held, LiveChat, hold
from component.moderation import Moderation
from component.open_chats import OpenChats
from component.presence_routing import Routing
from component.store import Store, StoreError

MAX_CLIENT_ID = 64
GUEST_PREFIX = "guest-"
# Seconds between two changes of a guest's presence as operators see it: a dropped
# connection that comes straight back is one blink at most, and reconnecting in a loop
# cannot flood the operators' clients.
PRESENCE_SPACING = 2.0
# Lower-case letters and digits without look-alikes, for guest JIDs people may read aloud.
_GUEST_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


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


class ChatLifecycle:
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
        routing: Routing,
        moderation: Moderation,
        max_message_chars: int,
        resume_ttl: timedelta,
    ) -> None:
        self.store = store
        self.bus = bus
        self.scheduler = scheduler
        self.background = background
        self.directory = directory
        self.chats = chats
        self.routing = routing
        self.moderation = moderation
        self.max_message_chars = max_message_chars
        self.resume_ttl = resume_ttl
        # Seconds between two changes of a guest's presence shown to operators
        # (`_show_presence`); tests may lengthen it.
        self.presence_spacing = PRESENCE_SPACING

    def _now(self) -> datetime:
        return self.scheduler.now()

    # Opening and resuming --------------------------------------------------------------------

    async def load_live(self, chat: Chat) -> LiveChat | None:
        """Hold a stored open chat in memory (at start, and for each new chat)."""
        queue = self.directory.find_queue_by_id(chat.queue_id)
        if queue is None:
            return None
        operator = None
        if chat.operator_id is not None:
            operator = self.directory.operator_by_id(chat.operator_id)
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
            last_seq=await self.store.chats.last_seq(chat.id),
            asked_at=chat.asked_at,
            accepted_at=chat.accepted_at,
            origin_ip=chat.origin_ip,
            referrer=chat.referrer,
            visited={queue.id},
            relayed_seq=chat.relayed_seq,
        )
        self.chats.add(live)
        # Nobody is connected yet: after a restart, patrons have resume_ttl to come back.
        self._arm_gone_timer(live)
        return live

    def refresh_directory(self) -> None:
        """The directory was reloaded: open chats see the new queue and operator rows."""
        for live in self.chats.all():
            queue = self.directory.find_queue_by_id(live.queue.id)
            live.queue = queue or live.queue
            if live.operator is not None:
                live.operator = self.directory.operator(live.operator.jid) or live.operator

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
        queue = self.directory.queue(queue_name)
        if resume:
            chat = await self.store.chats.by_resume(hash_token(resume))
            if chat is not None and self._resumable(chat):
                current = self.chats.get(chat.id)
                if current is not None:
                    current.ip = origin_ip
                name = (
                    current.queue.name
                    if current
                    else self.directory.queue_by_id(chat.queue_id).name
                )
                return ChatHandle(chat.id, chat.guest, name, resume, True, chat.state)
        await self.moderation.admit_new_chat(origin_ip, queue.id)
        token = secrets.token_urlsafe(24)
        guest = GUEST_PREFIX + "".join(secrets.choice(_GUEST_ALPHABET) for _ in range(8))
        chat = await self.store.chats.create(
            queue.id,
            guest,
            hash_token(token),
            stored_address(origin_ip, queue.privacy),
            referrer,
            self._now(),
        )
        live = await self.load_live(chat)
        if live is not None:
            live.ip = origin_ip
        return ChatHandle(chat.id, guest, queue.name, token, False, chat.state)

    def _resumable(self, chat: Chat) -> bool:
        if chat.state.open:
            return self.chats.get(chat.id) is not None
        return chat.ended_at is not None and self._now() - chat.ended_at < self.resume_ttl

    async def chat_for_token(self, resume: str) -> LiveChat | None:
        """The open chat a patron's resume token names, if any (the email form uses it to
        attach the chat so far)."""
        if not resume or len(resume) > 128:
            return None
        chat = await self.store.chats.by_resume(hash_token(resume))
        return self.chats.get(chat.id) if chat is not None else None

    async def history(self, chat_id: int, after_seq: int) -> list[ChatEvent]:
        """What the patron may see of the transcript after `after_seq` (no staff notes),
        for a patron who (re)connects."""
        events = await self.store.chats.events_after(chat_id, max(0, after_seq))
        return [e for e in events if e.kind.patron_sees]

    # The patron's side -----------------------------------------------------------------------

    def check_text(self, text: object) -> str:
        try:
            return clean_message(text, self.max_message_chars)
        except TextRejected as exc:
            raise InvalidInput(exc.code, exc.text) from exc

    async def post_patron_message(self, chat_id: int, client_id: object, text: object) -> ChatEvent:
        """Store a patron's message and pass it on. Idempotent on `client_id`: a resend
        returns the stored event and tells nobody twice. The returned event is committed."""
        if not isinstance(client_id, str) or not 0 < len(client_id) <= MAX_CLIENT_ID:
            raise InvalidInput("bad_id", "Each message needs an id of 1 to 64 characters.")
        if self.chats.get(chat_id) is None:
            # A resend whose ack was lost before the chat ended still gets its ack.
            stored = await self.store.chats.event_by_client_id(chat_id, client_id)
            if stored is not None:
                return self._resent(stored, text)
        live = self.chats.require(chat_id)
        async with hold(live) as held:
            try:
                clean = self.check_text(text)
                if not self.chats.is_open(live):
                    raise ChatClosed("This chat has ended.")
            except (InvalidInput, ChatClosed):
                # A resend of a stored line is answered as such (see `_resent`).
                existing = await self.store.chats.event_by_client_id(chat_id, client_id)
                if existing is not None:
                    return self._resent(existing, text)
                raise
            first = live.last_seq == 0
            try:
                # No look-up first: the store's unique index on (chat, client id) refuses a
                # resend, and only then is the stored line read (one query less per line).
                event = await self.chats.append(
                    held, Sender.PATRON, "You", clean, client_id=client_id
                )
            except StoreError:
                existing = await self.store.chats.event_by_client_id(chat_id, client_id)
                if existing is not None:
                    return self._resent(existing, text)
                raise
            self.bus.publish(MessagePosted(live.id, live.guest, event, live.recipients()))
            if first:
                await self._first_question(held)
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

    async def _first_question(self, held: Held) -> None:
        """The chat now needs an operator: note the arrival, start the rollover clock,
        route it, and check the on-call rule."""
        live = held.live
        now = self._now()
        live.asked_at = now
        await self.store.chats.set_asked_at(live.id, now)
        self.routing.arm_rollover(held)
        if live.queue.max_wait and live.queue.followup_email:
            live.max_wait_timer = self.background.later(
                live.queue.max_wait, lambda: self._max_wait_passed(live.id)
            )
        await self.routing.route(held)
        await self.routing.check_escalation(live.queue)

    async def _max_wait_passed(self, chat_id: int) -> None:
        """Nobody answered in time: offer the email form (research finds patrons leave
        after about 90 seconds). The patron may keep waiting."""
        live = self.chats.get(chat_id)
        if live is None or not live.unanswered:
            return
        live.max_wait_timer = None
        self.bus.publish(EmailOffered(live.id, line("wait_offer").english, code="wait_offer"))

    async def patron_typing(self, chat_id: int, composing: bool) -> None:
        """A patron's typing frame. Throttled per chat (`TypingThrottle`): each
        notification fans out to every operator the chat is offered to."""
        live = self.chats.get(chat_id)
        if live is None or not live.recipients():
            return
        decision = live.typing.offer(composing, self.scheduler.monotonic())
        if decision is True:
            self.bus.publish(TypingChanged(live.id, live.guest, True, composing, live.recipients()))
        elif decision is not False:
            self.background.later(decision, lambda: self._flush_typing(chat_id))

    async def _flush_typing(self, chat_id: int) -> None:
        live = self.chats.get(chat_id)
        if live is None:
            return
        composing = live.typing.flush(self.scheduler.monotonic())
        if composing is not None and live.recipients():
            self.bus.publish(TypingChanged(live.id, live.guest, True, composing, live.recipients()))

    def _arm_gone_timer(self, live: LiveChat) -> None:
        if live.gone_timer is not None:
            live.gone_timer.cancel()
        live.gone_timer = self.background.later(
            self.resume_ttl.total_seconds(), lambda: self._patron_gone(live.id)
        )

    def patron_connected(self, chat_id: int) -> None:
        """A patron socket joined the chat (called by the web side after welcome)."""
        live = self.chats.get(chat_id)
        if live is None:
            return
        live.connections += 1
        if live.gone_timer is not None:
            live.gone_timer.cancel()
            live.gone_timer = None
        if live.connections == 1:
            self._show_presence(live)

    def patron_disconnected(self, chat_id: int) -> None:
        """A patron socket closed. When the last one has been gone for `resume_ttl`, the
        chat ends: the operator must not keep a seat for someone who left."""
        live = self.chats.get(chat_id)
        if live is None:
            return
        live.connections = max(0, live.connections - 1)
        if live.connections == 0:
            self._arm_gone_timer(live)
            self._show_presence(live)

    def _show_presence(self, live: LiveChat) -> None:
        """Show the operators whether the patron is connected, at most once per
        `presence_spacing` seconds: a change sooner waits for the end of the spacing and is
        shown then only if it still holds, so a patron reconnecting in a loop costs the
        operators one presence per spacing instead of two per reconnect. Called when the
        patron's first connection opens or the last one closes, and by its own timer."""
        if live.presence_timer is not None:
            return  # the timer reads the state when it fires
        connected = live.connections > 0
        if connected == live.presence_shown or not live.recipients():
            return
        wait = live.presence_next_at - self.scheduler.monotonic()
        if wait > 0:
            live.presence_timer = self.background.later(wait, lambda: self._presence_due(live.id))
            return
        live.presence_shown = connected
        live.presence_next_at = self.scheduler.monotonic() + self.presence_spacing
        self.bus.publish(GuestPresence(live.id, live.guest, live.recipients(), connected))

    async def _presence_due(self, chat_id: int) -> None:
        live = self.chats.get(chat_id)
        if live is None:
            return  # ended meanwhile: the end said unavailable
        live.presence_timer = None
        self._show_presence(live)

    async def _patron_gone(self, chat_id: int) -> None:
        live = self.chats.get(chat_id)
        if live is None:
            return
        async with hold(live) as held:
            if self.chats.is_open(live) and live.connections == 0:
                minutes = max(1, round(self.resume_ttl.total_seconds() / 60))
                await self.end(
                    held,
                    by="system",
                    text=line("patron_left", minutes=minutes),
                )

    # The operator's side ---------------------------------------------------------------------

    def require_mine(self, held: Held, op: Operator) -> None:
        """Raise unless the operator has this chat or may take it."""
        live = held.live
        if live.operator is not None and live.operator.id != op.id:
            raise NotYourChat(f"{live.operator.name} has this chat.")

    async def operator_says(self, held: Held, op: Operator, text: str) -> ChatEvent:
        """Relay an operator's line to the patron, taking the chat if it was on offer.
        Returns the committed event. Any new line ends the chance to correct the one
        before; the service marks a typed line as correctable afterwards."""
        clean = self.check_text(text)
        self.require_mine(held, op)
        live = held.live
        if live.operator is None:
            await self.routing.accept(held, op, explicit=False)
        live.last_line = None
        event = await self.chats.append(held, Sender.OPERATOR, op.name, clean, operator=op)
        self.bus.publish(MessagePosted(live.id, live.guest, event, ()))
        return event

    async def correct_last_line(
        self, held: Held, op: Operator, replace_id: str, stanza_id: str | None, text: str
    ) -> None:
        """XEP-0308 from the operator's client: `replace_id` must name the operator's own
        last line in this chat; its text becomes `text` in the transcript (marked as
        corrected) and in the patron's view. Raises InvalidInput otherwise."""
        live = held.live
        self.require_mine(held, op)
        last = live.last_line
        if last is None or last[0] != op.jid or replace_id not in last[1]:
            raise InvalidInput(
                "not_last_line",
                "Only your last line in this chat can be corrected; send a new line instead.",
            )
        clean = self.check_text(text)
        await self.store.chats.correct_event(live.id, last[2], clean, self._now())
        ids = last[1] | {stanza_id} if stanza_id else last[1]
        live.last_line = (op.jid, ids, last[2])
        self.bus.publish(MessageCorrected(live.id, live.guest, last[2], clean))

    async def note(self, held: Held, op: Operator, text: str) -> None:
        """A line for the transcript only."""
        await self.chats.append(
            held, Sender.OPERATOR, op.name, self.check_text(text), kind=EventKind.NOTE, operator=op
        )

    async def system_message(self, held: Held, text: str | PatronText) -> None:
        """A line from the service to the patron (and the transcript)."""
        live = held.live
        event = await self.chats.append(held, Sender.SYSTEM, "", text)
        self.bus.publish(MessagePosted(live.id, live.guest, event, ()))

    async def take_next(self, jid: str, queue_name: str) -> LiveChat | None:
        """`!next` on a queue JID: the operator takes the oldest unanswered chat of the
        queue. Returns it, or None if nobody is waiting."""
        op = self.directory.require_operator(jid)
        queue = self.directory.queue(queue_name)
        if not self.directory.is_member(jid, queue):
            raise NotAnOperator(f"You are not an operator of the {queue.name} queue.")
        for live in self.chats.all(queue):
            if not live.unanswered:
                continue
            async with hold(live) as held:
                if self.chats.is_open(live) and live.unanswered:
                    await self.routing.accept(held, op, explicit=True)
                    return live
        return None

    async def operator_typing(self, jid: str, guest: str, composing: bool) -> None:
        live = self.chats.by_guest(guest)
        if live is None or live.operator is None or live.operator.jid != jid:
            return
        self.bus.publish(TypingChanged(live.id, live.guest, False, composing, ()))

    # Ending ----------------------------------------------------------------------------------

    async def end(
        self,
        held: Held,
        *,
        by: str,
        text: str | PatronText,
        state: ChatState = ChatState.ENDED,
    ) -> None:
        """End the chat. `by` is "patron", "operator" or "system"; `text` is a patron
        line, or a text an admin wrote (the ban message) shown as it is."""
        live = held.live
        recipients = live.recipients()
        event = await self.chats.append(held, Sender.SYSTEM, by, text, kind=EventKind.ENDED)
        live.state = state
        await self.store.chats.set_state(live.id, state, self._now(), ended_by=by)
        self.chats.remove(live)
        live.cancel_timers()
        asks = live.queue.feedback and live.operator is not None
        self.bus.publish(ChatEnded(live.id, live.guest, event, by, recipients, feedback=asks))
        self.routing.publish_status(live.queue.name)
        if live.operator is not None:
            self.routing.operator_freed(live.operator.jid)

    async def end_chat_by_patron(self, chat_id: int) -> None:
        live = self.chats.get(chat_id)
        if live is None:
            return
        async with hold(live) as held:
            if self.chats.is_open(live):
                await self.end(held, by="patron", text=line("ended_by_patron"))

    async def end_chats_from(self, network: Network, text: str) -> int:
        """A ban took effect: end every open chat whose patron is connected from the
        network, telling them why and their operator what happened."""
        ended = 0
        for live in self.chats.all():
            if live.ip is None:
                continue
            try:
                address = canonical_address(live.ip)
            except ValueError:
                continue
            if address.version != network.version or address not in network:
                continue
            async with hold(live) as held:
                if self.chats.is_open(live):
                    # A banned patron gets no email: the transcript copy they asked for
                    # is forgotten before the end would send it.
                    await self.store.chats.set_transcript_email(live.id, None)
                    await self.end(held, by="system", text=text)
                    ended += 1
        return ended

    # Feedback ------------------------------------------------------------------------------

    async def feedback_state(self, chat_id: int) -> str | None:
        """For the welcome of a patron whose chat has ended: "ask" while the widget should
        offer the rating form, "done" once the chat is rated, None if the chat is not
        rated at all (its queue does not ask, nobody answered it, or it is still open)."""
        chat = await self.store.chats.by_id(chat_id)
        if chat is None or not self._rateable(chat):
            return None
        return "done" if await self.store.ratings.rated(chat_id) else "ask"

    def _rateable(self, chat: Chat) -> bool:
        queue = self.directory.find_queue_by_id(chat.queue_id)
        return (
            not chat.state.open
            and chat.operator_id is not None
            and queue is not None
            and queue.feedback
        )

    async def rate(self, chat_id: int, rating: object, comment: object) -> None:
        """A patron's rating frame for their own chat (the transport passes the chat its
        token opened): stored once, only after an answered chat of a queue that asks for
        ratings has ended. Raises InvalidInput with a stable code otherwise."""
        chat = await self.store.chats.by_id(chat_id)
        if chat is None:
            raise InvalidInput("unknown_chat", "This chat is not known.")
        if chat.state.open:
            raise InvalidInput("not_ended", "A chat can be rated once it has ended.")
        if not self._rateable(chat):
            raise InvalidInput("feedback_off", "This chat cannot be rated.")
        try:
            value, text = parse_rating(rating, comment)
        except RatingRefused as exc:
            raise InvalidInput(exc.code, exc.text) from None
        if not await self.store.ratings.add(chat_id, value, text, self._now()):
            raise InvalidInput("already_rated", "This chat has already been rated.")

    async def close_as_followed_up(self, live: LiveChat, ticket_id: int) -> None:
        """The patron left their question by email: the chat ends as followed up."""
        async with hold(live) as held:
            if self.chats.is_open(live):
                await self.end(
                    held,
                    by="system",
                    text=line("followed_up", ticket=ticket_id),
                    state=ChatState.FOLLOWED_UP,
                )


__all__ = ["GUEST_PREFIX", "MAX_CLIENT_ID", "ChatHandle", "ChatLifecycle", "hash_token"]
