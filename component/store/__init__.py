"""All SQL of refdesk, behind one object: `Store`, holding one sub-store per concept
(`store.groups`, `store.queues`, `store.chats`, `store.bans`, …) over one shared
connection.

The service calls it; nothing else touches the database. SQLite in WAL mode through
aiosqlite by default, or PostgreSQL through asyncpg when opened with a `postgresql://`
URL (component/store/pg.py). Numbered migrations in `component/migrations/NNN_name.sql`
are applied at open, tracked with `PRAGMA user_version` (SQLite) or the `refdesk_schema`
table (PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from importlib import resources
from pathlib import Path

import aiosqlite

from component.files import create_private, foreign_owner
from component.store.accounts import AccountStore
from component.store.bans import BanStore
from component.store.canned import CannedStore
from component.store.chats import ChatStore
from component.store.commit_queue import CommitQueue
from component.store.copy import copy_to_sqlite
from component.store.db import Database, StoreError
from component.store.exempt import ExemptStore
from component.store.exempt_contacts import ExemptContactStore
from component.store.groups import GroupStore
from component.store.handover import HandoverStore
from component.store.incidents import IncidentStore
from component.store.links import LinkStore
from component.store.mail import MailStore
from component.store.notices import NoticeStore
from component.store.operators import OperatorStore
from component.store.ops import BackupResult, OpsStore, OutboxSummary
from component.store.pg import PgDatabase, is_url, pg_ddl
from component.store.queues import QueueStore
from component.store.ratings import RatingsStore
from component.store.stats import StatsStore
from component.store.sticky import StickyStore
from component.store.tickets import TicketStore
from component.store.transcripts import TranscriptStore

__all__ = ["BackupResult", "OutboxSummary", "Store", "StoreError", "migrations"]

_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """The numbered migrations shipped with the package, in order: (number, name, sql)."""
    found = []
    for entry in resources.files("component.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    if numbers != list(range(1, len(found) + 1)):
        raise StoreError(f"migrations are not numbered 1..N without gaps: {numbers}")
    return found


def migrations_for(dialect: str) -> list[tuple[int, str, str]]:
    """The migrations as one engine runs them. For PostgreSQL, a file
    `NNN_name.postgresql.sql` beside `NNN_name.sql` replaces it where translating the
    SQLite text (`pg_ddl`) is not enough; otherwise the translation is used. Called by
    `Store.migrate`."""
    found = migrations()
    if dialect != "postgresql":
        return found
    folder = resources.files("component.migrations")
    result = []
    for number, name, sql in found:
        variant = folder.joinpath(name.removesuffix(".sql") + ".postgresql.sql")
        result.append(
            (number, name, variant.read_text("utf-8") if variant.is_file() else pg_ddl(sql))
        )
    return result


def _try_open(path: str) -> None:
    """Open and close the database file (creating it if missing); raises sqlite3.Error
    if that cannot be done. Run in a thread by `Store.open`."""
    sqlite3.connect(path).close()


class Store:
    """The database. Created with `await Store.open(path)` by the composition root or the
    CLI, closed with `await store.close()`. Every query is a method of one of its
    sub-stores, which share the one connection (and its write lock) in `db`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # Transcript lines committed together (group commit), see commit_queue.
        self.commits = CommitQueue(db)
        self.groups = GroupStore(db)
        self.queues = QueueStore(db)
        self.operators = OperatorStore(db)
        self.chats = ChatStore(db, self.commits)
        self.transcripts = TranscriptStore(db)
        self.canned = CannedStore(db)
        self.links = LinkStore(db)
        self.exempt = ExemptStore(db)
        self.bans = BanStore(db)
        self.incidents = IncidentStore(db)
        self.tickets = TicketStore(db)
        self.mail = MailStore(db)
        self.accounts = AccountStore(db)
        self.stats = StatsStore(db)
        self.ops = OpsStore(db)
        self.notices = NoticeStore(db)
        self.sticky = StickyStore(db)
        self.ratings = RatingsStore(db)
        # Shift hand-over notes (`!handover`).
        self.handover = HandoverStore(db)
        self.exempt_contacts = ExemptContactStore(db)

    @classmethod
    async def open(cls, path: Path | str, *, synchronous: str = "FULL") -> Store:
        """Open (creating if needed, readable by its owner only) and migrate the database
        at `path`. A file that cannot be opened or is no database (a directory, a missing
        folder, another kind of file) is a StoreError naming the path, for the CLI to print
        as one line. A `postgresql://` URL opens that PostgreSQL database instead."""
        if is_url(path):
            return await cls._open_postgresql(str(path))
        # Try the file with plain sqlite3 first: when aiosqlite's own connect fails, its
        # worker thread later dies noisily on a closed event loop, after the caller has
        # already reported the error.
        try:
            if str(path) != ":memory:":
                create_private(Path(path))
            await asyncio.to_thread(_try_open, str(path))
            connection = await aiosqlite.connect(str(path), isolation_level=None)
        except (sqlite3.Error, OSError, ValueError) as exc:
            owner = foreign_owner(Path(path)) if str(path) != ":memory:" else None
            why = f"{exc} ({owner})" if owner else str(exc)
            raise StoreError(f"cannot open the database {path}: {why}") from None
        try:
            connection.row_factory = aiosqlite.Row
            await connection.execute("PRAGMA journal_mode=WAL")
            # FULL: a message acknowledged to its sender survives a power cut, not only a
            # crash of the process.
            await connection.execute(f"PRAGMA synchronous={synchronous}")
            await connection.execute("PRAGMA foreign_keys=ON")
            # Deleted data (purged addresses and transcripts) is overwritten, not left in
            # free pages of the file.
            await connection.execute("PRAGMA secure_delete=ON")
            await connection.execute("PRAGMA busy_timeout=5000")
            store = cls(Database(connection))
            await store.migrate()
        except sqlite3.Error as exc:
            await connection.close()
            raise StoreError(f"cannot use the database {path}: {exc}") from None
        except BaseException:
            await connection.close()
            raise
        return store

    @classmethod
    async def _open_postgresql(cls, url: str) -> Store:
        """Connect to PostgreSQL and migrate; called by `open` for a URL."""
        db = await PgDatabase.connect(url)
        store = cls(db)
        try:
            await store.migrate()
        except BaseException:
            await db.close()
            raise
        return store

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgresql': which engine this store runs on."""
        return self.db.dialect

    async def close(self) -> None:
        await self.commits.flush()
        if isinstance(self.db, PgDatabase):
            await self.db.close()
            return
        await self.db.connection.close()

    async def migrate(self) -> None:
        """Apply the migrations newer than the database's version, each in its own
        transaction. Called by `open`."""
        if isinstance(self.db, PgDatabase):
            await self._migrate_postgresql(self.db)
            return
        current = await self.schema_version()
        for number, _name, sql in migrations():
            if number <= current:
                continue
            # executescript commits implicitly, so the version bump rides inside the script.
            await self.db.connection.executescript(
                f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;"
            )

    async def _migrate_postgresql(self, db: PgDatabase) -> None:
        """The PostgreSQL side of `migrate`: the version lives in a one-row table, and an
        advisory lock keeps two processes starting at once from migrating together."""
        try:
            await db.script(
                "SELECT pg_advisory_lock(7262001);"
                "CREATE TABLE IF NOT EXISTS refdesk_schema (version BIGINT NOT NULL);"
                "INSERT INTO refdesk_schema SELECT 0"
                " WHERE NOT EXISTS (SELECT 1 FROM refdesk_schema)"
            )
            current = await self.schema_version()
            for number, _name, sql in migrations_for("postgresql"):
                if number <= current:
                    continue
                await db.script(
                    f"BEGIN;\n{sql}\nUPDATE refdesk_schema SET version = {number};\nCOMMIT;"
                )
        except Exception as exc:
            raise StoreError(f"cannot migrate the PostgreSQL database: {exc}") from None
        finally:
            with contextlib.suppress(Exception):
                await db.script("SELECT pg_advisory_unlock(7262001)")
        await db.load_tables()

    async def backup(self, target: Path, *, overwrite: bool = False) -> BackupResult:
        """Write a consistent snapshot of the database to the new SQLite file `target`
        (see `OpsStore.backup` for the file's safety). Called by `refdesk backup`.

        On SQLite that is SQLite's online backup. On PostgreSQL the new file is created
        as an empty refdesk store of the same schema and filled from one read-only
        snapshot, so the backup has the same format either way and `refdesk store copy
        --from FILE` restores it into an empty PostgreSQL database."""
        db = self.db
        if not isinstance(db, PgDatabase):
            return await self.ops.backup(target, overwrite=overwrite)

        async def fill(partial: Path) -> None:
            # synchronous=OFF: the file is checked and moved into place only after it is
            # complete and closed, so a crash midway only leaves a partial file behind.
            copy = await Store.open(partial, synchronous="OFF")
            try:
                await copy_to_sqlite(db, copy.db)
            finally:
                await copy.close()

        return await self.ops.backup(target, overwrite=overwrite, fill=fill)

    async def schema_version(self) -> int:
        if isinstance(self.db, PgDatabase):
            row = await self.db.one("SELECT version FROM refdesk_schema")
            return int(row[0]) if row else 0
        return int(await self.db.pragma("user_version") or 0)

    async def data_version(self) -> int:
        """Changes when another connection (e.g. the CLI) commits; polled by the service."""
        if isinstance(self.db, PgDatabase):
            return await self.db.data_version()
        return int(await self.db.pragma("data_version") or 0)
