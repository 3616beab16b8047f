"""A throwaway PostgreSQL server for the tests: Debian's binaries, a fresh data directory,
a free port on 127.0.0.1, trust authentication, stopped at the end of the session.

Started once per test session by the `postgresql` fixture in tests/conftest.py; every
test that wants a database asks `PgServer.fresh_url` for an empty one of its own. When
the binaries are missing the fixture fails (the store tests must run on both backends).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from component.prosody import free_port

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

    @classmethod
    def start(cls) -> PgServer:
        """initdb a fresh data directory (under the system's temporary directory, which
        the unprivileged account can reach) and start the server on a free port; returns
        once it accepts connections (pg_ctl -w waits for that)."""
        ids = _demote()
        directory = Path(tempfile.mkdtemp(prefix="refdesk-pg-"))
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
            f"-p {server.port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off",
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
        """Create an empty database and return its URL; each test gets its own."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self._run(
            pg_bin("psql"),
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            "postgres",
            "-c",
            f"CREATE DATABASE {name}",
        )
        return self.url(name)

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
