"""The XMPP adapter: an external component (XEP-0114) on slixmpp.

Inbound stanzas are parsed here and handed to the service (`on_*` handlers); service
events become outbound stanzas (`send_*`). Domain errors are turned into XMPP errors in
one place, `_answer_error`. The adapter also keeps the component connected: slixmpp does
not reconnect after an established session drops and discards its send queue, so the
adapter reconnects itself and holds its own outbox while the stream is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import slixmpp
from slixmpp.exceptions import XMPPError
from slixmpp.stanza import Message
from slixmpp.stanza import Presence as PresenceStanza
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.stanzabase import StanzaBase

from component.config import XmppConfig
from component.core.errors import (
    BadCommand,
    ChatClosed,
    DeskError,
    InvalidInput,
    NotAnOperator,
    NotYourChat,
    UnknownQueue,
)
from component.core.events import (
    ChatAccepted,
    ChatEnded,
    ChatOffered,
    DirectoryChanged,
    Event,
    MessagePosted,
    OfferWithdrawn,
    OperatorNotice,
    QueueStatusChanged,
    SubscriptionWanted,
    TypingChanged,
)
from component.core.models import ChatEvent, EventKind, Presence, QueueStatus, Sender
from component.core.text import strip_xml_illegal
from component.service import GUEST_PREFIX, DeskService, QueueInfo

log = logging.getLogger(__name__)

NS_COMPONENT = "jabber:component:accept"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"

# How each domain error reaches the operator: (error type, condition), or None for a plain
# chat reply. The rule: if the message was not delivered, it is an error stanza (clients
# mark the message as failed); if a command was understood and refused, it is a reply.
_ERROR_CONDITIONS: dict[type[DeskError], tuple[str, str] | None] = {
    NotAnOperator: ("auth", "forbidden"),
    NotYourChat: ("cancel", "not-allowed"),
    ChatClosed: ("cancel", "item-not-found"),
    UnknownQueue: ("cancel", "item-not-found"),
    InvalidInput: ("modify", "not-acceptable"),
    BadCommand: None,
}

# Queue commands also offered through XEP-0050: (node, name shown in clients' menus).
_ADHOC_COMMANDS = (
    ("list", "List waiting and active chats"),
    ("next", "Take the longest-waiting chat"),
    ("who", "Who is on this queue"),
    ("status", "Queue status"),
)

_QUEUE_SHOW: dict[QueueStatus, str | None] = {
    QueueStatus.AVAILABLE: None,
    QueueStatus.BUSY: "dnd",
    QueueStatus.AWAY: "away",
    QueueStatus.OFFLINE: "xa",
}


class XmppAdapter:
    """Owns the slixmpp component. Created by the composition root inside the running
    loop; `start()` connects (retrying until the server is there), `stop()` disconnects."""

    def __init__(self, service: DeskService, config: XmppConfig) -> None:
        self.service = service
        self.config = config
        self.domain = config.domain
        self.xmpp = slixmpp.ComponentXMPP(config.domain, config.secret)  # type: ignore[no-untyped-call]
        self.online = asyncio.Event()
        # How many sessions have started (tests and logs tell reconnections apart with it).
        self.sessions = 0
        self._stopping = False
        # Stanzas waiting for the stream, each with what to do once it is written.
        self._outbox: deque[tuple[StanzaBase, Callable[[], None] | None]] = deque()
        self._inbound: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._backoff = 0.0
        self._unsubscribe: Callable[[], None] | None = None
        self._setup()

    def _setup(self) -> None:
        xmpp = self.xmpp
        for plugin in ("xep_0030", "xep_0004", "xep_0050", "xep_0085", "xep_0172", "xep_0199"):
            xmpp.register_plugin(plugin)
        xmpp.add_event_handler("session_start", self._on_session_start)
        xmpp.add_event_handler("disconnected", self._on_disconnected)
        xmpp.add_event_handler("connection_failed", self._on_connection_failed)
        xmpp.add_event_handler("message", self._on_message_stanza)
        xmpp.add_event_handler("chatstate", self._on_chatstate_stanza)
        # slixmpp's own presence handling feeds its roster logic, which answers probes
        # with `unsubscribed` and withdraws pending subscription requests: replace it.
        xmpp.remove_handler("Presence")
        xmpp.del_event_handler("presence_probe", xmpp._handle_probe)
        xmpp.register_handler(
            Callback(
                "refdesk presence",
                MatchXPath(f"{{{NS_COMPONENT}}}presence"),
                self._on_presence_stanza,
            )
        )

    # Life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to service events and start connecting (does not wait for it)."""
        self._unsubscribe = self.service.bus.subscribe(self._on_event)
        self._worker = asyncio.create_task(self._run_inbound(), name="xmpp-inbound")
        self._connect()

    async def stop(self) -> None:
        """Disconnect cleanly; called once at shutdown."""
        if self._stopping:
            return
        self._stopping = True
        if self._unsubscribe:
            self._unsubscribe()
        if self._reconnect_task:
            self._reconnect_task.cancel()
        self.xmpp.cancel_connection_attempt()
        if self.online.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.xmpp.disconnect(wait=2.0), 5)
        else:
            self.xmpp.abort()
        if self._worker:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    def _connect(self) -> None:
        log.info("connecting to the XMPP server at %s:%s", self.config.host, self.config.port)
        self.xmpp.connect(self.config.host, self.config.port)

    def _schedule_reconnect(self) -> None:
        if self._stopping or (self._reconnect_task and not self._reconnect_task.done()):
            return
        delay = self._backoff
        self._backoff = min(self.config.reconnect_max_delay, self._backoff * 2 or 0.5)
        self._reconnect_task = asyncio.create_task(self._reconnect_after(delay))

    async def _reconnect_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self._stopping:
            self._connect()

    def _on_connection_failed(self, _error: Any) -> None:
        # slixmpp would retry with its own back-off of up to five minutes; ours is capped by
        # the config, so take over the retry.
        self.xmpp.cancel_connection_attempt()
        self._schedule_reconnect()

    def _on_disconnected(self, reason: Any) -> None:
        was_online = self.online.is_set()
        self.online.clear()
        if self._stopping:
            return
        if was_online:
            log.warning("XMPP stream lost (%s); reconnecting", reason or "no reason given")
        self._schedule_reconnect()

    async def _on_session_start(self, _event: Any) -> None:
        log.info("component %s is online", self.domain)
        self._backoff = 0.0
        self.sessions += 1
        self.online.set()
        while self._outbox:
            stanza, written = self._outbox.popleft()
            stanza.send()
            if written is not None:
                written()
        # Messages acknowledged to patrons before a crash, never relayed: send them now.
        for guest, recipients, events in await self.service.unrelayed():
            for event in events:
                for jid in recipients:
                    self.send_patron_message(guest, jid, event)
        # xep_0050 forgets its commands whenever the stream binds: register them again.
        self.register_commands()
        for (queue, jid), state in self.service.subscriptions().items():
            if state == "granted":
                self.send_queue_presence(queue, jid)
                self._send_presence(queue, jid, ptype="probe")
            else:
                await self.send_subscription_request(queue, jid)

    # Sending -------------------------------------------------------------------------------

    def _jid(self, node: str) -> str:
        return f"{node}@{self.domain}"

    def _send(self, stanza: StanzaBase, written: Callable[[], None] | None = None) -> None:
        """Send now if the stream is up, else keep it until the next session starts;
        `written` runs once the stanza has been handed to the stream."""
        if self.online.is_set():
            stanza.send()
            if written is not None:
                written()
        else:
            self._outbox.append((stanza, written))

    def send_chat(self, from_node: str, to: str, body: str, nick: str | None = None) -> None:
        msg = self.xmpp.make_message(
            mto=to, mbody=strip_xml_illegal(body), mtype="chat", mfrom=self._jid(from_node)
        )
        if nick:
            msg["nick"] = strip_xml_illegal(nick)
        self._send(msg)

    def send_patron_message(self, guest: str, to: str, event: ChatEvent) -> None:
        """A patron's message to an operator, with an id stable across resends (clients
        that de-duplicate by id then show a resent message once)."""
        msg = self.xmpp.make_message(
            mto=to, mbody=strip_xml_illegal(event.text), mtype="chat", mfrom=self._jid(guest)
        )
        msg["id"] = f"rd-{event.chat_id}-{event.seq}"
        self._send(msg, lambda: self.service.note_relayed(event.chat_id, event.seq))

    def send_chatstate(self, from_node: str, to: str, state: str) -> None:
        msg = self.xmpp.make_message(mto=to, mtype="chat", mfrom=self._jid(from_node))
        msg["chat_state"] = state
        self._send(msg)

    def _send_presence(
        self,
        from_node: str,
        to: str,
        *,
        ptype: str | None = None,
        show: str | None = None,
        status: str | None = None,
    ) -> None:
        pres = self.xmpp.Presence(sfrom=self._jid(from_node), sto=to)
        if ptype:
            pres["type"] = ptype
        if show:
            pres["show"] = show
        if status:
            pres["status"] = strip_xml_illegal(status)
        self._send(pres)

    def send_queue_presence(self, queue: str, to: str, info: QueueInfo | None = None) -> None:
        """Tell an operator the queue's state (shown in their roster)."""
        info = info or self.service.queue_info(queue)
        status = f"{info.title}: {info.status.value}, {info.waiting} waiting"
        self._send_presence(queue, to, show=_QUEUE_SHOW[info.status], status=status)

    async def send_subscription_request(self, queue: str, jid: str) -> None:
        self._send_presence(queue, jid, ptype="subscribe")
        await self.service.mark_subscription_asked(queue, jid)

    # Ad-hoc commands (XEP-0050) -------------------------------------------------------------

    def register_commands(self) -> None:
        """Offer the queue commands as ad-hoc commands on every queue JID, for clients
        that have a menu for them. Called at every session start and directory change."""
        adhoc = self.xmpp.plugin["xep_0050"]
        for queue in self.service.queue_names():
            for name, title in _ADHOC_COMMANDS:
                adhoc.add_command(
                    jid=self._jid(queue), node=name, name=title, handler=self._adhoc_handler(name)
                )

    def _adhoc_handler(
        self, command: str
    ) -> Callable[[Any, dict[str, Any]], Awaitable[dict[str, Any]]]:
        async def handle(iq: Any, session: dict[str, Any]) -> dict[str, Any]:
            queue = iq["to"].user
            try:
                reply = await self.service.on_queue_message(iq["from"].bare, queue, f"!{command}")
            except DeskError as exc:
                condition = _ERROR_CONDITIONS.get(type(exc)) or ("cancel", "bad-request")
                etype, cond = condition
                raise XMPPError(cond, text=exc.text, etype=etype) from None  # type: ignore[arg-type]
            session["notes"] = [("info", strip_xml_illegal(reply))]
            session["has_next"] = False
            session["next"] = None
            return session

        return handle

    # Service events -> stanzas -------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        match event:
            case ChatOffered():
                body = offer_text(event)
                for jid in event.operator_jids:
                    self.send_chat(event.guest, jid, body, nick=_nick(event.queue))
                if event.history:
                    # The offer carries the whole conversation so far.
                    self.service.note_relayed(event.chat_id, event.history[-1].seq)
            case OfferWithdrawn():
                for jid in event.operator_jids:
                    self.send_chat(event.guest, jid, f"Offer withdrawn. {event.reason}")
            case ChatAccepted():
                for jid in event.others:
                    self.send_chat(event.guest, jid, f"{event.operator_name} took this chat.")
            case MessagePosted():
                if event.event.sender is Sender.PATRON:
                    for jid in event.operator_jids:
                        self.send_patron_message(event.guest, jid, event.event)
            case ChatEnded():
                # An operator who ended the chat has the command's confirmation already.
                if event.by != "operator":
                    text = (
                        "The patron ended the chat." if event.by == "patron" else event.event.text
                    )
                    for jid in event.operator_jids:
                        self.send_chat(event.guest, jid, text)
            case TypingChanged():
                if event.by_patron:
                    state = "composing" if event.composing else "paused"
                    for jid in event.operator_jids:
                        self.send_chatstate(event.guest, jid, state)
            case QueueStatusChanged():
                # Computed once for all the queue's operators, not once per operator.
                info = self.service.queue_info(event.queue)
                for jid in self.service.subscribers(event.queue):
                    self.send_queue_presence(event.queue, jid, info)
            case OperatorNotice():
                self.send_chat(event.from_node, event.operator_jid, event.text)
            case DirectoryChanged():
                if self.online.is_set():
                    self.register_commands()
            case SubscriptionWanted():
                wanted = event
                self._inbound.put_nowait(
                    lambda: self.send_subscription_request(wanted.queue, wanted.operator_jid)
                )

    # Inbound stanzas -----------------------------------------------------------------------

    async def _run_inbound(self) -> None:
        """Handle inbound work one item at a time, so an operator's messages and presence
        changes reach the service in the order the server delivered them."""
        while True:
            job = await self._inbound.get()
            try:
                await job()
            except Exception:
                log.exception("failed to handle an inbound stanza")

    def _on_message_stanza(self, msg: Message) -> None:
        if msg["type"] not in ("chat", "normal"):
            if msg["type"] == "error":
                log.info("error from %s: %s", msg["from"], msg["error"]["condition"])
            return
        self._inbound.put_nowait(lambda: self.on_message(msg))

    def _on_chatstate_stanza(self, msg: Message) -> None:
        if msg["body"] or msg["type"] == "error":
            return  # typing carried on a message with a body is not worth a second event
        self._inbound.put_nowait(lambda: self.on_chatstate(msg))

    def _on_presence_stanza(self, pres: StanzaBase) -> None:
        assert isinstance(pres, PresenceStanza)
        self._inbound.put_nowait(lambda: self.on_presence(pres))

    async def on_message(self, msg: Message) -> None:
        """An operator (or anyone) wrote to one of our JIDs."""
        node = msg["to"].user
        sender = msg["from"].bare
        body = msg["body"]
        try:
            if node.startswith(GUEST_PREFIX):
                reply = await self.service.on_operator_message(sender, node, body)
            elif self.service.is_queue(node):
                reply = await self.service.on_queue_message(sender, node, body)
            else:
                raise UnknownQueue(f"There is nothing at {msg['to'].bare}.")
        except DeskError as exc:
            self._answer_error(msg, exc)
            return
        if reply:
            self.send_chat(node, msg["from"].full, reply)

    async def on_chatstate(self, msg: Message) -> None:
        node = msg["to"].user
        if node.startswith(GUEST_PREFIX):
            await self.service.operator_typing(
                msg["from"].bare, node, msg["chat_state"] == "composing"
            )

    async def on_presence(self, pres: PresenceStanza) -> None:
        queue = pres["to"].user
        sender = pres["from"].bare
        ptype = pres["type"]
        if not self.service.is_queue(queue):
            return  # presence to guest JIDs (some clients send it) means nothing to us
        if ptype in ("subscribe", "subscribed", "unsubscribe", "unsubscribed"):
            await self.on_subscription(queue, sender, ptype)
        elif ptype == "probe":
            if (queue, sender) in self.service.subscriptions():
                self.send_queue_presence(queue, pres["from"].full)
            else:
                self._send_presence(queue, sender, ptype="unsubscribed")
        elif ptype == "error":
            log.info("presence error from %s: %s", sender, pres["error"]["condition"])
        else:
            show = None if ptype == "available" else ptype
            presence = Presence.OFFLINE if ptype == "unavailable" else Presence.from_show(show)
            await self.service.on_operator_presence(sender, pres["from"].resource, presence)

    async def on_subscription(self, queue: str, sender: str, kind: str) -> None:
        member = await self.service.on_subscription(queue, sender, kind)
        if kind == "subscribe":
            if member:
                self._send_presence(queue, sender, ptype="subscribed")
                self.send_queue_presence(queue, sender)
            else:
                self._send_presence(queue, sender, ptype="unsubscribed")
        elif kind == "subscribed" and member:
            # Probe only now that the subscription exists (an earlier probe could come back
            # as `unsubscribed`).
            self._send_presence(queue, sender, ptype="probe")
            self.send_queue_presence(queue, sender)
        elif kind == "unsubscribe":
            self._send_presence(queue, sender, ptype="unsubscribed")

    def _answer_error(self, msg: Message, exc: DeskError) -> None:
        """The one place where domain errors become XMPP: an error stanza when the message
        was not delivered, a chat line when a command was refused."""
        condition = _ERROR_CONDITIONS.get(type(exc), ("cancel", "undefined-condition"))
        node = msg["to"].user
        if condition is None:
            self.send_chat(node, msg["from"].full, f"⚠ {exc.text}")
            return
        etype, cond = condition
        reply = self.xmpp.make_message(mto=msg["from"].full, mfrom=msg["to"].full, mtype="error")
        reply["id"] = msg["id"]
        reply["error"]["type"] = etype
        reply["error"]["condition"] = cond
        reply["error"]["text"] = strip_xml_illegal(exc.text)
        self._send(reply)


def _nick(queue: str) -> str:
    return f"Patron ({queue})"


def offer_text(event: ChatOffered) -> str:
    """The message an operator gets with an offer: what it is, how to take it, and the
    conversation so far (a transferred chat brings its history along)."""
    how = f" ({event.via})" if event.via else ""
    lines = [
        f"New chat in {event.queue_title} ({event.queue}){how}. Reply to take it, or send !accept."
    ]
    for e in event.history:
        if e.kind is EventKind.NOTE:
            lines.append(f"[note by {e.name}] {e.text}")
        elif e.sender is Sender.PATRON:
            lines.append(f"Patron: {e.text}")
        elif e.sender is Sender.OPERATOR:
            lines.append(f"{e.name}: {e.text}")
        elif e.kind is EventKind.MESSAGE:
            lines.append(f"— {e.text}")
    return "\n".join(lines)
