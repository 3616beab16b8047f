"""Every email refdesk sends, built as `EmailMessage` objects, and the checks on what
patrons type into the email form.

Pure: no I/O and nothing of ours is imported. The service builds a message here, the outbox
stores `render_bytes(message)` and the mailer sends it.

Safety rules that every builder follows:

- Each message is multipart/alternative: plain text first, then simple HTML. Everything
  that came from a patron, an operator or an admin (names, questions, chat lines, notes,
  queue titles, page addresses) goes through `html.escape` in the HTML part and is kept
  verbatim in the plain part.
- Every header value goes through `header_text` (free text: names, queue titles, alert
  lines) and is set by one function, `_put`; `render_bytes` then reads its own output back
  and refuses a message whose headers are not exactly the ones set. `header_text` turns
  line breaks and control characters into spaces and breaks up RFC 2047 encoded-word
  syntax (``=?``): the standard library decodes an encoded word found in a value it is
  given and writes the decoded text out raw, so ``=?utf-8?q?A=0D=0AX-Evil:_1?=`` would
  otherwise become a line break and a header of the attacker's choosing.
- Bodies are always encoded 7-bit clean (quoted-printable or base64 where needed), so any
  SMTP server can carry them; only a non-ASCII address needs the SMTPUTF8 extension.

Address policy: see `component.core.validators.email_address`, which `validate_address`
wraps (the one address check of the whole project).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import EmailPolicy
from email.utils import make_msgid
from typing import Literal

from component.core import validators

__all__ = [
    "ADDRESS_HELP",
    "MAX_ADDRESS_CHARS",
    "MAX_NAME_CHARS",
    "AddressError",
    "FieldError",
    "HeaderInjection",
    "TranscriptLine",
    "ban_notice",
    "envelope_recipients",
    "envelope_sender",
    "facility_contact",
    "header_text",
    "needs_smtputf8",
    "offline_ticket",
    "on_call_alert",
    "parse_bytes",
    "referral",
    "render_bytes",
    "staff_notice",
    "ticket_confirmation",
    "transcript_copy",
    "validate_address",
    "validate_name",
    "validate_question",
]

ADDRESS_HELP = validators.ADDRESS_HELP
MAX_ADDRESS_CHARS = validators.MAX_ADDRESS_CHARS
MAX_NAME_CHARS = 100
# Subjects stay readable on a phone; the full text is always in the body.
_MAX_SUBJECT_PART_CHARS = 120
_SUBJECT_TAG = "refdesk"

Field = Literal["email", "name", "question"]

# Messages are built with 7-bit body encoding so the stored bytes can go to any server.
_BUILD_POLICY = policy.default.clone(cte_type="7bit")
_WIRE_ASCII = policy.SMTP.clone(cte_type="7bit")
_WIRE_UTF8 = policy.SMTPUTF8.clone(cte_type="7bit")

# Everything outside the XML 1.0 Char production (the same rule as the chat text), which
# also covers lone surrogates that cannot be encoded at all.
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# C0 controls, DEL and C1 controls (NEL included), plus the Unicode line and paragraph
# separators that some software treats as line breaks.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# For header text: any run of line breaks, tabs and other control characters becomes one
# space. Ordinary and non-breaking spaces are left alone, so a valid name is unchanged.
_HEADER_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_ADDRESS_HEADERS = (
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
    "resent-bcc",
)


# --- patron input ------------------------------------------------------------------------


class FieldError(ValueError):
    """A form field refused, with the field's name and a sentence for the person who typed it.

    The web layer turns it into ``400 {"error": message, "field": field}``.
    """

    def __init__(self, field: Field, message: str) -> None:
        super().__init__(message)
        self.field: Field = field
        self.message = message


class AddressError(FieldError):
    """An email address refused by `validate_address`; always about the ``email`` field."""

    def __init__(self, message: str = ADDRESS_HELP) -> None:
        super().__init__("email", message)


def validate_address(text: object) -> str:
    """Check one mailbox address typed by a patron (offline form, transcript request) or an
    admin (queue follow-up and referral addresses, `!refer` targets) and return it cleaned.

    Called at the edge, before anything is stored or put in a message. A thin wrapper of
    `component.core.validators.email_address` (the one address check everywhere; its
    docstring gives the policy) that raises `AddressError`, about the ``email`` field.
    """
    if not isinstance(text, str):
        raise AddressError()
    try:
        return validators.email_address(text)
    except ValueError as exc:
        raise AddressError(str(exc)) from None


def validate_name(text: object) -> str | None:
    """Check the optional display name from the offline form; None when left empty.

    Called by the web layer before a ticket is created. The name ends up in a Reply-To
    header, so line breaks, other control characters and the start of an RFC 2047 encoded
    word (``=?``, which mail software decodes into any characters at all) are refused, not
    repaired.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise FieldError("name", "The name must be text.")
    if "\r" in text or "\n" in text:
        raise FieldError("name", "Please write your name on one line.")
    text = text.strip()
    if not text:
        return None
    if len(text) > MAX_NAME_CHARS:
        raise FieldError(
            "name", f"That name is too long (the limit is {MAX_NAME_CHARS} characters)."
        )
    bad = _CONTROL.search(text) or _XML_ILLEGAL.search(text)
    if bad:
        raise FieldError(
            "name",
            f"Your name contains a character that cannot be sent (U+{ord(bad.group(0)):04X}). "
            "Please remove it.",
        )
    if "=?" in text:
        raise FieldError("name", 'Your name cannot contain "=?". Please remove it.')
    return text


def validate_question(text: object, max_chars: int) -> str:
    """Check the question from the offline form (or the note of a referral) and return it
    trimmed, with line endings normalised to ``\\n``.

    Called by the web layer (and the service) before a ticket is created. Newlines and tabs
    are kept; any other control character, or one that XML cannot carry, is refused with a
    `FieldError` for the ``question`` field, as are empty and oversized questions.
    """
    if not isinstance(text, str):
        raise FieldError("question", "Please type your question.")
    bad = _XML_ILLEGAL.search(text) or _CONTROL_IN_TEXT.search(text)
    if bad:
        raise FieldError(
            "question",
            f"Your question contains a character that cannot be sent "
            f"(U+{ord(bad.group(0)):04X}). Please remove it.",
        )
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise FieldError("question", "Please type your question.")
    if len(text) > max_chars:
        raise FieldError(
            "question",
            f"Your question is too long ({len(text)} characters; the limit is {max_chars}). "
            "Please shorten it.",
        )
    return text


# --- message inputs ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """One line of a chat as shown in an email: when, who said it (a display name such as
    "You", "Anna (librarian)" or "refdesk"), and what they said."""

    ts: datetime
    who: str
    text: str


# --- body blocks: each rendered once as plain text and once as HTML ----------------------


@dataclass(frozen=True, slots=True)
class _Para:
    text: str


@dataclass(frozen=True, slots=True)
class _Quote:
    """Someone's own words (a question, a note, an alert), kept verbatim."""

    label: str
    text: str


@dataclass(frozen=True, slots=True)
class _Fields:
    rows: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class _Transcript:
    label: str
    lines: tuple[TranscriptLine, ...]
    tz: tzinfo


_Block = _Para | _Quote | _Fields | _Transcript


def _body_text(text: str) -> str:
    """Text for a body: newlines normalised, control characters other than tab and newline
    removed (validated input has none; this guards text from other places)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _XML_ILLEGAL.sub("", _CONTROL_IN_TEXT.sub("", text))


def _one_line(text: str, limit: int | None = None) -> str:
    """Text for a header or a one-line field: every break or control run becomes a space."""
    text = _HEADER_BREAKS.sub(" ", _XML_ILLEGAL.sub("", text)).strip()
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def header_text(text: str, limit: int | None = None) -> str:
    """Free text made safe for a header value: what every name, title and subject part
    goes through before a builder sets it (see the module docstring).

    Line breaks, tabs and other control characters become one space and characters XML
    cannot carry are dropped; then ``=?`` becomes ``= ?``, so no encoded word can start
    anywhere (the replacement cannot create a new ``=?``, and it runs last so that removing
    a character cannot either). With `limit`, longer text is cut and ends with "…".
    Called by the builders here; also usable by anything else that writes a header.
    """
    text = _HEADER_BREAKS.sub(" ", _XML_ILLEGAL.sub("", text)).strip()
    text = text.replace("=?", "= ?")
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _html_text(text: str) -> str:
    return html.escape(_body_text(text)).replace("\n", "<br>\n")


def _utc(ts: datetime) -> datetime:
    # A naive time is taken as UTC: the store keeps UTC, and guessing the machine's local
    # zone would make the email depend on where refdesk runs.
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def _zone_name(tz: tzinfo, when: datetime) -> str:
    return tz.tzname(when.astimezone(tz)) or "UTC"


def _transcript_rows(block: _Transcript) -> Iterable[tuple[date | None, str, str, str]]:
    """(new date or None, time, who, text) for each line, in the block's time zone."""
    day: date | None = None
    for line in block.lines:
        local = _utc(line.ts).astimezone(block.tz)
        new_day = local.date() if local.date() != day else None
        day = local.date()
        yield new_day, local.strftime("%H:%M"), _one_line(line.who, 100), _body_text(line.text)


def _transcript_heading(block: _Transcript) -> str:
    if not block.lines:
        return block.label
    zone = _zone_name(block.tz, _utc(block.lines[0].ts))
    return f"{block.label} (times in {zone})"


def _plain(blocks: Sequence[_Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, _Para):
            out.append(_body_text(block.text))
        elif isinstance(block, _Quote):
            out.append(f"{block.label}\n\n{_body_text(block.text)}")
        elif isinstance(block, _Fields):
            out.append("\n".join(f"{label}: {_one_line(value)}" for label, value in block.rows))
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


def _html(title: str, blocks: Sequence[_Block]) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(_one_line(title))}</title>",
        f"<style>{_CSS}</style></head>",
        "<body>",
    ]
    for block in blocks:
        if isinstance(block, _Para):
            out.append(f"<p>{_html_text(block.text)}</p>")
        elif isinstance(block, _Quote):
            out.append(f"<p><strong>{html.escape(block.label)}</strong></p>")
            out.append(f"<blockquote>{_html_text(block.text)}</blockquote>")
        elif isinstance(block, _Fields):
            out.append("<table>")
            for label, value in block.rows:
                out.append(
                    f"<tr><th>{html.escape(label)}</th>"
                    f"<td>{html.escape(_one_line(value))}</td></tr>"
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


# --- headers ------------------------------------------------------------------------------


def _mailbox(value: str, what: str) -> Address:
    """Parse a configured or stored address ("a@b" or "Name <a@b>") into one `Address`.

    These come from the config and the database, where they were validated already; this
    is the last structural guard, so it raises a plain ValueError (a programming or
    configuration error), not a patron-facing message.
    """
    if not isinstance(value, str) or _CONTROL.search(value):
        raise ValueError(f"{what}: not a single email address: {value!r}")
    try:
        header = _BUILD_POLICY.header_factory("to", value)
    # The stdlib parser raises assorted exceptions (even IndexError) on malformed input.
    except Exception as exc:
        raise ValueError(f"{what}: not a single email address: {value!r}") from exc
    addresses: tuple[object, ...] = tuple(getattr(header, "addresses", ()))
    if len(addresses) != 1 or header.defects:
        raise ValueError(f"{what}: not a single email address: {value!r}")
    address = addresses[0]
    if not isinstance(address, Address) or not address.username or not address.domain:
        raise ValueError(f"{what}: not a single email address: {value!r}")
    return address


def _named(address: Address, name: str | None) -> Address:
    """The address with a display name, made header-safe (`Address` itself refuses a
    line break outright, and a patron's name must not be able to make a build fail)."""
    display = header_text(name, MAX_NAME_CHARS) if name else ""
    return Address(display_name=display, username=address.username, domain=address.domain)


class HeaderInjection(ValueError):
    """A message whose rendered headers are not the ones its builder set. `header_text` and
    `_put` make this impossible; `render_bytes` checks anyway, so that a mistake in a
    future builder fails loudly instead of mailing a header someone typed."""


# A mailbox in a header: no spaces, controls or encoded-word syntax in the address part,
# however it was parsed.
_NOT_IN_MAILBOX = r"\s\x00-\x1f\x7f-\x9f\"<>()\[\],;:@"
_SAFE_ADDR_SPEC = re.compile(f"[^{_NOT_IN_MAILBOX}]+@[^{_NOT_IN_MAILBOX}]+")

HeaderValue = str | Address | datetime


def _put(msg: EmailMessage, name: str, value: HeaderValue) -> None:
    """Set one header on a message being built: the only way the builders add one.

    Free text and display names pass through `header_text`; an address whose mailbox part
    is not a plain ``local@domain`` (a configured address can hold an encoded word that
    decodes to anything) raises ValueError.
    """
    if isinstance(value, Address):
        spec = value.addr_spec
        if "=?" in spec or not _SAFE_ADDR_SPEC.fullmatch(spec):
            raise ValueError(f"{name}: not a plain email address: {spec!r}")
        value = Address(
            display_name=header_text(value.display_name, MAX_NAME_CHARS),
            username=value.username,
            domain=value.domain,
        )
    elif isinstance(value, str):
        value = header_text(value)
    msg[name] = value


def _new_message(
    *,
    from_addr: str,
    sender_name: str,
    to: Address,
    subject: str,
    reply_to: Address | None,
    msgid_domain: str | None,
    now: datetime | None,
    automatic: bool,
) -> EmailMessage:
    sender = _mailbox(from_addr, "from_addr")
    if not sender.display_name:
        sender = _named(sender, sender_name)
    domain = msgid_domain if msgid_domain is not None else sender.domain
    if not re.fullmatch(r"[A-Za-z0-9.-]+", domain):
        raise ValueError(f"msgid_domain: not a domain name: {domain!r}")
    msg = EmailMessage(policy=_BUILD_POLICY)
    _put(msg, "From", sender)
    _put(msg, "To", to)
    if reply_to is not None:
        _put(msg, "Reply-To", reply_to)
    _put(msg, "Subject", subject)
    _put(msg, "Date", _utc(now) if now is not None else datetime.now(UTC))
    _put(msg, "Message-ID", make_msgid(domain=domain))
    if automatic:
        # RFC 3834: vacation responders and ticket systems must not answer these, which
        # would otherwise start a loop with our own confirmations.
        _put(msg, "Auto-Submitted", "auto-generated")
    return msg


def _finish(msg: EmailMessage, blocks: Sequence[_Block]) -> EmailMessage:
    msg.set_content(_plain(blocks))
    msg.add_alternative(_html(str(msg["Subject"]), blocks), subtype="html")
    return msg


def _subject(*parts: str) -> str:
    return " ".join(parts)


def _title(queue_title: str) -> str:
    # Header-safe here already: the title is used in the body too, and the patron should
    # read the same words in both.
    return header_text(queue_title, _MAX_SUBJECT_PART_CHARS) or "refdesk"


def _transcript_block(label: str, transcript: Sequence[TranscriptLine], tz: tzinfo) -> list[_Block]:
    return [_Transcript(label, tuple(transcript), tz)] if transcript else []


# --- the messages -------------------------------------------------------------------------


def offline_ticket(
    from_addr: str,
    to_addr: str,
    ticket_id: int,
    queue_title: str,
    patron_email: str,
    patron_name: str | None,
    question: str,
    transcript: Sequence[TranscriptLine],
    page: str | None,
    *,
    msgid_domain: str | None = None,
    now: datetime | None = None,
    tz: tzinfo = UTC,
) -> EmailMessage:
    """The question a patron left through the offline form, for the queue's follow-up
    address; Reply-To is the patron, so staff answer with their mail client's Reply.

    Called by the service when a ticket is filed (offline, away, or after the maximum
    wait, in which case `transcript` holds the chat so far). `tz` is the queue's time zone
    for the transcript times; `msgid_domain` defaults to the domain of `from_addr`.
    """
    title = _title(queue_title)
    patron = _mailbox(patron_email, "patron_email")
    who = _one_line(patron_name, MAX_NAME_CHARS) if patron_name else ""
    shown = f"{who} <{patron.addr_spec}>" if who else patron.addr_spec
    rows: list[tuple[str, str]] = []
    if who:
        rows.append(("Name", who))
    rows.append(("Email", patron.addr_spec))
    if page:
        rows.append(("Page", page))
    rows.append(("Ticket", f"#{ticket_id}"))
    blocks: list[_Block] = [
        _Para(
            f"A patron left a question for {title}. Reply to this email to answer them: "
            f"your reply goes to {shown}."
        ),
        _Quote("Question:", question),
        _Fields(tuple(rows)),
        *_transcript_block("The chat so far", transcript, tz),
    ]
    msg = _new_message(
        from_addr=from_addr,
        sender_name=title,
        to=_mailbox(to_addr, "to_addr"),
        subject=_subject(f"[{_SUBJECT_TAG} #{ticket_id}]", "Question from", title),
        reply_to=_named(patron, patron_name),
        msgid_domain=msgid_domain,
        now=now,
        automatic=False,
    )
    return _finish(msg, blocks)


def ticket_confirmation(
    from_addr: str,
    patron_email: str,
    ticket_id: int,
    queue_title: str,
    question: str,
    *,
    reply_to: str | None = None,
    msgid_domain: str | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """The patron's receipt for a question left through the offline form: we have it, the
    answer comes by email, and a copy of what they asked.

    Called by the service right after `offline_ticket`, for the same ticket. `reply_to`
    (usually the queue's follow-up address) lets a patron who answers the receipt reach
    staff instead of refdesk's own sending address.
    """
    title = _title(queue_title)
    blocks: list[_Block] = [
        _Para(
            f"Thank you for your question to {title}. We have received it and will answer "
            f"you by email at this address. Your reference number is #{ticket_id}."
        ),
        _Quote("Your question:", question),
        _Para(
            "If you did not send this question, you can ignore this email; we will only "
            "use this address to answer it."
        ),
    ]
    msg = _new_message(
        from_addr=from_addr,
        sender_name=title,
        to=_mailbox(patron_email, "patron_email"),
        subject=f"We received your question to {title} (#{ticket_id})",
        reply_to=_mailbox(reply_to, "reply_to") if reply_to else None,
        msgid_domain=msgid_domain,
        now=now,
        automatic=True,
    )
    return _finish(msg, blocks)


def referral(
    from_addr: str,
    to_addr: str,
    ticket_id: int,
    queue_title: str,
    operator_name: str,
    patron_email: str | None,
    note: str | None,
    transcript: Sequence[TranscriptLine],
    *,
    msgid_domain: str | None = None,
    now: datetime | None = None,
    tz: tzinfo = UTC,
) -> EmailMessage:
    """A chat an operator referred with `!refer`, for the queue's referral address (or the
    one the operator named), with the transcript; Reply-To is the patron when known.

    Called by the service when it files a referral ticket.
    """
    title = _title(queue_title)
    operator = _one_line(operator_name, MAX_NAME_CHARS) or "An operator"
    patron = _mailbox(patron_email, "patron_email") if patron_email else None
    if patron is not None:
        contact = (
            f"Reply to this email to answer the patron: your reply goes to {patron.addr_spec}."
        )
    else:
        contact = "The patron left no email address, so they cannot be answered by email."
    rows: list[tuple[str, str]] = [("Referred by", operator)]
    if patron is not None:
        rows.append(("Patron's email", patron.addr_spec))
    rows.append(("Ticket", f"#{ticket_id}"))
    blocks: list[_Block] = [
        _Para(f"{operator} referred a chat from {title} to you. {contact}"),
        *([_Quote(f"Note from {operator}:", note)] if note else []),
        _Fields(tuple(rows)),
        *_transcript_block("The chat", transcript, tz),
    ]
    msg = _new_message(
        from_addr=from_addr,
        sender_name=title,
        to=_mailbox(to_addr, "to_addr"),
        subject=_subject(f"[{_SUBJECT_TAG} #{ticket_id}]", "Referral from", title),
        reply_to=patron,
        msgid_domain=msgid_domain,
        now=now,
        automatic=False,
    )
    return _finish(msg, blocks)


def transcript_copy(
    from_addr: str,
    patron_email: str,
    queue_title: str,
    transcript: Sequence[TranscriptLine],
    *,
    reply_to: str | None = None,
    msgid_domain: str | None = None,
    now: datetime | None = None,
    tz: tzinfo = UTC,
) -> EmailMessage:
    """The patron's copy of their chat, sent to the address they gave once the chat ends.

    Called by the service when a chat with a transcript request ends.
    """
    title = _title(queue_title)
    blocks: list[_Block] = [
        _Para(f"Here is a copy of your chat with {title}, as you asked."),
        *_transcript_block("Your chat", transcript, tz),
        _Para(
            "You received this email because a copy of this chat was requested for this "
            "address. If that was not you, you can ignore it."
        ),
    ]
    msg = _new_message(
        from_addr=from_addr,
        sender_name=title,
        to=_mailbox(patron_email, "patron_email"),
        subject=f"Your chat with {title}",
        reply_to=_mailbox(reply_to, "reply_to") if reply_to else None,
        msgid_domain=msgid_domain,
        now=now,
        automatic=True,
    )
    return _finish(msg, blocks)


def on_call_alert(
    from_addr: str,
    to_addr: str,
    queue_title: str,
    text: str,
    *,
    msgid_domain: str | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """A short alert for whoever is on call for a queue (for example: patrons waiting and
    nobody available). The first line of `text` is also the subject, for phones.

    Called by the service when its escalation rules decide someone must be told.
    """
    title = _title(queue_title)
    first = header_text(_body_text(text).strip().split("\n", 1)[0], _MAX_SUBJECT_PART_CHARS)
    subject = f"[{_SUBJECT_TAG}] {title}: {first}" if first else f"[{_SUBJECT_TAG}] {title}"
    msg = _new_message(
        from_addr=from_addr,
        sender_name=title,
        to=_mailbox(to_addr, "to_addr"),
        subject=subject,
        reply_to=None,
        msgid_domain=msgid_domain,
        now=now,
        automatic=True,
    )
    return _finish(msg, [_Para(text)])


def staff_notice(
    from_addr: str,
    to_addr: str,
    subject: str,
    intro: str,
    rows: Sequence[tuple[str, str]],
    *,
    link: str | None = None,
    msgid_domain: str | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """A notice for staff (a group's coordinators, an operator): a ban or its lift, an
    incident report, an incident's outcome, a queue left unstaffed. `intro` says what
    happened, `rows` are the facts (label, value) and `link` points at the admin page.
    Nothing a patron typed goes in: callers pass staff's words and facts only, so an
    explicit chat is described and never quoted.

    Called by the notices desk (`component.notices`) once per recipient."""
    blocks: list[_Block] = [_Para(intro), _Fields(tuple(rows))]
    if link:
        blocks.append(_Para(f"On the admin page: {link}"))
    msg = _new_message(
        from_addr=from_addr,
        sender_name="refdesk",
        to=_mailbox(to_addr, "to_addr"),
        subject=f"[{_SUBJECT_TAG}] " + header_text(subject, _MAX_SUBJECT_PART_CHARS),
        reply_to=None,
        msgid_domain=msgid_domain,
        now=now,
        automatic=True,
    )
    return _finish(msg, blocks)


def ban_notice(
    from_addr: str,
    patron_email: str,
    service_title: str,
    *,
    category: str,
    starts: str,
    ends: str | None,
    appeal_address: str,
    address_seen: str,
    admin_words: str | None = None,
    msgid_domain: str | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """The notice to a banned patron at the address they gave in the banned chat: the
    reason category (never the operator's private words; `admin_words` only when an
    admin wrote them for the patron), the period, and how to appeal (the address to
    write to and the network address to quote). Reply-To is the appeal address.

    Called by the notices desk when a ban is made in a chat with such an address."""
    title = _title(service_title)
    appeal = _mailbox(appeal_address, "appeal_address")
    period = f"from {starts} until {ends}" if ends else f"from {starts}, with no end date"
    rows: list[tuple[str, str]] = [
        ("Reason", category),
        ("Starts", starts),
        ("Ends", ends or "no end date"),
        ("Your network address", address_seen),
        ("Appeals", appeal.addr_spec),
    ]
    blocks: list[_Block] = [
        _Para(
            f"Access to the {title} chat service from your network address has been "
            f"suspended {period}, because of: {category}."
        ),
        *([_Quote("A note from the service:", admin_words)] if admin_words else []),
        _Fields(tuple(rows)),
        _Para(
            f"If you think this is a mistake, write to {appeal.addr_spec} (or reply to this "
            f"email) and quote the network address {address_seen}."
        ),
        _Para(
            "You received this email because this address was given in the chat that led "
            "to the suspension. If that was not you, you can ignore it."
        ),
    ]
    msg = _new_message(
        from_addr=from_addr,
        sender_name=title,
        to=_mailbox(patron_email, "patron_email"),
        subject=f"Your access to {title} chat is suspended",
        reply_to=appeal,
        msgid_domain=msgid_domain,
        now=now,
        automatic=True,
    )
    return _finish(msg, blocks)


def facility_contact(
    from_addr: str,
    to_addr: str,
    group_title: str,
    text: str,
    *,
    msgid_domain: str | None = None,
    now: datetime | None = None,
) -> EmailMessage:
    """The message to a shared computer's facility (a school's or library's contact)
    about repeated incidents from its network, as an admin reviewed it.

    Called by the follow-up desk when an admin sends a drafted contact message.
    """
    title = _title(group_title)
    msg = _new_message(
        from_addr=from_addr,
        sender_name=title,
        to=_mailbox(to_addr, "to_addr"),
        subject=f"[{_SUBJECT_TAG}] {title}: incidents from your network",
        reply_to=None,
        msgid_domain=msgid_domain,
        now=now,
        automatic=False,
    )
    return _finish(msg, [_Para(text)])


# --- bytes and envelopes -----------------------------------------------------------------


def _header_addresses(msg: EmailMessage, names: Iterable[str]) -> list[Address]:
    found: list[Address] = []
    for name in names:
        for header in msg.get_all(name, []):
            found.extend(getattr(header, "addresses", ()))
    return found


def needs_smtputf8(msg: EmailMessage) -> bool:
    """Whether the message has a non-ASCII address, which only SMTPUTF8 can carry.

    Called by `render_bytes` and by the mailer, which then asks the server for SMTPUTF8.
    Addresses checked by `validate_address` are always ASCII, so this is the rare case of
    an admin-configured internationalised address.
    """
    return any(
        not address.addr_spec.isascii() for address in _header_addresses(msg, _ADDRESS_HEADERS)
    )


def render_bytes(msg: EmailMessage) -> bytes:
    """The message as it goes over SMTP: CRLF line ends, bodies 7-bit encoded, headers
    RFC 2047-encoded where needed; raw UTF-8 headers only when `needs_smtputf8` (the
    ASCII rules would mangle a non-ASCII address into encoded words).

    Called by the service when it writes a message into the outbox, and by the mailer.
    Raises `HeaderInjection` when the bytes, read back, do not have exactly the message's
    headers.
    """
    data = msg.as_bytes(policy=_WIRE_UTF8 if needs_smtputf8(msg) else _WIRE_ASCII)
    _check_headers(msg, data)
    return data


def _check_headers(msg: EmailMessage, data: bytes) -> None:
    """Read the rendered header block back (without decoding anything) and compare the
    header names, in order, with those that were set; every value must fold onto lines
    that end in CRLF only."""
    end = data.find(b"\r\n\r\n")
    head = data[: end + 2] if end >= 0 else data
    if end < 0 or b"\r" in head.replace(b"\r\n", b"") or b"\n" in head.replace(b"\r\n", b""):
        raise HeaderInjection("the rendered header block has a stray line break")
    written = [
        line.split(b":", 1)[0].decode("ascii", "replace").lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    ]
    expected = [name.lower() for name in msg]
    if written != expected:
        raise HeaderInjection(f"rendered headers {written} differ from the ones set {expected}")


class _ReadPolicy(EmailPolicy):
    """`policy.default` that also understands raw UTF-8 headers (RFC 6532, SMTPUTF8).

    The bytes parser reads header bytes as ASCII with surrogate escapes, so without this a
    non-ASCII address would come back as unreadable surrogates and could not be sent again.
    """

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = super().header_source_parse(sourcelines)
        if value.isascii():
            return name, value
        try:
            decoded = value.encode("ascii", "surrogateescape").decode("utf-8")
        except UnicodeError:
            return name, value
        # A structured header object (a str subclass) folds correctly under any policy,
        # where a plain non-ASCII string would fail to render as 7-bit later.
        return name, self.header_factory(name, "".join(decoded.splitlines()))


_READ_POLICY = _ReadPolicy()


def parse_bytes(data: bytes) -> EmailMessage:
    """Read back bytes made by `render_bytes` (the outbox's stored copy, or what a test
    SMTP server received) into an `EmailMessage` with structured headers."""
    msg = BytesParser(policy=_READ_POLICY).parsebytes(data)
    if not isinstance(msg, EmailMessage):  # pragma: no cover - policy.default guarantees it
        raise TypeError("parser did not return an EmailMessage")
    return msg


def envelope_sender(msg: EmailMessage) -> str:
    """The SMTP MAIL FROM address: the Sender header if present, else the single From.

    Called by the mailer when the outbox does not give the envelope explicitly.
    """
    for name in ("sender", "from"):
        addresses = _header_addresses(msg, [name])
        if addresses:
            return addresses[0].addr_spec
    raise ValueError("the message has no From address")


def envelope_recipients(msg: EmailMessage) -> list[str]:
    """The SMTP RCPT TO addresses: everyone in To, Cc and Bcc, each once, in order.

    Called by the service to fill the outbox's recipients column, and by the mailer.
    """
    seen: dict[str, None] = {}
    for address in _header_addresses(msg, ("to", "cc", "bcc")):
        if address.addr_spec and address.username:
            seen.setdefault(address.addr_spec, None)
    return list(seen)
