"""`refdesk demo`: the whole service on an embedded default, for trying refdesk out.

It starts a throwaway Prosody on loopback, writes a refdesk config next to it, creates a
demo group, a queue `ask` and two operator accounts, runs refdesk, and prints the widget
URL and the operator logins. Everything lives in one directory (default `./demo`); a second
run reuses it, so the logins stay the same.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import shutil
import signal
import socket
from datetime import UTC, datetime
from pathlib import Path

from component.config import load_config, write_config_toml
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


class DemoError(Exception):
    pass


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
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
        return state
    state = {
        "secret": secrets.token_urlsafe(16),
        "c2s_port": _prefer(5222),
        "component_port": _prefer(5347),
        "web_port": web_port,
        "passwords": {name: secrets.token_urlsafe(9) for name in DEMO_OPERATORS},
        "admin_password": secrets.token_urlsafe(12),
    }
    private_dir(workdir)
    write_private(state_file, json.dumps(state, indent=2))
    return state


def write_demo_config(workdir: Path, state: dict[str, object], web_port: int) -> Path:
    """Write the demo's refdesk config (it holds the component secret: mode 0600)."""
    path = workdir / "refdesk.toml"
    text = write_config_toml(
        {
            "xmpp": {
                "domain": COMPONENT_DOMAIN,
                "secret": state["secret"],
                "host": "127.0.0.1",
                "port": state["component_port"],
            },
            "web": {
                "host": "127.0.0.1",
                "port": web_port,
                "public_url": f"http://127.0.0.1:{web_port}",
            },
            "storage": {"path": "refdesk.sqlite3"},
        }
    )
    write_private(path, text)
    return path


async def _seed(store: Store, operators: list[str], admin_password: str) -> None:
    now = datetime.now(UTC)
    if await store.admin_by_name("admin") is None:
        await store.add_admin("admin", hash_password(admin_password), "admin", None, now)
    group = await store.group_by_name("demo") or await store.add_group("demo", "Demo Library", now)
    queue = await store.queue_by_name(DEMO_QUEUE) or await store.add_queue(
        DEMO_QUEUE, group.id, "Ask a Librarian", None, now
    )
    for jid in operators:
        name = jid.split("@")[0].replace("librarian", "Librarian ")
        op = await store.upsert_operator(jid, name, 3, now)
        await store.assign(queue.id, op.id)


async def _demo(workdir: Path, web_port: int) -> None:
    if shutil.which("prosody") is None or shutil.which("prosodyctl") is None:
        raise DemoError(
            "Prosody is not installed. Install it with: sudo apt-get install prosody "
            "(scripts/demo does this for you)."
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
    )
    private_dir(workdir / "prosody")
    config_path = write_demo_config(workdir, state, web_port)
    config = load_config(config_path)
    await prosody.start()
    try:
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
            _print_banner(config_path, web_port, int(str(state["c2s_port"])), passwords)
            print(
                f"  Admin page:     http://127.0.0.1:{web_port}/admin/  "
                f"(admin / {state.get('admin_password', 'change-me-now')})\n",
                flush=True,
            )
            await stop.wait()
            log.info("shutting down")
    finally:
        await prosody.stop()


def _print_banner(
    config_path: Path, web_port: int, c2s_port: int, passwords: dict[str, object]
) -> None:
    lines = [
        "",
        "refdesk demo is running. Press Ctrl-C to stop it.",
        "",
        f"  Patron widget:  http://127.0.0.1:{web_port}/chat/{DEMO_QUEUE}",
        f"  Queue status:   http://127.0.0.1:{web_port}/api/queues/{DEMO_QUEUE}/status",
        "",
        f"  Operator logins (any XMPP client; server 127.0.0.1, port {c2s_port}, no TLS):",
    ]
    for user, password in passwords.items():
        lines.append(f"    {user}@{XMPP_DOMAIN}   password: {password}")
    lines += [
        "",
        f"  The queue appears in the operators' rosters as {DEMO_QUEUE}@{COMPONENT_DOMAIN};",
        "  a patron's question arrives from a guest-... address: reply to take the chat,",
        "  send !help for the commands.",
        f"  Other commands: refdesk --config {config_path} operator list",
        "",
    ]
    print("\n".join(lines), flush=True)


def run_demo(workdir: Path, web_port: int) -> int:
    """Entry point of `refdesk demo`; returns the exit status."""
    try:
        asyncio.run(_demo(workdir, web_port))
    except DemoError as exc:
        print(f"refdesk: error: {exc}")
        return 2
    return 0
