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

The parts: `email_input` (what patrons type), `email_text` (text made safe),
`email_body` (plain and HTML bodies), `email_wire` (headers, bytes and envelopes). This
module builds the messages and re-exports what callers use.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid

from component.core.email_body import (
    Block,
    Fields,
    Para,
    Quote,
    Transcript,
    TranscriptLine,
    html_page,
    plain_text,
)
from component.core.email_input import (
    ADDRESS_HELP,
    MAX_ADDRESS_CHARS,
    AddressError,
    FieldError,
    validate_address,
    validate_name,
    validate_question,
)
from component.core.email_text import MAX_NAME_CHARS, as_utc, body_text, header_text, single_line
from component.core.email_wire import (
    BUILD_POLICY,
    HeaderInjection,
    envelope_recipients,
    envelope_sender,
    mailbox,
    named,
    needs_smtputf8,
    parse_bytes,
    put_header,
    render_bytes,
)
from component.core.patron_text import TRANSCRIPT_MAIL

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

# Subjects stay readable on a phone; the full text is always in the body.
_MAX_SUBJECT_PART_CHARS = 120
_SUBJECT_TAG = "refdesk"


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
    sender = mailbox(from_addr, "from_addr")
    if not sender.display_name:
        sender = named(sender, sender_name)
    domain = msgid_domain if msgid_domain is not None else sender.domain
    if not re.fullmatch(r"[A-Za-z0-9.-]+", domain):
        raise ValueError(f"msgid_domain: not a domain name: {domain!r}")
    msg = EmailMessage(policy=BUILD_POLICY)
    put_header(msg, "From", sender)
    put_header(msg, "To", to)
    if reply_to is not None:
        put_header(msg, "Reply-To", reply_to)
    put_header(msg, "Subject", subject)
    put_header(msg, "Date", as_utc(now) if now is not None else datetime.now(UTC))
    put_header(msg, "Message-ID", make_msgid(domain=domain))
    if automatic:
        # RFC 3834: vacation responders and ticket systems must not answer these, which
        # would otherwise start a loop with our own confirmations.
        put_header(msg, "Auto-Submitted", "auto-generated")
    return msg


def _finish(msg: EmailMessage, blocks: Sequence[Block], lang: str = "en") -> EmailMessage:
    msg.set_content(plain_text(blocks))
    msg.add_alternative(html_page(str(msg["Subject"]), blocks, lang), subtype="html")
    return msg


def _subject(*parts: str) -> str:
    return " ".join(parts)


def _title(queue_title: str) -> str:
    # Header-safe here already: the title is used in the body too, and the patron should
    # read the same words in both.
    return header_text(queue_title, _MAX_SUBJECT_PART_CHARS) or "refdesk"


def _transcript_block(label: str, transcript: Sequence[TranscriptLine], tz: tzinfo) -> list[Block]:
    return [Transcript(label, tuple(transcript), tz)] if transcript else []


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
    patron = mailbox(patron_email, "patron_email")
    who = single_line(patron_name, MAX_NAME_CHARS) if patron_name else ""
    shown = f"{who} <{patron.addr_spec}>" if who else patron.addr_spec
    rows: list[tuple[str, str]] = []
    if who:
        rows.append(("Name", who))
    rows.append(("Email", patron.addr_spec))
    if page:
        rows.append(("Page", page))
    rows.append(("Ticket", f"#{ticket_id}"))
    blocks: list[Block] = [
        Para(
            f"A patron left a question for {title}. Reply to this email to answer them: "
            f"your reply goes to {shown}."
        ),
        Quote("Question:", question),
        Fields(tuple(rows)),
        *_transcript_block("The chat so far", transcript, tz),
    ]
    msg = _new_message(
        from_addr=from_addr,
        sender_name=title,
        to=mailbox(to_addr, "to_addr"),
        subject=_subject(f"[{_SUBJECT_TAG} #{ticket_id}]", "Question from", title),
        reply_to=named(patron, patron_name),
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
    blocks: list[Block] = [
        Para(
            f"Thank you for your question to {title}. We have received it and will answer "
            f"you by email at this address. Your reference number is #{ticket_id}."
        ),
        Quote("Your question:", question),
        Para(
            "If you did not send this question, you can ignore this email; we will only "
            "use this address to answer it."
        ),
    ]
    msg = _new_message(
        from_addr=from_addr,
        sender_name=title,
        to=mailbox(patron_email, "patron_email"),
        subject=f"We received your question to {title} (#{ticket_id})",
        reply_to=mailbox(reply_to, "reply_to") if reply_to else None,
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
    operator = single_line(operator_name, MAX_NAME_CHARS) or "An operator"
    patron = mailbox(patron_email, "patron_email") if patron_email else None
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
    blocks: list[Block] = [
        Para(f"{operator} referred a chat from {title} to you. {contact}"),
        *([Quote(f"Note from {operator}:", note)] if note else []),
        Fields(tuple(rows)),
        *_transcript_block("The chat", transcript, tz),
    ]
    msg = _new_message(
        from_addr=from_addr,
        sender_name=title,
        to=mailbox(to_addr, "to_addr"),
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
    lang: str = "en",
) -> EmailMessage:
    """The patron's copy of their chat, sent to the address they gave once the chat ends.
    Its own wording is in the patron's language `lang` (`patron_text.TRANSCRIPT_MAIL`);
    the chat's lines come as given (the caller renders them in that language).

    Called by the service when a chat with a transcript request ends.
    """
    lang = lang if lang in TRANSCRIPT_MAIL else "en"
    words = TRANSCRIPT_MAIL[lang]
    title = _title(queue_title)
    blocks: list[Block] = [
        Para(words["intro"].format_map({"title": title})),
        *(
            [Transcript(words["heading"], tuple(transcript), tz, words["times"])]
            if transcript
            else []
        ),
        Para(words["footer"]),
    ]
    msg = _new_message(
        from_addr=from_addr,
        sender_name=title,
        to=mailbox(patron_email, "patron_email"),
        subject=words["subject"].format_map({"title": title}),
        reply_to=mailbox(reply_to, "reply_to") if reply_to else None,
        msgid_domain=msgid_domain,
        now=now,
        automatic=True,
    )
    return _finish(msg, blocks, lang)


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
    first = header_text(body_text(text).strip().split("\n", 1)[0], _MAX_SUBJECT_PART_CHARS)
    subject = f"[{_SUBJECT_TAG}] {title}: {first}" if first else f"[{_SUBJECT_TAG}] {title}"
    msg = _new_message(
        from_addr=from_addr,
        sender_name=title,
        to=mailbox(to_addr, "to_addr"),
        subject=subject,
        reply_to=None,
        msgid_domain=msgid_domain,
        now=now,
        automatic=True,
    )
    return _finish(msg, [Para(text)])


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
    blocks: list[Block] = [Para(intro), Fields(tuple(rows))]
    if link:
        blocks.append(Para(f"On the admin page: {link}"))
    msg = _new_message(
        from_addr=from_addr,
        sender_name="refdesk",
        to=mailbox(to_addr, "to_addr"),
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
    appeal = mailbox(appeal_address, "appeal_address")
    period = f"from {starts} until {ends}" if ends else f"from {starts}, with no end date"
    rows: list[tuple[str, str]] = [
        ("Reason", category),
        ("Starts", starts),
        ("Ends", ends or "no end date"),
        ("Your network address", address_seen),
        ("Appeals", appeal.addr_spec),
    ]
    blocks: list[Block] = [
        Para(
            f"Access to the {title} chat service from your network address has been "
            f"suspended {period}, because of: {category}."
        ),
        *([Quote("A note from the service:", admin_words)] if admin_words else []),
        Fields(tuple(rows)),
        Para(
            f"If you think this is a mistake, write to {appeal.addr_spec} (or reply to this "
            f"email) and quote the network address {address_seen}."
        ),
        Para(
            "You received this email because this address was given in the chat that led "
            "to the suspension. If that was not you, you can ignore it."
        ),
    ]
    msg = _new_message(
        from_addr=from_addr,
        sender_name=title,
        to=mailbox(patron_email, "patron_email"),
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
        to=mailbox(to_addr, "to_addr"),
        subject=f"[{_SUBJECT_TAG}] {title}: incidents from your network",
        reply_to=None,
        msgid_domain=msgid_domain,
        now=now,
        automatic=False,
    )
    return _finish(msg, [Para(text)])


# --- bytes and envelopes -----------------------------------------------------------------
