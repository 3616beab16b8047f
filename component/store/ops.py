"""Running refdesk in production: health probes, the outbox backlog, integrity checks
and online backups."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from component.store.db import Database, StoreError, from_iso
from component.store.pg import PgDatabase, probe_postgresql

# Writes a snapshot into the new, empty SQLite file it is given (`OpsStore.backup`).
Fill = Callable[[Path], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class OutboxSummary:
    """How much email waits in the outbox, and since when the oldest waits."""

    pending: int
    failed: int
    oldest_pending: datetime | None


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    pages: int
    integrity: str


class OpsStore:
    """`store.ops`: called by the health checks and metrics, `refdesk backup` and
    `refdesk doctor`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def database_file(self) -> Path | None:
        """The main database file, or None for an in-memory database."""
        return await self._db.file()

    async def journal_mode(self) -> str:
        """SQLite's journal mode ('wal'); on PostgreSQL the name of the engine, whose
        write-ahead log is always on."""
        if self._db.dialect == "postgresql":
            return "postgresql"
        return str(await self._db.pragma("journal_mode") or "")

    async def integrity_check(self) -> str:
        """'ok', or what is wrong. On PostgreSQL: the server's count of data-page checksum
        failures in this database (none counted when checksums are off)."""
        if self._db.dialect == "postgresql":
            row = await self._db.one(
                "SELECT COALESCE(checksum_failures, 0) FROM pg_stat_database"
                " WHERE datname = current_database()"
            )
            failures = int(row[0]) if row else 0
            return "ok" if failures == 0 else f"{failures} data page checksum failures"
        return str(await self._db.pragma("integrity_check") or "")

    async def outbox_summary(self) -> OutboxSummary:
        """Called by health checks and metrics scrapes."""
        rows = await self._db.all(
            "SELECT status, COUNT(*) AS n, MIN(created_at) AS oldest FROM mail_outbox"
            " WHERE status IN ('pending', 'failed') GROUP BY status"
        )
        by_status = {row["status"]: row for row in rows}
        pending = by_status.get("pending")
        failed = by_status.get("failed")
        return OutboxSummary(
            pending=int(pending["n"]) if pending else 0,
            failed=int(failed["n"]) if failed else 0,
            oldest_pending=from_iso(pending["oldest"]) if pending else None,
        )

    async def probe_writable(self, timeout: float) -> str | None:
        """Whether a write transaction could start now: None if so, else why not. Called
        by the health check.

        It takes the write lock from a connection of its own and rolls back at once: a
        probe through the service's connection could be left holding a transaction if the
        check gave up while it waited, and a committed probe would make the service think
        another process had changed the data (it reloads on every outside commit)."""
        if isinstance(self._db, PgDatabase):
            return await probe_postgresql(self._db.url, timeout)
        path = await self.database_file()
        if path is None:
            return None
        return await asyncio.to_thread(probe_write, path, timeout)

    async def backup(
        self, target: Path, *, overwrite: bool = False, fill: Fill | None = None
    ) -> BackupResult:
        """Copy the database to `target` as a refdesk SQLite file: a consistent snapshot
        while the service keeps writing. Called by `Store.backup` for `refdesk backup`.

        SQLite is copied with its online backup API. A PostgreSQL store passes `fill`,
        which writes its snapshot into the new SQLite file it is given (see
        `component.store.copy.copy_to_sqlite`); without it a PostgreSQL store is refused.
        The copy is written to a new file beside `target` (created 0600, as it holds
        everything the database holds), checked with `PRAGMA integrity_check`, then moved
        into place, so a failed backup never leaves a partial file under the name given.
        An existing `target` is refused unless `overwrite`."""
        if fill is None and self._db.dialect == "postgresql":
            raise StoreError("the store is PostgreSQL: Store.backup writes its snapshot")
        source = await self.database_file()
        live = source.resolve() if source is not None else None
        own = {Path(f"{live}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")}
        if live is not None and target.resolve() in own:
            # Replacing the live file (or its -wal/-shm) would cut the running service off
            # from its own data.
            raise StoreError(f"{target} is the database itself: back up to another file")
        # Said in terms of the path given: the temporary file below is an inner detail.
        if target.is_dir():
            raise StoreError(
                f"{target} is a directory: name the backup file, e.g. {target / 'refdesk.sqlite3'}"
            )
        if not target.parent.is_dir():
            raise StoreError(f"{target.parent} does not exist: create it first")
        if target.exists() and not overwrite:
            raise StoreError(f"{target} exists (give --force to overwrite it)")
        target = target.absolute()
        partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot write in {target.parent}: {exc.strerror or exc}") from None
        os.close(fd)
        try:
            if fill is None:
                await self._sqlite_copy(partial)
            else:
                await fill(partial)
            pages, integrity = _seal(partial)
            if integrity != "ok":
                raise StoreError(f"the copy failed its integrity check: {integrity}")
            if overwrite:
                os.replace(partial, target)
            else:
                # link() refuses an existing name: never clobber a file that appeared since.
                try:
                    os.link(partial, target)
                except FileExistsError:
                    raise StoreError(f"{target} exists (give --force to overwrite it)") from None
                os.unlink(partial)
        except BaseException:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{partial}{suffix}").unlink(missing_ok=True)
            raise
        return BackupResult(target, pages, integrity)

    async def _sqlite_copy(self, partial: Path) -> None:
        """SQLite's online backup of the live database into the empty file `partial`."""
        copy = sqlite3.connect(partial, isolation_level=None, check_same_thread=False)
        try:
            await self._db.connection.backup(copy)
        finally:
            copy.close()


def _seal(path: Path) -> tuple[int, str]:
    """Make the copy at `path` a single file (no WAL beside it) and check it: (pages,
    integrity). Called by `OpsStore.backup` before the copy is moved into place."""
    copy = sqlite3.connect(path, isolation_level=None)
    try:
        copy.execute("PRAGMA journal_mode=DELETE")
        pages = int(copy.execute("PRAGMA page_count").fetchone()[0])
        integrity = str(copy.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        copy.close()
    return pages, integrity


def probe_write(path: Path, timeout: float) -> str | None:
    """Take the database's write lock and give it back at once: None if that worked, else
    the reason. Runs in a thread (health check) or in `check-config --connect`."""
    try:
        db = sqlite3.connect(
            f"{path.as_uri()}?mode=rw", uri=True, timeout=timeout, isolation_level=None
        )
    except sqlite3.Error as exc:
        return f"cannot open the database: {exc}"
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        db.close()
    return None
