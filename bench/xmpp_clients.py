"""Plain XMPP clients for the benchmarks (slixmpp, plain TCP on loopback, as in the tests).

- `BenchClient`: logs in, calls a handler for every chat message with a body.
- `BenchOperator`: an operator who accepts the chats assigned to them (crc32 of the guest
  JID modulo the number of operators: every operator gets every ring-all offer, exactly one
  accepts) and answers every benchmark message ``m:<token> ...`` at once with
  ``r:<token> ...``.
- `echo_handler`: the same immediate answer with no refdesk involved (the floor).
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from slixmpp import ClientXMPP, Message
from slixmpp.jid import JID

logging.getLogger("slixmpp").setLevel(logging.ERROR)

MessageHandler = Callable[["BenchClient", Message], None]


def stanza_kind(tag: str, stype: str | None, has_body: bool) -> str:
    """A stanza's kind for the benchmarks' counts: ``message/chat body``, ``message/chat
    no body`` (chat states, receipts), ``presence/available``, ``presence/unavailable``,
    ``iq/get``... (`tag` may carry its namespace, ``{jabber:client}message``)."""
    name = tag.rsplit("}", 1)[-1]
    kind = f"{name}/{stype or ('available' if name == 'presence' else 'normal')}"
    if name == "message":
        kind += " body" if has_body else " no body"
    return kind


def token_of(body: str) -> str:
    """The token of a benchmark message: ``m:<token> text`` or ``r:<token> text``."""
    return body[2:].split(" ", 1)[0]


class BenchClient:
    def __init__(self, jid: str, password: str, host: str, port: int) -> None:
        self.jid = jid
        self.password = password
        self.host = host
        self.port = port
        self.xmpp: ClientXMPP | None = None
        self.received = 0
        self.sent = 0
        # Every stanza this client read from / wrote to the server, by kind (see
        # `stanza_kind`): what the server routed for it.
        self.stanzas_in: Counter[str] = Counter()
        self.stanzas_out: Counter[str] = Counter()

    def on_message(self, msg: Message) -> None:  # overridden
        pass

    def _handle(self, msg: Message) -> None:
        if msg["type"] in ("chat", "normal") and msg["body"]:
            self.received += 1
            self.on_message(msg)

    async def connect(self, timeout: float = 20) -> None:
        plugin_config = {
            "feature_mechanisms": {"unencrypted_scram": True, "unencrypted_plain": True}
        }
        xmpp = ClientXMPP(self.jid, self.password, plugin_config=plugin_config)
        xmpp.enable_direct_tls = False
        xmpp.enable_starttls = False
        xmpp.enable_plaintext = True
        xmpp.auto_authorize = True
        xmpp.auto_subscribe = True
        xmpp.register_plugin("xep_0199")
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def on_start(_event: Any) -> None:
            try:
                xmpp.send_presence()
                await xmpp.get_roster()
            except Exception as exc:
                if not ready.done():
                    ready.set_exception(exc)
                return
            if not ready.done():
                ready.set_result(None)

        def on_failed(_event: Any) -> None:
            if not ready.done():
                ready.set_exception(RuntimeError(f"{self.jid}: authentication failed"))

        xmpp.add_event_handler("session_start", on_start)
        xmpp.add_event_handler("failed_all_auth", on_failed)
        xmpp.add_event_handler("message", self._handle)
        xmpp.add_filter("in", self._count_in)
        xmpp.add_filter("out", self._count_out)
        self.xmpp = xmpp
        xmpp.connect(self.host, self.port)
        try:
            await asyncio.wait_for(ready, timeout)
        except BaseException:
            xmpp.abort()
            raise

    def _count_in(self, stanza: Any) -> Any:
        self.stanzas_in[_kind_of(stanza)] += 1
        return stanza

    def _count_out(self, stanza: Any) -> Any:
        self.stanzas_out[_kind_of(stanza)] += 1
        return stanza

    def send(self, to: str | JID, body: str) -> None:
        assert self.xmpp is not None
        self.xmpp.send_message(mto=JID(to), mbody=body, mtype="chat")
        self.sent += 1

    async def disconnect(self) -> None:
        xmpp, self.xmpp = self.xmpp, None
        if xmpp is None:
            return
        try:
            await asyncio.wait_for(xmpp.disconnect(wait=1.0), 3)
        except Exception:
            pass
        finally:
            xmpp.abort()


def _kind_of(stanza: Any) -> str:
    xml = stanza.xml
    has_body = any(child.tag.endswith("}body") for child in xml)
    return stanza_kind(xml.tag, xml.get("type"), has_body)


def count_stanzas(clients: Sequence[BenchClient]) -> tuple[Counter[str], Counter[str]]:
    """What `clients` read from and wrote to the server so far, by kind, summed."""
    into: Counter[str] = Counter()
    out: Counter[str] = Counter()
    for client in clients:
        into.update(client.stanzas_in)
        out.update(client.stanzas_out)
    return into, out


class BenchOperator(BenchClient):
    """See the module docstring. `arrivals` maps tokens to the time the operator got them
    (for the one-way patron → operator leg)."""

    def __init__(
        self, jid: str, password: str, host: str, port: int, index: int, team: int
    ) -> None:
        super().__init__(jid, password, host, port)
        self.index = index
        self.team = team
        self.seen: set[str] = set()
        self.accepted = 0
        self.arrivals: dict[str, float] = {}
        self.unexpected: list[str] = []

    def mine(self, guest: str) -> bool:
        return zlib.crc32(guest.encode()) % self.team == self.index

    def on_message(self, msg: Message) -> None:
        body: str = msg["body"]
        guest = msg["from"].bare
        if body.startswith("m:"):
            self.arrivals[token_of(body)] = time.perf_counter()
            self.send(guest, "r:" + body[2:])
            return
        if guest not in self.seen:
            # The first line from a new guest JID is the ring-all offer.
            self.seen.add(guest)
            if self.mine(guest):
                self.accepted += 1
                self.send(guest, "!accept")
        elif body.startswith("⚠") and len(self.unexpected) < 20:
            self.unexpected.append(body[:200])


class EchoClient(BenchClient):
    """The floor's far end: answers ``m:`` lines at once, as `BenchOperator` does."""

    def on_message(self, msg: Message) -> None:
        body: str = msg["body"]
        if body.startswith("m:"):
            self.send(msg["from"], "r:" + body[2:])


class FloorSender(BenchClient):
    """The floor's near end: `on_reply(token, t)` is called for every ``r:`` line."""

    def __init__(
        self, jid: str, password: str, host: str, port: int, on_reply: Callable[[str, float], None]
    ) -> None:
        super().__init__(jid, password, host, port)
        self.on_reply = on_reply

    def on_message(self, msg: Message) -> None:
        body: str = msg["body"]
        if body.startswith("r:"):
            self.on_reply(token_of(body), time.perf_counter())
