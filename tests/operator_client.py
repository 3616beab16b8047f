"""An operator's ordinary XMPP client, for tests: a real c2s connection through slixmpp.

Tests create one per operator account on the server from ``tests/xmpp_servers.py``,
``await connect()``, talk to queue and guest JIDs with `send_message`, read what arrives
with `next_message`, change availability with `set_presence`, and ``await disconnect()``
at the end. After a server restart the test calls `connect` again: each call builds a
fresh slixmpp client, as slixmpp does not reconnect an established session by itself.

It behaves like a person's client whose user approves every contact request: an incoming
``subscribe`` is answered ``subscribed`` and followed by a ``subscribe`` of its own (slixmpp's
roster does this when ``auto_authorize`` and ``auto_subscribe`` are on).

The servers have no certificates, so the client logs in over plain TCP on loopback:
slixmpp refuses SCRAM and PLAIN on an unencrypted stream unless told otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from slixmpp import ClientXMPP, Iq, Message, Presence
from slixmpp.jid import JID
from slixmpp.xmlstream import StanzaBase

__all__ = ["OperatorClient"]

_SHOWS = frozenset({"away", "xa", "dnd", "chat"})
_S = TypeVar("_S", bound=StanzaBase)


def _describe(stanza: StanzaBase) -> str:
    """One line per stanza for assertion messages."""
    if isinstance(stanza, Message):
        return f"message from {stanza['from']} type={stanza['type']}: {stanza['body']!r}"
    if isinstance(stanza, Presence):
        return f"presence from {stanza['from']} type={stanza['type']} show={stanza['show']!r}"
    return f"{stanza.name} from {stanza['from']} type={stanza['type']}"


class _Inbox(Generic[_S]):
    """A queue plus the items that earlier filtered waits skipped.

    `OperatorClient.next_message` and friends take the first item that matches and keep
    the others, in order, for later calls: a test that waits for the queue's reply does not
    lose the guest's message that happened to arrive first.
    """

    def __init__(self, queue: asyncio.Queue[_S]) -> None:
        self.queue = queue
        self.held: list[_S] = []

    async def take(self, match: Callable[[_S], bool], timeout: float, what: str) -> _S:
        for index, item in enumerate(self.held):
            if match(item):
                return self.held.pop(index)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = "; ".join(_describe(item) for item in self.held) or "nothing"
                raise TimeoutError(f"no {what} within {timeout} s; received, not taken: {seen}")
            try:
                item = await asyncio.wait_for(self.queue.get(), remaining)
            except TimeoutError:
                continue
            if match(item):
                return item
            self.held.append(item)


def _from_matches(bare: str | None) -> Callable[[Message | Presence | Iq], bool]:
    if bare is None:
        return lambda _stanza: True
    wanted = JID(bare).bare
    return lambda stanza: bool(stanza["from"].bare == wanted)


class OperatorClient:
    """One operator's XMPP account, logged in over a real client-to-server connection."""

    def __init__(self, jid: str, password: str, host: str, port: int) -> None:
        self.jid = jid
        self.password = password
        self.host = host
        self.port = port
        # Chat and normal messages that carry a body, in arrival order.
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        # Every presence received (subscriptions, availability, probes' answers...).
        self.presences: list[Presence] = []
        # Message, presence and iq stanzas of type "error".
        self.errors: asyncio.Queue[Message | Presence | Iq] = asyncio.Queue()
        self._message_inbox: _Inbox[Message] = _Inbox(self.messages)
        self._error_inbox = _Inbox(self.errors)
        self._presence_queue: asyncio.Queue[Presence] = asyncio.Queue()
        self._presence_inbox: _Inbox[Presence] = _Inbox(self._presence_queue)
        self._xmpp: ClientXMPP | None = None

    @property
    def xmpp(self) -> ClientXMPP:
        """The live slixmpp client, for tests that need something this class lacks."""
        if self._xmpp is None:
            raise RuntimeError(f"{self.jid} is not connected")
        return self._xmpp

    @property
    def bare_jid(self) -> str:
        """The account's bare JID."""
        return str(JID(self.jid).bare)

    def _make_client(self) -> ClientXMPP:
        """Build the slixmpp client; called from `connect`, inside the running loop.

        slixmpp binds the loop that is current when the object is created, so it must not
        be built in ``__init__`` (a fixture may construct this class before the loop runs).
        """
        # The servers have no certificates: allow SCRAM (and PLAIN as a fallback) on an
        # unencrypted stream, which slixmpp refuses by default. Loopback only.
        plugin_config = {
            "feature_mechanisms": {"unencrypted_scram": True, "unencrypted_plain": True}
        }
        xmpp = ClientXMPP(self.jid, self.password, plugin_config=plugin_config)
        # Plain TCP straight to the given port: no direct TLS attempt, no STARTTLS.
        xmpp.enable_direct_tls = False
        xmpp.enable_starttls = False
        xmpp.enable_plaintext = True
        xmpp.register_plugin("xep_0030")  # disco
        xmpp.register_plugin("xep_0199")  # ping
        xmpp.auto_authorize = True
        xmpp.auto_subscribe = True
        xmpp.add_event_handler("message", self._on_message)
        xmpp.add_event_handler("message_error", self._on_error)
        xmpp.add_event_handler("presence", self._on_presence)
        xmpp.add_event_handler("presence_error", self._on_error)
        return xmpp

    def _on_message(self, msg: Message) -> None:
        if msg["type"] in ("chat", "normal") and msg["body"]:
            self.messages.put_nowait(msg)

    def _on_presence(self, pres: Presence) -> None:
        self.presences.append(pres)
        self._presence_queue.put_nowait(pres)

    def _on_error(self, stanza: Message | Presence | Iq) -> None:
        self.errors.put_nowait(stanza)

    async def connect(self, timeout: float = 15) -> None:
        """Log in, send initial presence, fetch the roster; return once the session runs.

        Raises TimeoutError if the session does not start within *timeout* seconds and
        RuntimeError if the server rejects the password. Calling it again (e.g. after a
        server restart) drops the old connection and opens a new one.
        """
        if self._xmpp is not None:
            self._xmpp.abort()
            self._xmpp = None
        xmpp = self._make_client()
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        async def on_session_start(_event: Any) -> None:
            try:
                xmpp.send_presence()
                await xmpp.get_roster()
            except Exception as exc:  # report it to connect() rather than lose it
                if not ready.done():
                    ready.set_exception(exc)
                return
            if not ready.done():
                ready.set_result(None)

        def on_failed_auth(_event: Any) -> None:
            if not ready.done():
                ready.set_exception(RuntimeError(f"{self.jid}: authentication failed"))

        xmpp.add_event_handler("session_start", on_session_start)
        xmpp.add_event_handler("failed_all_auth", on_failed_auth)
        self._xmpp = xmpp
        xmpp.connect(self.host, self.port)
        try:
            await asyncio.wait_for(ready, timeout)
        except TimeoutError:
            xmpp.abort()
            self._xmpp = None
            raise TimeoutError(
                f"{self.jid}: no session on {self.host}:{self.port} within {timeout} s"
            ) from None
        except BaseException:
            xmpp.abort()
            self._xmpp = None
            raise

    async def disconnect(self, timeout: float = 5) -> None:
        """Close the stream politely (the server then sends unavailable presence)."""
        xmpp = self._xmpp
        self._xmpp = None
        if xmpp is None:
            return
        try:
            await asyncio.wait_for(xmpp.disconnect(wait=timeout / 2), timeout)
        except TimeoutError:
            pass
        finally:
            xmpp.abort()
            with contextlib.suppress(Exception):
                xmpp.cancel_connection_attempt()

    def send_message(self, to: str, body: str) -> None:
        """Send a chat message, as typing a line into a one-to-one chat window does."""
        self.xmpp.send_message(mto=JID(to), mbody=body, mtype="chat")

    def subscribe(self, to: str) -> None:
        """Ask for *to*'s presence, as adding a contact does (the reply lands in `presences`)."""
        self.xmpp.send_presence(pto=JID(to).bare, ptype="subscribe")

    def set_presence(self, show: str | None, status: str | None = None) -> None:
        """Broadcast availability: None (available), "chat", "away", "xa" or "dnd"."""
        if show is not None and show not in _SHOWS:
            raise ValueError(f"show must be None or one of {sorted(_SHOWS)}, not {show!r}")
        self.xmpp.send_presence(pshow=show, pstatus=status)

    async def next_message(self, from_bare: str | None = None, timeout: float = 10) -> Message:
        """Return the next chat/normal message with a body (from *from_bare* if given).

        Messages from others that arrive meanwhile are kept for later calls. Raises
        TimeoutError listing what did arrive if nothing matches in time.
        """
        what = "message" if from_bare is None else f"message from {from_bare}"
        matches = _from_matches(from_bare)
        return await self._message_inbox.take(matches, timeout, what)

    async def expect_no_message(self, from_bare: str | None, within: float) -> None:
        """Assert that no message from *from_bare* (anyone if None) arrives within *within* s."""
        try:
            msg = await self.next_message(from_bare, timeout=within)
        except TimeoutError:
            return
        raise AssertionError(f"{self.jid} got an unexpected {_describe(msg)}")

    async def expect_next_from(self, queue_jid: str, command: str = "!status") -> Message:
        """Send *command* to *queue_jid* and assert that its answer is the very next message
        this client gets; returns the answer.

        Tests call this instead of waiting out a silence (`expect_no_message`) when the
        message that must not come would have been sent by the component before it read
        the command: the component writes over one stream, the server delivers to this
        client in order, so anything sent earlier (an offer, a duplicate line) would arrive
        before the answer and fail the assertion.
        """
        self.send_message(queue_jid, command)
        msg = await self.next_message(None)
        if msg["from"].bare != queue_jid:
            raise AssertionError(f"{self.jid} got an unexpected {_describe(msg)}")
        return msg

    async def next_presence(
        self,
        from_bare: str | None = None,
        *,
        ptype: str | None = None,
        timeout: float = 10,
    ) -> Presence:
        """Return the next presence (from *from_bare*, of type *ptype*, if given).

        Types are slixmpp's: "available", "unavailable", "subscribe", "subscribed",
        "unsubscribe", "unsubscribed", "probe", "error"; show values ("away"...) also
        count as a type, as slixmpp reports them that way. `presences` keeps them all.
        """
        by_from = _from_matches(from_bare)

        def matches(pres: Presence) -> bool:
            return by_from(pres) and (ptype is None or pres["type"] == ptype)

        what = f"presence type={ptype or 'any'} from {from_bare or 'anyone'}"
        return await self._presence_inbox.take(matches, timeout, what)

    async def next_error(
        self, from_bare: str | None = None, timeout: float = 10
    ) -> Message | Presence | Iq:
        """Return the next error stanza (message or presence; from *from_bare* if given)."""
        what = "error" if from_bare is None else f"error from {from_bare}"
        return await self._error_inbox.take(_from_matches(from_bare), timeout, what)
