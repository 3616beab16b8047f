"""The SMTP sender against a real aiosmtpd server started by each test on a free loopback
port: delivery, the temporary/permanent split, authentication, STARTTLS and implicit TLS."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from component.core import emails
from component.mailer import (
    PermanentMailError,
    SmtpSender,
    SmtpSettings,
    TemporaryMailError,
    retry_delay,
)

HOST = "127.0.0.1"
FROM = "desk@desk.example.org"
LIBRARY = "ask@library.example.org"
PATRON = "patron@example.net"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str]
    tls: bool


@dataclass
class Collector:
    """An aiosmtpd handler that keeps every accepted message; `refuse` maps a recipient
    (or "*" for all) to the reply its RCPT gets."""

    refuse: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    async def handle_RCPT(
        self,
        server: Any,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.refuse.get(address, self.refuse.get("*"))
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        assert envelope.mail_from is not None
        assert isinstance(envelope.content, bytes)
        self.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                content=envelope.content,
                mail_options=list(envelope.mail_options),
                tls=server.transport.get_extra_info("ssl_object") is not None,
            )
        )
        return "250 Message accepted for delivery"


@contextlib.asynccontextmanager
async def smtp_server(handler: Collector, **kwargs: Any) -> AsyncIterator[int]:
    """Run aiosmtpd in its own thread for the duration; yields the port."""
    port = free_port()
    controller = Controller(handler, hostname=HOST, port=port, **kwargs)
    # start() and stop() block while the server thread comes up and goes down.
    await asyncio.to_thread(controller.start)
    try:
        yield port
    finally:
        await asyncio.to_thread(controller.stop)


@dataclass(frozen=True)
class Cert:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cert]:
    """A self-signed certificate for 127.0.0.1 and localhost, made at test time."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    yield Cert(cert_path, key_path)


def settings(port: int, **changes: Any) -> SmtpSettings:
    values: dict[str, Any] = {"timeout": 5.0, "local_hostname": "refdesk.test"} | changes
    return SmtpSettings(host=HOST, port=port, **values)


def ticket() -> EmailMessage:
    return emails.offline_ticket(
        FROM,
        LIBRARY,
        7,
        "Ask a Librarian",
        PATRON,
        "Pat Ron",
        "Where are the maps?",
        [],
        None,
    )


async def test_delivers_with_the_envelope_from_the_headers() -> None:
    handler = Collector()
    async with smtp_server(handler) as port:
        await SmtpSender(settings(port)).send(ticket())
    [got] = handler.received
    assert got.mail_from == FROM
    assert got.rcpt_tos == [LIBRARY]
    assert not got.tls
    parsed = emails.parse_bytes(got.content)
    assert parsed["To"].addresses[0].addr_spec == LIBRARY
    assert parsed["Reply-To"].addresses[0].addr_spec == PATRON
    assert parsed["Subject"] == "[refdesk #7] Question from Ask a Librarian"
    plain = parsed.get_body(("plain",))
    assert plain is not None
    assert "Where are the maps?" in plain.get_content()


async def test_explicit_envelope_and_bcc_stripped() -> None:
    handler = Collector()
    msg = ticket()
    msg["Bcc"] = "hidden@example.org"
    async with smtp_server(handler) as port:
        sender = SmtpSender(settings(port))
        await sender.send(msg)
        await sender.send(ticket(), sender="bounces@desk.example.org", recipients=["x@example.org"])
    first, second = handler.received
    assert first.rcpt_tos == [LIBRARY, "hidden@example.org"]
    assert "Bcc" not in emails.parse_bytes(first.content)
    assert "Bcc" in msg, "the caller's message is left alone"
    assert second.mail_from == "bounces@desk.example.org"
    assert second.rcpt_tos == ["x@example.org"]


async def test_send_bytes_sends_exactly_the_stored_copy() -> None:
    # The outbox path: bytes and recipients written down earlier, sent as they are.
    stored = emails.render_bytes(ticket())
    handler = Collector()
    async with smtp_server(handler) as port:
        await SmtpSender(settings(port)).send_bytes(stored, FROM, [LIBRARY])
    [got] = handler.received
    assert got.rcpt_tos == [LIBRARY]
    # aiosmtpd hands over the content as received, minus the final CRLF of DATA.
    assert got.content.rstrip(b"\r\n") == stored.rstrip(b"\r\n")


async def test_451_on_rcpt_is_temporary() -> None:
    handler = Collector(refuse={"*": "451 4.3.0 Try again later"})
    async with smtp_server(handler) as port:
        with pytest.raises(TemporaryMailError) as caught:
            await SmtpSender(settings(port)).send(ticket())
    assert caught.value.code == 451
    assert LIBRARY in caught.value.description
    assert handler.received == []


async def test_550_on_rcpt_is_permanent() -> None:
    handler = Collector(refuse={"*": "550 5.1.1 No such user"})
    async with smtp_server(handler) as port:
        with pytest.raises(PermanentMailError) as caught:
            await SmtpSender(settings(port)).send(ticket())
    assert caught.value.code == 550
    assert "No such user" in caught.value.description
    assert handler.received == []


async def test_partly_refused_is_permanent_not_resent() -> None:
    handler = Collector(refuse={"gone@example.org": "550 5.1.1 No such user"})
    msg = ticket()
    msg.replace_header("To", f"{LIBRARY}, gone@example.org")
    async with smtp_server(handler) as port:
        with pytest.raises(PermanentMailError) as caught:
            await SmtpSender(settings(port)).send(msg)
    assert "gone@example.org" in caught.value.description
    [got] = handler.received
    assert got.rcpt_tos == [LIBRARY]


async def test_closed_port_is_temporary() -> None:
    with pytest.raises(TemporaryMailError) as caught:
        await SmtpSender(settings(free_port())).send(ticket())
    assert caught.value.code is None
    assert "127.0.0.1" in caught.value.description
    assert "\n" not in caught.value.description


async def test_silent_server_times_out_as_temporary() -> None:
    async def never_greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(never_greet, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TemporaryMailError):
            await SmtpSender(settings(port, timeout=0.5)).send(ticket())
    finally:
        server.close()
        await server.wait_closed()


def authenticator(
    server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"desk"
        and auth_data.password == b"s3cret"
    )
    # handled=False: aiosmtpd then sends the 535 itself.
    return AuthResult(success=ok, handled=False)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_auth_with_username_and_password() -> None:
    handler = Collector()
    async with smtp_server(
        handler, authenticator=authenticator, auth_required=True, auth_require_tls=False
    ) as port:
        await SmtpSender(settings(port, username="desk", password="s3cret")).send(ticket())
        with pytest.raises(PermanentMailError) as caught:
            await SmtpSender(settings(port, username="desk", password="wrong")).send(ticket())
        assert caught.value.code == 535
        assert "username or password" in caught.value.description
        # Without credentials the server refuses MAIL with 530.
        with pytest.raises(PermanentMailError) as unauthenticated:
            await SmtpSender(settings(port)).send(ticket())
        assert unauthenticated.value.code == 530
    assert len(handler.received) == 1


async def test_starttls_without_verification(cert: Cert) -> None:
    handler = Collector()
    async with smtp_server(
        handler, tls_context=cert.server_context(), require_starttls=True
    ) as port:
        await SmtpSender(settings(port, security="starttls", verify_tls=False)).send(ticket())
    [got] = handler.received
    assert got.tls


async def test_starttls_verifies_certificates_by_default(cert: Cert) -> None:
    handler = Collector()
    async with smtp_server(
        handler, tls_context=cert.server_context(), require_starttls=True
    ) as port:
        with pytest.raises(TemporaryMailError) as caught:
            await SmtpSender(settings(port, security="starttls")).send(ticket())
        assert "TLS" in caught.value.description or "certificate" in caught.value.description
        # Trusting the certificate as a CA makes the same server acceptable.
        await SmtpSender(settings(port, security="starttls", ca_file=str(cert.cert))).send(ticket())
    [got] = handler.received
    assert got.tls


async def test_starttls_required_but_not_offered_is_temporary() -> None:
    handler = Collector()
    async with smtp_server(handler) as port:
        with pytest.raises(TemporaryMailError):
            await SmtpSender(settings(port, security="starttls")).send(ticket())
    assert handler.received == []


async def test_none_never_upgrades_even_when_offered(cert: Cert) -> None:
    handler = Collector()
    async with smtp_server(handler, tls_context=cert.server_context()) as port:
        # verify_tls stays True: an opportunistic upgrade would fail on the self-signed cert.
        await SmtpSender(settings(port, security="none")).send(ticket())
    [got] = handler.received
    assert not got.tls


async def test_implicit_tls(cert: Cert) -> None:
    handler = Collector()
    async with smtp_server(handler, ssl_context=cert.server_context()) as port:
        await SmtpSender(settings(port, security="tls", verify_tls=False)).send(ticket())
        with pytest.raises(TemporaryMailError, match="TLS"):
            await SmtpSender(settings(port, security="tls")).send(ticket())
    [got] = handler.received
    assert got.tls


def utf8_message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = FROM
    msg["To"] = "zoë@bücher.example"
    msg["Subject"] = "Grüße"
    msg.set_content("Hallo")
    return msg


async def test_non_ascii_address_uses_smtputf8() -> None:
    handler = Collector()
    async with smtp_server(handler, enable_SMTPUTF8=True) as port:
        await SmtpSender(settings(port)).send(utf8_message())
        # Stored and read back, as the outbox does, it still goes to the same mailbox.
        again = emails.parse_bytes(emails.render_bytes(utf8_message()))
        await SmtpSender(settings(port)).send(again)
    got, second = handler.received
    assert second.rcpt_tos == got.rcpt_tos == ["zoë@bücher.example"]
    assert "SMTPUTF8" in [option.upper() for option in got.mail_options]
    assert emails.parse_bytes(got.content)["To"].addresses[0].username == "zoë"


async def test_non_ascii_address_without_smtputf8_is_permanent() -> None:
    handler = Collector()
    async with smtp_server(handler, enable_SMTPUTF8=False) as port:
        with pytest.raises(PermanentMailError) as caught:
            await SmtpSender(settings(port)).send(utf8_message())
    assert "SMTPUTF8" in caught.value.description
    assert handler.received == []


async def test_message_without_recipients_is_permanent() -> None:
    msg = EmailMessage()
    msg["From"] = FROM
    msg.set_content("nobody")
    with pytest.raises(PermanentMailError):
        await SmtpSender(settings(free_port())).send(msg)


def test_retry_delay_backs_off_to_hourly() -> None:
    delays = [retry_delay(n) for n in range(1, 9)]
    assert delays[:5] == [30.0, 120.0, 600.0, 1800.0, 3600.0]
    assert delays == sorted(delays)
    assert max(delays) == 3600.0
    assert retry_delay(0) == retry_delay(-3) == 30.0
    assert retry_delay(10_000) == 3600.0


def test_settings_refuse_nonsense_and_hide_the_password() -> None:
    assert "s3cret" not in repr(SmtpSettings(username="desk", password="s3cret"))
    with pytest.raises(ValueError):
        SmtpSettings(security="ssl")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SmtpSettings(port=0)
    with pytest.raises(ValueError):
        SmtpSettings(timeout=0)
    with pytest.raises(ValueError):
        SmtpSettings(password="x")
