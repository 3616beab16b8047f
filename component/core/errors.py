"""Domain errors. The service raises them; each transport turns them into its own error
form in one place (an XMPP error stanza or chat reply; a WebSocket error frame)."""

from __future__ import annotations


class DeskError(Exception):
    """Base class: `code` is stable for programs, `text` is a sentence for people."""

    code = "error"

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class UnknownQueue(DeskError):
    code = "unknown_queue"


class UnknownChat(DeskError):
    code = "unknown_chat"


class NotAnOperator(DeskError):
    """The sender is not a registered operator (of this queue)."""

    code = "forbidden"


class NotYourChat(DeskError):
    """An operator wrote into a chat that another operator has."""

    code = "not_allowed"


class ChatClosed(DeskError):
    code = "chat_ended"


class BadCommand(DeskError):
    """An unknown command or a bad argument: answered as a chat line, not an error stanza."""

    code = "bad_command"


class TooFast(DeskError):
    """An operator's line refused by a rate limit (nothing was sent)."""

    code = "rate_limited"


class InvalidInput(DeskError):
    """Patron or operator input refused by the text rules."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
