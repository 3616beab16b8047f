"""Delivery of what the XMPP adapter writes: its outbox and delivery confirmation.

A stanza written to the socket is not yet delivered: the server may die or close the stream
before reading it. `Delivery` follows what it writes with a ping to the XMPP server's own
domain, which the server answers only after it has handled everything written before it
on the stream, so the answer proves the server has taken all of it. Only then do patron
lines count as relayed (`DeskService.note_relayed`); whatever is unconfirmed when the
stream drops is written again, with the same stanza ids, once it is back. One ping is
outstanding at a time and covers everything written before it, so a busy stream costs one
ping per round trip, not one per line.

It is also the last guard on size: no stanza over `[xmpp] max_stanza_bytes` is written,
because the server would close the component stream (and every chat with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

import slixmpp
from slixmpp.stanza import Iq, Message
from slixmpp.xmlstream.stanzabase import StanzaBase
from slixmpp.xmlstream.tostring import tostring
from slixmpp.xmlstream.xmlstream import NotConnectedError

from component.clock import Clock
from component.config import XmppConfig

log = logging.getLogger(__name__)

# The component stream's default namespace (XEP-0114).
COMPONENT_NS = "jabber:component:accept"
_IQ_TAG = f"{{{COMPONENT_NS}}}iq"

# Seconds to wait for the answer to a confirmation ping before the stream is presumed dead
# (a half-open connection) and dropped, so that it reconnects and resends.
CONFIRM_TIMEOUT = 60.0
# Seconds the server's domain has to answer a confirmation ping before it has answered
# one: a domain the server does not serve itself may be passed on to a remote server
# (server-to-server), whose answer can take longer than CONFIRM_TIMEOUT, so a wrong
# `[xmpp] server_domain` would otherwise cut the stream again and again. Past it,
# confirmations use our own domain, without dropping the stream.
DOMAIN_TRIAL_TIMEOUT = 5.0
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


_STANZAS_NS = "urn:ietf:params:xml:ns:xmpp-stanzas"
# The only error answers to a ping of `[xmpp] server_domain` that mean the server serves
# that domain itself: it has no ping module (Prosody and ejabberd answer an IQ nothing
# handles with service-unavailable). Any other error says the server would pass the ping
# on to another server (Prosody without server-to-server: not-allowed; ejabberd with s2s
# denied: forbidden; otherwise the remote-server errors). That answer still came in stream
# order, so it confirms all the same, but the next pings go to our own domain instead.
_NO_PING_MODULE = frozenset({"service-unavailable", "feature-not-implemented"})


def error_condition(answer: StanzaBase) -> str:
    """The defined condition of an error answer, read from its XML. slixmpp's own
    `iq["error"]` looks for the error element in the client namespace; on a component
    stream it is in the component's, so slixmpp sees none and reports its default.
    Called by `Delivery.take_answer` on an error answer to a confirmation ping."""
    for element in answer.xml:
        if element.tag.rpartition("}")[2] == "error":
            for child in element:
                namespace, _, name = child.tag[1:].partition("}")
                if namespace == _STANZAS_NS:
                    return name
    return ""


def ping_target(config: XmppConfig) -> str:
    """The domain confirmation pings go to: `[xmpp] server_domain`, else the component's
    domain without its first label (desk.example.org: example.org). Called by the XMPP
    adapter when it creates its `Delivery`."""
    if config.server_domain:
        return config.server_domain
    _, dot, parent = config.domain.partition(".")
    return parent if dot and parent else config.domain


@dataclass(slots=True)
class _Ping:
    """A confirmation ping written on stream `stream`: its answer (the error condition,
    "" for a result) confirms the first `covers` stanzas written on that stream."""

    id: str
    to: str
    covers: int
    stream: int
    answer: asyncio.Future[str]
    xml: str


class _ComponentMessage(Message):
    """A message in the component stream's namespace without a stream at hand (slixmpp
    takes the namespace from the stream a stanza is built for): `Outgoing.stanza`."""

    namespace = COMPONENT_NS


class Outgoing:
    """A stanza to write, and what it relays: patron lines of chat `chat_id` from
    `first_seq` to `last_seq` (a line, or an offer's history), noted as relayed once the
    server has confirmed it. Offers and lines to several operators carry it on their last
    stanza only, so the cursor moves when all of them are confirmed.

    Built by the adapter either from a slixmpp stanza or, for the lines of a chat (the
    hot path), from `wire`: the stanza already serialised by `chat_message_xml`, which
    costs a fraction of building and serialising a stanza object. `stanza` is then made
    from `wire` only if someone asks (a log line, a test)."""

    __slots__ = ("_stanza", "chat_id", "first_seq", "last_seq", "suspect", "wire")

    def __init__(
        self,
        stanza: StanzaBase | None = None,
        *,
        wire: str = "",
        chat_id: int | None = None,
        first_seq: int = 0,
        last_seq: int = 0,
    ) -> None:
        if stanza is None and not wire:
            raise ValueError("an Outgoing needs a stanza or its wire form")
        self._stanza = stanza
        self.wire = wire
        self.chat_id = chat_id
        self.first_seq = first_seq
        self.last_seq = last_seq
        # In flight when the server closed the stream blaming what we wrote: written alone
        # (and confirmed) in the next session, so that the one the server refuses is known.
        self.suspect = False

    @property
    def stanza(self) -> StanzaBase:
        """The stanza as a slixmpp object (parsed from `wire` the first time, if built
        from it)."""
        if self._stanza is None:
            # The wire form leaves the stream's default namespace implicit: declare it on
            # a wrapper so the element gets the namespace slixmpp's stanzas expect.
            holder = ET.fromstring(f"<x xmlns={quoteattr(COMPONENT_NS)}>{self.wire}</x>")
            self._stanza = _ComponentMessage(xml=holder[0])  # type: ignore[no-untyped-call]
        return self._stanza

    def __repr__(self) -> str:
        return f"Outgoing({self.wire or self._stanza!s:.200}, chat_id={self.chat_id})"


def chat_message_xml(to: str, sender: str, body: str, stanza_id: str) -> str:
    """A `<message type='chat'>` as it goes on the component stream, for `Outgoing.wire`.
    Called by the adapter for every chat line it relays. `body` must already be free of
    XML-illegal characters (`strip_xml_illegal`, which also drops lone surrogates); every
    value is escaped here (`<`, `&`, `>` in text; quotes and white space in attributes),
    so hostile text stays text."""
    return (
        f"<message type='chat' to={quoteattr(to)} from={quoteattr(sender)} "
        f"id={quoteattr(stanza_id)}><body>{escape(body)}</body></message>"
    )


class Delivery:
    """The outbox and confirmations of one component connection. Created and driven by
    the XMPP adapter: `send` for every stanza, `stream_lost` and `resume` as sessions end
    and start, `settle` at shutdown."""

    def __init__(
        self,
        xmpp: slixmpp.ComponentXMPP,
        domain: str,
        max_stanza_bytes: int,
        relayed: Callable[[int, int], None],
        clock: Clock,
        ping_to: str | None = None,
    ) -> None:
        self.xmpp = xmpp
        self.domain = domain
        # Where confirmation pings go: the XMPP server's own domain (see `ping_target`),
        # or our own if the server turns out not to serve that one.
        #
        # Why the server's answer proves that everything written before the ping was
        # taken: both servers handle a component's stanzas one at a time, in the order
        # read, and answer a ping to their own domain while handling it. Prosody's
        # mod_component passes each parsed stanza straight to core_process_stanza
        # (stream_callbacks.handlestanza), which routes a message to a local user before
        # the next stanza is parsed, and mod_ping answers a ping to the host from the same
        # call (event.origin.send). ejabberd's ejabberd_service routes each stanza with
        # ejabberd_router:route from the stream's own process (handle_authenticated_packet);
        # the server's domains are routed by calling ejabberd_local:route in that process
        # (host_up registers {apply, ejabberd_local, route}), whose process_iq answers with
        # mod_ping, or with service-unavailable when mod_ping is off: any answer will do.
        # A ping to our own domain proved the same but cost four stanzas through refdesk
        # (out, routed back in, our answer out, and in again) instead of two.
        self.ping_to = ping_to or domain
        # Whether the server has answered a ping to `ping_to` itself (see
        # DOMAIN_TRIAL_TIMEOUT): until then its pings have a shorter deadline.
        self._domain_proven = self.ping_to == domain
        self.max_stanza_bytes = max_stanza_bytes
        # Called with (chat id, sequence number) once a patron line is confirmed.
        self._relayed = relayed
        self._clock = clock
        # Set while a session is up (its outbox flushed): stanzas are written at once.
        self.online = asyncio.Event()
        # Stanzas waiting for the stream (written when a session starts).
        self.outbox: deque[Outgoing] = deque()
        # Stanzas written in this session that the server has not confirmed yet, in order.
        self.unconfirmed: deque[Outgoing] = deque()
        self._confirming: asyncio.Task[None] | None = None
        # Stanzas written in this stream, and how many of them are confirmed: a ping covers
        # those written before it (`_Ping.covers`), however many pings are outstanding.
        self._written = 0
        self._confirmed = 0
        # Pings waiting for their answer, by id (see `take_answer`); the prefix is random
        # so that nobody can answer for the server.
        self._waiting: dict[str, _Ping] = {}
        self._ping_prefix = f"rdc-{secrets.token_hex(6)}-"
        # One confirmation ping at a time: each covers what was written before it.
        self._confirm_lock = asyncio.Lock()
        # Called when the current stream is lost: a confirmation still waiting for its
        # ping's answer gives up at once instead of holding `_confirm_lock` until its
        # time-out, which would stall the next session's confirmations.
        self._on_lost: set[Callable[[], None]] = set()
        # Counts stream sessions and losses: a confirmation answered after the stream it
        # covered was lost must not confirm anything.
        self.stream = 0
        self._stream_error = False
        # Stanzas refused by the size check, and confirmation pings sent (tests, logs).
        self.refused = 0
        self.pings = 0

    def send(self, out: Outgoing) -> None:
        """Write now if the stream is up, else keep it until the next session starts."""
        if self.online.is_set():
            self._write(out)
        else:
            self.outbox.append(out)

    def queued(self, chat_id: int, seq: int) -> bool:
        """True if a stanza in the outbox already relays line `seq` of chat `chat_id`; the
        adapter asks at session start, before resending lines from the store."""
        return any(
            out.chat_id == chat_id and out.first_seq <= seq <= out.last_seq for out in self.outbox
        )

    # The stream's life ---------------------------------------------------------------------

    def server_closed(self, condition: str) -> bool:
        """The server is closing our stream with `condition`; True if it blames what we
        wrote (then `stream_lost` hunts for the stanza it refuses)."""
        self._stream_error = condition in _STANZA_FAULTS
        return self._stream_error

    def stream_lost(self) -> bool:
        """The stream is gone: what it did not confirm goes back to the outbox. Called by
        the adapter on every disconnection; True if a session was up."""
        was_online = self.online.is_set()
        self.online.clear()
        self.stream += 1
        for wake in tuple(self._on_lost):
            wake()
        if self._confirming is not None:
            # Its ping went down with the stream; the next session starts its own.
            self._confirming.cancel()
            self._confirming = None
        # Pings of the lost stream are not waited for any more (an answer would not count).
        self._waiting.clear()
        self._requeue_unconfirmed()
        return was_online

    def _requeue_unconfirmed(self) -> None:
        """What the lost stream did not confirm goes back to the front of the outbox, in
        order, to be written again (same ids) in the next session.

        After a stream error that blames what we wrote, a suspect written alone is the
        stanza the server refuses: it is dropped (else it would cut everyone off after
        every reconnection). When several were in flight, which one is unknown (those
        ahead of it may only lack their confirmation): all become suspects, written one at
        a time in the next session, so no innocent stanza is ever dropped."""
        lost = list(self.unconfirmed)
        self.unconfirmed.clear()
        self._written = self._confirmed = 0
        if lost and self._stream_error:
            if len(lost) == 1 and lost[0].suspect:
                log.error("dropping a stanza the XMPP server refused: %.200s", lost[0].stanza)
                self._give_up(lost.pop())
            for out in lost:
                out.suspect = True
        self._stream_error = False
        self.outbox.extendleft(reversed(lost))

    async def resume(self, stream: int, older: list[Outgoing]) -> bool:
        """A session started: write `older` (lines read back from the store), then the
        outbox, in order. Called by the adapter at session start; True if the stream is
        still the same one afterwards (then the session is online)."""
        self.outbox.extendleft(reversed(older))
        # After a stream error, what was in flight is resent one stanza at a time, each
        # confirmed before the next, so that a stanza the server refuses is found (it is
        # alone in flight at the next error) and the others are not cut with it.
        while self.outbox and self.xmpp.transport is not None and stream == self.stream:
            if self.outbox[0].suspect:
                # What went before it is confirmed first, so that it is alone in flight.
                # (Meanwhile new stanzas only join the end of the outbox: not online yet.)
                await self._confirm_now(stream)
                if stream != self.stream:
                    break
            out = self.outbox.popleft()
            self._write(out)
            if out.suspect:
                await self._confirm_now(stream)
        if stream != self.stream:
            return False
        self.online.set()
        return True

    # Writing -------------------------------------------------------------------------------

    def fits(self, stanza: StanzaBase) -> bool:
        """The last guard on IQs (`guard_iq`): True if the stanza as serialised (escaped,
        UTF-8, with its namespace, so a little over what goes on the wire) is within the
        limit. Text is cut or split before it gets here; this catches whatever was missed."""
        return self._fits(str(stanza))

    def _fits(self, data: str) -> bool:
        """True if `data`, a stanza as serialised, is within the limit once encoded; else
        counted and logged. Called by `fits` and by `_write` on what it is about to write
        (so a stanza is serialised once, not once to measure and once to send)."""
        size = len(data.encode("utf-8", "surrogatepass"))
        if size <= self.max_stanza_bytes:
            return True
        self.refused += 1
        log.error(
            "not sending a %d-byte stanza (the limit is %d): %.200s",
            size,
            self.max_stanza_bytes,
            data,
        )
        return False

    def guard_iq(self, stanza: StanzaBase) -> StanzaBase | None:
        """slixmpp's outgoing filter: IQs over the size limit are not written (our own
        messages and presences are checked in `_write`, where what they carry is known)."""
        if isinstance(stanza, Iq) and not self.fits(stanza):
            return None
        return stanza

    def _give_up(self, out: Outgoing) -> None:
        """A stanza that can never be written: a patron line in it is passed over, or it
        would come back from the store after every reconnection."""
        if out.chat_id is not None:
            self._relayed(out.chat_id, out.last_seq)

    def _write(self, out: Outgoing) -> None:
        """Hand a stanza to the stream and make sure a confirmation will cover it. With no
        confirmation outstanding, its ping goes in the same write (one system call for
        the line and its ping, at a chat's pace the common case)."""
        xmpp = self.xmpp
        data = out.wire or tostring(
            out.stanza.xml, xmlns=xmpp.default_ns, stream=xmpp, top_level=True
        )
        if not self._fits(data):
            self._give_up(out)
            return
        self.unconfirmed.append(out)
        self._written += 1
        if self._confirming is None or self._confirming.done():
            ping = self._new_ping()
            self._send_raw(data + ping.xml)
            self._confirming = asyncio.create_task(self._confirm_loop(ping))
        else:
            self._send_raw(data)

    def _send_raw(self, data: str) -> None:
        """Write straight to the transport, not through slixmpp's send queue: the queue
        writes each stanza with a system call of its own, in a later turn of the loop.
        Everything that needs confirming is written here, so its order holds; the out
        filters the queue would apply (the IQ size guard) concern none of it."""
        # If the stream is gone, its loss puts what is unconfirmed back in the outbox.
        with contextlib.suppress(NotConnectedError):
            self.xmpp.send_raw(data)

    # Confirming ----------------------------------------------------------------------------

    def _new_ping(self) -> _Ping:
        """A confirmation ping covering everything written so far in this stream (see the
        comment on `ping_to`); the caller writes `ping.xml`."""
        self.pings += 1
        ping_id = f"{self._ping_prefix}{self.pings}"
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        ping = _Ping(
            ping_id,
            self.ping_to,
            self._written,
            self.stream,
            answer,
            f"<iq type='get' id='{ping_id}' to={quoteattr(self.ping_to)} "
            f"from={quoteattr(self.domain)}><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        self._waiting[ping_id] = ping
        return ping

    def take_answer(self, stanza: StanzaBase) -> StanzaBase | None:
        """slixmpp's incoming filter: the answer to a confirmation ping is taken here
        (and goes no further: no handler to match, nothing to dispatch); everything else
        passes. Only from the domain pinged (or our own, which the server may answer
        for), like slixmpp's own IQ matching, though the id alone is not guessable."""
        if not isinstance(stanza, Iq):
            return stanza
        ping = self._waiting.get(stanza["id"])
        kind = stanza["type"]
        if ping is None or kind not in ("result", "error"):
            return stanza
        if stanza["from"].bare not in (ping.to, self.domain, ""):
            return stanza
        self._answered(ping, "" if kind == "result" else error_condition(stanza) or "?")
        return None

    def take_raw_answer(self, xml: ET.Element) -> bool:
        """The common answer to a confirmation ping, a result from the domain pinged
        (or ours, or with no sender), taken as parsed XML before slixmpp builds a stanza
        of it; True if taken. Called by the adapter's stream for every stanza received.
        Anything else, errors and senders written differently included, is left to
        `take_answer`, which compares normalised JIDs."""
        if xml.tag != _IQ_TAG or xml.get("type") != "result":
            return False
        ping = self._waiting.get(xml.get("id", ""))
        if ping is None:
            return False
        if xml.get("from", "").partition("/")[0] not in (ping.to, self.domain, ""):
            return False
        self._answered(ping, "")
        return True

    def _answered(self, ping: _Ping, condition: str) -> None:
        """`ping` is answered (`condition` "" for a result): wake its confirmation."""
        del self._waiting[ping.id]
        if not ping.answer.done():
            ping.answer.set_result(condition)

    async def _confirm_loop(self, first: _Ping) -> None:
        """Wait for the answer to `first` (written by `_write` with a stanza), then
        confirm what was written since, one ping at a time, until nothing is unconfirmed.
        Ends when its stream is lost."""
        async with self._confirm_lock:
            await self._confirm(first)
        while self.unconfirmed and first.stream == self.stream:
            await self._confirm_now(first.stream)

    async def _confirm_now(self, stream: int) -> None:
        """Ping the server's domain; its answer (result or error) comes back in stream
        order, so everything written before the ping has been taken by the server. Then
        patron lines count as relayed. With no answer in time the stream is presumed
        dead and dropped (it reconnects and resends)."""
        async with self._confirm_lock:
            if stream != self.stream or self._confirmed >= self._written:
                return
            ping = self._new_ping()
            self._send_raw(ping.xml)
            await self._confirm(ping)

    async def _confirm(self, ping: _Ping) -> None:
        """Wait for the answer to `ping`, then confirm what it covers."""
        stream = ping.stream
        # One future woken by whichever comes first: the answer, the time-out (on the
        # service's clock, not slixmpp's own timer, like every other timer of the
        # component) or the stream's loss. This runs for nearly every line at a chat's
        # pace, so it is plain callbacks rather than a task per outcome and
        # `asyncio.wait` (those cost about a fifth of a ping round trip).
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake(_done: object = None) -> None:
            if not woken.done():
                woken.set_result(None)

        silent = False

        def domain_silent() -> None:
            nonlocal silent
            silent = True
            wake()

        answer = ping.answer
        answer.add_done_callback(wake)
        deadline = self._clock.call_later(CONFIRM_TIMEOUT, wake)
        trial = (
            None
            if self._domain_proven or ping.to == self.domain
            else self._clock.call_later(DOMAIN_TRIAL_TIMEOUT, domain_silent)
        )
        self._on_lost.add(wake)
        try:
            if stream == self.stream:
                await woken
        finally:
            deadline.cancel()
            if trial is not None:
                trial.cancel()
            self._on_lost.discard(wake)
            self._waiting.pop(ping.id, None)
        if not answer.done():
            if stream == self.stream and silent:
                # The server's domain has never answered: ask our own domain instead,
                # for everything written so far (the stream itself may be fine).
                self._not_served(ping.to, f"no answer in {DOMAIN_TRIAL_TIMEOUT:.0f} s")
                retry = self._new_ping()
                self._send_raw(retry.xml)
                await self._confirm(retry)
                return
            if stream == self.stream:
                log.warning(
                    "no answer from the XMPP server in %.0f s; reconnecting", CONFIRM_TIMEOUT
                )
                self.xmpp.abort()
            return
        condition = answer.result()
        # An error answer is in stream order too.
        if condition and condition not in _NO_PING_MODULE:
            self._not_served(ping.to, condition)
        elif ping.to == self.ping_to:
            self._domain_proven = True
        if stream != self.stream:
            return
        while self._confirmed < ping.covers and self.unconfirmed:
            out = self.unconfirmed.popleft()
            self._confirmed += 1
            if out.chat_id is not None:
                self._relayed(out.chat_id, out.last_seq)

    def _not_served(self, pinged: str, condition: str) -> None:
        """A confirmation ping to the server's domain was answered as if that domain were
        not the server's own: confirmations use our own domain from now on. Called by
        `_confirm` with the condition of the answer."""
        if pinged != self.ping_to or self.ping_to == self.domain:
            return
        log.error(
            "the XMPP server does not answer pings to %s itself (%s); set [xmpp] "
            "server_domain to a domain it serves. Confirming delivery through %s meanwhile",
            self.ping_to,
            condition,
            self.domain,
        )
        self.ping_to = self.domain

    async def settle(self, timeout: float) -> None:
        """Wait (at most `timeout` s) until what was written is confirmed; called by the
        adapter's `stop`, so that a clean shutdown leaves nothing to resend at the next
        start."""
        deadline = asyncio.ensure_future(self._clock.sleep(timeout))
        try:
            while self.unconfirmed and self.online.is_set() and not deadline.done():
                confirming = self._confirming
                if confirming is None or confirming.done():
                    return  # the stream went down: what is unconfirmed is resent later
                await asyncio.wait({confirming, deadline}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            deadline.cancel()
