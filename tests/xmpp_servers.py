"""Real XMPP servers for the tests: throwaway Prosody and ejabberd instances on loopback.

The lead's conftest fixtures call `start_server` with a kind ("prosody" or "ejabberd"), a
temporary directory, the component domain and its secret, and `XmppServer.stop` at teardown.
Tests then `register` accounts, connect clients to ``host:c2s_port`` and the component to
``host:component_port``, and may `restart` the server to test reconnection (same ports,
same data: accounts, rosters and offline messages survive), or test abrupt faults: `freeze`
(SIGSTOP: connections stay open, nothing is read) and `thaw`, `kill` (SIGKILL, data kept)
followed by `start`.

Each server gets its own directory, ports and (for ejabberd) Erlang node name and cookie,
so several can run at once and none collides with a system-wide Prosody or ejabberd. A
final `stop` kills every process of the instance and deletes its directory, keeping only
a copy of the server's log next to the test's other files (``<tmp>/<name>.log``).

A missing server binary is a RuntimeError, never a skip: the tests are meant to run on
real servers, and a silently skipped suite would hide that they did not run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Literal, Protocol

import aiohttp

from component.prosody import LocalProsody, free_port, port_accepts, read_tail

__all__ = [
    "EjabberdServer",
    "ProsodyServer",
    "ServerKind",
    "XmppServer",
    "start_server",
]

ServerKind = Literal["prosody", "ejabberd"]
LOOPBACK = "127.0.0.1"
# Where Debian puts ejabberdctl; /usr/sbin is not on every PATH (e.g. a non-login shell).
_SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"
# ejabberdctl switches to this user (su) when started as root.
_EJABBERD_USER = "ejabberd"
# Instance directories are /tmp/refdesk-ejabberd-*; each names its owner in this file.
_EJABBERD_DIR_PREFIX = "refdesk-ejabberd-"
_OWNER_FILE = "owner"


class XmppServer(Protocol):
    """What the tests may rely on, whichever server runs underneath."""

    kind: ServerKind
    domain: str  # the user domain: accounts are user@domain
    host: str  # always 127.0.0.1
    c2s_port: int
    component_domain: str
    component_port: int
    component_secret: str
    websocket_url: str  # the RFC 7395 endpoint browsers log in through (ws://, loopback)
    last_start_seconds: float  # wall time of the last start (for reports)
    last_stop_seconds: float

    @property
    def log_path(self) -> Path:
        """The server's live log file (gone after the final `stop`)."""
        ...

    async def start(self) -> None:
        """Start (again) and return once the client and component ports accept connections."""
        ...

    async def stop(self) -> None:
        """Stop for good: kill every process of the instance and delete its directory."""
        ...

    async def restart(self) -> None:
        """Stop and start on the same ports with the same data."""
        ...

    def freeze(self) -> None:
        """SIGSTOP the server: it keeps its connections open but reads nothing, so what
        its peers write stays unprocessed in the socket buffers (a hung server)."""
        ...

    def thaw(self) -> None:
        """SIGCONT after `freeze`."""
        ...

    async def kill(self) -> None:
        """SIGKILL the server (a crash: nothing is flushed, connections are cut); the data
        stays and `start` brings it back on the same ports."""
        ...

    async def register(self, user: str, password: str) -> None:
        """Create the account user@domain, or reset its password if it exists."""
        ...

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, for assertion messages."""
        ...


def _keep_log(log: Path, keep_in: Path, name: str) -> None:
    """Copy a server's log to *keep_in* before its directory is deleted (best effort)."""
    with contextlib.suppress(OSError):
        if log.exists():
            shutil.copyfile(log, keep_in / f"{name}.log")


class ProsodyServer:
    """A `LocalProsody` in a fresh directory under the test's temporary directory."""

    kind: ServerKind = "prosody"

    def __init__(
        self,
        tmp: Path,
        *,
        component_domain: str,
        component_secret: str,
        domain: str = "localhost",
    ) -> None:
        self.domain = domain
        self.host = LOOPBACK
        self.component_domain = component_domain
        self.component_secret = component_secret
        self.c2s_port = free_port()
        self.component_port = free_port()
        self.websocket_port = free_port()
        self.last_start_seconds = 0.0
        self.last_stop_seconds = 0.0
        self._tmp = tmp
        self._workdir = Path(tempfile.mkdtemp(prefix="prosody-", dir=tmp))
        self._prosody = LocalProsody(
            self._workdir,
            domain=domain,
            component_domain=component_domain,
            component_secret=component_secret,
            c2s_port=self.c2s_port,
            component_port=self.component_port,
            websocket_port=self.websocket_port,
        )
        self.websocket_url = self._prosody.websocket_url

    @property
    def log_path(self) -> Path:
        """Prosody's log inside the instance directory."""
        return self._prosody.log_path

    def log_tail(self, lines: int = 40) -> str:
        """The end of Prosody's log."""
        return read_tail(self.log_path, lines)

    async def start(self) -> None:
        """Start Prosody (recreating the directory if a final `stop` removed it)."""
        began = time.monotonic()
        await self._prosody.start()
        self.last_start_seconds = time.monotonic() - began

    async def _stop_process(self, *, graceful: bool = True) -> None:
        began = time.monotonic()
        await self._prosody.stop(graceful=graceful)
        self.last_stop_seconds = time.monotonic() - began

    async def stop(self) -> None:
        """Stop Prosody at once (SIGKILL) and delete its directory, keeping a copy of the log."""
        await self._stop_process(graceful=False)
        _keep_log(self.log_path, self._tmp, self._workdir.name)
        shutil.rmtree(self._workdir, ignore_errors=True)

    async def restart(self) -> None:
        """Stop and start again; the data directory (accounts, offline messages) stays."""
        await self._stop_process()
        await self.start()

    def _signal(self, sig: signal.Signals) -> None:
        pid = self._prosody.pid
        if pid is None:
            raise RuntimeError("this Prosody is not running")
        os.kill(pid, sig)

    def freeze(self) -> None:
        """SIGSTOP Prosody (a single process)."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT Prosody."""
        self._signal(signal.SIGCONT)

    async def kill(self) -> None:
        """SIGKILL Prosody and reap it; its data directory stays."""
        await self._stop_process(graceful=False)

    async def register(self, user: str, password: str) -> None:
        """Create user@domain with prosodyctl (works while Prosody runs)."""
        await self._prosody.register(user, password)


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """Return (parent pid, start time in clock ticks) of *pid*, or None if it is gone.

    The start time tells a process from a later one that reuses its pid, so `stop` never
    signals a stranger.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after the last ")".
    fields = raw.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[19])


def _all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _process_tree(root: int) -> dict[int, int]:
    """Return {pid: start time} of *root* and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for pid in _all_pids():
        stat = _proc_stat(pid)
        if stat is not None:
            children.setdefault(stat[0], []).append(pid)
            starts[pid] = stat[1]
    tree: dict[int, int] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in starts and pid not in tree:
            tree[pid] = starts[pid]
            todo.extend(children.get(pid, []))
    return tree


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _running(pid: int, start: int) -> bool:
    """Whether *pid* is still the process that started at *start* and has not exited (a
    zombie has exited: its files and sockets are closed)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = raw.rsplit(")", 1)[1].split()
    return int(fields[19]) == start and fields[0] not in ("Z", "X")


def _holds_open(pid: int, prefix: str) -> bool:
    """Whether process `pid` has a file under `prefix` open (True when that cannot be
    read, so the caller keeps waiting; False once the process is gone)."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    except OSError:
        return True
    for name in names:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith(prefix):
                return True
    return False


def _kill_if_same(pid: int, start: int, sig: signal.Signals) -> None:
    """Send *sig* to *pid* only if it is still the process that started at *start*."""
    stat = _proc_stat(pid)
    if stat is not None and stat[1] == start:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _reap_orphaned_instances() -> None:
    """Kill and delete throwaway ejabberd instances whose owning test process is gone.

    A test run that is killed (CI timeout, Ctrl-C twice) never reaches `stop`, and the
    ejabberd node it started would run on. Each instance directory records its owner's
    pid and start time; `EjabberdServer` calls this before making a new directory, and
    only instances whose owner is dead are touched, so parallel runs leave each other be.
    Their processes are found by the directory path in their command line.
    """
    for workdir in Path(tempfile.gettempdir()).glob(f"{_EJABBERD_DIR_PREFIX}*"):
        try:
            pid_text, start_text = (workdir / _OWNER_FILE).read_text().split()
            owner_pid, owner_start = int(pid_text), int(start_text)
        except (OSError, ValueError):
            continue  # being created right now, or not ours
        stat = _proc_stat(owner_pid)
        if stat is not None and stat[1] == owner_start:
            continue
        marker = str(workdir)
        for pid in _all_pids():
            if marker in _cmdline(pid):
                pid_stat = _proc_stat(pid)
                if pid_stat is not None:
                    _kill_if_same(pid, pid_stat[1], signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)


class EjabberdServer:
    """A throwaway ejabberd node run through Debian's ejabberdctl, in the foreground.

    Everything lives in one directory made with mkdtemp under the system temporary
    directory (pytest's own is mode 0700 for root, which the ``ejabberd`` user that
    ejabberdctl switches to cannot enter), owned by that user:

    - ``etc/``: ejabberd.yml, ejabberdctl.cfg and inetrc. Passing ``--config-dir`` rather
      than ``--config`` matters: ejabberdctl sources ``<config-dir>/ejabberdctl.cfg``, and
      Debian's ``/etc/ejabberd/ejabberdctl.cfg`` would set EJABBERD_CONFIG_PATH back to
      ``/etc/ejabberd/ejabberd.yml``, silently overriding ``--config``.
    - ``spool/``: the Mnesia database (accounts, rosters, offline messages) and pid file.
    - ``logs/``: ejabberd.log, error.log, plus ``console.log`` (ejabberdctl's output).

    Erlang distribution uses ``ERL_DIST_PORT`` (a free loopback port): no epmd is started
    or contacted, and ejabberdctl skips its start-up check that would otherwise run
    ``epmd -kill`` and look at every ``beam`` process on the machine.
    """

    kind: ServerKind = "ejabberd"

    def __init__(
        self,
        tmp: Path,
        *,
        component_domain: str,
        component_secret: str,
        domain: str = "localhost",
        ejabberdctl_bin: str = "ejabberdctl",
    ) -> None:
        self.domain = domain
        self.host = LOOPBACK
        self.component_domain = component_domain
        self.component_secret = component_secret
        self.c2s_port = free_port()
        self.component_port = free_port()
        self.dist_port = free_port()
        # ejabberd's HTTP admin API (mod_http_api), loopback only: `register` posts there
        # instead of running ejabberdctl, which boots an Erlang VM for every call.
        self.api_port = free_port()
        # Browsers (the /operator/ page) log in over WebSocket on the same HTTP listener.
        self.websocket_url = f"ws://{LOOPBACK}:{self.api_port}/xmpp-websocket"
        # Unique per instance: names the Erlang node and marks every VM it (or a ctl call
        # against it) starts, which `stop` uses to find stragglers.
        self.node = f"refdesk-{secrets.token_hex(6)}@localhost"
        self._cookie = secrets.token_hex(16)
        self.last_start_seconds = 0.0
        self.last_stop_seconds = 0.0
        self._tmp = tmp
        self._ctl_name = ejabberdctl_bin
        self._workdir: Path | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._log_from = 0  # offset in the log where the current start's lines begin

    # --- paths -------------------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        """The instance directory (created by the first `start`)."""
        if self._workdir is None:
            raise RuntimeError("this ejabberd was never started")
        return self._workdir

    @property
    def log_path(self) -> Path:
        """ejabberd's main log."""
        return self.workdir / "logs" / "ejabberd.log"

    def log_tail(self, lines: int = 40) -> str:
        """The end of ejabberd's log and of ejabberdctl's console output."""
        logs = self.workdir / "logs"
        return (
            f"--- {self.log_path} ---\n{read_tail(self.log_path, lines)}\n"
            f"--- console ---\n{read_tail(logs / 'console.log', lines)}"
        )

    # --- config ------------------------------------------------------------------------

    def _ejabberdctl(self) -> str:
        path = os.environ.get("PATH", "") + os.pathsep + _SBIN_PATH
        binary = shutil.which(self._ctl_name, path=path)
        if binary is None:
            raise RuntimeError(
                f"{self._ctl_name!r} not found: install Debian's 'ejabberd' package "
                "(apt-get install ejabberd)"
            )
        return binary

    def _owner(self) -> tuple[int, int] | None:
        """(uid, gid) to chown the directory to, or None if we already are that user."""
        try:
            entry = pwd.getpwnam(_EJABBERD_USER)
        except KeyError:
            raise RuntimeError(
                f"no {_EJABBERD_USER!r} system user: install Debian's 'ejabberd' package"
            ) from None
        if os.geteuid() == entry.pw_uid:
            return None
        if os.geteuid() != 0:
            raise RuntimeError(
                f"ejabberdctl runs only as root or as {_EJABBERD_USER!r}; "
                f"this is uid {os.geteuid()}"
            )
        return entry.pw_uid, entry.pw_gid

    def config_text(self) -> str:
        """ejabberd.yml for this instance (JSON strings are valid YAML scalars)."""
        q = json.dumps
        return f"""\
# Written by tests/xmpp_servers.py for a throwaway ejabberd; deleted at stop.
hosts:
  - {q(self.domain)}
loglevel: info
log_rotate_count: 0
hide_sensitive_log_data: false
auth_method: [internal]
auth_password_format: scram
listen:
  -
    port: {self.c2s_port}
    ip: "{LOOPBACK}"
    module: ejabberd_c2s
    # No certificates: clients log in over plain TCP on loopback.
    starttls_required: false
    max_stanza_size: 262144
  -
    port: {self.api_port}
    ip: "{LOOPBACK}"
    module: ejabberd_http
    request_handlers:
      /api: mod_http_api
      /xmpp-websocket: ejabberd_http_ws
  -
    port: {self.component_port}
    ip: "{LOOPBACK}"
    module: ejabberd_service
    # ejabberd's default is no limit; set Prosody's default component limit (512 KiB)
    # so that an oversized stanza closes the component stream on both servers.
    max_stanza_size: 524288
    hosts:
      {q(self.component_domain)}:
        password: {q(self.component_secret)}
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  # A throwaway server talks to nobody else.
  s2s:
    deny: all
s2s_access: s2s
api_permissions:
  "console commands":
    from:
      - ejabberd_ctl
    who: all
    what: "*"
  # The test harness creates accounts over HTTP from loopback (see `register`).
  "test harness":
    from:
      - mod_http_api
    who:
      ip: "127.0.0.1/8"
    what:
      - register
      - change_password
shaper_rules:
  max_user_sessions: 10
  max_user_offline_messages: 5000
modules:
  mod_roster: {{}}
  # Operators who are offline must still get what the component sends them.
  mod_offline:
    access_max_user_messages: max_user_offline_messages
  mod_disco: {{}}
  mod_ping: {{}}
  # Operators' clients on several devices enable message carbons at login and report an
  # error without them (docs/deploy/ejabberd.yml has the full production set).
  mod_carboncopy: {{}}
  # For the change_password command, which `register` uses on an existing account.
  mod_admin_extra: {{}}
  # What a web client (Converse.js at /operator/) asks for at login, as the Prosody
  # harness and docs/deploy/ejabberd.yml have: blocking, archive, PEP, vCards.
  mod_blocking: {{}}
  mod_privacy: {{}}
  mod_caps: {{}}
  mod_mam: {{}}
  mod_pubsub:
    plugins:
      - flat
      - pep
  mod_private: {{}}
  mod_vcard: {{}}
"""

    def ctl_config_text(self) -> str:
        """ejabberdctl.cfg: node name, cookie, distribution port, pid file."""
        spool = self.workdir / "spool"
        return f"""\
# Written by tests/xmpp_servers.py; sourced by ejabberdctl (a shell script).
ERLANG_NODE={self.node}
# Fixed distribution port, loopback only: no epmd, and no "epmd -kill" at start.
ERL_DIST_PORT={self.dist_port}
ERL_OPTIONS="-setcookie {self._cookie} -kernel inet_dist_use_interface {{127,0,0,1}} \
-env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_PID_PATH={spool}/ejabberd.pid
EJABBERD_BYPASS_WARNINGS=true
"""

    def _write_files(self) -> None:
        """Create the instance directory on first start and (re)write its config files."""
        owner = self._owner()
        if self._workdir is None or not self._workdir.exists():
            _reap_orphaned_instances()
            # /tmp itself, not pytest's tmp_path: see the class docstring.
            self._workdir = Path(tempfile.mkdtemp(prefix=_EJABBERD_DIR_PREFIX))
            stat = _proc_stat(os.getpid())
            assert stat is not None
            (self._workdir / _OWNER_FILE).write_text(f"{os.getpid()} {stat[1]}\n")
        workdir = self._workdir
        for sub in ("etc", "spool", "logs"):
            (workdir / sub).mkdir(exist_ok=True)
        etc = workdir / "etc"
        (etc / "ejabberd.yml").write_text(self.config_text())
        (etc / "ejabberdctl.cfg").write_text(self.ctl_config_text())
        # Same resolver settings as Debian's /etc/ejabberd/inetrc; "localhost" in the node
        # name must resolve from /etc/hosts.
        (etc / "inetrc").write_text(
            '{lookup,["file","native"]}.\n{file, resolv, "/etc/resolv.conf"}.\n'
        )
        for path in [workdir, *workdir.rglob("*")]:
            if owner is not None:
                os.chown(path, *owner)
            # The config holds the component secret and the Erlang cookie.
            path.chmod(0o700 if path.is_dir() else 0o600)

    def _ctl_args(self) -> list[str]:
        workdir = self.workdir
        return [
            self._ejabberdctl(),
            "--config-dir",
            str(workdir / "etc"),
            "--spool",
            str(workdir / "spool"),
            "--logs",
            str(workdir / "logs"),
            "--node",
            self.node,
        ]

    # --- life cycle --------------------------------------------------------------------

    async def start(self, timeout: float = 30) -> None:
        """Start ejabberd in the foreground and wait until both ports accept connections.

        On failure the instance's processes are killed and a RuntimeError carries the end
        of ejabberd's log.
        """
        if self._process is not None and self._process.returncode is None:
            raise RuntimeError("this ejabberd is already running")
        began = time.monotonic()
        self._ejabberdctl()  # fail before making any directory if it is not installed
        for port in (self.c2s_port, self.component_port, self.dist_port, self.api_port):
            if await port_accepts(self.host, port):
                raise RuntimeError(f"port {self.host}:{port} is already in use")
        self._write_files()
        # Where this start's lines begin in the log (the log is kept across restarts).
        try:
            self._log_from = self.log_path.stat().st_size
        except FileNotFoundError:
            self._log_from = 0
        with open(self.workdir / "logs" / "console.log", "ab") as console:
            self._process = await asyncio.create_subprocess_exec(
                *self._ctl_args(),
                "foreground",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=console,
                stderr=asyncio.subprocess.STDOUT,
                cwd=str(self.workdir),
                start_new_session=True,
            )
        try:
            await self._wait_listening(timeout)
        except BaseException:
            await self._stop_process()
            raise
        self.last_start_seconds = time.monotonic() - began

    def _says_started(self) -> bool:
        """Whether ejabberd has logged, since this start, that it finished starting."""
        try:
            with open(self.log_path, "rb") as log:
                if log.seek(0, os.SEEK_END) < self._log_from:
                    self._log_from = 0  # written afresh: this start's lines are all of it
                log.seek(self._log_from)
                return b" is started in the node " in log.read()
        except FileNotFoundError:
            return False

    async def _wait_listening(self, timeout: float) -> None:
        """Wait until the three ports accept connections and ejabberd says it has started.

        The ports accept (the listeners bind early) while ejabberd is still starting: a
        SIGTERM then crashes Mnesia mid-commit, and the VM took some 12 s to exit, every
        time a test restarted the server soon after a start."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pending = [self.c2s_port, self.component_port, self.api_port]
        started = False
        while pending or not started:
            process = self._process
            if process is None or process.returncode is not None:
                code = None if process is None else process.returncode
                raise RuntimeError(
                    f"ejabberd exited during start-up (status {code})\n{self.log_tail()}"
                )
            if pending and await port_accepts(self.host, pending[0]):
                pending.pop(0)
                continue
            started = started or self._says_started()
            if not pending and started:
                return
            if loop.time() > deadline:
                what = f"listen on {self.host}:{pending[0]}" if pending else "say it started"
                raise RuntimeError(f"ejabberd did not {what} within {timeout} s\n{self.log_tail()}")
            await asyncio.sleep(0.05)

    async def _stop_process(self, *, graceful: bool = True, timeout: float = 15) -> None:
        """Stop the node, keep its directory. Called by `stop`, `restart` and failed starts.

        The process tree is ejabberdctl (bash) -> su -> sh -> beam.smp -> erl_child_setup
        -> helpers, and su puts its child in a new session, so a process-group signal does
        not reach the VM. With *graceful*, SIGTERM to beam.smp is Erlang's orderly shutdown
        (init:stop), which lets Mnesia close its files; once the VM holds no file of the
        spool directory open any more (or has exited), whatever is left gets SIGKILL, as it
        does after *timeout*. The VM's own exit after that can take many seconds (seen at
        15 s on a node that had served a long test run, with nothing left to write), and
        waiting for it bought nothing. Without *graceful* (the final `stop`, which deletes
        the data anyway) every process of the tree gets SIGKILL at once.
        """
        began = time.monotonic()
        process = self._process
        self._process = None
        if process is not None and process.returncode is None:
            tree = _process_tree(process.pid)
            if graceful:
                beams = [pid for pid in tree if "beam.smp" in _cmdline(pid)]
                for pid in beams:
                    _kill_if_same(pid, tree[pid], signal.SIGTERM)
                if not beams:
                    _kill_if_same(process.pid, tree[process.pid], signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._data_closed(process, beams), timeout)
                # Helpers the VM started meanwhile (os_mon's memsup, a few seconds after
                # start-up) are in the tree now, not in the first look at it.
                tree = {**tree, **_process_tree(process.pid)}
            # Helpers normally exit with the VM; anything of this tree still there is killed.
            # The tree includes ejabberdctl itself. Signals go through os.kill, never
            # process.kill(): Popen.send_signal first polls (waitpid), which can reap the
            # child under asyncio's child watcher, which then logs "Unknown child process"
            # and reports status 255.
            for pid, start in tree.items():
                _kill_if_same(pid, start, signal.SIGKILL)
            await process.wait()
            # ejabberdctl may be reaped before the VM, which su runs in its own session, and
            # a killed VM's threads release its sockets after the VM shows as exited: until
            # then its ports are taken and a restart would fail.
            deadline = time.monotonic() + timeout
            ports = (self.c2s_port, self.component_port, self.dist_port, self.api_port)
            while any(_running(pid, start) for pid, start in tree.items()) or any(
                [await port_accepts(self.host, port) for port in ports]
            ):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.01)
        self._kill_stragglers()
        self.last_stop_seconds = time.monotonic() - began

    async def _data_closed(self, process: asyncio.subprocess.Process, beams: list[int]) -> None:
        """Return once `process` has exited or no VM of `beams` holds a file of the spool
        directory open: Mnesia has then closed its log and tables, and nothing of the node
        is still to reach the disk. Called by `_stop_process` after SIGTERM."""
        spool = f"{self.workdir / 'spool'}/"
        exited = asyncio.ensure_future(process.wait())
        try:
            while not exited.done():
                if beams and not any(_holds_open(pid, spool) for pid in beams):
                    return
                await asyncio.wait({exited}, timeout=0.05)
        finally:
            exited.cancel()

    def _kill_stragglers(self) -> None:
        """SIGKILL any VM whose command line names this node (e.g. a stuck ctl call).

        The node name holds 12 random hex digits, so this matches only our processes.
        """
        me = os.getpid()
        for pid in _all_pids():
            if pid != me and self.node in _cmdline(pid):
                stat = _proc_stat(pid)
                if stat is not None:
                    _kill_if_same(pid, stat[1], signal.SIGKILL)

    async def stop(self) -> None:
        """Stop the node for good and delete its directory, keeping a copy of the log.

        No orderly shutdown: the data is deleted anyway, and SIGKILL takes milliseconds
        where Erlang's shutdown takes a second.
        """
        await self._stop_process(graceful=False)
        if self._workdir is not None:
            _keep_log(self.log_path, self._tmp, self._workdir.name)
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    async def restart(self) -> None:
        """Stop and start on the same ports with the same Mnesia data."""
        await self._stop_process()
        await self.start()

    def _signal_tree(self, sig: signal.Signals) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            raise RuntimeError("this ejabberd is not running")
        for pid, start in _process_tree(process.pid).items():
            _kill_if_same(pid, start, sig)

    def freeze(self) -> None:
        """SIGSTOP every process of the node (the VM does all the work)."""
        self._signal_tree(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT every process of the node."""
        self._signal_tree(signal.SIGCONT)

    async def kill(self) -> None:
        """SIGKILL every process of the node at once (a crash); the Mnesia data stays."""
        await self._stop_process(graceful=False)

    async def _api(self, command: str, arguments: dict[str, str]) -> tuple[int, str]:
        """Call one command of ejabberd's HTTP admin API; return (HTTP status, body).

        The same commands as ejabberdctl's, answered by the running node: ejabberdctl
        would boot (and stop) an Erlang VM for each call, about a third of a second.
        """
        url = f"http://{self.host}:{self.api_port}/api/{command}"
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(url, json=arguments) as response,
        ):
            return response.status, await response.text()

    async def register(self, user: str, password: str) -> None:
        """Create user@domain through the admin API's ``register`` (or reset its password)."""
        args = {"user": user, "host": self.domain, "password": password}
        status, output = await self._api("register", args)
        if status != 200 and "already registered" in output:
            # Same behaviour as prosodyctl, which overwrites: tests may re-register.
            args = {"user": user, "host": self.domain, "newpass": password}
            status, output = await self._api("change_password", args)
        if status != 200:
            raise RuntimeError(
                f"ejabberd register {user}@{self.domain} failed (HTTP {status}): {output}"
            )


async def start_server(kind: str, tmp: Path, component_domain: str, secret: str) -> XmppServer:
    """Start a throwaway server of *kind* ("prosody" or "ejabberd") and return it running.

    Called by the lead's conftest fixture, which must call ``await server.stop()`` at
    teardown. *tmp* receives the Prosody instance directory and, after `stop`, a copy of
    the server's log. Raises RuntimeError if the server is not installed or fails to start.
    """
    server: XmppServer
    if kind == "prosody":
        server = ProsodyServer(tmp, component_domain=component_domain, component_secret=secret)
    elif kind == "ejabberd":
        server = EjabberdServer(tmp, component_domain=component_domain, component_secret=secret)
    else:
        raise ValueError(f"unknown XMPP server kind {kind!r}; use 'prosody' or 'ejabberd'")
    try:
        await server.start()
    except BaseException:
        await server.stop()
        raise
    return server
