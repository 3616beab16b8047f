"""Statistics: `/admin/stats` (the page) and `/admin/stats.csv?table=...` (its tables as
CSV), with the same filters in the query string:

- `queue`: a queue's name (or id); absent or empty for every queue the admin may see.
  Another group's queue is 404 for a coordinator, as an unknown one is.
- `operator`: an operator's JID (or id); absent for all. Coordinators may pick the
  operators of their own queues only.
- `from`, `to`: local dates YYYY-MM-DD, inclusive (default: the last 30 days).
- `tz`: the IANA time zone for the dates, the hours and the days (default UTC).
- `table` (CSV only): `summary`, `hourly`, `daily`, `queues` or `operators`; for the
  end-of-chat ratings `ratings_queues`, `ratings_daily` and `ratings_operators` (the
  last for full admins only: 403 for a group coordinator).

What is counted, and how the percentiles are taken, is in `component.core.stats`."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web
from markupsafe import Markup

from component.core import feedback
from component.core import stats as core
from component.core.feedback import RatingRow, RatingSummary
from component.core.models import Operator, Queue
from component.core.stats import Counts, StatsError, StatsReport, Timing
from web.admin import auth
from web.admin.layout import render
from web.guarded import guarded_router
from web.keys import SERVICE

DEFAULT_DAYS = 30
TABLES = (
    "summary",
    "hourly",
    "daily",
    "queues",
    "operators",
    "ratings_queues",
    "ratings_daily",
    "ratings_operators",
)
_RATING_HEADERS = ["ratings", "mean", "rated_1", "rated_2", "rated_3", "rated_4", "rated_5"]
_COUNT_HEADERS = ["asked", "answered", "missed", "followed_up", "open"]
_TIMING_HEADERS = [
    "wait_p50_s",
    "wait_p90_s",
    "wait_p99_s",
    "duration_p50_s",
    "duration_p90_s",
    "duration_p99_s",
]


@dataclass(frozen=True, slots=True)
class Filters:
    """The page's filters, checked: what to count and how to bucket it."""

    queue: Queue | None
    operator: Operator | None
    first: date
    last: date
    zone: ZoneInfo
    zone_name: str
    scope: list[Queue]  # the queues counted: the chosen one, or all the admin may see
    all_queues: bool  # an admin looking at every queue (no queue condition in SQL)

    def stats_filter(self) -> core.StatsFilter:
        start, end = core.local_range(self.first, self.last, self.zone)
        return core.StatsFilter(
            start,
            end,
            queue_ids=None if self.all_queues else frozenset(q.id for q in self.scope),
            operator_id=self.operator.id if self.operator else None,
        )

    def query(self, **extra: str) -> str:
        """The query string that asks for these filters again (plus `extra`)."""
        params = {
            **extra,
            "queue": self.queue.name if self.queue else "",
            "operator": self.operator.jid if self.operator else "",
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "tz": self.zone_name,
        }
        return urlencode({k: v for k, v in params.items() if v})


@dataclass(frozen=True, slots=True)
class Visible:
    """What this admin may filter on."""

    queues: list[Queue]
    operators: list[Operator]
    everything: bool  # a full admin


async def _visible(request: web.Request) -> Visible:
    store = request.app[SERVICE].store
    groups = auth.visible_groups(request)
    queues = [q for q in await store.queues.all() if groups is None or q.group_id in groups]
    operators = await store.operators.all()
    if groups is not None:
        ids = {q.id for q in queues}
        members = {a.operator_id for a in await store.operators.assignments() if a.queue_id in ids}
        operators = [op for op in operators if op.id in members]
    operators.sort(key=lambda op: (op.name.casefold(), op.jid))
    return Visible(queues, operators, groups is None)


def _find_queue(text: str, visible: Visible) -> Queue:
    """A visible queue by name, or by id; 404 otherwise (another group's queue too)."""
    for q in visible.queues:
        if q.name == text:
            return q
    # ASCII digits only, few enough for int(): "²" is a digit to isdigit() but not to int().
    if text.isascii() and text.isdigit() and len(text) <= 18:
        for q in visible.queues:
            if q.id == int(text):
                return q
    raise web.HTTPNotFound(text="Not found.")


def _find_operator(text: str, visible: Visible) -> Operator:
    for op in visible.operators:
        if op.jid == text:
            return op
    # ASCII digits only, few enough for int(): "²" is a digit to isdigit() but not to int().
    if text.isascii() and text.isdigit() and len(text) <= 18:
        for op in visible.operators:
            if op.id == int(text):
                return op
    raise web.HTTPNotFound(text="Not found.")


def _parse(
    request: web.Request, visible: Visible
) -> tuple[Filters | None, dict[str, str], dict[str, str]]:
    """(filters or None, the form's values, errors by field). A queue or operator this
    admin may not see raises 404."""
    query = request.query
    values = {
        "queue": query.get("queue", "").strip(),
        "operator": query.get("operator", "").strip(),
        "from": query.get("from", "").strip(),
        "to": query.get("to", "").strip(),
        "tz": query.get("tz", "").strip() or "UTC",
    }
    queue = _find_queue(values["queue"], visible) if values["queue"] else None
    operator = _find_operator(values["operator"], visible) if values["operator"] else None
    errors: dict[str, str] = {}
    zone: ZoneInfo | None = None
    try:
        zone = core.parse_zone(values["tz"])
    except StatsError as exc:
        errors["tz"] = str(exc)
    today = request.app[SERVICE].clock().astimezone(zone or ZoneInfo("UTC")).date()
    days: dict[str, date] = {}
    for key, default in (("to", today), ("from", None)):
        if values[key]:
            try:
                days[key] = core.parse_day(values[key])
            except StatsError as exc:
                errors[key] = str(exc)
        elif default is not None:
            days[key] = default
    if "from" not in days and not values["from"] and "to" in days:
        days["from"] = days["to"] - timedelta(days=DEFAULT_DAYS - 1)
    if "from" in days and "to" in days:
        try:
            core.check_range(days["from"], days["to"])
        except StatsError as exc:
            errors["to"] = str(exc)
    for key in ("from", "to"):
        if key in days and not values[key]:
            values[key] = days[key].isoformat()
    if errors or zone is None:
        return None, values, errors
    scope = [queue] if queue else visible.queues
    filters = Filters(
        queue=queue,
        operator=operator,
        first=days["from"],
        last=days["to"],
        zone=zone,
        zone_name=values["tz"],
        scope=scope,
        all_queues=queue is None and visible.everything,
    )
    return filters, values, errors


async def _report(request: web.Request, filters: Filters) -> StatsReport:
    f = filters.stats_filter()
    minutes = core.slot_minutes(filters.zone, f.start, f.end)
    return await request.app[SERVICE].store.stats.report(f, minutes)


# Tables: the same rows for the page and the CSV ------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    key: str  # CSV's first cells: hour, date, queue name, operator JID
    label: str  # the page's row header
    counts: Counts
    timing: Timing | None = None
    extra: str = ""  # a second text column (queue title, operator name)


def _hourly(report: StatsReport, filters: Filters) -> list[Row]:
    return [
        Row(f"{h:02d}:00", f"{h:02d}:00–{(h + 1) % 24:02d}:00", c)
        for h, c in enumerate(core.by_hour_of_day(report.slots, filters.zone))
    ]


def _daily(report: StatsReport, filters: Filters) -> list[Row]:
    return [
        Row(d.isoformat(), f"{d:%a} {d.day} {d:%b %Y}", c)
        for d, c in core.by_day(report.slots, filters.zone, filters.first, filters.last)
    ]


def _queues(report: StatsReport, filters: Filters) -> list[Row]:
    return [
        Row(
            q.name,
            q.title,
            report.by_queue.get(q.id, Counts()),
            report.timing_by_queue.get(q.id, Timing()),
            q.title,
        )
        for q in sorted(filters.scope, key=lambda q: q.name)
    ]


async def _operators(request: web.Request, report: StatsReport) -> list[Row]:
    """Operators who hold chats in the report (all operators' names are known: a
    coordinator's chats may have been taken by someone from another group)."""
    names = {op.id: op for op in await request.app[SERVICE].store.operators.all()}
    rows = []
    for op_id, counts in report.by_operator.items():
        if op_id is None:
            continue
        op = names.get(op_id)
        jid = op.jid if op else f"operator #{op_id}"
        name = op.name if op else jid
        rows.append(Row(jid, name, counts, report.timing_by_operator.get(op_id, Timing()), name))
    rows.sort(key=lambda r: (r.label.casefold(), r.key))
    return rows


def _count_cells(c: Counts) -> list[object]:
    return [c.asked, c.answered, c.missed, c.followed_up, c.open]


def _timing_cells(t: Timing) -> list[str]:
    return [
        core.csv_seconds(v)
        for v in (
            t.wait.p50,
            t.wait.p90,
            t.wait.p99,
            t.duration.p50,
            t.duration.p90,
            t.duration.p99,
        )
    ]


def _csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([core.csv_safe(h) for h in header])
    for row in rows:
        writer.writerow([core.csv_safe(cell) for cell in row])
    return out.getvalue()


async def _csv_table(
    request: web.Request, table: str, report: StatsReport, filters: Filters
) -> str:
    if table == "summary":
        header = ["from", "to", "time_zone", *_COUNT_HEADERS, *_TIMING_HEADERS]
        row = [
            filters.first.isoformat(),
            filters.last.isoformat(),
            filters.zone_name,
            *_count_cells(report.counts),
            *_timing_cells(report.timing),
        ]
        return _csv(header, [row])
    if table == "hourly":
        rows = _hourly(report, filters)
        return _csv(["hour", *_COUNT_HEADERS], [[r.key, *_count_cells(r.counts)] for r in rows])
    if table == "daily":
        rows = _daily(report, filters)
        return _csv(["date", *_COUNT_HEADERS], [[r.key, *_count_cells(r.counts)] for r in rows])
    if table == "queues":
        first = ["queue", "title"]
        rows = _queues(report, filters)
    else:
        first = ["operator", "name"]
        rows = await _operators(request, report)
    return _csv(
        [*first, *_COUNT_HEADERS, *_TIMING_HEADERS],
        [
            [r.key, r.extra, *_count_cells(r.counts), *_timing_cells(r.timing or Timing())]
            for r in rows
        ],
    )


# Ratings ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RatingLine:
    key: str  # CSV's first cell: queue name, date, operator JID
    label: str  # the page's row header
    summary: RatingSummary
    extra: str = ""  # queue title or operator name

    def cells(self) -> list[object]:
        s = self.summary
        return [s.count, feedback.format_mean(s.mean), *s.counts]


async def _rating_rows(request: web.Request, filters: Filters) -> list[RatingRow]:
    return await request.app[SERVICE].store.ratings.rows(filters.stats_filter())


def _rating_queues(rows: list[RatingRow], filters: Filters) -> list[RatingLine]:
    by_queue = feedback.summarize(rows, lambda r: r.queue_id)
    return [
        RatingLine(q.name, q.title, by_queue.get(q.id, RatingSummary()), q.title)
        for q in sorted(filters.scope, key=lambda q: q.name)
    ]


def _rating_days(rows: list[RatingRow], filters: Filters) -> list[RatingLine]:
    return [
        RatingLine(d.isoformat(), f"{d:%a} {d.day} {d:%b %Y}", s)
        for d, s in feedback.by_day(rows, filters.zone, filters.first, filters.last)
    ]


async def _rating_operators(request: web.Request, rows: list[RatingRow]) -> list[RatingLine]:
    """Ratings per operator who held the chat last. Called for full admins only: how
    patrons rate one person is not for group coordinators."""
    names = {op.id: op for op in await request.app[SERVICE].store.operators.all()}
    out = []
    for op_id, summary in feedback.summarize(rows, lambda r: r.operator_id).items():
        if op_id is None:
            continue
        op = names.get(op_id)
        jid = op.jid if op else f"operator #{op_id}"
        name = op.name if op else jid
        out.append(RatingLine(jid, name, summary, name))
    out.sort(key=lambda r: (r.label.casefold(), r.key))
    return out


async def _ratings_csv(request: web.Request, table: str, visible: Visible, filters: Filters) -> str:
    rows = await _rating_rows(request, filters)
    if table == "ratings_queues":
        return _csv(
            ["queue", "title", *_RATING_HEADERS],
            [[r.key, r.extra, *r.cells()] for r in _rating_queues(rows, filters)],
        )
    if table == "ratings_daily":
        return _csv(
            ["date", *_RATING_HEADERS], [[r.key, *r.cells()] for r in _rating_days(rows, filters)]
        )
    if not visible.everything:
        raise web.HTTPForbidden(text="Ratings per operator are for admins only.")
    return _csv(
        ["operator", "name", *_RATING_HEADERS],
        [[r.key, r.extra, *r.cells()] for r in await _rating_operators(request, rows)],
    )


# Charts -----------------------------------------------------------------------------------


def _charts(hourly: list[Row], daily: list[Row], filters: Filters) -> dict[str, Markup]:
    zone = filters.zone_name
    hour_bars = [core.Bar(r.key[:2], r.label, r.counts.asked) for r in hourly]
    day_bars = [
        core.Bar(
            f"{date.fromisoformat(r.key).day} {date.fromisoformat(r.key):%b}",
            r.label,
            r.counts.asked,
        )
        for r in daily
    ]
    hours = core.bar_chart(
        chart_id="chart-hours",
        title=f"Chats asked per hour of day ({zone})",
        description=core.describe_bars(hour_bars),
        bars=hour_bars,
    )
    days = core.bar_chart(
        chart_id="chart-days",
        title=f"Chats asked per day ({zone})",
        description=core.describe_bars(day_bars),
        bars=day_bars,
        label_every=max(1, -(-len(day_bars) // 12)),
    )
    # bar_chart escapes every text it puts in; Markup only stops Jinja escaping it twice.
    return {"hours": Markup(hours), "days": Markup(days)}


# Handlers ---------------------------------------------------------------------------------


def _zones(visible: Visible) -> list[str]:
    own = sorted({q.timezone for q in visible.queues})
    return own + [z for z in core.COMMON_ZONES if z not in own]


async def stats_page(request: web.Request) -> web.Response:
    """GET /admin/stats."""
    visible = await _visible(request)
    filters, values, errors = _parse(request, visible)
    context: dict[str, Any] = {
        "title": "Statistics",
        "values": values,
        "errors": errors,
        "queues": visible.queues,
        "operators": visible.operators,
        "zones": _zones(visible),
        "max_days": core.MAX_DAYS,
    }
    if filters is None:
        return render(request, "admin/stats.html", context, status=400)
    report = await _report(request, filters)
    hourly = _hourly(report, filters)
    daily = _daily(report, filters)
    totals = report.counts
    context.update(
        {
            "filters": filters,
            "totals": totals,
            "share": (f"{totals.answered_share:.0%}" if totals.answered_share is not None else "—"),
            "timing": report.timing,
            "hourly": hourly,
            "daily": daily,
            "queue_rows": _queues(report, filters),
            "operator_rows": await _operators(request, report),
            "charts": _charts(hourly, daily, filters),
            "csv": {t: f"/admin/stats.csv?{filters.query(table=t)}" for t in TABLES},
            "secs": core.format_seconds,
        }
    )
    ratings = await _rating_rows(request, filters)
    context.update(
        {
            "rating_total": feedback.total(ratings),
            "rating_queue_rows": _rating_queues(ratings, filters),
            "rating_day_rows": [r for r in _rating_days(ratings, filters) if r.summary.count],
            "rating_operator_rows": (
                await _rating_operators(request, ratings) if visible.everything else None
            ),
            "mean": feedback.format_mean,
        }
    )
    return render(request, "admin/stats.html", context)


async def stats_csv(request: web.Request) -> web.Response:
    """GET /admin/stats.csv?table=...&(the page's filters)."""
    table = request.query.get("table", "")
    if table not in TABLES:
        raise web.HTTPBadRequest(text=f"table must be one of: {', '.join(TABLES)}.")
    visible = await _visible(request)
    filters, _, errors = _parse(request, visible)
    if filters is None:
        raise web.HTTPBadRequest(text=" ".join(errors.values()))
    if table.startswith("ratings_"):
        body = await _ratings_csv(request, table, visible, filters)
    else:
        body = await _csv_table(request, table, await _report(request, filters), filters)
    name = f"refdesk-{table}-{filters.first.isoformat()}-{filters.last.isoformat()}.csv"
    return web.Response(
        # A byte order mark, so that spreadsheets read the names as UTF-8.
        body=("\ufeff" + body).encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def add_routes(app: web.Application) -> None:
    """Register this module's pages."""
    routes = guarded_router(app)
    routes.add_get("/admin/stats", stats_page)
    routes.add_get("/admin/stats.csv", stats_csv)
