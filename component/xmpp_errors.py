"""How a domain error reaches the operator over XMPP.

Used by the XMPP adapter (`component.xmpp`, answering a message) and its ad-hoc commands
(`component.xmpp_adhoc`, answering a command), so both map the same error the same way.
"""

from __future__ import annotations

from component.core.errors import (
    BadCommand,
    ChatClosed,
    DeskError,
    InvalidInput,
    NotAnOperator,
    NotYourChat,
    TooFast,
    UnknownQueue,
)
from component.core.text import clip_to_bytes, strip_xml_illegal
from component.xmpp_bodies import ERROR_TEXT_BYTES

# (error type, condition) for each domain error, or None for a plain chat reply. The rule:
# if the message was not delivered, it is an error stanza (clients mark the message as
# failed); if a command was understood and refused, it is a reply.
ERROR_CONDITIONS: dict[type[DeskError], tuple[str, str] | None] = {
    NotAnOperator: ("auth", "forbidden"),
    NotYourChat: ("cancel", "not-allowed"),
    ChatClosed: ("cancel", "item-not-found"),
    UnknownQueue: ("cancel", "item-not-found"),
    InvalidInput: ("modify", "not-acceptable"),
    TooFast: ("wait", "resource-constraint"),
    BadCommand: None,
}


def error_text(exc: DeskError) -> str:
    """The error's text as an XMPP error carries it: legal XML, within its byte budget."""
    return clip_to_bytes(strip_xml_illegal(exc.text), ERROR_TEXT_BYTES)
