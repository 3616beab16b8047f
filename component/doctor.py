"""`refdesk check-config --connect`: try what the configuration points at.

Each check gives one line, `ok` or `FAIL` with what went wrong; the command exits
non-zero when any check fails. The checks: the component handshake with the XMPP server
(or, when refdesk already runs with this configuration, its own report of the stream),
an SMTP session as the mail settings ask for it (EHLO, STARTTLS, login; nothing is sent),
that the database can be written, and that `public_url` is one patrons' browsers can use.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import slixmpp

from component.config import Config, XmppConfig
from component.core.redact import redacted_url, scrub, url_secrets
from component.mailer import MailError, SmtpSender, smtp_settings
from component.store.ops import probe_write
from component.store.pg import probe_postgresql

XMPP_TIMEOUT = 10.0
# What the XMPP server's stream error conditions mean for the component's settings.
_STREAM_ERRORS = {
    "not-authorized": "the server refused the secret (xmpp.secret must match the "
    "component secret in the XMPP server's configuration)",
    "host-unknown": "the server has no component for this domain (declare xmpp.domain as a "
    "component in the XMPP server's configuration)",
    "improper-addressing": "the server has no component for this domain",
}


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    what: str
    text: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.what}: {self.text}"


async def run_checks(config: Config) -> list[Check]:
    """All checks, in order. Called by the CLI."""
    return [
        *await check_xmpp(config),
        await check_smtp(config),
        await (
            check_postgresql(config.storage.url)
            if config.storage.url
            else check_database(config.storage.path)
        ),
        await check_public_url(config.web.public_url),
    ]


async def check_xmpp(config: Config) -> list[Check]:
    """The component handshake, then one with each of `[xmpp] fallback_hosts` (a line
    each). If refdesk already runs with this configuration, a second component connection
    would be refused (Prosody) or be given some of its stanzas (ejabberd): ask the running
    service instead."""
    running = await _running_service(config)
    if running is not None:
        state = "up" if running else "DOWN"
        return [
            Check(
                running,
                "xmpp",
                f"refdesk is running on port {config.web.port} and reports the component "
                f"stream {state}",
            )
        ]
    checks = [await handshake(config.xmpp)]
    for address in config.xmpp.component_addresses[1:]:
        checks.append(await handshake(config.xmpp, address=address, what="xmpp fallback"))
    return checks


async def _running_service(config: Config) -> bool | None:
    """The running refdesk's word on its XMPP stream, or None if none answers here."""
    host = config.web.host if config.web.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    url = f"http://{_url_host(host)}:{config.web.port}/healthz"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http,
            http.get(url) as response,
        ):
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    xmpp = body.get("xmpp") if isinstance(body, dict) else None
    if not isinstance(xmpp, dict) or not isinstance(xmpp.get("connected"), bool):
        return None
    return bool(xmpp["connected"])


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def handshake(
    xmpp_config: XmppConfig,
    timeout: float = XMPP_TIMEOUT,
    *,
    address: tuple[str, int] | None = None,
    what: str = "xmpp",
) -> Check:
    """Open a component stream (XEP-0114) to `address` (default: `host` and `port`),
    authenticate with the secret, close it. Called by `check_xmpp` for each address; the
    result's line is named `what`."""
    host, port = address or (xmpp_config.host, xmpp_config.port)
    where = f"{_url_host(host)}:{port}"
    xmpp = slixmpp.ComponentXMPP(xmpp_config.domain, xmpp_config.secret)  # type: ignore[no-untyped-call]
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[Check] = loop.create_future()

    def finish(check: Check) -> None:
        if not outcome.done():
            outcome.set_result(check)

    def on_session_start(_event: Any) -> None:
        finish(Check(True, what, f"component handshake with {where} as {xmpp_config.domain}"))

    def on_stream_error(error: Any) -> None:
        condition = str(error["condition"])
        if condition == "conflict":
            # Prosody checks the secret before it refuses a second connection.
            finish(
                Check(
                    True,
                    what,
                    f"{where} accepted the secret for {xmpp_config.domain}, which is "
                    "connected already (is refdesk running elsewhere?)",
                )
            )
            return
        meaning = _STREAM_ERRORS.get(condition, "the server closed the stream")
        text = str(error["text"] or "").strip()
        detail = f"{condition}{': ' + text if text else ''}"
        finish(Check(False, what, f"{where}: {meaning} ({detail})"))

    def on_connection_failed(error: Any) -> None:
        xmpp.cancel_connection_attempt()
        if isinstance(error, ConnectionRefusedError):
            reason = "connection refused"
        else:
            reason = getattr(error, "strerror", None) or str(error) or "connection failed"
        finish(Check(False, what, f"cannot connect to {where}: {reason}"))

    def on_disconnected(_reason: Any) -> None:
        finish(Check(False, what, f"{where} closed the connection during the handshake"))

    xmpp.add_event_handler("session_start", on_session_start)
    xmpp.add_event_handler("stream_error", on_stream_error)
    xmpp.add_event_handler("connection_failed", on_connection_failed)
    xmpp.add_event_handler("disconnected", on_disconnected)
    xmpp.connect(host, port)
    try:
        return await asyncio.wait_for(asyncio.shield(outcome), timeout)
    except TimeoutError:
        return Check(False, what, f"no answer from {where} within {timeout:g} s")
    finally:
        xmpp.cancel_connection_attempt()
        if outcome.done() and outcome.result().ok:
            await _quietly(xmpp.disconnect(wait=1.0))
        else:
            xmpp.abort()
        # slixmpp leaves its outgoing-filter task running after the stream is gone; this
        # is a one-shot check, so end it rather than leave it to die with the loop.
        filters = xmpp._run_out_filters
        if filters is not None:
            filters.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await filters


async def _quietly(awaitable: Any) -> None:
    # Closing a check's connection: its result is known already.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(awaitable, 3)


async def check_smtp(config: Config) -> Check:
    settings = dataclasses.replace(smtp_settings(config.mail), timeout=10.0)
    try:
        text = await SmtpSender(settings).probe()
    except MailError as exc:
        return Check(False, "smtp", str(exc))
    return Check(True, "smtp", text)


async def check_database(path: Path) -> Check:
    """The database takes writes; a missing one can be created where it is configured."""
    if path.exists():
        error = await asyncio.to_thread(probe_write, path, 2.0)
        if error is not None:
            return Check(False, "database", f"{path} cannot be written: {error}")
        return Check(True, "database", f"{path} is writable")
    parent = path.parent
    if not parent.is_dir():
        return Check(False, "database", f"{parent} does not exist (for {path.name})")
    if not os.access(parent, os.W_OK | os.X_OK):
        return Check(False, "database", f"{parent} is not writable: {path.name} cannot be made")
    return Check(True, "database", f"{path} will be created on first start")


async def check_postgresql(url: str) -> Check:
    """The PostgreSQL database of `[storage] url` answers and takes writes."""
    error = await probe_postgresql(url)
    if error is not None:
        # The driver's error may quote the URL or its parts, password included.
        return Check(False, "database", f"{redacted_url(url)}: {scrub(error, url_secrets(url))}")
    return Check(True, "database", f"{redacted_url(url)} is writable")


async def check_public_url(url: str) -> Check:
    """Patrons' browsers load the widget from `public_url`: it must name a host that
    resolves, and use https unless it is this machine (a demo or a test)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except OSError as exc:
        return Check(False, "public_url", f"{url}: the host {host} does not resolve ({exc})")
    loopback = all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)
    if parts.scheme != "https" and not loopback:
        return Check(
            False,
            "public_url",
            f"{url} is plain http on a public host: patrons' chats would travel "
            "unencrypted and browsers block the widget on https pages; use https",
        )
    if loopback:
        return Check(
            True, "public_url", f"{url} (this machine only: fine for a demo, not for patrons)"
        )
    return Check(True, "public_url", url)
