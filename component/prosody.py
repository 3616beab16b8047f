"""A throwaway local Prosody (Debian's 0.12 package) for the demo and the tests.

`refdesk demo` starts one so that somebody trying refdesk needs no XMPP server of their own,
and the tests (through ``tests/xmpp_servers.py``) start one per test on free loopback ports.
Both own the working directory they pass in: config, data, pid file and log all live there,
so nothing touches ``/etc/prosody`` or ``/var/lib/prosody`` and several instances can run
side by side.

What Prosody 0.12 on Debian needs, found by trying it:

- It refuses to start as root unless the config says ``run_as_root = true``.
- ``prosody -F --config FILE`` runs it in the foreground; the process is ``lua5.4`` itself
  (no wrapper, no children), so one SIGTERM stops it cleanly in a few milliseconds.
- Lua modules need no paths: the Debian package's defaults find them.
- Without a certificates directory it logs an error at every start (and prosodyctl prints
  it at every call); an empty directory silences that. No TLS is offered then, which is what
  loopback tests want.
- ``prosodyctl --config FILE register USER HOST PASSWORD`` writes straight into the data
  directory, so it works while the server runs and the server sees the account at once.
- Nagle's algorithm is on by default and costs ~45 ms per round trip under load:
  ``network_settings = { nagle = false }``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import os
import shutil
import signal
import socket
from pathlib import Path

from component.files import write_private

__all__ = ["LocalProsody", "free_port", "lua_string"]

# Prosody's listeners and our readiness probes use this address only: a throwaway server
# must never be reachable from the network.
_LOOPBACK = "127.0.0.1"
# prctl(2) option that makes the kernel signal a child when its parent dies.
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    Called by the demo and the tests before they start a server. Another process could take
    the port between this call and the server's bind; `LocalProsody.start` checks that the
    port is still free, so such a race fails loudly instead of talking to a stranger.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def lua_string(value: str) -> str:
    """Quote *value* as a Lua string literal for a Prosody config file.

    Used for every path, domain and secret that `LocalProsody.write_config` writes, so a
    quote or a newline in a secret cannot end the string and inject config lines.
    """
    parts = ['"']
    for char in value:
        code = ord(char)
        if char in '\\"':
            parts.append("\\" + char)
        elif code < 32 or code == 127:
            # Lua's decimal escape; three digits so a following digit is not absorbed.
            parts.append(f"\\{code:03d}")
        else:
            parts.append(char)
    parts.append('"')
    return "".join(parts)


def _die_with_parent() -> None:
    """Ask the kernel to SIGTERM the child when the process that started it dies.

    Runs in the forked child just before exec (``preexec_fn``). Without it a crashed test
    run or a killed ``refdesk demo`` leaves Prosody running and holding its ports.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


async def port_accepts(host: str, port: int) -> bool:
    """Return True if something accepts TCP connections on host:port right now.

    Used by the start-up code here and in ``tests/xmpp_servers.py``: before a start (the
    port must be free) and while waiting for the server to listen.
    """
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def read_tail(path: Path, lines: int = 40) -> str:
    """Return the last *lines* lines of a log file, or a note that there is none.

    Used to put the server's own explanation into the RuntimeError of a failed start.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc.strerror})"
    return "\n".join(text.splitlines()[-lines:])


class LocalProsody:
    """One Prosody process with its own config, data and log under *workdir*.

    The demo command and ``tests/xmpp_servers.py`` create one, call `start`, `register`
    the accounts they need, and `stop` it when done. `restart` keeps the data directory, so
    accounts, rosters and offline messages survive it. The caller owns *workdir* and removes
    it when it no longer needs the data.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        domain: str = "localhost",
        component_domain: str,
        component_secret: str,
        c2s_port: int,
        component_port: int,
        prosody_bin: str = "prosody",
        prosodyctl_bin: str = "prosodyctl",
        c2s_interface: str = _LOOPBACK,
        extra_config: tuple[str, ...] = (),
        websocket_port: int | None = None,
    ) -> None:
        self.workdir = workdir
        # Prosody's HTTP port for its WebSocket endpoint (RFC 7395, mod_websocket), where
        # the operators' browser client at /operator/ connects; None: no HTTP at all.
        self.websocket_port = websocket_port
        # Clients' port only: `refdesk demo --host` lets operators on other machines log in;
        # the component port always stays on loopback.
        self.c2s_interface = c2s_interface
        # Lines of Lua added to the global section, for benchmarks that need a setting the
        # demo does not (e.g. component_conflict_resolve); written as given.
        self.extra_config = extra_config
        self.domain = domain
        self.component_domain = component_domain
        self.component_secret = component_secret
        self.host = _LOOPBACK
        self.c2s_port = c2s_port
        self.component_port = component_port
        self.prosody_bin = prosody_bin
        self.prosodyctl_bin = prosodyctl_bin
        self._process: asyncio.subprocess.Process | None = None

    @property
    def websocket_url(self) -> str:
        """The WebSocket endpoint for browser clients ("" when there is none)."""
        if self.websocket_port is None:
            return ""
        host = self._probe_host(self.c2s_port)
        if ":" in host:
            host = f"[{host}]"
        return f"ws://{host}:{self.websocket_port}/xmpp-websocket"

    @property
    def config_path(self) -> Path:
        """The prosody.cfg.lua that `write_config` writes and both binaries are given."""
        return self.workdir / "prosody.cfg.lua"

    @property
    def log_path(self) -> Path:
        """Prosody's own log (level info); quoted in start-up errors."""
        return self.workdir / "prosody.log"

    @property
    def console_path(self) -> Path:
        """Where the process's stdout and stderr go: config errors appear here, not in the log."""
        return self.workdir / "prosody.console"

    @property
    def data_path(self) -> Path:
        """Prosody's data_path: accounts, rosters, offline messages."""
        return self.workdir / "data"

    @property
    def pid(self) -> int | None:
        """The pid of the running Prosody process (None when it is not running); fault
        tests and benchmarks signal it directly (SIGSTOP, SIGKILL)."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        """True while the process that `start` launched has not exited."""
        return self._process is not None and self._process.returncode is None

    def config_text(self) -> str:
        """Return the config that `write_config` writes (separate so tests can read it)."""
        workdir = self.workdir
        ports = f"{{ {self.c2s_port} }}"
        component_ports = f"{{ {self.component_port} }}"
        loopback = f"{{ {lua_string(_LOOPBACK)} }}"
        c2s_interfaces = f"{{ {lua_string(self.c2s_interface)} }}"
        return "\n".join(
            [
                "-- Written by refdesk (component/prosody.py) for a throwaway local Prosody.",
                "-- Rewritten whenever the owner asks; do not edit by hand.",
                "",
                "-- The tests and the demo run as root; Prosody refuses that without this.",
                "run_as_root = true",
                "daemonize = false",
                f"pidfile = {lua_string(str(workdir / 'prosody.pid'))}",
                f"data_path = {lua_string(str(self.data_path))}",
                # An empty directory: no TLS offered, and no error about a missing one.
                f"certificates = {lua_string(str(workdir / 'certs'))}",
                "log = {",
                f'  {{ levels = {{ min = "info" }}, to = "file",'
                f" filename = {lua_string(str(self.log_path))} }};",
                "}",
                "",
                "-- Nagle's algorithm adds ~45 ms per round trip under load (measured: p50 50 ms",
                "-- with it, 5 ms without, at 20 round trips in flight).",
                "network_settings = { nagle = false }",
                "",
                "-- Loopback only (clients' port: as the owner asks), and only the two",
                "-- services refdesk needs.",
                f"interfaces = {loopback}",
                f"c2s_interfaces = {c2s_interfaces}",
                f"c2s_ports = {ports}",
                f"component_interfaces = {loopback}",
                f"component_ports = {component_ports}",
                "c2s_direct_tls_ports = { }",
                "legacy_ssl_ports = { }",
                "s2s_ports = { }",
                "",
                "-- No certificates: clients log in over plain TCP on loopback.",
                "c2s_require_encryption = false",
                "-- SCRAM-SHA-1 is offered anyway (slixmpp uses it); this adds PLAIN for",
                "-- clients without SCRAM, e.g. Pidgin built without Cyrus SASL.",
                "allow_unencrypted_plain_auth = true",
                'authentication = "internal_hashed"',
                'storage = "internal"',
                "",
                "modules_enabled = {",
                '  "roster"; "saslauth"; "disco"; "presence"; "ping";',
                "  -- Operators who are offline must still get what the component sends them.",
                '  "offline";',
                "  -- Operators on a phone and a desktop at once: copies of each chat line on",
                "  -- every device (XEP-0280), the history for a device that was off",
                "  -- (XEP-0313), sessions that survive a flaky mobile network (XEP-0198).",
                '  -- Without carbons, clients report "service-unavailable" at login.',
                '  "carbons"; "mam"; "smacks";',
                "  -- Clients store bookmarks and avatars in PEP; blocking is expected too.",
                '  "pep"; "private"; "vcard_legacy"; "blocklist";',
                *(['  "websocket";'] if self.websocket_port is not None else []),
                "}",
                *self._websocket_config(),
                "-- A throwaway server keeps a short history.",
                'archive_expires_after = "1w"',
                "-- s2s is loaded by default; a throwaway server talks to nobody else.",
                'modules_disabled = { "s2s" }',
                *self.extra_config,
                "",
                f"VirtualHost {lua_string(self.domain)}",
                "",
                f"Component {lua_string(self.component_domain)}",
                f"  component_secret = {lua_string(self.component_secret)}",
                "",
            ]
        )

    def _websocket_config(self) -> list[str]:
        """The lines that open the WebSocket endpoint (after modules_enabled), if asked."""
        if self.websocket_port is None:
            return []
        interfaces = f"{{ {lua_string(self.c2s_interface)} }}"
        return [
            "-- Browser clients (refdesk's /operator/ page) over WebSocket (RFC 7395), on the",
            "-- same interface as the clients' port; plain HTTP like the rest of this server.",
            f"http_ports = {{ {self.websocket_port} }}",
            f"http_interfaces = {interfaces}",
            "https_ports = { }",
            f"http_default_host = {lua_string(self.domain)}",
        ]

    def write_config(self) -> Path:
        """Create the working directories and write prosody.cfg.lua; return its path.

        `start` calls this; the demo may call it first to show the operator the file.
        The file holds the component secret, so it is readable by its owner only.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_path.mkdir(exist_ok=True)
        (self.workdir / "certs").mkdir(exist_ok=True)
        path = self.config_path
        # A new file, 0600 from the start, moved over any old one (whose mode opening it
        # again would keep).
        write_private(path, self.config_text())
        return path

    async def start(self, timeout: float = 20) -> None:
        """Write the config, start Prosody and return once both ports accept connections.

        Raises RuntimeError (with the tail of Prosody's log and console output) if the
        binary is missing, a port is already taken, the process exits, or the ports do not
        open within *timeout* seconds; the process is stopped in those cases.
        """
        if self.running:
            raise RuntimeError("this Prosody is already running")
        binary = shutil.which(self.prosody_bin)
        if binary is None:
            raise RuntimeError(
                f"Prosody binary {self.prosody_bin!r} not found: install Debian's "
                "'prosody' package (apt-get install prosody)"
            )
        for port in self._ports():
            # A port that answers before we start belongs to someone else: waiting for it
            # would "succeed" against the wrong server.
            if await port_accepts(self._probe_host(port), port):
                raise RuntimeError(f"port {self.host}:{port} is already in use")
        self.write_config()
        with open(self.console_path, "ab") as console:
            self._process = await asyncio.create_subprocess_exec(
                binary,
                "--config",
                str(self.config_path),
                "-F",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=console,
                stderr=asyncio.subprocess.STDOUT,
                cwd=str(self.workdir),
                # Its own session: a Ctrl-C meant for the demo's terminal is handled by the
                # demo, which then stops Prosody in order.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        try:
            await self._wait_listening(timeout)
        except BaseException:
            await self.stop()
            raise

    def _ports(self) -> list[int]:
        """The ports this Prosody listens on, for the checks before and after start."""
        extra = [] if self.websocket_port is None else [self.websocket_port]
        return [self.c2s_port, self.component_port, *extra]

    def _probe_host(self, port: int) -> str:
        """Where `start` checks that *port* is free and then listening: loopback, except
        for a clients' port bound to one specific other address."""
        if port not in (self.c2s_port, self.websocket_port):
            return _LOOPBACK
        address = ipaddress.ip_address(self.c2s_interface)
        return _LOOPBACK if address.is_unspecified or address.is_loopback else str(address)

    async def _wait_listening(self, timeout: float) -> None:
        """Poll both ports until they accept connections; called by `start` only."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pending = self._ports()
        while pending:
            process = self._process
            if process is None or process.returncode is not None:
                code = None if process is None else process.returncode
                raise RuntimeError(
                    f"Prosody exited during start-up (status {code})\n{self._tails()}"
                )
            if await port_accepts(self._probe_host(pending[0]), pending[0]):
                pending.pop(0)
                continue
            if loop.time() > deadline:
                raise RuntimeError(
                    f"Prosody did not listen on {self.host}:{pending[0]} within {timeout} s\n"
                    f"{self._tails()}"
                )
            await asyncio.sleep(0.05)

    def _tails(self) -> str:
        """The ends of the log and the console output, for error messages."""
        return (
            f"--- {self.log_path} ---\n{read_tail(self.log_path)}\n"
            f"--- {self.console_path} ---\n{read_tail(self.console_path)}"
        )

    async def stop(self, timeout: float = 10, *, graceful: bool = True) -> None:
        """Stop Prosody: SIGTERM, wait up to *timeout* s, then SIGKILL. Safe to call twice.

        Called by the owner when done, by `restart`, and by `start` on failure. Prosody
        is a single process, so signalling its pid is enough. SIGTERM takes ~5 ms (once
        1 s on a loaded machine); an owner about to delete the data directory anyway can
        pass ``graceful=False`` for an immediate SIGKILL.
        """
        process = self._process
        self._process = None
        if process is None or process.returncode is not None:
            return
        # os.kill rather than process.send_signal(): the latter polls (waitpid) first, and
        # if Prosody has just exited that reaps it under asyncio's child watcher, which then
        # logs "Unknown child process" and reports status 255. The pid cannot be reused
        # before the watcher reaps it, so signalling it here is safe.
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL if not graceful else signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            await process.wait()

    async def restart(self, timeout: float = 20) -> None:
        """Stop and start again on the same ports with the same data directory."""
        await self.stop()
        await self.start(timeout)

    async def register(self, user: str, password: str) -> None:
        """Create the account user@domain (or reset its password) with prosodyctl.

        Works whether or not the server runs: prosodyctl writes the account file directly.
        Raises RuntimeError with prosodyctl's output if it fails.
        """
        binary = shutil.which(self.prosodyctl_bin)
        if binary is None:
            raise RuntimeError(
                f"prosodyctl binary {self.prosodyctl_bin!r} not found: install Debian's "
                "'prosody' package (apt-get install prosody)"
            )
        if not self.config_path.exists():
            self.write_config()
        process = await asyncio.create_subprocess_exec(
            binary,
            "--config",
            str(self.config_path),
            "register",
            user,
            self.domain,
            password,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=str(self.workdir),
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError(f"prosodyctl register {user}@{self.domain} timed out") from None
        if process.returncode != 0:
            raise RuntimeError(
                f"prosodyctl register {user}@{self.domain} failed (status "
                f"{process.returncode}): {output.decode(errors='replace').strip()}"
            )
