"""`refdesk demo`: the whole service on an embedded default, for trying refdesk out.

It starts a throwaway Prosody on loopback, writes a refdesk config next to it, creates a
demo group, a queue `ask` and two operator accounts, runs refdesk, and prints the widget
URL and the operator logins. Everything lives in one directory (default `./demo`); a second
run reuses it, so the logins stay the same.

Mail does not leave the machine: a small SMTP server (aiosmtpd) in the same process takes
everything refdesk sends (tickets, transcripts, alerts), saves each message under
`demo/mail/` and prints its recipient and subject, so a tryer sees what a patron or a
librarian would receive.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import ipaddress
import json
import logging
import re
import secrets
import shlex
import shutil
import signal
import socket
import sys
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from component.config import write_config_toml
from component.config_loader import load_config
from component.core.changes import QueueUpdate
from component.files import private_dir, write_private
from component.passwords import hash_password
from component.prosody import LocalProsody, free_port
from component.runner import running
from component.store import Store

log = logging.getLogger(__name__)

DEMO_QUEUE = "ask"
DEMO_OPERATORS = ("librarian1", "librarian2")
XMPP_DOMAIN = "localhost"
COMPONENT_DOMAIN = "desk.localhost"
# Where the demo queue's follow-up questions go (caught by the demo's mailbox like all mail).
DEMO_FOLLOWUP = "librarians@localhost"
LOOPBACK = "127.0.0.1"


class DemoError(Exception):
    pass


def _port_free(port: int, host: str = LOOPBACK) -> bool:
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    with socket.socket(family) as s:
        # As the servers themselves bind: a port left in TIME_WAIT by the previous run's
        # connections is free to them.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _prefer(port: int) -> int:
    """The usual port if it is free (so desktop clients find it), else any free one."""
    return port if _port_free(port) else free_port()


def _load_state(workdir: Path, web_port: int) -> dict[str, object]:
    state_file = workdir / "demo.json"
    if state_file.exists():
        state: dict[str, object] = json.loads(state_file.read_text("utf-8"))
        # A demo directory from before the browser client had no WebSocket port.
        state.setdefault("websocket_port", _prefer(5280))
        return state
    state = {
        "secret": secrets.token_urlsafe(16),
        "c2s_port": _prefer(5222),
        "component_port": _prefer(5347),
        "websocket_port": _prefer(5280),
        "web_port": web_port,
        "passwords": {name: secrets.token_urlsafe(9) for name in DEMO_OPERATORS},
        "admin_password": secrets.token_urlsafe(12),
    }
    private_dir(workdir)
    write_private(state_file, json.dumps(state, indent=2))
    return state


class DemoMailbox:
    """The demo's SMTP server: keeps every message refdesk sends under *directory*.

    `_demo` starts it before refdesk (whose `[mail]` section points at it) and closes it
    after. aiosmtpd calls `handle_DATA` once per message; each is saved as an .eml file
    and announced on standard output with its recipients and subject.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on a free loopback port (`port` says which)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        # aiosmtpd logs every SMTP command at INFO ("mail.log"): nine lines per message
        # that bury the one line `save` prints. Its warnings and errors still show.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            partial(SMTP, self, hostname="localhost"), LOOPBACK, 0
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def save(self, recipients: list[str], content: bytes) -> Path:
        """Write one message to the next free numbered file; return its path."""
        message = email.message_from_bytes(content, policy=email.policy.default)
        subject = str(message.get("Subject", ""))
        slug = re.sub(r"[^a-z0-9]+", "-", subject.lower()).strip("-")[:40] or "message"
        number = sum(1 for _ in self.directory.glob("*.eml")) + 1
        path = self.directory / f"{number:03d}-{slug}.eml"
        path.write_bytes(content)
        print(
            f"  Mail to {', '.join(recipients)}: {subject!r}  saved in {shlex.quote(str(path))}",
            flush=True,
        )
        return path

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        """aiosmtpd's hook for a complete message."""
        content = envelope.original_content or envelope.content
        if not isinstance(content, bytes):
            content = str(content).encode("utf-8", "replace")
        self.save([str(r) for r in envelope.rcpt_tos], content)
        return "250 Message accepted for delivery"


def _refdesk_command() -> str:
    """How to run this refdesk from a shell: the console script of the environment the demo
    runs in (scripts/demo uses .venv, which is not on the tryer's PATH)."""
    script = Path(sys.executable).parent / "refdesk"
    # Absolute: scripts/demo changes to the repository first, the tryer's shell may not.
    return shlex.quote(str(script)) if script.exists() else "refdesk"


def _url_host(host: str) -> str:
    """The host part for the URLs the banner prints when listening on *host*."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.is_unspecified:
        return socket.getfqdn() or LOOPBACK
    return f"[{host}]" if address.version == 6 else host


def write_demo_config(
    workdir: Path,
    state: dict[str, object],
    web_port: int,
    *,
    host: str = LOOPBACK,
    smtp_port: int = 25,
) -> Path:
    """Write the demo's refdesk config (it holds the component secret: mode 0600).

    Called by `_demo` once the demo's mailbox listens (its port goes into `[mail]`)."""
    path = workdir / "refdesk.toml"
    text = write_config_toml(
        {
            "xmpp": {
                "domain": COMPONENT_DOMAIN,
                "secret": state["secret"],
                "host": LOOPBACK,
                "port": state["component_port"],
            },
            "web": {
                "host": host,
                "port": web_port,
                "public_url": f"http://{_url_host(host)}:{web_port}",
            },
            "storage": {"path": "refdesk.sqlite3"},
            # The operators' browser client at /operator/ logs in through the demo
            # Prosody's WebSocket endpoint.
            "operator_web": {"websocket_url": _websocket_url(host, state)},
            "mail": {
                "smtp_host": LOOPBACK,
                "smtp_port": smtp_port,
                "from_address": "Ask a Librarian (demo) <desk@localhost>",
            },
        }
    )
    write_private(path, text)
    return path


async def _seed(store: Store, operators: list[str], admin_password: str) -> None:
    now = datetime.now(UTC)
    if await store.accounts.admin_by_name("admin") is None:
        await store.accounts.add_admin("admin", hash_password(admin_password), "admin", None, now)
    group = await store.groups.by_name("demo") or await store.groups.add(
        "demo", "Demo Library", now
    )
    queue = await store.queues.by_name(DEMO_QUEUE) or await store.queues.add(
        DEMO_QUEUE, group.id, "Ask a Librarian", DEMO_FOLLOWUP, now
    )
    if not queue.followup_email:
        # Demo directories made before the demo caught mail have no follow-up address.
        await store.queues.update(queue.id, QueueUpdate(followup_email=DEMO_FOLLOWUP))
    for jid in operators:
        name = jid.split("@")[0].replace("librarian", "Librarian ")
        op = await store.operators.upsert(jid, name, 3, now)
        await store.operators.assign(queue.id, op.id)


async def _demo(workdir: Path, web_port: int, host: str) -> None:
    if shutil.which("prosody") is None or shutil.which("prosodyctl") is None:
        raise DemoError(
            "Prosody is not installed. Install it with: sudo apt-get install prosody "
            "(scripts/demo does this for you)."
        )
    if not _port_free(web_port, host):
        # Before Prosody starts: nothing to undo, and the tryer learns what to change.
        raise DemoError(
            f"port {web_port} on {host} is in use (another refdesk or web server?): "
            "pick another with --port"
        )
    workdir = workdir.resolve()
    # Everything in it is the demo's secrets and data (passwords, the component secret,
    # chats): the directory is the owner's alone, even one made by an earlier version.
    private_dir(workdir)
    state = _load_state(workdir, web_port)
    passwords = state["passwords"]
    assert isinstance(passwords, dict)
    prosody = LocalProsody(
        workdir / "prosody",
        domain=XMPP_DOMAIN,
        component_domain=COMPONENT_DOMAIN,
        component_secret=str(state["secret"]),
        c2s_port=int(str(state["c2s_port"])),
        component_port=int(str(state["component_port"])),
        c2s_interface=host,
        websocket_port=int(str(state["websocket_port"])),
    )
    private_dir(workdir / "prosody")
    mailbox = DemoMailbox(workdir / "mail")
    await mailbox.start()
    url = f"http://{_url_host(host)}:{web_port}"
    config_path = write_demo_config(workdir, state, web_port, host=host, smtp_port=mailbox.port)
    config = load_config(config_path)
    try:
        await prosody.start()
        jids = []
        for user, password in passwords.items():
            await prosody.register(user, str(password))
            jids.append(f"{user}@{XMPP_DOMAIN}")
        store = await Store.open(config.storage.path)
        try:
            await _seed(store, jids, str(state.get("admin_password", "")) or "change-me-now")
        finally:
            await store.close()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with running(config):
            _print_banner(
                config_path,
                url,
                _url_host(host),
                int(str(state["c2s_port"])),
                passwords,
                str(state.get("admin_password", "change-me-now")),
                mailbox.directory,
            )
            if not ipaddress.ip_address(host).is_loopback:
                print(
                    f"  WARNING: listening on {host}, beyond this machine. This demo has no TLS,"
                    "\n  accepts passwords in plain text and is not meant for real patrons;"
                    "\n  see docs/deploy.md for a real installation.\n",
                    flush=True,
                )
            await stop.wait()
            log.info("shutting down")
    finally:
        await prosody.stop()
        await mailbox.close()


def _websocket_url(host: str, state: dict[str, object]) -> str:
    """The demo Prosody's WebSocket endpoint as a browser on *host* reaches it."""
    return f"ws://{_url_host(host)}:{state['websocket_port']}/xmpp-websocket"


def _print_banner(
    config_path: Path,
    url: str,
    xmpp_host: str,
    c2s_port: int,
    passwords: dict[str, object],
    admin_password: str,
    mail_dir: Path,
) -> None:
    """What a tryer needs, printed once everything runs. Every command in it is printed
    so that it works when pasted into a shell (tests/test_demo.py runs them)."""
    refdesk = f"{_refdesk_command()} --config {shlex.quote(str(config_path))}"
    lines = [
        "",
        "refdesk demo is running. Press Ctrl-C to stop it.",
        "",
        f"  Patron widget:  {url}/chat/{DEMO_QUEUE}",
        f"  Queue status:   {url}/api/queues/{DEMO_QUEUE}/status",
        "",
        f"  Operator logins (any XMPP client; server {xmpp_host}, port {c2s_port}, no TLS):",
    ]
    for user, password in passwords.items():
        lines.append(f"    {user}@{XMPP_DOMAIN}   password: {password}")
    lines += [
        "",
        f"  Operators in the browser: {url}/operator/  (log in with an account above)",
        "",
        f"  The queue appears in the operators' rosters as {DEMO_QUEUE}@{COMPONENT_DOMAIN};",
        "  a patron's question arrives from a guest-... address: reply to take the chat,",
        "  send !help for the commands.",
        "",
        f"  Mail (tickets, transcripts) is not sent out: it is saved in {mail_dir}",
        "  and each message is listed here as it arrives.",
        "",
        "  Other commands, in another terminal:",
        f"    {refdesk} operator list",
        f"    {refdesk} queue list",
        f"    {refdesk} ban list",
        "",
        f"  Admin page:     {url}/admin/  (admin / {admin_password})",
        "",
    ]
    print("\n".join(lines), flush=True)


def run_demo(workdir: Path, web_port: int, host: str = LOOPBACK) -> int:
    """Entry point of `refdesk demo` (called by the CLI); returns the exit status."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        print(f"refdesk: error: --host must be an IP address, got {host!r}")
        return 2
    try:
        asyncio.run(_demo(workdir, web_port, host))
    except DemoError as exc:
        print(f"refdesk: error: {exc}")
        return 2
    return 0
