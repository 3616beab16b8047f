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


MAX_TITLE_CHARS = 200
# Line breaks and other controls (C0, DEL, C1, the Unicode line and paragraph separators).
_TITLE_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean_title(text: str, max_chars: int = MAX_TITLE_CHARS) -> str:
    """Check a title typed by an admin or coordinator (of a group, queue or link) and
    return it trimmed; raise `TextRejected` with a sentence for them otherwise.

    Called by the command line and the admin page before a title is stored. Queue titles
    go into email subjects and sender names, so besides characters XML cannot carry, line
    breaks, other control characters and "=?" (which starts an RFC 2047 encoded word, one
    that mail software decodes into any characters at all) are refused. The email builders
    neutralise all of these anyway; refusing them here tells the person at once.
    """
    title = text.strip()
    if not title:
        raise TextRejected("empty_title", "Enter a title.")
    if len(title) > max_chars:
        raise TextRejected("title_too_long", f"The title must be at most {max_chars} characters.")
    bad = _TITLE_CONTROL.search(title) or _XML_ILLEGAL.search(title)
    if bad:
        raise TextRejected(
            "illegal_characters",
            f"The title must be on one line, with printable characters only "
            f"(not U+{ord(bad.group(0)):04X}).",
        )
    if "=?" in title:
        raise TextRejected("encoded_word", 'The title cannot contain "=?".')
    return title


def find_xml_illegal(text: str) -> str | None:
    """Return the first character that XML cannot carry, or None."""
    match = _XML_ILLEGAL.search(text)
    return match.group(0) if match else None


def strip_xml_illegal(text: str) -> str:
    """Remove characters XML cannot carry; the XMPP adapter's last guard on outgoing text."""
    return _XML_ILLEGAL.sub("", text)


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
