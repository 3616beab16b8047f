"""Moving a SQLite store into PostgreSQL (`refdesk store copy --to postgresql://…`), and
the other way, a PostgreSQL store into a new SQLite file (`refdesk backup` on
PostgreSQL), so that the same `store copy` restores such a backup.

Both sides are opened as stores, so the target is migrated to the same schema version
first. Every table is copied in one PostgreSQL transaction, parents before children (by
the foreign keys SQLite declares), a table's references to itself filled in after its
rows; the identity counters then continue after the highest copied id, and the row
count of every table is compared before the transaction commits. The target must be
empty (only the canned messages the migrations seed), so a copy is never merged into
live data.

The backup reads the PostgreSQL side in one REPEATABLE READ, read-only transaction: every
table as of one moment, while the service keeps writing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from component.store.db import Database, StoreError, marks
from component.store.pg import PgDatabase, clean

# Rows read from SQLite per round trip: bounds memory for large transcripts.
_BATCH = 5000
# Tables the store keeps for itself on PostgreSQL, not copied.
_OWN = frozenset({"refdesk_schema", "refdesk_changes"})
# Rows the migrations seed in a fresh database, replaced by the source's own.
_SEEDED = frozenset({"canned_messages"})


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    # Columns that reference the table itself (a queue's backup queue).
    self_refs: tuple[str, ...]
    parents: frozenset[str]


async def _tables(source: Database) -> list[_Table]:
    """The source's tables, parents first."""
    rows = await source.all(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    tables: dict[str, _Table] = {}
    for row in rows:
        name = str(row[0])
        # Table names come from the database's own catalogue, never from input.
        info = await source.all(f"PRAGMA table_info({name})")
        keys = await source.all(f"PRAGMA foreign_key_list({name})")
        columns = tuple(str(c["name"]) for c in info)
        key = tuple(str(c["name"]) for c in sorted(info, key=lambda c: c["pk"]) if c["pk"])
        tables[name] = _Table(
            name,
            columns,
            key or columns,
            tuple(str(k["from"]) for k in keys if k["table"] == name),
            frozenset(str(k["table"]) for k in keys if k["table"] != name),
        )
    ordered: list[_Table] = []
    done: set[str] = set()
    while len(ordered) < len(tables):
        ready = [t for n, t in sorted(tables.items()) if n not in done and t.parents <= done]
        if not ready:
            raise StoreError("the source's foreign keys form a cycle between tables")
        ordered.extend(ready)
        done.update(t.name for t in ready)
    return ordered


async def _rows(source: Database, table: _Table) -> list[list[tuple[Any, ...]]]:
    """The table's rows in batches, in key order."""
    batches: list[list[tuple[Any, ...]]] = []
    offset = 0
    columns = ", ".join(table.columns)
    order = ", ".join(table.key)
    while True:
        rows = await source.all(
            f"SELECT {columns} FROM {table.name} ORDER BY {order} LIMIT ? OFFSET ?",
            (_BATCH, offset),
        )
        if not rows:
            return batches
        batches.append([clean(r) for r in rows])
        offset += len(rows)


async def copy_store(source: Database, target: PgDatabase) -> dict[str, int]:
    """Copy every row of the SQLite `source` into the empty PostgreSQL `target`, both
    migrated to the same version; returns the rows copied per table. Raises StoreError
    (and copies nothing) when the target holds data or a row does not fit. Called by
    `refdesk store copy`."""
    tables = [t for t in await _tables(source) if t.name not in _OWN]
    for table in tables:
        if table.name in _SEEDED:
            continue
        if await target.one(f"SELECT 1 FROM {table.name} LIMIT 1"):
            raise StoreError(
                f"the target already holds data (table {table.name}): copy into an empty database"
            )
    counts: dict[str, int] = {}
    pg = target.pg
    try:
        async with target.write_lock, pg.transaction():
            for table in reversed(tables):
                if table.name in _SEEDED:
                    await pg.execute(f"DELETE FROM {table.name}")
            for table in tables:
                counts[table.name] = await _copy_table(source, pg, table)
                copied = await pg.fetchval(f"SELECT count(*) FROM {table.name}")
                if copied != counts[table.name]:
                    raise StoreError(f"{table.name}: {copied} rows arrived of {counts[table.name]}")
                if "id" in table.columns:
                    # The next id after the copied ones, as SQLite would give.
                    await pg.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'),"
                        f" COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
                    )
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"the copy failed and nothing was copied: {exc}") from None
    return counts


async def copy_to_sqlite(source: PgDatabase, target: Database) -> dict[str, int]:
    """Copy every row of the PostgreSQL `source` into the freshly created SQLite `target`
    (both migrated to the same version), as of one snapshot; returns the rows copied per
    table. Raises StoreError when the versions differ or a table's rows did not all
    arrive. Called by `Store.backup` (`refdesk backup` on PostgreSQL) with the new file's
    store."""
    row = await source.one("SELECT version FROM refdesk_schema")
    version = int(row[0]) if row else 0
    own = int(await target.pragma("user_version") or 0)
    if version != own:
        raise StoreError(
            f"the database is at schema version {version} and this refdesk at {own}:"
            " back it up with the refdesk version that runs it"
        )
    tables = [t for t in await _tables(target) if t.name not in _OWN]
    counts: dict[str, int] = {}
    pg = source.pg
    try:
        async with source.write_lock, target.transaction():
            # Rows arrive in key order, so a queue may name a backup queue not yet copied:
            # SQLite checks the foreign keys at COMMIT instead.
            await target.run(_sqlite_statement("PRAGMA defer_foreign_keys = ON"))
            for table in reversed(tables):
                if table.name in _SEEDED:
                    await target.run(_sqlite_statement(f"DELETE FROM {table.name}"))
            async with pg.transaction(isolation="repeatable_read", readonly=True):
                for table in tables:
                    counts[table.name] = await _copy_back(pg, target, table)
                    expected = await pg.fetchval(f"SELECT count(*) FROM {table.name}")
                    if expected != counts[table.name]:
                        raise StoreError(
                            f"{table.name}: {counts[table.name]} rows arrived of {expected}"
                        )
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"the backup failed: {exc}") from None
    return counts


def _sqlite_statement(sql: str) -> Callable[[sqlite3.Connection], None]:
    """A parameterless statement to run on the SQLite side's thread."""

    def run(conn: sqlite3.Connection) -> None:
        conn.execute(sql).close()

    return run


async def _copy_back(pg: Any, target: Database, table: _Table) -> int:
    """One table's rows from PostgreSQL into SQLite, streamed in batches by a cursor of
    the snapshot's transaction."""
    columns = ", ".join(table.columns)
    insert = f"INSERT INTO {table.name} ({columns}) VALUES ({marks(table.columns)})"
    total = 0
    batch: list[tuple[Any, ...]] = []

    def insert_batch(rows: list[tuple[Any, ...]]) -> Callable[[sqlite3.Connection], None]:
        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(insert, rows).close()

        return run

    query = f"SELECT {columns} FROM {table.name} ORDER BY {', '.join(table.key)}"
    async for record in pg.cursor(query, prefetch=_BATCH):
        batch.append(tuple(record))
        if len(batch) >= _BATCH:
            await target.run(insert_batch(batch))
            total += len(batch)
            batch = []
    if batch:
        await target.run(insert_batch(batch))
        total += len(batch)
    return total


async def _copy_table(source: Database, pg: Any, table: _Table) -> int:
    """One table's rows, with its references to itself set after all its rows exist."""
    total = 0
    refs = [table.columns.index(c) for c in table.self_refs]
    later: list[tuple[Any, ...]] = []
    for batch in await _rows(source, table):
        if refs:
            later.extend(row for row in batch if any(row[i] is not None for i in refs))
            batch = [tuple(None if i in refs else v for i, v in enumerate(r)) for r in batch]
        await pg.copy_records_to_table(table.name, records=batch, columns=list(table.columns))
        total += len(batch)
    if later:
        assignments = ", ".join(f"{c} = ${n + 2}" for n, c in enumerate(table.self_refs))
        await pg.executemany(
            f"UPDATE {table.name} SET {assignments} WHERE id = $1",
            [(row[table.columns.index("id")], *(row[i] for i in refs)) for row in later],
        )
    return total


__all__ = ["copy_store", "copy_to_sqlite"]
