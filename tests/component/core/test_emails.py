"""The emails refdesk builds, read back from their bytes as a mail client would, and the
checks on what patrons type into the email form."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st

from component.core import emails
from component.core.emails import (
    MAX_NAME_CHARS,
    AddressError,
    FieldError,
    TranscriptLine,
    validate_address,
    validate_name,
    validate_question,
)

FROM = "desk@desk.example.org"
LIBRARY = "ask@library.example.org"
REFERRALS = "refer@library.example.org"
PATRON = "pat@example.net"
NOW = datetime(2026, 12, 22, 14, 5, tzinfo=UTC)
HOSTILE = "Eve\r\nBcc: victim@example.org"
SCRIPT = "<script>alert('x')</script> & more"
TRANSCRIPT = [
    TranscriptLine(NOW, "You", "Do you have <b>maps</b> of 1850?"),
    TranscriptLine(NOW + timedelta(minutes=1), "Anna (librarian)", "Let me look.\nOne moment."),
]


def read_back(msg: EmailMessage) -> EmailMessage:
    data = emails.render_bytes(msg)
    # Our messages never need SMTPUTF8 or 8BITMIME: every server can carry them.
    assert data.isascii()
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    return emails.parse_bytes(data)


def bodies(msg: EmailMessage) -> tuple[str, str]:
    """(plain, html) with line ends as the sender wrote them."""
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",))
    rich = msg.get_body(("html",))
    assert plain is not None and rich is not None
    return (
        plain.get_content().replace("\r\n", "\n"),
        rich.get_content().replace("\r\n", "\n"),
    )


def addresses(msg: EmailMessage, header: str) -> list[str]:
    return [a.addr_spec for h in msg.get_all(header, []) for a in h.addresses]


def html_of(text: str) -> str:
    return html.escape(text).replace("\n", "<br>\n")


def ticket(**changes: object) -> EmailMessage:
    args: dict[str, object] = {
        "from_addr": FROM,
        "to_addr": LIBRARY,
        "ticket_id": 12,
        "queue_title": "Ask a Librarian",
        "patron_email": PATRON,
        "patron_name": "Pat Ron",
        "question": f"Where are the maps? {SCRIPT}\nSecond line.",
        "transcript": TRANSCRIPT,
        "page": "https://library.example.org/maps?x=<y>",
        "now": NOW,
    }
    args.update(changes)
    return emails.offline_ticket(**args)  # type: ignore[arg-type]


# --- builders -----------------------------------------------------------------------------


def test_offline_ticket() -> None:
    msg = read_back(ticket())
    assert addresses(msg, "From") == [FROM]
    assert msg["From"].addresses[0].display_name == "Ask a Librarian"
    assert addresses(msg, "To") == [LIBRARY]
    assert addresses(msg, "Reply-To") == [PATRON]
    assert msg["Reply-To"].addresses[0].display_name == "Pat Ron"
    assert msg["Subject"] == "[refdesk #12] Question from Ask a Librarian"
    assert msg["Date"].datetime == NOW
    assert msg["Message-ID"].endswith("@desk.example.org>")
    assert "Auto-Submitted" not in msg
    assert emails.envelope_recipients(msg) == [LIBRARY]
    assert emails.envelope_sender(msg) == FROM

    plain, rich = bodies(msg)
    question = f"Where are the maps? {SCRIPT}\nSecond line."
    assert question in plain
    assert "Pat Ron" in plain and PATRON in plain
    assert "https://library.example.org/maps?x=<y>" in plain
    assert "[14:05] You: Do you have <b>maps</b> of 1850?" in plain
    assert "Anna (librarian): Let me look." in plain

    assert html_of(question) in rich
    assert "<script>" not in rich and "&lt;script&gt;" in rich
    assert "<b>maps</b>" not in rich and "&lt;b&gt;maps&lt;/b&gt;" in rich
    assert "maps?x=&lt;y&gt;" in rich
    assert "Let me look.<br>\nOne moment." in rich


def test_offline_ticket_without_chat_name_or_page() -> None:
    msg = read_back(ticket(transcript=[], patron_name=None, page=None))
    assert msg["Reply-To"].addresses[0].display_name == ""
    plain, rich = bodies(msg)
    assert "chat so far" not in plain
    assert "Name:" not in plain and "Page:" not in plain
    assert "Second line." in rich


def test_ticket_confirmation() -> None:
    msg = read_back(
        emails.ticket_confirmation(
            FROM, PATRON, 12, "Ask a Librarian", f"My question {SCRIPT}", now=NOW
        )
    )
    assert addresses(msg, "To") == [PATRON]
    assert "Reply-To" not in msg
    assert "#12" in msg["Subject"] and "Ask a Librarian" in msg["Subject"]
    assert msg["Auto-Submitted"] == "auto-generated"
    plain, rich = bodies(msg)
    assert f"My question {SCRIPT}" in plain
    assert "by email" in plain and "#12" in plain
    assert html_of(f"My question {SCRIPT}") in rich
    assert "<script>" not in rich

    with_reply = read_back(
        emails.ticket_confirmation(FROM, PATRON, 12, "Q", "Hi", reply_to=LIBRARY)
    )
    assert addresses(with_reply, "Reply-To") == [LIBRARY]


def test_referral_with_patron() -> None:
    msg = read_back(
        emails.referral(
            FROM,
            REFERRALS,
            40,
            "Ask a Librarian",
            "Anna <admin>",
            PATRON,
            f"Needs the archivist. {SCRIPT}",
            TRANSCRIPT,
            now=NOW,
        )
    )
    assert addresses(msg, "To") == [REFERRALS]
    assert addresses(msg, "Reply-To") == [PATRON]
    assert msg["Subject"] == "[refdesk #40] Referral from Ask a Librarian"
    plain, rich = bodies(msg)
    assert f"Needs the archivist. {SCRIPT}" in plain
    assert "Anna <admin>" in plain
    assert "Do you have <b>maps</b> of 1850?" in plain
    assert html_of(f"Needs the archivist. {SCRIPT}") in rich
    assert "Anna &lt;admin&gt;" in rich and "<admin>" not in rich


def test_referral_without_patron_address_or_note() -> None:
    msg = read_back(
        emails.referral(FROM, REFERRALS, 41, "Ask", "Anna", None, None, TRANSCRIPT, now=NOW)
    )
    assert "Reply-To" not in msg
    plain, _rich = bodies(msg)
    assert "no email address" in plain
    assert "Note from" not in plain
    assert "Let me look." in plain


def test_transcript_copy_in_the_queue_time_zone() -> None:
    toronto = timezone(timedelta(hours=-5), "EST")
    msg = read_back(
        emails.transcript_copy(FROM, PATRON, "Ask a Librarian", TRANSCRIPT, now=NOW, tz=toronto)
    )
    assert addresses(msg, "To") == [PATRON]
    assert msg["Subject"] == "Your chat with Ask a Librarian"
    assert msg["Auto-Submitted"] == "auto-generated"
    plain, rich = bodies(msg)
    assert "times in EST" in plain
    assert "[09:05] You: Do you have <b>maps</b> of 1850?" in plain
    assert "[09:06] Anna (librarian): Let me look.\n    One moment." in plain
    assert "&lt;b&gt;maps&lt;/b&gt;" in rich and "<b>maps</b>" not in rich


def test_transcript_marks_a_new_day_and_takes_naive_times_as_utc() -> None:
    lines = [
        TranscriptLine(datetime(2026, 12, 22, 23, 59), "You", "late"),
        TranscriptLine(datetime(2026, 12, 23, 0, 1), "Anna", "early"),
    ]
    plain, _rich = bodies(read_back(emails.transcript_copy(FROM, PATRON, "Ask", lines)))
    assert "-- 2026-12-22 --\n[23:59] You: late\n-- 2026-12-23 --\n[00:01] Anna: early" in plain


def test_on_call_alert() -> None:
    text = "3 patrons waiting <now>\r\nnobody available since 14:00"
    msg = read_back(emails.on_call_alert(FROM, LIBRARY, "Ask a Librarian", text, now=NOW))
    assert addresses(msg, "To") == [LIBRARY]
    assert msg["Subject"] == "[refdesk] Ask a Librarian: 3 patrons waiting <now>"
    plain, rich = bodies(msg)
    assert "3 patrons waiting <now>\nnobody available since 14:00" in plain
    assert "3 patrons waiting &lt;now&gt;<br>\nnobody available" in rich


def test_configured_sender_name_and_message_id_domain() -> None:
    msg = read_back(ticket(from_addr=f"Library Desk <{FROM}>", msgid_domain="mail.example.com"))
    assert msg["From"].addresses[0].display_name == "Library Desk"
    assert msg["Message-ID"].endswith("@mail.example.com>")
    first, second = ticket(), ticket()
    assert first["Message-ID"] != second["Message-ID"]
    with pytest.raises(ValueError):
        ticket(msgid_domain="bad domain>")


@pytest.mark.parametrize(
    "bad", ["", "not an address", "a@b.org, c@d.org", f"{PATRON}\r\nBcc: victim@example.org"]
)
def test_builders_refuse_malformed_addresses(bad: str) -> None:
    with pytest.raises(ValueError):
        ticket(to_addr=bad)
    with pytest.raises(ValueError):
        ticket(patron_email=bad)
    with pytest.raises(ValueError):
        emails.ticket_confirmation(bad, PATRON, 1, "Q", "?")


# --- header injection ---------------------------------------------------------------------

EXPECTED_HEADERS = {"From", "To", "Reply-To", "Subject", "Date", "Message-ID"}
MIME_HEADERS = {"MIME-Version", "Content-Type"}


def assert_no_injection(msg: EmailMessage, expected: set[str]) -> None:
    data = emails.render_bytes(msg)
    head = data.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc:") for line in head.split(b"\r\n"))
    parsed = emails.parse_bytes(data)
    assert set(parsed.keys()) == expected | MIME_HEADERS
    assert "Bcc" not in parsed
    for header in ("From", "To", "Reply-To"):
        assert "victim@example.org" not in addresses(parsed, header)
    assert not parsed.defects


def test_hostile_patron_name_cannot_add_headers() -> None:
    msg = ticket(patron_name=HOSTILE)
    assert_no_injection(msg, EXPECTED_HEADERS)
    assert addresses(read_back(msg), "Reply-To") == [PATRON]


def test_hostile_queue_title_cannot_add_headers() -> None:
    msg = ticket(queue_title="Ask\r\nBcc: victim@example.org\r\n\r\nbody")
    assert_no_injection(msg, EXPECTED_HEADERS)
    subject = read_back(msg)["Subject"]
    assert "\n" not in subject and subject.startswith("[refdesk #12] Question from Ask")
    alert = emails.on_call_alert(FROM, LIBRARY, "Ask\nBcc: victim@example.org", HOSTILE)
    assert_no_injection(alert, {"From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted"})


def test_hostile_operator_name_cannot_add_headers() -> None:
    msg = emails.referral(FROM, REFERRALS, 1, "Ask", HOSTILE, PATRON, HOSTILE, TRANSCRIPT)
    assert_no_injection(msg, EXPECTED_HEADERS)


def test_validated_address_cannot_carry_headers() -> None:
    with pytest.raises(AddressError):
        validate_address(f"{PATRON}\r\nBcc: victim@example.org")
    with pytest.raises(AddressError):
        validate_address(f"{PATRON}\nBcc: victim@example.org")


@given(st.text(max_size=200))
def test_any_name_or_title_keeps_the_headers_intact(text: str) -> None:
    msg = ticket(patron_name=text, queue_title=text)
    assert_no_injection(msg, EXPECTED_HEADERS)
    parsed = read_back(msg)
    assert addresses(parsed, "To") == [LIBRARY]
    assert addresses(parsed, "Reply-To") == [PATRON]


# RFC 2047 encoded words that decode to line breaks and a header of the writer's choosing.
# Python 3.11's email package decodes them when a header value is set and writes the
# decoded text out raw, so each one once added a header and a body to a message.
ENCODED_WORDS = [
    "=?utf-8?q?Pat=0D=0AX-Injected:_yes=0D=0A=0D=0Aevil_body?=",
    "=?utf-8?b?UGF0DQpYLUluamVjdGVkOiB5ZXMNCg0KZXZpbCBib2R5?=",
    "Pat =?iso-8859-1?q?=0AX-Injected:_yes?= Ron",
    "=?utf-8?q?=E2=80=A8X-Injected:_yes?=",
    "=\x00?utf-8?q?=0D=0AX-Injected:_yes?=",
    "==??utf-8?q?=0AX-Injected:_yes?=",
]


def assert_exact_headers(msg: EmailMessage, expected: list[str]) -> None:
    """The rendered header block has exactly `expected` (then the MIME headers), in order,
    and no header value decodes to a line break."""
    data = emails.render_bytes(msg)
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    names = [line.split(":", 1)[0] for line in head.split("\r\n") if line[:1] not in " \t"]
    assert names == [*expected, "MIME-Version", "Content-Type"]
    parsed = emails.parse_bytes(data)
    for name in names:
        value = str(parsed[name])
        assert not re.search("[\r\n\x85\u2028\u2029]", value), (name, value)
        assert "X-Injected" not in value or name in ("From", "Subject", "Reply-To")
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert not bodies(parsed)[0].startswith("evil")


TICKET_ORDER = ["From", "To", "Reply-To", "Subject", "Date", "Message-ID"]
AUTOMATIC_ORDER = ["From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted"]


@pytest.mark.parametrize("text", ENCODED_WORDS)
def test_encoded_words_cannot_add_headers_anywhere(text: str) -> None:
    # Builders are the last line: they get the text as if no edge had checked it.
    assert_exact_headers(ticket(patron_name=text, queue_title=text), TICKET_ORDER)
    assert_exact_headers(emails.ticket_confirmation(FROM, PATRON, 1, text, "?"), AUTOMATIC_ORDER)
    assert_exact_headers(
        emails.transcript_copy(FROM, PATRON, text, TRANSCRIPT, reply_to=LIBRARY),
        ["From", "To", "Reply-To", "Subject", "Date", "Message-ID", "Auto-Submitted"],
    )
    assert_exact_headers(
        emails.referral(FROM, REFERRALS, 1, text, text, PATRON, text, TRANSCRIPT),
        TICKET_ORDER,
    )
    assert_exact_headers(emails.on_call_alert(FROM, LIBRARY, text, text), AUTOMATIC_ORDER)
    # A configured sender name is decoded when it is read: refused when it decodes to a
    # line break (the configuration refuses "=?" before it gets here), neutralised else.
    try:
        named = emails.ticket_confirmation(f"{text} <{FROM}>", PATRON, 1, "Ask", "?")
    except ValueError:
        return
    assert_exact_headers(named, AUTOMATIC_ORDER)


def _encoded(text: str) -> str:
    import base64

    return "=?utf-8?b?" + base64.b64encode(text.encode("utf-8", "surrogatepass")).decode() + "?="


_HEADER_TEXT = st.lists(
    st.one_of(st.text(max_size=20), st.text(max_size=20).map(_encoded)), max_size=5
).map("".join)


@given(_HEADER_TEXT)
def test_any_text_with_encoded_words_keeps_the_headers_intact(text: str) -> None:
    assert_exact_headers(ticket(patron_name=text, queue_title=text), TICKET_ORDER)
    assert_exact_headers(emails.on_call_alert(FROM, LIBRARY, text, text), AUTOMATIC_ORDER)


def test_header_text() -> None:
    assert emails.header_text("  Ask a Librarian ") == "Ask a Librarian"
    assert emails.header_text("Ask\r\nBcc: x@y.org") == "Ask Bcc: x@y.org"
    assert emails.header_text("a=?b?q?c?=") == "a= ?b?q?c?="
    assert emails.header_text("==??") == "== ??"
    # A character removed cannot bring "=" and "?" together.
    assert emails.header_text("=\x00?") == "= ?"
    assert emails.header_text("=\ufffe?") == "= ?"
    assert emails.header_text("x" * 10, 5) == "xxxx…"
    assert emails.header_text("Zoë O'Brien") == "Zoë O'Brien"


def test_render_bytes_refuses_headers_that_were_not_set() -> None:
    # Bypassing the builders, as a future mistake might: the rendered bytes would carry an
    # extra header, and render_bytes refuses to produce them.
    msg = EmailMessage()
    msg["From"] = FROM
    msg["To"] = PATRON
    msg["Subject"] = ENCODED_WORDS[0]
    msg.set_content("hello")
    with pytest.raises(emails.HeaderInjection):
        emails.render_bytes(msg)


# --- validation ---------------------------------------------------------------------------

GOOD_ADDRESSES = [
    ("name@example.org", "name@example.org"),
    ("  name@example.org\t", "name@example.org"),
    ("first.last+refdesk@example.org", "first.last+refdesk@example.org"),
    ("a_b-c@mail.sub.example.co.uk", "a_b-c@mail.sub.example.co.uk"),
    ("o'brien@example.ie", "o'brien@example.ie"),
    ("Name@Example.ORG", "Name@example.org"),
    # IDN domains are accepted and converted to their ASCII form.
    ("name@bücher.example", "name@xn--bcher-kva.example"),
    ("name@xn--bcher-kva.example", "name@xn--bcher-kva.example"),
]

BAD_ADDRESSES = [
    None,
    42,
    "",
    "   ",
    "name@example.org\r\nBcc: victim@example.org",
    "name@example.org\r\n",
    "name\n@example.org",
    "name@exam\x00ple.org",
    "x" * 64 + "@" + ("d" * 60 + ".") * 4 + "org",  # 313 characters
    "x" * 65 + "@example.org",  # local part over 64
    "a@example.org, b@example.org",
    "a@example.org;b@example.org",
    "a@b@example.org",
    "Eve <eve@example.org>",
    "<eve@example.org>",
    '"eve"@example.org',
    '"Eve" eve@example.org',
    "eve (comment)@example.org",
    "eve smith@example.org",
    "eve@example .org",
    "eve@localhost",
    "eve@",
    "@example.org",
    "eve",
    "eve@.example.org",
    "eve@example..org",
    "eve@example.org.",
    "eve..x@example.org",
    ".eve@example.org",
    "eve@-example.org",
    "eve@[192.0.2.1]",
    "eve@192.0.2.1",
    "zoë@example.org",  # non-ASCII local part: needs SMTPUTF8 end to end
    "eve@straße.example",  # IDNA 2003 would quietly turn this into strasse
    "=?utf-8?q?victim?=@example.org",
]


@pytest.mark.parametrize(("typed", "expected"), GOOD_ADDRESSES)
def test_good_addresses(typed: str, expected: str) -> None:
    assert validate_address(typed) == expected


@pytest.mark.parametrize("typed", BAD_ADDRESSES)
def test_bad_addresses(typed: object) -> None:
    with pytest.raises(AddressError) as caught:
        validate_address(typed)
    error = caught.value
    assert isinstance(error, ValueError) and isinstance(error, FieldError)
    assert error.field == "email"
    assert error.message.endswith(".") and "\n" not in error.message


def test_address_error_messages_help_the_patron() -> None:
    with pytest.raises(AddressError, match=r"like name@example\.org"):
        validate_address("nonsense")
    with pytest.raises(AddressError, match="too long"):
        validate_address("x" * 250 + "@example.org")
    with pytest.raises(AddressError, match="just one"):
        validate_address("a@example.org, b@example.org")


def test_validate_name() -> None:
    assert validate_name(None) is None
    assert validate_name("") is None
    assert validate_name("   ") is None
    assert validate_name("  Zoë O'Brien  ") == "Zoë O'Brien"
    assert validate_name("x" * MAX_NAME_CHARS) == "x" * MAX_NAME_CHARS
    for bad in [
        HOSTILE,
        "Eve\n",
        "Eve\x00",
        "Eve\x1b[31m",
        "Eve\u2028x",
        "x" * 101,
        3,
        *ENCODED_WORDS,
    ]:
        with pytest.raises(FieldError) as caught:
            validate_name(bad)
        assert caught.value.field == "name"


def test_validate_question() -> None:
    assert validate_question("  Where?\r\nAnd when?\t \n", 100) == "Where?\nAnd when?"
    assert validate_question("x" * 10, 10) == "x" * 10
    cases = [("", "Please type"), ("  \n ", "Please type"), (None, "Please type")]
    cases += [("x" * 11, "too long"), ("a\x00b", "U+0000"), ("a\ufffeb", "U+FFFE")]
    cases += [("a\x85b", "U+0085"), ("a\x0cb", "U+000C")]
    for bad, words in cases:
        with pytest.raises(FieldError, match=re.escape(words)) as caught:
            validate_question(bad, 10)
        assert caught.value.field == "question"


@given(st.text(max_size=300))
def test_any_question_round_trips_into_the_bodies(text: str) -> None:
    try:
        question = validate_question(text, 300)
    except FieldError as error:
        assert error.field == "question"
        return
    for msg in (
        ticket(question=question),
        emails.ticket_confirmation(FROM, PATRON, 3, "Ask", question),
    ):
        plain, rich = bodies(read_back(msg))
        assert question in plain
        assert html_of(question) in rich


@given(st.text(max_size=MAX_NAME_CHARS + 10))
def test_any_name_round_trips_into_the_bodies_and_reply_to(text: str) -> None:
    try:
        name = validate_name(text)
    except FieldError as error:
        assert error.field == "name"
        return
    parsed = read_back(ticket(patron_name=name))
    plain, rich = bodies(parsed)
    if name is None:
        assert "Name:" not in plain
        return
    assert f"Name: {name}\n" in plain
    assert f"<td>{html.escape(name)}</td>" in rich
    # Spaces are not exact in a header: unfolding collapses runs of them, and the stdlib's
    # folding of long encoded words can add one. Every other character must survive.
    display = parsed["Reply-To"].addresses[0].display_name
    assert "".join(display.split()) == "".join(name.split())


@given(st.text(max_size=100))
def test_validated_addresses_are_plain_ascii_mailboxes(text: str) -> None:
    try:
        address = validate_address(text)
    except AddressError:
        return
    assert address.isascii() and address.count("@") == 1
    assert validate_address(address) == address
    parsed = read_back(ticket(patron_email=address))
    assert addresses(parsed, "Reply-To") == [address]


# --- bytes --------------------------------------------------------------------------------


def test_non_ascii_text_is_encoded_7bit() -> None:
    msg = ticket(queue_title="Bibliothèque", patron_name="Zoë", question="Où est la carte ?")
    data = emails.render_bytes(msg)
    assert data.isascii()
    assert not emails.needs_smtputf8(msg)
    parsed = emails.parse_bytes(data)
    assert parsed["Subject"] == "[refdesk #12] Question from Bibliothèque"
    assert parsed["Reply-To"].addresses[0].display_name == "Zoë"
    assert "Où est la carte ?" in bodies(parsed)[0]


def test_non_ascii_address_is_rendered_as_smtputf8() -> None:
    msg = EmailMessage()
    msg["From"] = FROM
    msg["To"] = "Zoë <zoë@bücher.example>"
    msg["Subject"] = "Grüße"
    msg.set_content("Hallo")
    assert emails.needs_smtputf8(msg)
    data = emails.render_bytes(msg)
    assert "zoë@bücher.example".encode() in data
    parsed = emails.parse_bytes(data)
    assert emails.envelope_recipients(parsed) == ["zoë@bücher.example"]
    assert parsed["Subject"] == "Grüße"
    assert emails.render_bytes(parsed) == data


def test_envelope_helpers() -> None:
    msg = EmailMessage()
    msg["From"] = "Desk <desk@example.org>"
    msg["To"] = "a@example.org, B <b@example.org>"
    msg["Cc"] = "a@example.org, c@example.org"
    msg["Bcc"] = "d@example.org"
    assert emails.envelope_sender(msg) == "desk@example.org"
    assert emails.envelope_recipients(msg) == [
        "a@example.org",
        "b@example.org",
        "c@example.org",
        "d@example.org",
    ]
    msg["Sender"] = "bounces@example.org"
    assert emails.envelope_sender(msg) == "bounces@example.org"
    with pytest.raises(ValueError):
        emails.envelope_sender(EmailMessage())


# "=?" (an encoded-word opener) is the one atext sequence refused on purpose.
@given(st.emails().filter(lambda address: "=?" not in address))
def test_ordinary_addresses_are_accepted(address: str) -> None:
    local, _, domain = address.rpartition("@")
    assert validate_address(address) == f"{local}@{domain.lower()}"
