"""What operators read, within the stanza size limit: message bodies and offers.

Pure text functions used by the XMPP adapter (`component.xmpp`): no stanza is larger than
`[xmpp] max_stanza_bytes` as written (escaped, UTF-8), or the server would close the
component stream. Long texts are sent in numbered parts or cut (offers summarise long
histories), and the operator is told.
"""

from __future__ import annotations

from component.core.events import ChatOffered
from component.core.models import EventKind, Sender
from component.core.text import clip_to_bytes, split_to_bytes, xml_text_bytes

# Room kept in every stanza for what is not user text: the element names, namespaces,
# addresses (an operator's full JID may reach 3 KiB), id, type and nick.
ENVELOPE_BYTES = 8 * 1024
# Budgets, in escaped UTF-8 bytes, of the short fields that carry user text.
NICK_BYTES = 256
STATUS_BYTES = 1024
ERROR_TEXT_BYTES = 1024
# The most stanzas one chat line or command answer is split into before it is cut, and the
# most an offer's history may take.
MAX_PARTS = 8
MAX_OFFER_PARTS = 3


def message_bodies(text: str, limit: int) -> list[str]:
    """`text` (already free of XML-illegal characters) in as many bodies of at most
    `limit` bytes as it needs, at most `MAX_PARTS`; past that it is cut and says so.
    Called by the adapter for every chat line and command answer it writes."""
    if xml_text_bytes(text) <= limit:
        return [text]
    parts = split_to_bytes(text, limit - 64)
    if len(parts) > MAX_PARTS:
        parts = parts[:MAX_PARTS]
        note = f"[Cut: too long for chat; {MAX_PARTS} parts shown.]"
        parts[-1] = clip_to_bytes(parts[-1], limit - 64 - xml_text_bytes(note) - 1)
        parts[-1] += "\n" + note
    count = len(parts)
    return [f"({n}/{count}) {part}" for n, part in enumerate(parts, 1)]


def patron_nick(queue: str) -> str:
    """The nick (XEP-0172) an offer carries, so clients name the guest JID's contact."""
    return f"Patron ({queue})"


def offer_text(event: ChatOffered) -> str:
    """The message an operator gets with an offer: what it is, how to take it, and the
    conversation so far (a transferred chat brings its history along)."""
    return "\n".join([_offer_header(event), *_history_lines(event)])


def offer_bodies(event: ChatOffered, max_bytes: int) -> list[str]:
    """The offer as message bodies of at most `max_bytes` each (escaped, UTF-8), for
    the adapter. A short one is `offer_text` in one body. A long history goes in up to
    `MAX_OFFER_PARTS` parts: each line is cut to a quarter of a part, and if that is still
    too much, the first line (the question) and the newest lines are kept and the ones
    between are left out. The first body says what was done."""
    text = offer_text(event)
    if xml_text_bytes(text) <= max_bytes:
        return [text]
    room = max_bytes - 512  # for the header and the part labels
    lines = _history_lines(event)
    clipped = [clip_to_bytes(line, room // 4) for line in lines]
    cut = sum(1 for a, b in zip(lines, clipped, strict=True) if a != b)
    sizes = [xml_text_bytes(line) + 1 for line in clipped]
    # Parts are packed at line breaks and no line is over a quarter of a part, so each
    # part holds at least three quarters of its room: budget a little under that.
    budget = room * MAX_OFFER_PARTS * 7 // 10
    left_out = 0
    if sum(sizes) > budget:
        # Keep the first line and as many of the newest as fit.
        keep_from = len(clipped)
        used = sizes[0] + 200
        while keep_from > 1 and used + sizes[keep_from - 1] <= budget:
            keep_from -= 1
            used += sizes[keep_from]
        left_out = keep_from - 1
        clipped = [
            clipped[0],
            f"[… {left_out} earlier lines not shown; the transcript has them all …]",
            *clipped[keep_from:],
        ]
    parts = split_to_bytes("\n".join(clipped), room)[:MAX_OFFER_PARTS]
    notes = []
    if left_out:
        notes.append(f"{left_out} lines not shown")
    if cut:
        notes.append(f"{cut} long lines cut")
    if len(parts) > 1:
        notes.append(f"history in {len(parts)} parts")
    summary = f"Long history: {', '.join(notes)}." if notes else ""
    header = "\n".join(filter(None, [_offer_header(event), summary]))
    bodies = [f"{header}\n{parts[0]}"]
    bodies += [f"(history part {n}/{len(parts)})\n{p}" for n, p in enumerate(parts[1:], 2)]
    return bodies


def _offer_header(event: ChatOffered) -> str:
    how = f" ({event.via})" if event.via else ""
    return (
        f"New chat in {event.queue_title} ({event.queue}){how}. Reply to take it, or send !accept."
    )


def _history_lines(event: ChatOffered) -> list[str]:
    lines = []
    for e in event.history:
        if e.kind is EventKind.NOTE:
            lines.append(f"[note by {e.name}] {e.text}")
        elif e.sender is Sender.PATRON:
            lines.append(f"Patron: {e.text}")
        elif e.sender is Sender.OPERATOR:
            lines.append(f"{e.name}: {e.text}")
        elif e.kind is EventKind.MESSAGE:
            lines.append(f"— {e.text}")
    return lines
