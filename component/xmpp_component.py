"""slixmpp's component stream, as the XMPP adapter (`component.xmpp`) uses it: its send
queue's accounting kept right across a lost connection, and the stanzas of the hot path
(confirmation answers, operators' chat lines) dispatched without slixmpp's general
matching. Created by `XmppAdapter.__init__`."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable

import slixmpp

log = logging.getLogger(__name__)

NS_COMPONENT = "jabber:component:accept"
_MESSAGE_TAG = f"{{{NS_COMPONENT}}}message"
_BODY_TAG = f"{{{NS_COMPONENT}}}body"
# The message types whose body is a line (no type means "normal").
_LINE_TYPES = frozenset({"chat", "normal", None})


class Component(slixmpp.ComponentXMPP):
    """slixmpp's component, with its send queue's accounting kept right."""

    def _reset_sendq(self) -> None:
        # Called by slixmpp when the connection is lost: it discards the stanzas still
        # queued without marking them done, so `waiting_queue.join()` (`drained`, and
        # slixmpp's own `disconnect`) would never return again, only time out. The
        # discarded stanzas are not lost to refdesk: `Delivery` writes again whatever the
        # server did not confirm.
        discarded = self.waiting_queue.qsize()
        super()._reset_sendq()
        for _ in range(discarded):
            self.waiting_queue.task_done()

    # Set by the adapter to `Delivery.take_raw_answer`.
    take_raw: Callable[[ET.Element], bool] | None = None

    def _spawn_event(self, xml: ET.Element) -> None:
        # Called by slixmpp for each stanza parsed from the stream. The answers to
        # confirmation pings (one per line at a chat's pace) are taken as parsed XML,
        # before slixmpp builds a stanza object, runs the filters and matches handlers.
        if self.take_raw is not None and self.take_raw(xml):
            return
        if (
            xml.tag == _MESSAGE_TAG
            and xml.get("type") in _LINE_TYPES
            and xml.find(_BODY_TAG) is not None
        ):
            # An operator's chat line. Of slixmpp's handlers only "IM" acts on a chat
            # message with a body (it raises the 'message' event); the others look for
            # disco, ad-hoc, pubsub, ping, caps and chat states (refdesk ignores the chat
            # state of a message with a body). Matching all of them cost more than half
            # of parsing and dispatching the line.
            try:
                stanza = self._build_stanza(xml)
            except Exception:
                log.exception("unusable message stanza: %.200s", ET.tostring(xml))
                return
            self.event("message", stanza)
            return
        super()._spawn_event(xml)
