"""Queries for the admin page's statistics: counts and nearest-rank percentiles of asked
chats, aggregated in SQL over a range of `asked_at` (see `component.core.stats` for the
definitions of answered, missed, followed up, wait and duration).

Every query reads one range of `chats.asked_at`, optionally narrowed to some queues and
one operator, so it can walk an index on `asked_at` (or `(queue_id, asked_at)`); times are
ISO 8601 UTC text of one fixed format, so comparing the text compares the instants.

A report over a long range of a big database takes a while (about a second for a year of
100,000 chats), and the service's one connection must stay free for patrons' messages
meanwhile: `StatsStore.report` reads through a connection of its own, in one read
transaction, so all its figures come from the same snapshot of the database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiosqlite

from component.core.stats import Counts, Spread, StatsFilter, StatsReport, Timing
from component.store.db import Database, from_iso, iso
from component.store.pg import PgDatabase

# Followed up by email: the chat ended that way, or a ticket (offline question, referral)
# refers to it. The chats with tickets are read once per statement (a materialized CTE
# that SQLite indexes on the fly for the join), then joined by chat id.
_TICKETED = (
    "ticketed AS MATERIALIZED (SELECT DISTINCT chat_id FROM tickets WHERE chat_id IS NOT NULL)"
)
_FOLLOWED_UP = "(c.state = 'followed-up' OR t.chat_id IS NOT NULL)"

# Counted with CASE, not by summing the conditions: PostgreSQL's conditions are
# booleans, which it does not sum (SQLite's are 0 and 1).
_COUNT_COLUMNS = (
    "COUNT(*) AS asked,"
    " COALESCE(SUM(CASE WHEN accepted THEN 1 ELSE 0 END), 0) AS answered,"
    " COALESCE(SUM(CASE WHEN followed_up THEN 1 ELSE 0 END), 0) AS followed_up,"
    " COALESCE(SUM(CASE WHEN NOT accepted AND NOT followed_up"
    " AND state IN ('missed', 'ended') THEN 1 ELSE 0 END), 0) AS missed,"
    " COALESCE(SUM(CASE WHEN NOT accepted AND NOT followed_up"
    " AND state IN ('waiting', 'offered', 'active') THEN 1 ELSE 0 END), 0) AS open"
)


def _seconds(later: str, earlier: str, dialect: str) -> str:
    """SQL for `later - earlier` in seconds (never negative), to the millisecond, which
    is what SQLite's date functions keep; the same in PostgreSQL's date functions."""
    if dialect == "postgresql":
        return (
            f"GREATEST(0.0, ROUND(EXTRACT(EPOCH FROM ({later})::timestamptz"
            f" - ({earlier})::timestamptz)::numeric, 3))::double precision"
        )
    return f"MAX(0.0, ROUND((julianday({later}) - julianday({earlier})) * 86400.0, 3))"


def _where(f: StatsFilter) -> tuple[str, list[Any]]:
    clauses = ["c.asked_at IS NOT NULL", "c.asked_at >= ?", "c.asked_at < ?"]
    params: list[Any] = [iso(f.start), iso(f.end)]
    if f.queue_ids is not None:
        if f.queue_ids:
            ids = sorted(f.queue_ids)
            clauses.append(f"c.queue_id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        else:
            clauses.append("FALSE")
    if f.operator_id is not None:
        clauses.append("c.operator_id = ?")
        params.append(f.operator_id)
    return " AND ".join(clauses), params


def _counts(row: Any) -> Counts:
    return Counts(
        int(row["asked"]),
        int(row["answered"]),
        int(row["missed"]),
        int(row["followed_up"]),
        int(row["open"]),
    )


# The statistics' own SQLite connection (a read-only snapshot), or the PostgreSQL store.
_Reader = aiosqlite.Connection | PgDatabase


async def _rows(db: _Reader, sql: str, params: list[Any]) -> list[Any]:
    if isinstance(db, PgDatabase):
        return await db.all(sql, params)
    async with db.execute(sql, tuple(params)) as cur:
        return list(await cur.fetchall())


async def _counts_by(
    db: _Reader, f: StatsFilter, key: str, *, order: bool = False
) -> list[tuple[Any, Counts]]:
    """Outcome counts of the asked chats in `f`, grouped by the SQL expression `key`."""
    where, params = _where(f)
    rows = await _rows(
        db,
        f"WITH {_TICKETED} SELECT k, {_COUNT_COLUMNS} FROM ("
        f" SELECT {key} AS k, c.state AS state,"
        f" c.accepted_at IS NOT NULL AS accepted, {_FOLLOWED_UP} AS followed_up"
        " FROM chats c LEFT JOIN ticketed t ON t.chat_id = c.id"
        f" WHERE {where}) AS outcomes GROUP BY k{' ORDER BY k' if order else ''}",
        params,
    )
    return [(r["k"], _counts(r)) for r in rows]


def _slot(minutes: int, dialect: str) -> str:
    """SQL for the start of the UTC slot of `minutes` (15 or 60) holding `asked_at`."""
    if minutes not in (15, 60):
        raise ValueError("slots are 15 or 60 minutes")
    if dialect == "postgresql":
        utc = "(c.asked_at::timestamptz AT TIME ZONE 'UTC')"
        return (
            f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:') || lpad("
            f"(EXTRACT(MINUTE FROM {utc})::int / {minutes} * {minutes})::text, 2, '0')"
            " || ':00+00:00'"
        )
    return (
        "strftime('%Y-%m-%dT%H:', c.asked_at) || printf('%02d',"
        f" CAST(strftime('%M', c.asked_at) AS INTEGER) / {minutes} * {minutes})"
        " || ':00+00:00'"
    )


async def _timing(db: _Reader, f: StatsFilter) -> dict[tuple[str, int | None], Timing]:
    """Nearest-rank p50/p90/p99 of wait (asked → accepted) and duration (accepted →
    ended) of the answered chats in `f`: of all of them (key ('all', 0)), per queue
    (('queue', id)) and per operator (('operator', id or None)). Ranked in SQL with
    window functions: rank ceil(p * n / 100) is `(p * n + 99) / 100` in integers. The
    chats are read once (a materialized CTE) for the three groupings."""
    where, params = _where(f)
    dialect = "postgresql" if isinstance(db, PgDatabase) else "sqlite"
    picks = []
    for p in (50, 90, 99):
        picks.append(f"MAX(CASE WHEN rw = ({p} * nw + 99) / 100 THEN w END) AS w{p}")
        picks.append(
            f"MAX(CASE WHEN d IS NOT NULL AND rd = ({p} * nd + 99) / 100 THEN d END) AS d{p}"
        )

    def ranked(group: str, key: str) -> str:
        part = f"PARTITION BY {key} " if key != "0" else ""
        return (
            f"SELECT '{group}' AS g, {key} AS k, w, d,"
            f" ROW_NUMBER() OVER ({part}ORDER BY w) AS rw,"
            f" COUNT(*) OVER ({part.strip()}) AS nw,"
            f" ROW_NUMBER() OVER ({part}ORDER BY d NULLS LAST) AS rd,"
            f" COUNT(d) OVER ({part.strip()}) AS nd FROM v"
        )

    rows = await _rows(
        db,
        "WITH v AS MATERIALIZED ("
        " SELECT c.queue_id AS q, c.operator_id AS o,"
        f" {_seconds('c.accepted_at', 'c.asked_at', dialect)} AS w,"
        " CASE WHEN c.ended_at IS NOT NULL THEN"
        f" {_seconds('c.ended_at', 'c.accepted_at', dialect)} END AS d"
        f" FROM chats c WHERE {where} AND c.accepted_at IS NOT NULL),"
        f" r AS ({ranked('all', '0')} UNION ALL {ranked('queue', 'q')}"
        f" UNION ALL {ranked('operator', 'o')})"
        f" SELECT g, k, MAX(nw) AS nw, MAX(nd) AS nd, {', '.join(picks)} FROM r GROUP BY g, k",
        params,
    )
    return {
        (r["g"], r["k"]): Timing(
            Spread(int(r["nw"]), r["w50"], r["w90"], r["w99"]),
            Spread(int(r["nd"]), r["d50"], r["d90"], r["d99"]),
        )
        for r in rows
    }


class StatsStore:
    """`store.stats`: the admin page's statistics."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @contextlib.asynccontextmanager
    async def _stats_reader(self) -> AsyncIterator[_Reader]:
        """A read-only connection of its own to the same database file, inside one read
        transaction (a consistent snapshot); the service's connection when the database
        has no file (in memory). On PostgreSQL the store's own connection: each query
        sees what was committed when it ran (no snapshot across the queries)."""
        if isinstance(self._db, PgDatabase):
            yield self._db
            return
        path = await self._db.file()
        if path is None:
            yield self._db.connection
            return
        db = await aiosqlite.connect(path.as_uri() + "?mode=ro", uri=True)
        try:
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA busy_timeout=5000")
            await db.execute("PRAGMA query_only=ON")
            await db.execute("BEGIN")
            try:
                yield db
            finally:
                await db.execute("COMMIT")
        finally:
            await db.close()

    async def report(self, f: StatsFilter, slot_minutes: int) -> StatsReport:
        """Everything the statistics page shows for the chats asked in `f`: counts per
        queue, per operator and per UTC slot of `slot_minutes` (15 or 60, for regrouping
        by local hour and day), and the wait and duration percentiles of all of them,
        per queue and per operator."""
        slot = _slot(slot_minutes, self._db.dialect)
        async with self._stats_reader() as db:
            # The unary + keeps SQLite from walking an index in key order (the whole
            # table) instead of the asked_at range.
            by_queue = await _counts_by(db, f, "+c.queue_id")
            by_operator = await _counts_by(db, f, "+c.operator_id")
            slots = await _counts_by(db, f, slot, order=True)
            timing = await _timing(db, f)
        starts = []
        for key, counts in slots:
            start = from_iso(key)
            assert start is not None
            starts.append((start, counts))
        return StatsReport(
            by_queue=dict(by_queue),
            by_operator=dict(by_operator),
            slots=starts,
            timing=timing.get(("all", 0), Timing()),
            timing_by_queue={
                k: t for (g, k), t in timing.items() if g == "queue" and k is not None
            },
            timing_by_operator={k: t for (g, k), t in timing.items() if g == "operator"},
        )
