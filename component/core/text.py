"""Rules for text that people type, applied at every edge before it is stored or sent.

XML 1.0 forbids most C0 controls, lone surrogates and U+FFFE/U+FFFF. slixmpp does not
filter them, and one such character on the component stream makes the XMPP server close
the stream for every chat at once, so they are refused (patron input) or removed (our own
output) before anything becomes a stanza.
"""

from __future__ import annotations

import re

# Everything outside the XML 1.0 Char production:
# #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class TextRejected(ValueError):
    """Raised by `clean_message` with a machine code and a sentence for the writer."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def find_xml_illegal(text: str) -> str | None:
    """Return the first character that XML cannot carry, or None."""
    match = _XML_ILLEGAL.search(text)
    return match.group(0) if match else None


def strip_xml_illegal(text: str) -> str:
    """Remove characters XML cannot carry; the XMPP adapter's last guard on outgoing text."""
    return _XML_ILLEGAL.sub("", text)


def one_line(text: str) -> str:
    """`text` made safe to print as one line on a terminal or in a log: line breaks,
    control characters (a terminal would obey escape sequences), lone surrogates and
    anything else unprintable are written as backslash escapes. Used for error messages
    that quote what someone typed (the CLI, the config loader)."""
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def clean_message(text: object, max_chars: int) -> str:
    """Validate a chat message typed by a patron or operator.

    Called by the service before a message is stored. Line endings are normalised and
    surrounding whitespace trimmed; empty, oversized or XML-illegal text is refused with
    `TextRejected` rather than silently altered, so the writer knows what happened.
    """
    if not isinstance(text, str):
        raise TextRejected("bad_text", "The message text must be a string.")
    bad = find_xml_illegal(text)
    if bad is not None:
        raise TextRejected(
            "illegal_characters",
            f"The message contains a character that cannot be sent (U+{ord(bad):04X}).",
        )
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise TextRejected("empty_message", "The message is empty.")
    if len(text) > max_chars:
        raise TextRejected(
            "message_too_long",
            f"The message is too long ({len(text)} characters; the limit is {max_chars}).",
        )
    return text
