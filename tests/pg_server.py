"""A throwaway PostgreSQL server for the tests: Debian's binaries, a fresh data directory,
a free port on 127.0.0.1, trust authentication, stopped at the end of the session.

Started once per test session by the `postgresql` fixture in tests/conftest.py; every
test that wants a database asks `PgServer.fresh_url` for an empty one of its own. When
the binaries are missing the fixture fails (the store tests must run on both backends).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from component.prosody import free_port
from component.store.active import ACTIVE_LOCK_KEY

# Debian installs the server binaries per major version, outside PATH.
_DEBIAN_BIN = Path("/usr/lib/postgresql")
# The server refuses to run as root; as root the tests run it as Debian's own
# unprivileged `postgres` account.
_UNPRIVILEGED = "postgres"


def pg_bin(name: str) -> str:
    """The path of one PostgreSQL binary (initdb, pg_ctl, psql): on PATH, else the
    newest version under Debian's directory. Raises RuntimeError when none is installed."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(
        (p for p in _DEBIAN_BIN.glob("*/bin") if (p / name).exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed (scripts/install-system-packages --all)"
        )
    return str(versions[-1] / name)


# Shared memory (tmpfs), for a server whose data is thrown away; used only with this much
# free, else the data goes to the system's temporary directory.
_MEMORY_FOLDER = Path("/dev/shm")
_MEMORY_NEEDED = 2 * 1024**3


def _memory_folder() -> str | None:
    """Where `PgServer.start(in_memory=True)` makes its directory: shared memory when it
    exists, is writable and has `_MEMORY_NEEDED` free; else None (the temporary
    directory)."""
    try:
        free = shutil.disk_usage(_MEMORY_FOLDER).free
    except OSError:
        return None
    if free < _MEMORY_NEEDED or not os.access(_MEMORY_FOLDER, os.W_OK):
        return None
    return str(_MEMORY_FOLDER)


def _demote() -> tuple[int, int] | None:
    """(uid, gid) to run the server as, or None to run it as the current user."""
    if os.geteuid() != 0:
        return None
    account = pwd.getpwnam(_UNPRIVILEGED)
    return account.pw_uid, account.pw_gid


@dataclass
class PgServer:
    """One running server; `stop` ends it. Created by `start`."""

    directory: Path
    port: int
    user: str
    ids: tuple[int, int] | None
    # Databases a finished test handed back, emptied (see `recycle`), for `fresh_url`.
    spare: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, *, in_memory: bool = False) -> PgServer:
        """initdb a fresh data directory (under the system's temporary directory, which
        the unprivileged account can reach) and start the server on a free port; returns
        once it accepts connections (pg_ctl -w waits for that).

        `in_memory` (the test session's server) puts the directory in shared memory when
        there is room, with the write-ahead log kept small: the data is thrown away at
        the end, and on a disk shared with other test runs each new database (a 7 MB
        copy, most of it through the log) and the final deletion waited on the disk."""
        ids = _demote()
        parent = _memory_folder() if in_memory else None
        directory = Path(tempfile.mkdtemp(prefix="refdesk-pg-", dir=parent))
        data = directory / "data"
        if ids is not None:
            os.chown(directory, *ids)
        user = _UNPRIVILEGED if ids is not None else pwd.getpwuid(os.geteuid()).pw_name
        server = cls(directory, free_port(), user, ids)
        server._run(
            pg_bin("initdb"),
            "-D",
            str(data),
            "-U",
            user,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        )
        server._run(
            pg_bin("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(directory / "server.log"),
            "-w",
            "-o",
            f"-p {server.port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off"
            + (" -c max_wal_size=64MB -c min_wal_size=32MB" if parent else ""),
            "start",
        )
        return server

    def _run(self, *argv: str) -> None:
        ids = self.ids

        def demote() -> None:
            if ids is not None:
                os.setgid(ids[1])
                os.setuid(ids[0])

        done = subprocess.run(
            argv, capture_output=True, text=True, preexec_fn=demote, cwd=self.directory
        )
        if done.returncode:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip() or done.stdout}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def fresh_url(self) -> str:
        """An empty database of its own for one test: one that an earlier test handed back
        (`recycle`), else a new one."""
        if self.spare:
            return self.url(self.spare.pop())
        name = f"t_{uuid.uuid4().hex[:16]}"
        self._psql("postgres", f"CREATE DATABASE {name}")
        return self.url(name)

    def recycle(self, url: str) -> None:
        """Empty the database of a test that has ended and keep it for the next
        `fresh_url`. Called by the fixtures that asked for it, at teardown.

        Creating a database copies a whole template (7 MB, much of it through the
        write-ahead log): about a third of a second on a busy 2-core machine, and a few
        hundred of them left a gigabyte of files whose deletion held each worker for
        seconds at the end of a run. Dropping the one schema the store writes to (every
        table, sequence and function of it) takes milliseconds. Sessions the test left
        open are ended first: they would hold locks the drop waits for.
        """
        name = url.rsplit("/", 1)[1]
        self._psql(
            name,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()",
            "DROP SCHEMA public CASCADE",
            "CREATE SCHEMA public",
        )
        self.spare.append(name)

    def _psql(self, database: str, *statements: str) -> None:
        """Run `statements` in turn through psql on `database`, stopping at the first
        error (which raises). Called by `fresh_url` and `recycle`."""
        commands = [arg for sql in statements for arg in ("-c", sql)]
        self._run(
            pg_bin("psql"), "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
            "-p", str(self.port), "-U", self.user, "-d", database, *commands,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server and delete its data directory."""
        try:
            self._run(
                pg_bin("pg_ctl"),
                "-D",
                str(self.directory / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            )
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


class FreezingProxy:
    """A TCP relay in front of PostgreSQL for one refdesk process, whose connections can
    be frozen one at a time: bytes stop flowing both ways and nothing is closed, as when
    the network between that process and the database fails. The client sees nothing
    but queries that never return; the server side is then ended with
    pg_terminate_backend, as the server does once its keep-alive probes go unanswered."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        # Upstream local port (the server's client_port) -> whether frozen.
        self._frozen: dict[int, asyncio.Event] = {}
        self._writers: list[asyncio.StreamWriter] = []
        self._relays: set[asyncio.Task[Any]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def freeze(self, client_port: int) -> None:
        self._frozen[client_port].set()

    def freeze_all(self) -> list[int]:
        """Freeze every connection (the whole network to the process fails); returns
        their client ports, as the server sees them."""
        for frozen in self._frozen.values():
            frozen.set()
        return list(self._frozen)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._relays.add(task)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        frozen = self._frozen.setdefault(up_writer.get_extra_info("sockname")[1], asyncio.Event())

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while True:
                try:
                    data = await src.read(65536)
                except ConnectionError:
                    data = b""
                if frozen.is_set():
                    await asyncio.Event().wait()  # never again, and never closed
                if not data:
                    dst.close()
                    return
                dst.write(data)

        # Ended by `stop` (cancelled): a relay has nothing to report then.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._relays:
            task.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)


async def lock_client_port(url: str) -> int:
    """The client port of the database session holding the active lock."""
    admin = await asyncpg.connect(url)
    try:
        return int(
            await admin.fetchval(
                "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                " WHERE l.locktype = 'advisory' AND l.objid = $1 AND l.granted",
                ACTIVE_LOCK_KEY,
            )
        )
    finally:
        await admin.close()
