"""The SMTP side of outgoing email: hand one message to the configured server.

The outbox owns retries and the "never twice" rule; this module only sends one message
per call and says, by the exception it raises, whether trying again later makes sense:

- `TemporaryMailError`: the server could not be reached, dropped the connection, timed
  out, failed TLS, or answered 4xx. The same message may well go through later.
- `PermanentMailError`: the server answered 5xx (a refused recipient, a refused login), or
  the message itself cannot be sent (no recipients, a non-ASCII address and no SMTPUTF8).

Each error carries `description`, one short sentence for the admin page.
"""

from __future__ import annotations

import contextlib
import copy
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal, get_args

import aiosmtplib

from component.config import MailConfig
from component.core.emails import (
    envelope_recipients,
    envelope_sender,
    render_bytes,
)

__all__ = [
    "MailError",
    "PermanentMailError",
    "Security",
    "SmtpSender",
    "SmtpSettings",
    "TemporaryMailError",
    "retry_delay",
]

Security = Literal["none", "starttls", "tls"]

# Seconds to wait before attempt n+1 after n failures: roughly x4 each time, then hourly.
_RETRY_DELAYS = (30.0, 120.0, 600.0, 1800.0)
_MAX_RETRY_DELAY = 3600.0
# Server replies are shown to admins; a misbehaving server must not flood the page.
_MAX_REPLY_CHARS = 200


class MailError(Exception):
    """A message that was not handed over. `description` is for admins; `code` is the SMTP
    reply code when the server gave one."""

    def __init__(self, description: str, code: int | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.code = code


class TemporaryMailError(MailError):
    """Not sent this time; retry later."""


class PermanentMailError(MailError):
    """Not sent and never will be as it stands; do not retry."""


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """How to reach the SMTP server. `security` is "none" (plain SMTP, no TLS even if
    offered), "starttls" (upgrade required) or "tls" (implicit TLS, usually port 465).
    `verify_tls=False` accepts any certificate (a relay with a self-signed one);
    `ca_file` trusts a private CA instead. `local_hostname` is what we say in EHLO
    (aiosmtplib looks up this machine's name when it is None)."""

    host: str = "127.0.0.1"
    port: int = 25
    security: Security = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    verify_tls: bool = True
    ca_file: str | None = None
    local_hostname: str | None = None

    def __post_init__(self) -> None:
        if self.security not in get_args(Security):
            raise ValueError(f"security must be one of {get_args(Security)}, not {self.security!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be between 1 and 65535, not {self.port}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be positive, not {self.timeout}")
        if self.password is not None and not self.username:
            raise ValueError("a password needs a username")


def smtp_settings(mail: MailConfig) -> SmtpSettings:
    """The `[mail]` section's SMTP settings. Called by the service at start-up and by
    `check-config --connect` (which must not load the service to get them)."""
    return SmtpSettings(
        host=mail.smtp_host,
        port=mail.smtp_port,
        security=mail.smtp_security,  # type: ignore[arg-type]
        username=mail.smtp_username or None,
        password=mail.smtp_password or None,
        verify_tls=mail.smtp_verify_tls,
    )


def retry_delay(attempt: int) -> float:
    """Seconds to wait before the next try after `attempt` failed tries (1 after the
    first failure): 30 s, 2 min, 10 min, 30 min, then every hour.

    Called by the outbox after a `TemporaryMailError`. Values below 1 count as 1.
    """
    index = max(attempt, 1) - 1
    return _RETRY_DELAYS[index] if index < len(_RETRY_DELAYS) else _MAX_RETRY_DELAY


def _reply(code: int, message: str) -> str:
    text = " ".join(message.split())
    if len(text) > _MAX_REPLY_CHARS:
        text = text[: _MAX_REPLY_CHARS - 1] + "…"
    return f"{code} {text}".strip()


def _by_code(code: int, description: str) -> MailError:
    # Only a 5xx reply says "never"; anything odd (a garbled reply, code -1) is treated as
    # passing trouble, since a lost patron question is worse than one more attempt.
    if 500 <= code < 600:
        return PermanentMailError(description, code)
    return TemporaryMailError(description, code)


class SmtpSender:
    """Sends messages through one SMTP server, a fresh connection per message.

    Built once by the composition root from the [mail] settings and given to the outbox.
    """

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    @property
    def _server(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            use_tls=s.security == "tls",
            # False, not None, for "none": None would upgrade whenever the server offers
            # STARTTLS and then fail on a certificate the admin never meant to check.
            start_tls=s.security == "starttls",
            validate_certs=s.verify_tls,
            cert_bundle=s.ca_file,
            username=s.username,
            password=s.password if s.username else None,
            timeout=s.timeout,
            local_hostname=s.local_hostname,
        )

    async def send(
        self,
        msg: EmailMessage,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
    ) -> None:
        """Hand one message to the server; return once it has accepted it.

        Called by the outbox (or directly, for mail that needs no outbox). The envelope
        defaults to the message's From and its To/Cc/Bcc; Bcc headers are removed from what
        is sent. Raises `TemporaryMailError` or `PermanentMailError` as `send_bytes` does.
        """
        try:
            envelope_from = sender if sender is not None else envelope_sender(msg)
            rcpts = list(recipients) if recipients is not None else envelope_recipients(msg)
        except ValueError as exc:
            raise PermanentMailError(f"The message cannot be sent: {exc}.") from exc
        if msg.get_all("bcc") or msg.get_all("resent-bcc"):
            msg = copy.deepcopy(msg)
            del msg["bcc"]
            del msg["resent-bcc"]
        await self.send_bytes(render_bytes(msg), envelope_from, rcpts)

    async def send_bytes(self, data: bytes, sender: str, recipients: Sequence[str]) -> None:
        """Hand over a message already rendered by `render_bytes`, with its envelope.

        Called by the outbox with the bytes and recipients it stored, so what goes out is
        exactly what was written down. Raises `TemporaryMailError` or `PermanentMailError`
        (see the module docstring). When some recipients are refused and others accepted,
        the message has gone out, so it raises `PermanentMailError` naming the refused ones
        rather than inviting a second copy.
        """
        rcpts = list(recipients)
        if not rcpts:
            raise PermanentMailError("The message has no recipients.")
        options = _mail_options(data, [sender, *rcpts])

        smtp = self._client()
        try:
            try:
                await smtp.connect()
            except Exception as exc:
                raise self._connect_error(exc) from exc
            try:
                refused, _reply_text = await smtp.sendmail(
                    sender, rcpts, data, mail_options=options
                )
            except Exception as exc:
                raise self._send_error(exc) from exc
            # Accepted: from here on nothing may become an error, or the outbox would send
            # the message a second time. A failed QUIT is only a rude goodbye.
            with contextlib.suppress(Exception):
                await smtp.quit()
        finally:
            smtp.close()
        if refused:
            detail = "; ".join(
                f"{address}: {_reply(reply.code, reply.message)}"
                for address, reply in refused.items()
            )
            raise PermanentMailError(
                f"The SMTP server {self._server} accepted the message for some recipients "
                f"but refused {detail}."
            )

    async def probe(self) -> str:
        """Connect, say EHLO (upgrading with STARTTLS and logging in as the settings say)
        and quit, sending nothing. Called by `refdesk check-config --connect`; returns what
        was done, or raises `MailError` with the same sentences as a failed send."""
        smtp = self._client()
        try:
            try:
                await smtp.connect()
                if smtp.last_ehlo_response is None:
                    await smtp.ehlo()
            except Exception as exc:
                raise self._connect_error(exc) from exc
            with contextlib.suppress(Exception):
                await smtp.quit()
        finally:
            smtp.close()
        done = ["EHLO"]
        if self.settings.security == "starttls":
            done.append("STARTTLS")
        elif self.settings.security == "tls":
            done.insert(0, "TLS")
        if self.settings.username:
            done.append(f"login as {self.settings.username}")
        return f"SMTP server {self._server}: " + ", ".join(done) + " ok"

    def _connect_error(self, exc: Exception) -> MailError:
        """Classify a failure while connecting, upgrading to TLS or logging in.

        These are about the server or our settings, not this message, so everything but an
        explicit 5xx reply is temporary: the message goes out once the problem is fixed.
        """
        where = self._server
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            return _by_code(
                exc.code,
                f"The SMTP server {where} refused the username or password "
                f"({_reply(exc.code, exc.message)}).",
            )
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return _by_code(
                exc.code,
                f"The SMTP server {where} refused the connection "
                f"({_reply(exc.code, exc.message)}).",
            )
        if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
            return TemporaryMailError(f"The SMTP server {where} did not answer in time.")
        # aiosmtplib wraps a failed implicit-TLS handshake in SMTPConnectError.
        tls_error = exc if isinstance(exc, ssl.SSLError) else exc.__cause__
        if isinstance(tls_error, ssl.SSLError):
            return TemporaryMailError(
                f"TLS with the SMTP server {where} failed: {_one_line(tls_error)}."
            )
        if isinstance(exc, aiosmtplib.SMTPConnectError | ConnectionError):
            return TemporaryMailError(
                f"Could not connect to the SMTP server {where}: {_connect_reason(exc)}."
            )
        if isinstance(exc, aiosmtplib.SMTPNotSupported):
            return TemporaryMailError(
                f"The SMTP server {where} does not support what the mail settings ask for: "
                f"{_one_line(exc)}."
            )
        return TemporaryMailError(
            f"Could not start a session with the SMTP server {where}: {_one_line(exc)}."
        )

    def _send_error(self, exc: Exception) -> MailError:
        """Classify a failure during MAIL, RCPT or DATA."""
        where = self._server
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(
                f"{r.recipient}: {_reply(r.code, r.message)}" for r in exc.recipients
            )
            description = f"The SMTP server {where} refused the recipient {detail}."
            # Nothing was delivered, so retrying is safe as long as one refusal was 4xx.
            if codes and all(500 <= c < 600 for c in codes):
                return PermanentMailError(description, codes[0])
            temporary = [c for c in codes if not 500 <= c < 600]
            return TemporaryMailError(description, temporary[0] if temporary else None)
        if isinstance(exc, aiosmtplib.SMTPSenderRefused):
            return _by_code(
                exc.code,
                f"The SMTP server {where} refused the sender {exc.sender} "
                f"({_reply(exc.code, exc.message)}).",
            )
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return _by_code(
                exc.code,
                f"The SMTP server {where} refused the message ({_reply(exc.code, exc.message)}).",
            )
        if isinstance(exc, aiosmtplib.SMTPNotSupported):
            # Raised for SMTPUTF8: this server can never take this message.
            return PermanentMailError(
                f"The SMTP server {where} cannot take this message: {_one_line(exc)}."
            )
        if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
            return TemporaryMailError(f"The SMTP server {where} did not answer in time.")
        if isinstance(exc, aiosmtplib.SMTPException | OSError):
            return TemporaryMailError(
                f"The connection to the SMTP server {where} failed: {_one_line(exc)}."
            )
        if isinstance(exc, ValueError):
            # aiosmtplib refuses an address it cannot put on the wire safely.
            return PermanentMailError(f"The message cannot be sent: {_one_line(exc)}.")
        return TemporaryMailError(
            f"Sending through the SMTP server {where} failed: {_one_line(exc)}."
        )


def _mail_options(data: bytes, addresses: Sequence[str]) -> list[str]:
    """MAIL FROM parameters the message needs: SMTPUTF8 for non-ASCII addresses or
    headers, BODY=8BITMIME for an 8-bit body (never the case for `render_bytes` output)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")
    head, body = (data, b"") if end < 0 else (data[:end], data[end:])
    options: list[str] = []
    if not head.isascii() or not all(address.isascii() for address in addresses):
        options.append("SMTPUTF8")
    if not body.isascii():
        options.append("BODY=8BITMIME")
    return options


def _connect_reason(exc: BaseException) -> str:
    # aiosmtplib's own message repeats host and port; the underlying OSError says why.
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, socket.gaierror):
        return f"host name not found ({cause.strerror})"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return _one_line(exc)


def _one_line(exc: BaseException) -> str:
    # Sentences are built around it, so its own final full stop goes.
    text = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
    return text if len(text) <= _MAX_REPLY_CHARS else text[: _MAX_REPLY_CHARS - 1] + "…"
