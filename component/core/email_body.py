"""Email bodies: blocks of content, each rendered once as plain text and once as HTML.

The builders of `component.core.emails` describe a message as a list of blocks (a
paragraph, someone's own words, label/value rows, a transcript); `plain_text` and
`html_page` render them. Everything people typed is escaped in the HTML part and kept
verbatim in the plain part. Pure: no I/O.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from component.core.email_text import as_utc, body_text, single_line


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """One line of a chat as shown in an email: when, who said it (a display name such as
    "You", "Anna (librarian)" or "refdesk"), and what they said."""

    ts: datetime
    who: str
    text: str


@dataclass(frozen=True, slots=True)
class Para:
    text: str


@dataclass(frozen=True, slots=True)
class Quote:
    """Someone's own words (a question, a note, an alert), kept verbatim."""

    label: str
    text: str


@dataclass(frozen=True, slots=True)
class Fields:
    rows: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Transcript:
    label: str
    lines: tuple[TranscriptLine, ...]
    tz: tzinfo
    # After the label: the time zone of the times, in the reader's language.
    times: str = "(times in {zone})"


Block = Para | Quote | Fields | Transcript


def _html_text(text: str) -> str:
    return html.escape(body_text(text)).replace("\n", "<br>\n")


def _zone_name(tz: tzinfo, when: datetime) -> str:
    return tz.tzname(when.astimezone(tz)) or "UTC"


def _transcript_rows(block: Transcript) -> Iterable[tuple[date | None, str, str, str]]:
    """(new date or None, time, who, text) for each line, in the block's time zone."""
    day: date | None = None
    for line in block.lines:
        local = as_utc(line.ts).astimezone(block.tz)
        new_day = local.date() if local.date() != day else None
        day = local.date()
        yield new_day, local.strftime("%H:%M"), single_line(line.who, 100), body_text(line.text)


def _transcript_heading(block: Transcript) -> str:
    if not block.lines:
        return block.label
    zone = _zone_name(block.tz, as_utc(block.lines[0].ts))
    return f"{block.label} {block.times.format_map({'zone': zone})}"


def plain_text(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Para):
            out.append(body_text(block.text))
        elif isinstance(block, Quote):
            out.append(f"{block.label}\n\n{body_text(block.text)}")
        elif isinstance(block, Fields):
            out.append("\n".join(f"{label}: {single_line(value)}" for label, value in block.rows))
        else:
            lines = [_transcript_heading(block)]
            for new_day, hhmm, who, text in _transcript_rows(block):
                if new_day is not None:
                    lines.append(f"-- {new_day.isoformat()} --")
                # Continuation lines are indented so a multi-line message stays readable
                # as one entry.
                lines.append(f"[{hhmm}] {who}: " + text.replace("\n", "\n    "))
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


# One small style sheet instead of inline styles: clients that drop it still show plain,
# readable HTML.
_CSS = (
    "body{font-family:sans-serif;line-height:1.4}"
    "blockquote{margin:0 0 1em 0;padding:.5em 1em;border-left:3px solid #888}"
    "th,td{padding:2px 8px 2px 0;vertical-align:top;text-align:left}"
    ".t{color:#666}"
)


def html_page(title: str, blocks: Sequence[Block], lang: str = "en") -> str:
    """The HTML part; `lang` is one of refdesk's language codes (never typed by anyone)."""
    out = [
        "<!DOCTYPE html>",
        f'<html lang="{html.escape(lang)}"><head><meta charset="utf-8">',
        f"<title>{html.escape(single_line(title))}</title>",
        f"<style>{_CSS}</style></head>",
        "<body>",
    ]
    for block in blocks:
        if isinstance(block, Para):
            out.append(f"<p>{_html_text(block.text)}</p>")
        elif isinstance(block, Quote):
            out.append(f"<p><strong>{html.escape(block.label)}</strong></p>")
            out.append(f"<blockquote>{_html_text(block.text)}</blockquote>")
        elif isinstance(block, Fields):
            out.append("<table>")
            for label, value in block.rows:
                out.append(
                    f"<tr><th>{html.escape(label)}</th>"
                    f"<td>{html.escape(single_line(value))}</td></tr>"
                )
            out.append("</table>")
        else:
            out.append(f"<p><strong>{html.escape(_transcript_heading(block))}</strong></p>")
            out.append("<table>")
            for new_day, hhmm, who, text in _transcript_rows(block):
                if new_day is not None:
                    out.append(f'<tr><td colspan="3"><em>{new_day.isoformat()}</em></td></tr>')
                out.append(
                    f'<tr><td class="t">{hhmm}</td><th>{html.escape(who)}</th>'
                    f"<td>{_html_text(text)}</td></tr>"
                )
            out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
