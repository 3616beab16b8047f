"""The XMPP adapter: an external component (XEP-0114) on slixmpp.

Inbound stanzas are parsed here and handed to the service (`on_*` handlers); service
events become outbound stanzas (`send_*`). Domain errors are turned into XMPP errors in
one place, `_answer_error`. The adapter also keeps the component connected: slixmpp does
not reconnect after an established session drops and discards its send queue, so the
adapter reconnects itself and holds its own outbox while the stream is down.

Two rules keep one bad moment from stopping every chat or losing a line:

- No stanza is larger than `[xmpp] max_stanza_bytes` as written (escaped, UTF-8): the
  server would close the component stream. Long texts are sent in parts or cut (offers
  summarise long histories), and the operator is told; a last check refuses to write any
  stanza over the limit.
- A stanza written to the socket is not yet delivered: the server may die or close the
  stream before reading it. The adapter follows what it writes with a ping to its own
  domain, which the server routes back in stream order, so its answer proves the server
  has read everything before it. Only then do patron lines count as relayed
  (`DeskService.note_relayed`); whatever is unconfirmed when the stream drops is written
  again, with the same stanza ids, once it is back. One ping is outstanding at a time and
  covers everything written before it, so a busy stream costs one ping per round trip,
  not one per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import slixmpp
from slixmpp.exceptions import IqError, XMPPError
from slixmpp.stanza import Iq, Message
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
from component.core.text import (
    clip_to_bytes,
    split_to_bytes,
    strip_xml_illegal,
    xml_text_bytes,
)
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
    ("canned", "Canned messages"),
    ("banpolicy", "Ban policy"),
)

# Room kept in every stanza for what is not user text: the element names, namespaces,
# addresses (an operator's full JID may reach 3 KiB), id, type and nick.
_ENVELOPE_BYTES = 8 * 1024
# Budgets, in escaped UTF-8 bytes, of the short fields that carry user text.
_NICK_BYTES = 256
_STATUS_BYTES = 1024
_ERROR_TEXT_BYTES = 1024
# The most stanzas one chat line or command answer is split into before it is cut, and the
# most an offer's history may take.
_MAX_PARTS = 8
_MAX_OFFER_PARTS = 3
# Seconds to wait for the answer to a confirmation ping before the stream is presumed dead
# (a half-open connection) and dropped, so that it reconnects and resends.
_CONFIRM_TIMEOUT = 60.0
# Stream errors that blame what we wrote (RFC 6120, 4.9.3); others, such as
# system-shutdown or conflict, say nothing about our stanzas.
_STANZA_FAULTS = frozenset(
    {
        "bad-format",
        "improper-addressing",
        "invalid-from",
        "invalid-namespace",
        "invalid-xml",
        "not-well-formed",
        "policy-violation",
        "restricted-xml",
        "unsupported-stanza-type",
    }
)

_QUEUE_SHOW: dict[QueueStatus, str | None] = {
    QueueStatus.AVAILABLE: None,
    QueueStatus.BUSY: "dnd",
    QueueStatus.AWAY: "away",
    QueueStatus.OFFLINE: "xa",
}


@dataclass(slots=True)
class _Out:
    """A stanza to write, and what it relays: patron lines of chat `chat_id` from
    `first_seq` to `last_seq` (a line, or an offer's history), noted as relayed once the
    server has confirmed it. Offers and lines to several operators carry it on their last
    stanza only, so the cursor moves when all of them are confirmed."""

    stanza: StanzaBase
    chat_id: int | None = None
    first_seq: int = 0
    last_seq: int = 0
    # In flight when the server closed the stream blaming what we wrote: written alone
    # (and confirmed) in the next session, so that the one the server refuses is known.
    suspect: bool = False


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
        self.max_stanza_bytes = config.max_stanza_bytes
        # Room for user text in one message body.
        self._body_bytes = config.max_stanza_bytes - _ENVELOPE_BYTES
        # Stanzas waiting for the stream (written when a session starts).
        self._outbox: deque[_Out] = deque()
        # Stanzas written in this session that the server has not confirmed yet, in order.
        self._unconfirmed: deque[_Out] = deque()
        self._confirming: asyncio.Task[None] | None = None
        # One confirmation ping at a time: each covers what was written before it.
        self._confirm_lock = asyncio.Lock()
        # Set when the current stream is lost (and replaced): a confirmation still waiting
        # for its ping's answer gives up at once instead of holding `_confirm_lock` until
        # its time-out, which would stall the next session's confirmations.
        self._lost = asyncio.Event()
        # Counts stream sessions and losses: a confirmation answered after the stream it
        # covered was lost must not confirm anything.
        self._stream = 0
        self._stream_error = False
        # Stanzas refused by the size check, and confirmation pings sent (tests, logs).
        self.refused = 0
        self.pings = 0
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
        # slixmpp's plugins answer IQs themselves (disco, ping, ad-hoc, errors), echoing
        # what the asker sent (its id, a disco node): the same size check applies to them.
        xmpp.add_filter("out", self._guard_iq)
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
    def unconfirmed(self) -> int:
        """Stanzas written in this session that the server has not confirmed yet (tests,
        health checks)."""
        return len(self._unconfirmed)

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
        self._worker = asyncio.create_task(self._run_inbound(), name="xmpp-inbound")

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
            await self._settle(2.0)
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
        self._stream_error = condition in _STANZA_FAULTS
        log.log(
            logging.ERROR if self._stream_error else logging.WARNING,
            "the XMPP server closed the component stream: %s %s",
            condition,
            error["text"],
        )

    def _on_disconnected(self, reason: Any) -> None:
        was_online = self.online.is_set()
        self.online.clear()
        self._stream += 1
        self._lost.set()
        self._lost = asyncio.Event()
        if self._confirming is not None:
            # Its ping went down with the stream; the next session starts its own.
            self._confirming.cancel()
            self._confirming = None
        self._requeue_unconfirmed()
        if self._stopping:
            return
        if was_online:
            log.warning("XMPP stream lost (%s); reconnecting", reason or "no reason given")
        self._schedule_reconnect()

    def _requeue_unconfirmed(self) -> None:
        """The stream is gone: what it did not confirm goes back to the front of the
        outbox, in order, to be written again (same ids) in the next session.

        After a stream error that blames what we wrote, a suspect written alone is the
        stanza the server refuses: it is dropped (else it would cut everyone off after
        every reconnection). When several were in flight, which one is unknown (those
        ahead of it may only lack their confirmation): all become suspects, written one at
        a time in the next session, so no innocent stanza is ever dropped."""
        lost = list(self._unconfirmed)
        self._unconfirmed.clear()
        if lost and self._stream_error:
            if len(lost) == 1 and lost[0].suspect:
                log.error("dropping a stanza the XMPP server refused: %.200s", lost[0].stanza)
                self._give_up(lost.pop())
            for out in lost:
                out.suspect = True
        self._stream_error = False
        self._outbox.extendleft(reversed(lost))

    async def _on_session_start(self, _event: Any) -> None:
        log.info("component %s is online", self.domain)
        self._backoff = 0.0
        self.sessions += 1
        stream = self._stream
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
        if stream != self._stream:
            return  # lost again while reading the store; the next session does it all
        queued = [out for out in self._outbox if out.chat_id is not None]
        older = [
            out
            for guest, recipients, events in unrelayed
            for event in events
            if not any(
                q.chat_id == event.chat_id and q.first_seq <= event.seq <= q.last_seq
                for q in queued
            )
            for out in self._patron_stanzas(guest, recipients, event)
        ]
        self._outbox.extendleft(reversed(older))
        # After a stream error, what was in flight is resent one stanza at a time, each
        # confirmed before the next, so that a stanza the server refuses is found (it is
        # alone in flight at the next error) and the others are not cut with it.
        while self._outbox and self.xmpp.transport is not None and stream == self._stream:
            if self._outbox[0].suspect:
                # What went before it is confirmed first, so that it is alone in flight.
                # (Meanwhile new stanzas only join the end of the outbox: not online yet.)
                await self._confirm_now(stream)
                if stream != self._stream:
                    break
            out = self._outbox.popleft()
            self._write(out)
            if out.suspect:
                await self._confirm_now(stream)
        if stream != self._stream:
            return
        self.online.set()
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

    def _send(self, stanza: StanzaBase) -> None:
        """Write now if the stream is up, else keep it until the next session starts."""
        self._send_out(_Out(stanza))

    def _send_out(self, out: _Out) -> None:
        if self.online.is_set():
            self._write(out)
        else:
            self._outbox.append(out)

    def _fits(self, stanza: StanzaBase) -> bool:
        """The last guard: True if the stanza as serialised (escaped, UTF-8, with its
        namespace, so a little over what goes on the wire) is within the limit. Text is
        cut or split before it gets here; this catches whatever was missed."""
        size = len(str(stanza).encode("utf-8", "surrogatepass"))
        if size <= self.max_stanza_bytes:
            return True
        self.refused += 1
        log.error(
            "not sending a %d-byte stanza (the limit is %d): %.200s",
            size,
            self.max_stanza_bytes,
            stanza,
        )
        return False

    def _guard_iq(self, stanza: StanzaBase) -> StanzaBase | None:
        """slixmpp's outgoing filter: IQs over the size limit are not written (our own
        messages and presences are checked in `_write`, where what they carry is known)."""
        if isinstance(stanza, Iq) and not self._fits(stanza):
            return None
        return stanza

    def _give_up(self, out: _Out) -> None:
        """A stanza that can never be written: a patron line in it is passed over, or it
        would come back from the store after every reconnection."""
        if out.chat_id is not None:
            self.service.note_relayed(out.chat_id, out.last_seq)

    def _write(self, out: _Out) -> None:
        """Hand a stanza to the stream and make sure a confirmation will cover it."""
        if not self._fits(out.stanza):
            self._give_up(out)
            return
        out.stanza.send()
        self._unconfirmed.append(out)
        if self._confirming is None or self._confirming.done():
            self._confirming = asyncio.create_task(self._confirm_loop(self._stream))

    async def _confirm_loop(self, stream: int) -> None:
        """Confirm what was written, one ping at a time, until nothing is unconfirmed.
        Started by `_write`; ends when its stream is lost."""
        while self._unconfirmed and stream == self._stream:
            await self._confirm_now(stream)

    async def _confirm_now(self, stream: int) -> None:
        """Ping our own domain through the server; its answer (result or error) comes back
        in stream order, so everything written before the ping has been read by the
        server. Then patron lines count as relayed. With no answer in time the stream is
        presumed dead and dropped (it reconnects and resends)."""
        async with self._confirm_lock:
            await self._ping_and_confirm(stream)

    async def _ping_and_confirm(self, stream: int) -> None:
        covered = len(self._unconfirmed)
        if covered == 0 or stream != self._stream:
            return
        iq = self.xmpp.make_iq_get(ito=self.domain, ifrom=self.domain)
        iq.enable("ping")
        self.pings += 1
        # The time-out runs on the service's clock (not slixmpp's own timer), like every
        # other timer of the component.
        answer: asyncio.Future[Any] = asyncio.ensure_future(iq.send())  # type: ignore[no-untyped-call]
        deadline = asyncio.ensure_future(self.service.scheduler.sleep(_CONFIRM_TIMEOUT))
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({answer, deadline, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            deadline.cancel()
            lost.cancel()
            answered = answer.done()
            if not answered:
                answer.cancel()  # timed out, or this task was cancelled with its stream
        if not answered:
            if stream == self._stream:
                log.warning(
                    "no answer from the XMPP server in %.0f s; reconnecting", _CONFIRM_TIMEOUT
                )
                self.xmpp.abort()
            return
        try:
            answer.result()
        except IqError:
            pass  # an error answer is in stream order too
        except (Exception, asyncio.CancelledError):
            return  # the stream went away while sending; its loss requeues everything
        if stream != self._stream:
            return
        for _ in range(min(covered, len(self._unconfirmed))):
            out = self._unconfirmed.popleft()
            if out.chat_id is not None:
                self.service.note_relayed(out.chat_id, out.last_seq)

    async def _settle(self, timeout: float) -> None:
        """Wait (at most `timeout` s) until what was written is confirmed; called by
        `stop`, so that a clean shutdown leaves nothing to resend at the next start."""
        deadline = asyncio.ensure_future(self.service.scheduler.sleep(timeout))
        try:
            while self._unconfirmed and self.online.is_set() and not deadline.done():
                confirming = self._confirming
                if confirming is None or confirming.done():
                    return  # the stream went down: what is unconfirmed is resent later
                await asyncio.wait({confirming, deadline}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            deadline.cancel()

    def _bodies(self, text: str) -> list[str]:
        """`text` (already free of XML-illegal characters) in as many bodies as it needs,
        at most `_MAX_PARTS`; past that it is cut and says so."""
        limit = self._body_bytes
        if xml_text_bytes(text) <= limit:
            return [text]
        parts = split_to_bytes(text, limit - 64)
        if len(parts) > _MAX_PARTS:
            parts = parts[:_MAX_PARTS]
            note = f"[Cut: too long for chat; {_MAX_PARTS} parts shown.]"
            parts[-1] = clip_to_bytes(parts[-1], limit - 64 - xml_text_bytes(note) - 1)
            parts[-1] += "\n" + note
        count = len(parts)
        return [f"({n}/{count}) {part}" for n, part in enumerate(parts, 1)]

    def send_chat(self, from_node: str, to: str, body: str, nick: str | None = None) -> None:
        """A chat line from one of our JIDs, in parts if it is too long for one stanza."""
        for out in self._chat_stanzas(from_node, (to,), body, nick):
            self._send_out(out)

    def _chat_stanzas(
        self, from_node: str, recipients: Iterable[str], body: str, nick: str | None = None
    ) -> list[_Out]:
        bodies = self._bodies(strip_xml_illegal(body))
        clean_nick = clip_to_bytes(strip_xml_illegal(nick), _NICK_BYTES) if nick else None
        out = []
        for to in recipients:
            for text in bodies:
                msg = self.xmpp.make_message(
                    mto=to, mbody=text, mtype="chat", mfrom=self._jid(from_node)
                )
                if clean_nick:
                    msg["nick"] = clean_nick
                out.append(_Out(msg))
        return out

    def send_patron_message(self, guest: str, recipients: Iterable[str], event: ChatEvent) -> None:
        """A patron's message to the operators who must see it, with ids stable across
        resends (`rd-<chat>-<seq>`, then `-2`, `-3`... for the parts of a long one), so
        clients that de-duplicate by id show a resent message once."""
        for out in self._patron_stanzas(guest, tuple(recipients), event):
            self._send_out(out)

    def _patron_stanzas(
        self, guest: str, recipients: tuple[str, ...], event: ChatEvent
    ) -> list[_Out]:
        outs: list[_Out] = []
        for to in recipients:
            for n, text in enumerate(self._bodies(strip_xml_illegal(event.text)), 1):
                msg = self.xmpp.make_message(
                    mto=to, mbody=text, mtype="chat", mfrom=self._jid(guest)
                )
                msg["id"] = f"rd-{event.chat_id}-{event.seq}" + (f"-{n}" if n > 1 else "")
                outs.append(_Out(msg))
        if outs:
            last = outs[-1]
            last.chat_id, last.first_seq, last.last_seq = event.chat_id, event.seq, event.seq
        return outs

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
            pres["status"] = clip_to_bytes(strip_xml_illegal(status), _STATUS_BYTES)
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
                text = clip_to_bytes(strip_xml_illegal(exc.text), _ERROR_TEXT_BYTES)
                raise XMPPError(cond, text=text, etype=etype) from None  # type: ignore[arg-type]
            session["notes"] = [("info", clip_to_bytes(strip_xml_illegal(reply), self._body_bytes))]
            session["has_next"] = False
            session["next"] = None
            return session

        return handle

    # Service events -> stanzas -------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        match event:
            case ChatOffered():
                outs = [
                    out
                    for body in offer_bodies(event, self._body_bytes)
                    for out in self._chat_stanzas(
                        event.guest, event.operator_jids, body, nick=_nick(event.queue)
                    )
                ]
                if outs and event.history:
                    # The offer carries the conversation so far: once the last of its
                    # stanzas is confirmed, the patron's lines up to here are relayed.
                    last = outs[-1]
                    last.chat_id = event.chat_id
                    last.first_seq, last.last_seq = 1, event.history[-1].seq
                for out in outs:
                    self._send_out(out)
            case OfferWithdrawn():
                for jid in event.operator_jids:
                    self.send_chat(event.guest, jid, f"Offer withdrawn. {event.reason}")
            case ChatAccepted():
                for jid in event.others:
                    self.send_chat(event.guest, jid, f"{event.operator_name} took this chat.")
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
            finally:
                self._inbound.task_done()

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
        reply["error"]["text"] = clip_to_bytes(strip_xml_illegal(exc.text), _ERROR_TEXT_BYTES)
        self._send(reply)


def _nick(queue: str) -> str:
    return f"Patron ({queue})"


def offer_text(event: ChatOffered) -> str:
    """The message an operator gets with an offer: what it is, how to take it, and the
    conversation so far (a transferred chat brings its history along)."""
    return "\n".join([_offer_header(event), *_history_lines(event)])


def offer_bodies(event: ChatOffered, max_bytes: int) -> list[str]:
    """The offer as message bodies of at most `max_bytes` each (escaped, UTF-8), for
    the adapter. A short one is `offer_text` in one body. A long history goes in up to
    `_MAX_OFFER_PARTS` parts: each line is cut to a quarter of a part, and if that is still
    too much, the first line (the question) and the newest lines are kept and the ones
    between are left out. The first body says what was done."""
    text = offer_text(event)
    if xml_text_bytes(text) <= max_bytes:
        return [text]
    room = max_bytes - 512  # for the header and the part labels
    lines = _history_lines(event)
    clipped = [clip_to_bytes(line, room // 4) for line in lines]
    cut = sum(1 for a, b in zip(lines, clipped, strict=True) if a != b)
    sizes = [xml_text_bytes(line) + 1 for line in clipped]
    # Parts are packed at line breaks and no line is over a quarter of a part, so each
    # part holds at least three quarters of its room: budget a little under that.
    budget = room * _MAX_OFFER_PARTS * 7 // 10
    left_out = 0
    if sum(sizes) > budget:
        # Keep the first line and as many of the newest as fit.
        keep_from = len(clipped)
        used = sizes[0] + 200
        while keep_from > 1 and used + sizes[keep_from - 1] <= budget:
            keep_from -= 1
            used += sizes[keep_from]
        left_out = keep_from - 1
        clipped = [
            clipped[0],
            f"[… {left_out} earlier lines not shown; the transcript has them all …]",
            *clipped[keep_from:],
        ]
    parts = split_to_bytes("\n".join(clipped), room)[:_MAX_OFFER_PARTS]
    notes = []
    if left_out:
        notes.append(f"{left_out} lines not shown")
    if cut:
        notes.append(f"{cut} long lines cut")
    if len(parts) > 1:
        notes.append(f"history in {len(parts)} parts")
    summary = f"Long history: {', '.join(notes)}." if notes else ""
    header = "\n".join(filter(None, [_offer_header(event), summary]))
    bodies = [f"{header}\n{parts[0]}"]
    bodies += [f"(history part {n}/{len(parts)})\n{p}" for n, p in enumerate(parts[1:], 2)]
    return bodies


def _offer_header(event: ChatOffered) -> str:
    how = f" ({event.via})" if event.via else ""
    return (
        f"New chat in {event.queue_title} ({event.queue}){how}. Reply to take it, or send !accept."
    )


def _history_lines(event: ChatOffered) -> list[str]:
    lines = []
    for e in event.history:
        if e.kind is EventKind.NOTE:
            lines.append(f"[note by {e.name}] {e.text}")
        elif e.sender is Sender.PATRON:
            lines.append(f"Patron: {e.text}")
        elif e.sender is Sender.OPERATOR:
            lines.append(f"{e.name}: {e.text}")
        elif e.kind is EventKind.MESSAGE:
            lines.append(f"— {e.text}")
    return lines
