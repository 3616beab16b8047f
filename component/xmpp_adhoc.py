"""The queue commands offered as XEP-0050 ad-hoc commands, for XMPP clients with a menu.

They run exactly the `!command` an operator could type to the queue's JID; the XMPP
adapter (`component.xmpp`) registers them on every queue JID.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import slixmpp
from slixmpp.exceptions import XMPPError

from component.core.errors import DeskError
from component.core.text import clip_to_bytes, strip_xml_illegal
from component.service import DeskService
from component.xmpp_errors import ERROR_CONDITIONS, error_text

# (node, name shown in clients' menus).
ADHOC_COMMANDS = (
    ("list", "List waiting and active chats"),
    ("next", "Take the longest-waiting chat"),
    ("who", "Who is on this queue"),
    ("status", "Queue status"),
    ("canned", "Canned messages"),
    ("banpolicy", "Ban policy"),
)

_Handler = Callable[[Any, dict[str, Any]], Awaitable[dict[str, Any]]]


def register_commands(
    xmpp: slixmpp.ComponentXMPP, service: DeskService, domain: str, body_bytes: int
) -> None:
    """Offer the queue commands on every queue JID. Called by the adapter at every session
    start (xep_0050 forgets its commands whenever the stream binds) and directory change;
    the answer's text is cut to `body_bytes`."""
    adhoc = xmpp.plugin["xep_0050"]
    for queue in service.queue_names():
        for name, title in ADHOC_COMMANDS:
            adhoc.add_command(
                jid=f"{queue}@{domain}",
                node=name,
                name=title,
                handler=_handler(service, name, body_bytes),
            )


def _handler(service: DeskService, command: str, body_bytes: int) -> _Handler:
    async def handle(iq: Any, session: dict[str, Any]) -> dict[str, Any]:
        queue = iq["to"].user
        try:
            reply = await service.on_queue_message(iq["from"].bare, queue, f"!{command}")
        except DeskError as exc:
            etype, cond = ERROR_CONDITIONS.get(type(exc)) or ("cancel", "bad-request")
            raise XMPPError(cond, text=error_text(exc), etype=etype) from None  # type: ignore[arg-type]
        session["notes"] = [("info", clip_to_bytes(strip_xml_illegal(reply), body_bytes))]
        session["has_next"] = False
        session["next"] = None
        return session

    return handle
