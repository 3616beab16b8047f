"""The XMPP adapter: an external component (XEP-0114) on slixmpp.

Inbound stanzas are parsed here and handed to the service (`on_*` handlers); service
events become outbound stanzas (`send_*`). Domain errors are turned into XMPP errors in
one place, `_answer_error`. The adapter also keeps the component connected: slixmpp does
not reconnect after an established session drops and discards its send queue, so the
adapter reconnects itself and holds its own outbox while the stream is down.

Two rules keep one bad moment from stopping every chat or losing a line, each in a module
of its own:

- No stanza is larger than `[xmpp] max_stanza_bytes` as written (escaped, UTF-8): the
  server would close the component stream. Long texts are sent in parts or cut
  (`component.xmpp_bodies`), and a last check refuses to write any stanza over the limit.
- A stanza written to the socket is not yet delivered until the server confirms it
  (`component.xmpp_delivery`): only then do patron lines count as relayed, and whatever
  is unconfirmed when the stream drops is written again, same ids, once it is back.

Ad-hoc commands (XEP-0050) are in `component.xmpp_adhoc`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from typing import Any

from slixmpp.stanza import Message
from slixmpp.stanza import Presence as PresenceStanza
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.stanzabase import StanzaBase

from component.config import XmppConfig
from component.core.errors import DeskError, UnknownQueue
from component.core.events import (
    ChatAccepted,
    ChatEnded,
    ChatOffered,
    DirectoryChanged,
    Event,
    GuestPresence,
    MessagePosted,
    OfferWithdrawn,
    OperatorNotice,
    QueueStatusChanged,
    SubscriptionWanted,
    TypingChanged,
)
from component.core.models import ChatEvent, Presence, Sender
from component.core.text import clip_to_bytes, strip_xml_illegal
from component.inbound_lanes import InboundLanes
from component.service import GUEST_PREFIX, DeskService
from component.xmpp_adhoc import register_commands
from component.xmpp_bodies import (
    ENVELOPE_BYTES,
    NICK_BYTES,
    message_bodies,
    offer_bodies,
    patron_nick,
)
from component.xmpp_component import NS_COMPONENT, Component
from component.xmpp_delivery import Delivery, Outgoing, chat_message_xml, ping_target
from component.xmpp_errors import ERROR_CONDITIONS, error_text
from component.xmpp_presence import PresenceOut

log = logging.getLogger(__name__)

NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_CORRECT = "urn:xmpp:message-correct:0"
# XEP-0334 processing hints. `no-permanent-store` keeps a message out of the operator's
# server-side archive (XEP-0313) while leaving offline storage alone: both Prosody's and
# ejabberd's mod_mam skip a message carrying it (each also honours `no-store`, which
# ejabberd's offline storage honours too: an offer to an operator who just went offline
# must still reach them).
NO_PERMANENT_STORE = "{urn:xmpp:hints}no-permanent-store"
# The longest stanza id kept to recognise a later correction (ids are opaque, and some
# clients use long ones; longer ones are not remembered, so that line cannot be corrected).
_MAX_ID_CHARS = 256


class XmppAdapter:
    """Owns the slixmpp component. Created by the composition root inside the running
    loop; `start()` connects (retrying until the server is there), `stop()` disconnects."""

    def __init__(self, service: DeskService, config: XmppConfig) -> None:
        self.service = service
        self.config = config
        self.domain = config.domain
        self.xmpp = Component(config.domain, config.secret)  # type: ignore[no-untyped-call]
        # How many sessions have started (tests and logs tell reconnections apart with it).
        self.sessions = 0
        self._stopping = False
        # Room for user text in one message body.
        self._body_bytes = config.max_stanza_bytes - ENVELOPE_BYTES
        self.delivery = Delivery(
            self.xmpp,
            config.domain,
            config.max_stanza_bytes,
            service.note_relayed,
            service.scheduler,
            ping_target(config),
        )
        # Set while a session is up; the same event as the delivery's.
        self.online = self.delivery.online
        # Inbound stanzas, handled in order per sender (see `component.inbound_lanes`).
        self._inbound = InboundLanes()
        self._reconnect_task: asyncio.Task[None] | None = None
        self._backoff = 0.0
        # Which of the configured addresses the next connection attempt uses.
        self._turn = 0
        self._unsubscribe: Callable[[], None] | None = None
        # The presence refdesk sends operators (`component.xmpp_presence`).
        self.presence = PresenceOut(
            self.xmpp,
            config.domain,
            self._send,
            queue_info=service.queue_info,
            is_online=lambda jid: service.presence_of(jid).online,
            subscribers=service.subscribers,
        )
        self._setup()

    def _setup(self) -> None:
        xmpp = self.xmpp
        for plugin in ("xep_0030", "xep_0004", "xep_0050", "xep_0085", "xep_0172", "xep_0199"):
            xmpp.register_plugin(plugin)
        # slixmpp's plugins answer IQs themselves (disco, ping, ad-hoc, errors), echoing
        # what the asker sent (its id, a disco node): the same size check applies to them.
        xmpp.add_filter("out", self.delivery.guard_iq)
        # Answers to delivery confirmations are taken before slixmpp dispatches anything:
        # a plain result as parsed XML, anything else (an error) as a stanza.
        xmpp.take_raw = self.delivery.take_raw_answer
        xmpp.add_filter("in", self.delivery.take_answer)
        xmpp.add_event_handler("session_start", self._on_session_start)
        xmpp.add_event_handler("disconnected", self._on_disconnected)
        xmpp.add_event_handler("connection_failed", self._on_connection_failed)
        xmpp.add_event_handler("stream_error", self._on_stream_error)
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

    @property
    def refused(self) -> int:
        """Stanzas the size check refused to write (tests, logs)."""
        return self.delivery.refused

    @property
    def pings(self) -> int:
        """Confirmation pings sent (tests, logs)."""
        return self.delivery.pings

    @property
    def unconfirmed(self) -> int:
        """Stanzas written in this session that the server has not confirmed yet (tests,
        health checks)."""
        return len(self.delivery.unconfirmed)

    # Life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to service events and start connecting (does not wait for it)."""
        self.attach()
        self._connect()

    def attach(self) -> None:
        """Listen to the service and start handling inbound stanzas, without connecting.
        Called by `start`, and by in-process tests that hand the stream a transport of
        their own."""
        self._unsubscribe = self.service.bus.subscribe(self._on_event)

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
            await self.delivery.settle(2.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.xmpp.disconnect(wait=2.0), 5)
        else:
            self.xmpp.abort()
        await self._inbound.close()

    def _connect(self) -> None:
        # Each attempt takes the next address: after a failed attempt or a lost stream the
        # component moves on to the next node of a clustered server (`fallback_hosts`).
        addresses = self.config.component_addresses
        host, port = addresses[self._turn % len(addresses)]
        self._turn += 1
        log.info("connecting to the XMPP server at %s:%s", host, port)
        self.xmpp.connect(host, port)

    def _schedule_reconnect(self) -> None:
        if self._stopping or (self._reconnect_task and not self._reconnect_task.done()):
            return
        delay = self._backoff
        self._backoff = min(self.config.reconnect_max_delay, self._backoff * 2 or 0.5)
        self._reconnect_task = asyncio.create_task(self._reconnect_after(delay))

    async def _reconnect_after(self, delay: float) -> None:
        # On the service's clock, like every other timer of the component.
        await self.service.scheduler.sleep(delay)
        if not self._stopping:
            self._connect()

    def _on_connection_failed(self, _error: Any) -> None:
        # slixmpp would retry with its own back-off of up to five minutes; ours is capped by
        # the config, so take over the retry.
        self.xmpp.cancel_connection_attempt()
        self._schedule_reconnect()

    def _on_stream_error(self, error: Any) -> None:
        # The server is closing our stream; some conditions mean it refused what we wrote.
        condition = str(error["condition"])
        blamed = self.delivery.server_closed(condition)
        log.log(
            logging.ERROR if blamed else logging.WARNING,
            "the XMPP server closed the component stream: %s %s",
            condition,
            error["text"],
        )

    def _on_disconnected(self, reason: Any) -> None:
        was_online = self.delivery.stream_lost()
        if self._stopping:
            return
        if was_online:
            log.warning("XMPP stream lost (%s); reconnecting", reason or "no reason given")
        self._schedule_reconnect()

    async def _on_session_start(self, _event: Any) -> None:
        log.info("component %s is online", self.domain)
        self._backoff = 0.0
        self.sessions += 1
        stream = self.delivery.stream
        # Messages acknowledged to patrons but never confirmed by the server (a crash, or a
        # stream cut before the server read them). Those still in the outbox go out from
        # there, in order; the others (after a restart) from the store, before anything
        # newer.
        try:
            unrelayed = await self.service.unrelayed()
        except Exception:
            # The store failed: go online anyway (the lines stay unrelayed in the store and
            # are tried again at the next session start).
            log.exception("could not read the unrelayed messages")
            unrelayed = []
        if stream != self.delivery.stream:
            return  # lost again while reading the store; the next session does it all
        older = [
            out
            for guest, recipients, events in unrelayed
            for event in events
            if not self.delivery.queued(event.chat_id, event.seq)
            for out in self._patron_stanzas(guest, recipients, event)
        ]
        if not await self.delivery.resume(stream, older):
            return
        # xep_0050 forgets its commands whenever the stream binds: register them again.
        self.register_commands()
        # The server forgot the guests' directed presence with the old stream.
        for live in self.service.open_chats():
            if live.connections > 0 and live.recipients():
                self.presence.guest(live.guest, live.recipients(), available=True)
        self.presence.session_started()
        for (queue, jid), state in self.service.subscriptions().items():
            if state == "granted":
                self.presence.queue(queue, jid)
                self.presence.probe(queue, jid, at_start=True)
            else:
                await self.send_subscription_request(queue, jid)

    # Sending -------------------------------------------------------------------------------

    def _jid(self, node: str) -> str:
        return f"{node}@{self.domain}"

    def _send(self, stanza: StanzaBase) -> None:
        """Write now if the stream is up, else keep it until the next session starts."""
        self.delivery.send(Outgoing(stanza))

    def send_chat(
        self,
        from_node: str,
        to: str,
        body: str,
        nick: str | None = None,
        *,
        ephemeral: bool = False,
    ) -> None:
        """A chat line from one of our JIDs, in parts if it is too long for one stanza.
        An `ephemeral` line (staff traffic that only matters live) is kept out of the
        operator's server archive."""
        for out in self._chat_stanzas(from_node, (to,), body, nick, ephemeral=ephemeral):
            self.delivery.send(out)

    def _chat_stanzas(
        self,
        from_node: str,
        recipients: Iterable[str],
        body: str,
        nick: str | None = None,
        *,
        ephemeral: bool = False,
    ) -> list[Outgoing]:
        bodies = message_bodies(strip_xml_illegal(body), self._body_bytes)
        clean_nick = clip_to_bytes(strip_xml_illegal(nick), NICK_BYTES) if nick else None
        out = []
        for to in recipients:
            for text in bodies:
                msg = self.xmpp.make_message(
                    mto=to, mbody=text, mtype="chat", mfrom=self._jid(from_node)
                )
                if clean_nick:
                    msg["nick"] = clean_nick
                if ephemeral:
                    msg.xml.append(ET.Element(NO_PERMANENT_STORE))
                out.append(Outgoing(msg))
        return out

    def send_patron_message(self, guest: str, recipients: Iterable[str], event: ChatEvent) -> None:
        """A patron's message to the operators who must see it, with ids stable across
        resends (`rd-<chat>-<seq>`, then `-2`, `-3`... for the parts of a long one), so
        clients that de-duplicate by id show a resent message once."""
        for out in self._patron_stanzas(guest, tuple(recipients), event):
            self.delivery.send(out)

    def _patron_stanzas(
        self, guest: str, recipients: tuple[str, ...], event: ChatEvent
    ) -> list[Outgoing]:
        outs: list[Outgoing] = []
        bodies = message_bodies(strip_xml_illegal(event.text), self._body_bytes)
        sender = self._jid(guest)
        for to in recipients:
            for n, text in enumerate(bodies, 1):
                # Serialised from a template, not built as a slixmpp stanza: one line per
                # patron message is the hot path, and the stanza object and its
                # serialiser cost several times more (bench/RESULTS.md, fifth pass).
                stanza_id = f"rd-{event.chat_id}-{event.seq}" + (f"-{n}" if n > 1 else "")
                outs.append(Outgoing(wire=chat_message_xml(to, sender, text, stanza_id)))
        if outs:
            last = outs[-1]
            last.chat_id, last.first_seq, last.last_seq = event.chat_id, event.seq, event.seq
        return outs

    def send_chatstate(self, from_node: str, to: str, state: str) -> None:
        msg = self.xmpp.make_message(mto=to, mtype="chat", mfrom=self._jid(from_node))
        msg["chat_state"] = state
        self._send(msg)

    async def send_subscription_request(self, queue: str, jid: str) -> None:
        self.presence.send(queue, jid, ptype="subscribe")
        await self.service.mark_subscription_asked(queue, jid)

    def register_commands(self) -> None:
        """Offer the queue commands as ad-hoc commands on every queue JID. Called at every
        session start and directory change."""
        register_commands(self.xmpp, self.service, self.domain, self._body_bytes)

    # Service events -> stanzas -------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        match event:
            case ChatOffered():
                if event.patron_connected:
                    # Before the offer, so the chat window opens on a patron shown online.
                    self.presence.guest(event.guest, event.operator_jids, available=True)
                outs = [
                    out
                    for body in offer_bodies(event, self._body_bytes)
                    # Offers matter only while live: kept out of operators' archives,
                    # which every offer would otherwise reach (see docs/operators.md).
                    for out in self._chat_stanzas(
                        event.guest,
                        event.operator_jids,
                        body,
                        nick=patron_nick(event.queue),
                        ephemeral=True,
                    )
                ]
                if outs and event.history:
                    # The offer carries the conversation so far: once the last of its
                    # stanzas is confirmed, the patron's lines up to here are relayed.
                    last = outs[-1]
                    last.chat_id = event.chat_id
                    last.first_seq, last.last_seq = 1, event.history[-1].seq
                for out in outs:
                    self.delivery.send(out)
            case OfferWithdrawn():
                for jid in event.operator_jids:
                    self.send_chat(
                        event.guest, jid, f"Offer withdrawn. {event.reason}", ephemeral=True
                    )
                self.presence.guest(event.guest, event.operator_jids, available=False)
            case ChatAccepted():
                for jid in event.others:
                    self.send_chat(
                        event.guest, jid, f"{event.operator_name} took this chat.", ephemeral=True
                    )
                self.presence.guest(event.guest, event.others, available=False)
                if event.patron_connected and not event.had_offer:
                    # One who had the offer sees the patron online already.
                    self.presence.guest(event.guest, (event.operator_jid,), available=True)
                if not event.explicit:
                    # A reply took the chat; `!accept` and `!next` answer this themselves.
                    self.send_chat(
                        event.guest,
                        event.operator_jid,
                        "You took this chat; your messages go to the patron.",
                        ephemeral=True,
                    )
            case GuestPresence():
                self.presence.guest(event.guest, event.operator_jids, available=event.available)
            case MessagePosted():
                if event.event.sender is Sender.PATRON:
                    self.send_patron_message(event.guest, event.operator_jids, event.event)
            case ChatEnded():
                # An operator who ended the chat has the command's confirmation already.
                if event.by != "operator":
                    text = (
                        "The patron ended the chat." if event.by == "patron" else event.event.text
                    )
                    for jid in event.operator_jids:
                        self.send_chat(event.guest, jid, text)
                self.presence.guest(event.guest, event.operator_jids, available=False)
            case TypingChanged():
                if event.by_patron:
                    state = "composing" if event.composing else "paused"
                    for jid in event.operator_jids:
                        self.send_chatstate(event.guest, jid, state)
            case QueueStatusChanged():
                self.presence.queue_changed(event.queue)
            case OperatorNotice():
                self.send_chat(
                    event.from_node, event.operator_jid, event.text, ephemeral=event.ephemeral
                )
            case DirectoryChanged():
                if self.online.is_set():
                    self.register_commands()
            case SubscriptionWanted():
                wanted = event
                self._inbound.put(
                    wanted.operator_jid,
                    lambda: self.send_subscription_request(wanted.queue, wanted.operator_jid),
                )

    # Inbound stanzas -----------------------------------------------------------------------

    async def drained(self) -> None:
        """Wait until every inbound stanza received so far has been handled, and what
        the handling wrote has reached the transport. Called by in-process tests."""
        await self._inbound.join()
        await self.service.idle()
        if self.xmpp.transport is None:
            return
        # slixmpp empties its send queue without accounting for it when the stream is lost,
        # so joining it alone could wait for ever: stop at the loss too.
        written = asyncio.ensure_future(self.xmpp.waiting_queue.join())
        lost: asyncio.Future[Any] = self.xmpp.disconnected
        try:
            await asyncio.wait({written, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            written.cancel()

    def _on_message_stanza(self, msg: Message) -> None:
        if msg["type"] not in ("chat", "normal"):
            if msg["type"] == "error":
                log.info("error from %s: %s", msg["from"], msg["error"]["condition"])
            return
        self._inbound.put(msg["from"].bare, lambda: self.on_message(msg))

    def _on_chatstate_stanza(self, msg: Message) -> None:
        if msg["body"] or msg["type"] == "error":
            return  # typing carried on a message with a body is not worth a second event
        self._inbound.put(msg["from"].bare, lambda: self.on_chatstate(msg))

    def _on_presence_stanza(self, pres: StanzaBase) -> None:
        assert isinstance(pres, PresenceStanza)
        self._inbound.put(pres["from"].bare, lambda: self.on_presence(pres))

    async def on_message(self, msg: Message) -> None:
        """An operator (or anyone) wrote to one of our JIDs."""
        node = msg["to"].user
        sender = msg["from"].bare
        body = msg["body"]
        if not body:
            return  # chat states, receipts, markers: no line to relay or command to run
        raw_id = msg["id"]  # read once: each stanza lookup goes through slixmpp's plugins
        stanza_id = raw_id if 0 < len(raw_id) <= _MAX_ID_CHARS else None
        replace = msg.xml.find(f"{{{NS_CORRECT}}}replace")
        replaces = None
        if replace is not None:
            # An id too long to have been kept names no line ("" never matches).
            replaced_id = str(replace.get("id") or "")
            replaces = replaced_id if len(replaced_id) <= _MAX_ID_CHARS else ""
        try:
            if node.startswith(GUEST_PREFIX):
                reply = await self.service.on_operator_message(
                    sender, node, body, stanza_id=stanza_id, replaces=replaces
                )
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
                self.presence.queue(queue, pres["from"].full)
            else:
                self.presence.send(queue, sender, ptype="unsubscribed")
        elif ptype == "error":
            log.info("presence error from %s: %s", sender, pres["error"]["condition"])
        else:
            show = None if ptype == "available" else ptype
            presence = Presence.OFFLINE if ptype == "unavailable" else Presence.from_show(show)
            was_online = self.service.presence_of(sender).online
            await self.service.on_operator_presence(
                sender,
                pres["from"].resource,
                presence,
                rediscovered=self.presence.rediscovered(sender, pres),
            )
            self.presence.operator_changed(
                sender, self.service.queues_of(sender), was_online=was_online
            )

    async def on_subscription(self, queue: str, sender: str, kind: str) -> None:
        member = await self.service.on_subscription(queue, sender, kind)
        if kind == "subscribe":
            if member:
                self.presence.send(queue, sender, ptype="subscribed")
                self.presence.queue(queue, sender)
            else:
                self.presence.send(queue, sender, ptype="unsubscribed")
        elif kind == "subscribed" and member:
            # Probe only now that the subscription exists (an earlier probe could come back
            # as `unsubscribed`).
            self.presence.probe(queue, sender, at_start=False)
            self.presence.queue(queue, sender)
        elif kind == "unsubscribe":
            self.presence.send(queue, sender, ptype="unsubscribed")

    def _answer_error(self, msg: Message, exc: DeskError) -> None:
        """The one place where domain errors become XMPP: an error stanza when the message
        was not delivered, a chat line when a command was refused."""
        condition = ERROR_CONDITIONS.get(type(exc), ("cancel", "undefined-condition"))
        node = msg["to"].user
        if condition is None:
            self.send_chat(node, msg["from"].full, f"⚠ {exc.text}")
            return
        etype, cond = condition
        reply = self.xmpp.make_message(mto=msg["from"].full, mfrom=msg["to"].full, mtype="error")
        reply["id"] = msg["id"]
        reply["error"]["type"] = etype
        reply["error"]["condition"] = cond
        reply["error"]["text"] = error_text(exc)
        self._send(reply)
