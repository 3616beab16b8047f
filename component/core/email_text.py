"""Text made safe for an email: for a body, for a one-line field, for a header value.

Pure helpers shared by the parts of `component.core.emails` (patron input checks, bodies,
headers); the rules are in that module's docstring.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from component.core.text import XML_ILLEGAL

# The longest display name kept in a header (a patron's name from the offline form).
MAX_NAME_CHARS = 100

CONTROL_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# For header text: any run of line breaks, tabs and other control characters becomes one
# space. Ordinary and non-breaking spaces are left alone, so a valid name is unchanged.
_HEADER_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def body_text(text: str) -> str:
    """Text for a body: newlines normalised, control characters other than tab and newline
    removed (validated input has none; this guards text from other places)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return XML_ILLEGAL.sub("", CONTROL_IN_TEXT.sub("", text))


def _flatten(text: str) -> str:
    """Characters XML cannot carry dropped, every break or control run made one space."""
    return _HEADER_BREAKS.sub(" ", XML_ILLEGAL.sub("", text)).strip()


def _clip(text: str, limit: int | None) -> str:
    """`text`, cut to `limit` characters ending in "…" when it is longer."""
    if limit is not None and len(text) > limit:
        return text[: limit - 1].rstrip() + "…"
    return text


def single_line(text: str, limit: int | None = None) -> str:
    """Text for a one-line field of a body (a name, a page address, a transcript's
    speaker): every break or control run becomes a space. Called by the body renderer and
    the builders."""
    return _clip(_flatten(text), limit)


def header_text(text: str, limit: int | None = None) -> str:
    """Free text made safe for a header value: what every name, title and subject part
    goes through before a builder sets it (see the module docstring).

    Line breaks, tabs and other control characters become one space and characters XML
    cannot carry are dropped; then ``=?`` becomes ``= ?``, so no encoded word can start
    anywhere (the replacement cannot create a new ``=?``, and it runs last so that removing
    a character cannot either). With `limit`, longer text is cut and ends with "…".
    Called by the builders of `component.core.emails` and by `put_header`; also usable by
    anything else that writes a header.
    """
    return _clip(_flatten(text).replace("=?", "= ?"), limit)


def as_utc(ts: datetime) -> datetime:
    """The time, aware; used by the builders (the Date header) and the body renderer
    (transcript times)."""
    # A naive time is taken as UTC: the store keeps UTC, and guessing the machine's local
    # zone would make the email depend on where refdesk runs.
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
