"""The presence refdesk sends operators, and what it learns from theirs at session start.

Owned by the XMPP adapter (`component.xmpp`), which calls it for every presence it
writes. Two kinds go out:

- From a queue JID: the queue's state, shown in the operator's roster as the contact's
  show and status ("Ask a librarian: available, 2 waiting"). Sent at session start, when
  an operator subscribes or probes, and when the state changes. A change goes only to the
  subscribers refdesk sees online, and only if it differs from what that operator was
  last sent: the server drops presence to an account with no session anyway, and an
  operator's client (re)connecting probes the queue JID and is answered with the state
  then. An operator coming online is also sent the state if they were not sent it yet
  (a client that does not probe), and forgotten when they go offline.
- From a guest JID: the patron connected or gone (`PresenceOut.guest`).

Session start: the adapter probes every subscribed operator. An operator's server answers
with the presence it keeps for them, stamped with when it was set (XEP-0203; Prosody and
ejabberd both stamp it), while a presence the operator just sent carries no stamp. The
first presence from an operator probed then, if stamped, is that answer: the operator was
online before refdesk looked (all along a restart), and `rediscovered` says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from slixmpp.stanza import Presence as PresenceStanza
from slixmpp.xmlstream.stanzabase import StanzaBase

from component.core.models import QueueStatus
from component.core.text import clip_to_bytes, strip_xml_illegal
from component.live import QueueInfo
from component.xmpp_bodies import STATUS_BYTES
from component.xmpp_component import Component

NS_DELAY = "urn:xmpp:delay"

_QUEUE_SHOW: dict[QueueStatus, str | None] = {
    QueueStatus.AVAILABLE: None,
    QueueStatus.BUSY: "dnd",
    QueueStatus.AWAY: "away",
    QueueStatus.OFFLINE: "xa",
}

# (show, status) of a queue JID's presence.
Shown = tuple[str | None, str]


def queue_shown(info: QueueInfo) -> Shown:
    """The show and status text a queue's state is sent as."""
    return _QUEUE_SHOW[info.status], f"{info.title}: {info.status.value}, {info.waiting} waiting"


class PresenceOut:
    """Created once by the adapter. `send` writes a stanza (or keeps it until the stream
    is back); `queue_info` and `is_online` are the service's views of a queue's state and
    of an operator's presence; `subscribers` lists the operators who see a queue's
    presence."""

    def __init__(
        self,
        xmpp: Component,
        domain: str,
        send: Callable[[StanzaBase], None],
        *,
        queue_info: Callable[[str], QueueInfo],
        is_online: Callable[[str], bool],
        subscribers: Callable[[str], list[str]],
    ) -> None:
        self._xmpp = xmpp
        self._domain = domain
        self._send = send
        self._queue_info = queue_info
        self._is_online = is_online
        self._subscribers = subscribers
        # (queue, operator's bare JID) -> what that operator's clients were last sent.
        self._shown: dict[tuple[str, str], Shown] = {}
        # Operators probed at session start whose server has not answered yet.
        self._probed: set[str] = set()

    def send(
        self,
        from_node: str,
        to: str,
        *,
        ptype: str | None = None,
        show: str | None = None,
        status: str | None = None,
    ) -> None:
        """One presence from `from_node`@our domain, as given (subscriptions, probes)."""
        pres = self._xmpp.Presence(sfrom=f"{from_node}@{self._domain}", sto=to)
        if ptype:
            pres["type"] = ptype
        if show:
            pres["show"] = show
        if status:
            pres["status"] = clip_to_bytes(strip_xml_illegal(status), STATUS_BYTES)
        self._send(pres)

    def guest(self, guest: str, operator_jids: Iterable[str], *, available: bool) -> None:
        """Directed presence from a guest JID: available while the patron is connected
        and the chat is offered to or held by these operators, unavailable otherwise, so
        their clients show the patron online or gone instead of an unknown contact."""
        for jid in operator_jids:
            if available:
                self.send(guest, jid, status="Patron connected")
            else:
                self.send(guest, jid, ptype="unavailable")

    def queue(self, queue: str, to: str, info: QueueInfo | None = None) -> None:
        """The queue's state to `to` (a bare or full JID), whatever it was last sent:
        at session start, on a subscription, in answer to a probe."""
        shown = queue_shown(info or self._queue_info(queue))
        self._shown[(queue, to.split("/", 1)[0])] = shown
        self._write(queue, to, shown)

    def queue_changed(self, queue: str) -> None:
        """The queue's state changed (`QueueStatusChanged`): tell each subscriber online
        whose clients show something else. Computed once for all of them."""
        shown = queue_shown(self._queue_info(queue))
        for jid in self._subscribers(queue):
            if self._is_online(jid):
                self._update(queue, jid, shown)

    def operator_changed(self, jid: str, queues: Iterable[str], *, was_online: bool) -> None:
        """After the service handled an operator's presence: one who came online is sent
        each subscribed queue's state their clients were not sent yet (a probe usually
        got there first); one who went offline is forgotten (their next session starts
        from nothing and probes)."""
        online = self._is_online(jid)
        if online and not was_online:
            for queue in queues:
                if jid in self._subscribers(queue):
                    self._update(queue, jid, queue_shown(self._queue_info(queue)))
        elif was_online and not online:
            for queue in queues:
                self._shown.pop((queue, jid), None)

    def _update(self, queue: str, jid: str, shown: Shown) -> None:
        """Send `shown` to the operator `jid` (bare) unless their clients show it already."""
        if self._shown.get((queue, jid)) != shown:
            self._shown[(queue, jid)] = shown
            self._write(queue, jid, shown)

    def _write(self, queue: str, to: str, shown: Shown) -> None:
        self.send(queue, to, show=shown[0], status=shown[1])

    def session_started(self) -> None:
        """A new stream: what was shown and who was probed belong to the old one. Called
        by the adapter before it announces the queues again."""
        self._shown.clear()
        self._probed.clear()

    def probe(self, queue: str, jid: str, *, at_start: bool) -> None:
        """Ask `jid`'s server for their presence; `at_start` for the probes of session
        start, whose answers are `rediscovered`."""
        self.send(queue, jid, ptype="probe")
        if at_start:
            self._probed.add(jid)

    def rediscovered(self, sender: str, pres: PresenceStanza) -> bool:
        """Whether this presence from `sender` (a bare JID) answers a session-start probe
        (see the module): only the first presence from a probed operator can, and only if
        their server stamped it."""
        if sender not in self._probed:
            return False
        self._probed.discard(sender)
        return pres.xml.find(f"{{{NS_DELAY}}}delay") is not None


__all__ = ["NS_DELAY", "PresenceOut", "queue_shown"]
