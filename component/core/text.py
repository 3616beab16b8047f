"""Rules for text that people type, applied at every edge before it is stored or sent.

XML 1.0 forbids most C0 controls, lone surrogates and U+FFFE/U+FFFF. slixmpp does not
filter them, and one such character on the component stream makes the XMPP server close
the stream for every chat at once, so they are refused (patron input) or removed (our own
output) before anything becomes a stanza.
"""

from __future__ import annotations

import re

# Everything outside the XML 1.0 Char production (which also covers lone surrogates, which
# cannot be encoded at all); the one copy of the rule, used for chat and email text alike:
# #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]
XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class TextRejected(ValueError):
    """Raised by `clean_message` with a machine code and a sentence for the writer."""

    def __init__(self, code: str, text: str, *, char: str = "", length: int = 0) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.char = char  # the refused character, for `illegal_characters`
        self.length = length  # the text's length, for `message_too_long`


MAX_TITLE_CHARS = 200
# Line breaks and other controls (C0, DEL, C1 with NEL, the Unicode line and paragraph
# separators that some software treats as line breaks): refused in one-line text (titles,
# names, addresses, anything that may reach a header).
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean_title(text: str, max_chars: int = MAX_TITLE_CHARS) -> str:
    """Check a title typed by an admin or coordinator (of a group, queue or link), or a
    patron's name on the email form, and return it trimmed; raise `TextRejected` with a
    sentence for them otherwise.

    Called by the command line and the admin page before a title is stored, and by
    `component.core.email_input.validate_name`. Queue titles
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
    bad = CONTROL.search(title) or XML_ILLEGAL.search(title)
    if bad:
        raise TextRejected(
            "illegal_characters",
            f"The title must be on one line, with printable characters only "
            f"(not U+{ord(bad.group(0)):04X}).",
            char=bad.group(0),
        )
    if "=?" in title:
        raise TextRejected("encoded_word", 'The title cannot contain "=?".')
    return title


def find_xml_illegal(text: str) -> str | None:
    """Return the first character that XML cannot carry, or None."""
    match = XML_ILLEGAL.search(text)
    return match.group(0) if match else None


def strip_xml_illegal(text: str) -> str:
    """Remove characters XML cannot carry; the XMPP adapter's last guard on outgoing text."""
    return XML_ILLEGAL.sub("", text)


def one_line(text: str) -> str:
    """`text` made safe to print as one line on a terminal or in a log: line breaks,
    control characters (a terminal would obey escape sequences), lone surrogates and
    anything else unprintable are written as backslash escapes. Used for error messages
    that quote what someone typed (the CLI, the config loader)."""
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def clean_message(text: object, max_chars: int, *, refuse: re.Pattern[str] | None = None) -> str:
    """Validate free text typed by a person: a chat message (patron or operator), a
    feedback comment, a question or note for email (`component.core.email_input`, which
    also refuses the control characters of `refuse` and words the refusals for a form).

    Called by the service and the web layer before the text is stored. Line endings are
    normalised and surrounding whitespace trimmed; empty, oversized or XML-illegal text is
    refused with `TextRejected` rather than silently altered, so the writer knows what
    happened.
    """
    if not isinstance(text, str):
        raise TextRejected("bad_text", "The message text must be a string.")
    bad = XML_ILLEGAL.search(text) or (refuse.search(text) if refuse is not None else None)
    if bad is not None:
        char = bad.group(0)
        raise TextRejected(
            "illegal_characters",
            f"The message contains a character that cannot be sent (U+{ord(char):04X}).",
            char=char,
        )
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise TextRejected("empty_message", "The message is empty.")
    if len(text) > max_chars:
        raise TextRejected(
            "message_too_long",
            f"The message is too long ({len(text)} characters; the limit is {max_chars}).",
            length=len(text),
        )
    return text


# Bytes that slixmpp's escaping adds to each of these characters in character data and
# attribute values: & -> &amp; < -> &lt; > -> &gt; " -> &quot; ' -> &apos;
_ESCAPE_EXTRA = {"&": 4, "<": 3, ">": 3, '"': 5, "'": 5}


def xml_text_bytes(text: str) -> int:
    """The size in bytes of `text` once escaped as XML and encoded as UTF-8, as it goes
    onto the XMPP stream. The adapter budgets stanzas with it (servers count bytes on the
    wire, where one `"` weighs six)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    for char, extra in _ESCAPE_EXTRA.items():
        size += extra * text.count(char)
    return size


def clip_to_bytes(text: str, max_bytes: int, marker: str = " […]") -> str:
    """`text` unchanged if it fits `max_bytes` (escaped, UTF-8), else its longest prefix
    that fits together with `marker`. Called wherever user text goes into a stanza field
    that has a fixed budget (nicknames, presence status, error text, history lines)."""
    if xml_text_bytes(text) <= max_bytes:
        return text
    room = max_bytes - xml_text_bytes(marker)
    if room <= 0:
        return ""
    # The escaped size of a prefix grows with its length: binary search the longest one.
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if xml_text_bytes(text[:mid]) <= room:
            low = mid
        else:
            high = mid - 1
    return text[:low] + marker


def split_to_bytes(text: str, max_bytes: int) -> list[str]:
    """Cut `text` into consecutive parts of at most `max_bytes` each (escaped, UTF-8),
    at line breaks where a line fits, else inside the line. Joined with "\\n" (at the line
    breaks) or "" (inside a line) they give back the text. Called by the XMPP adapter for
    bodies too large for one stanza."""
    if max_bytes < 8:
        raise ValueError("max_bytes is too small to carry any character")
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.split("\n"):
        line_size = xml_text_bytes(line)
        joiner = 1 if current else 0
        if size + joiner + line_size <= max_bytes:
            current.append(line)
            size += joiner + line_size
            continue
        if current:
            parts.append("\n".join(current))
            current, size = [], 0
        while xml_text_bytes(line) > max_bytes:
            head = clip_to_bytes(line, max_bytes, marker="")
            parts.append(head)
            line = line[len(head) :]
        current, size = [line], xml_text_bytes(line)
    if current or not parts:
        parts.append("\n".join(current))
    return parts
