"""Email headers and bytes: how a message is addressed, rendered and read back.

`put_header` is the one way the builders of `component.core.emails` set a header;
`render_bytes` turns a message into what goes over SMTP and checks its headers are
exactly the ones set; `parse_bytes` reads stored bytes back; `envelope_sender` and
`envelope_recipients` give the SMTP envelope. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import EmailPolicy

from component.core.email_text import MAX_NAME_CHARS, header_text
from component.core.text import CONTROL

# Messages are built with 7-bit body encoding so the stored bytes can go to any server.
BUILD_POLICY = policy.default.clone(cte_type="7bit")
_WIRE_ASCII = policy.SMTP.clone(cte_type="7bit")
_WIRE_UTF8 = policy.SMTPUTF8.clone(cte_type="7bit")

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


def mailbox(value: str, what: str) -> Address:
    """Parse a configured or stored address ("a@b" or "Name <a@b>") into one `Address`.

    These come from the config and the database, where they were validated already; this
    is the last structural guard, so it raises a plain ValueError (a programming or
    configuration error), not a patron-facing message.
    """
    if not isinstance(value, str) or CONTROL.search(value):
        raise ValueError(f"{what}: not a single email address: {value!r}")
    try:
        header = BUILD_POLICY.header_factory("to", value)
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


def named(address: Address, name: str | None) -> Address:
    """The address with a display name, made header-safe (`Address` itself refuses a
    line break outright, and a patron's name must not be able to make a build fail)."""
    display = header_text(name, MAX_NAME_CHARS) if name else ""
    return Address(display_name=display, username=address.username, domain=address.domain)


class HeaderInjection(ValueError):
    """A message whose rendered headers are not the ones its builder set. `header_text` and
    `put_header` make this impossible; `render_bytes` checks anyway, so that a mistake in a
    future builder fails loudly instead of mailing a header someone typed."""


# A mailbox in a header: no spaces, controls or encoded-word syntax in the address part,
# however it was parsed.
_NOT_IN_MAILBOX = r"\s\x00-\x1f\x7f-\x9f\"<>()\[\],;:@"
_SAFE_ADDR_SPEC = re.compile(f"[^{_NOT_IN_MAILBOX}]+@[^{_NOT_IN_MAILBOX}]+")

HeaderValue = str | Address | datetime


def put_header(msg: EmailMessage, name: str, value: HeaderValue) -> None:
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
