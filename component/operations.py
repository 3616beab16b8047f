"""Health and metrics of one running refdesk: what `/healthz` and `/metrics` report.

`Operations` is built by the composition root (or by the web app factory when a test
builds an app alone) around the service and a callable telling the state of the XMPP
link, so that neither the web side nor this module knows the XMPP adapter. Counters and
histograms follow the service's events as they happen; gauges are read from the service's
memory and the store when a scrape comes. Every series lives in this object's own
`CollectorRegistry` (no process-wide registry), so several apps can live in one process.

No series is labelled with anything a patron controls: labels are queue names (set by
admins), chat states, directions and limit names.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from component.core.events import ChatAccepted, ChatEnded, Event, MessagePosted
from component.core.models import ChatState, Sender
from component.service import DeskService
from component.store import OutboxSummary

log = logging.getLogger(__name__)

# Seconds patrons wait for an operator: from a few seconds to the longest queues.
_WAIT_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)
# Seconds from a patron's line being committed to the XMPP side counting it as relayed.
_RELAY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# Patron lines waiting for their relay, kept per chat; beyond this many (a stream down for
# long with many chats) the oldest are dropped from the histogram rather than kept forever.
_MAX_PENDING = 10_000
# How long the database write probe may wait for the write lock.
DB_PROBE_TIMEOUT = 1.0
# /healthz is public: a flood of it must not turn into a flood of write-lock probes that
# compete with the chats' own writes. Answers are shared for this long.
HEALTH_REUSE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class LinkState:
    """The XMPP component link as the adapter sees it."""

    connected: bool
    # Sessions started since the process began; every one after the first is a reconnect.
    sessions: int


@dataclass(frozen=True, slots=True)
class Health:
    """What `/healthz` answers. Serving means the component stream is up and the database
    takes writes; a mail backlog is reported, not judged (the SMTP server may be down
    without stopping any chat)."""

    xmpp_connected: bool
    db_writable: bool
    db_error: str | None
    outbox: OutboxSummary
    now: datetime

    @property
    def serving(self) -> bool:
        return self.xmpp_connected and self.db_writable

    def as_json(self) -> dict[str, Any]:
        oldest = self.outbox.oldest_pending
        # The reason stays in the log (`Operations` writes it there): /healthz is public,
        # and a database error can name files, hosts and users.
        database: dict[str, Any] = {"writable": self.db_writable}
        return {
            "status": "ok" if self.serving else "failing",
            "xmpp": {"connected": self.xmpp_connected},
            "database": database,
            "outbox": {
                "pending": self.outbox.pending,
                "failed": self.outbox.failed,
                "oldest_pending_seconds": (
                    None if oldest is None else round((self.now - oldest).total_seconds(), 3)
                ),
            },
        }


class Operations:
    """Created once per web app; `close()` when the app stops."""

    def __init__(self, service: DeskService, link: Callable[[], LinkState]) -> None:
        self.service = service
        self.link = link
        self.registry = CollectorRegistry()
        self.lines = Counter(
            "refdesk_lines_relayed",
            "Chat lines relayed, by direction.",
            ["direction"],
            registry=self.registry,
        )
        # The two children looked up once: `labels` (a lock and a validation) on every
        # line cost more than counting it.
        self._patron_lines = self.lines.labels("patron_to_operator")
        self._operator_lines = self.lines.labels("operator_to_patron")
        self.ended = Counter(
            "refdesk_chats_ended",
            "Chats ended, by who ended them (patron, operator or system).",
            ["by"],
            registry=self.registry,
        )
        self.wait = Histogram(
            "refdesk_wait_seconds",
            "Seconds from a patron's first line to an operator taking the chat.",
            ["queue"],
            buckets=_WAIT_BUCKETS,
            registry=self.registry,
        )
        self.round_trip = Histogram(
            "refdesk_relay_round_trip_seconds",
            "Seconds from a patron's line being committed to the XMPP side counting it as "
            "relayed to the operator.",
            buckets=_RELAY_BUCKETS,
            registry=self.registry,
        )
        # The outbox numbers of the current scrape (read by the collector).
        self.outbox_snapshot = OutboxSummary(0, 0, None)
        self.registry.register(_LiveCollector(self))
        # Patron lines not yet relayed: chat -> [(seq, monotonic time committed)], and the
        # relay cursor of chats whose cursor moved before their line's event reached us.
        self._pending: dict[int, list[tuple[int, float]]] = {}
        self._pending_count = 0
        self._relayed: dict[int, int] = {}
        self._accepted: set[int] = set()
        self._health: tuple[float, Health] | None = None
        self._health_lock = asyncio.Lock()
        self._unsubscribe = service.bus.subscribe(self._on_event)
        service.relay_observers.append(self._on_relayed)

    def close(self) -> None:
        """Stop following the service (called by the web app's cleanup)."""
        self._unsubscribe()
        if self._on_relayed in self.service.relay_observers:
            self.service.relay_observers.remove(self._on_relayed)

    # Events ------------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        match event:
            case MessagePosted(event=line) if line.sender is Sender.PATRON:
                self._patron_lines.inc()
                self._patron_line(line.chat_id, line.seq)
            case MessagePosted(event=line) if line.sender is Sender.OPERATOR:
                self._operator_lines.inc()
            case ChatAccepted(chat_id=chat_id, guest=guest) if chat_id not in self._accepted:
                # The first acceptance only: a transfer is not a new wait.
                self._accepted.add(chat_id)
                live = self.service.live_by_guest(guest)
                if live is not None:
                    since = live.asked_at or live.created_at
                    seconds = (self.service.clock() - since).total_seconds()
                    self.wait.labels(live.queue.name).observe(max(0.0, seconds))
            case ChatEnded(chat_id=chat_id, by=by):
                self.ended.labels(by).inc()
                self._accepted.discard(chat_id)
                self._pending_count -= len(self._pending.pop(chat_id, ()))
                self._relayed.pop(chat_id, None)

    def _patron_line(self, chat_id: int, seq: int) -> None:
        if seq <= self._relayed.get(chat_id, 0):
            self.round_trip.observe(0.0)
            return
        if self._pending_count >= _MAX_PENDING:
            return
        self._pending.setdefault(chat_id, []).append((seq, self.service.scheduler.monotonic()))
        self._pending_count += 1

    def _on_relayed(self, chat_id: int, seq: int) -> None:
        """The service's relay cursor of a chat moved to `seq`."""
        self._relayed[chat_id] = max(seq, self._relayed.get(chat_id, 0))
        waiting = self._pending.get(chat_id)
        if not waiting:
            return
        now = self.service.scheduler.monotonic()
        keep = []
        for line_seq, committed in waiting:
            if line_seq <= seq:
                self.round_trip.observe(now - committed)
            else:
                keep.append((line_seq, committed))
        self._pending_count -= len(waiting) - len(keep)
        if keep:
            self._pending[chat_id] = keep
        else:
            del self._pending[chat_id]

    # Scrapes -----------------------------------------------------------------------------

    async def health(self) -> Health:
        """Called by GET /healthz. The database part is measured at most once per
        HEALTH_REUSE_SECONDS, however many requests come; the XMPP link is always now."""
        async with self._health_lock:
            cached = self._health
            if (
                cached is None
                or self.service.scheduler.monotonic() - cached[0] >= HEALTH_REUSE_SECONDS
            ):
                cached = (self.service.scheduler.monotonic(), await self._measure_health())
                self._health = cached
        return dataclasses.replace(cached[1], xmpp_connected=self.link().connected)

    async def _measure_health(self) -> Health:
        store = self.service.store
        error = await store.ops.probe_writable(DB_PROBE_TIMEOUT)
        if error is not None:
            log.warning("health check: the database cannot be written: %s", error)
        outbox = await store.ops.outbox_summary() if error is None else self.outbox_snapshot
        return Health(
            xmpp_connected=self.link().connected,
            db_writable=error is None,
            db_error=error,
            outbox=outbox,
            now=self.service.clock(),
        )

    async def exposition(self) -> bytes:
        """Called by GET /metrics: the Prometheus text format."""
        self.outbox_snapshot = await self.service.store.ops.outbox_summary()
        return generate_latest(self.registry)


class _LiveCollector(Collector):
    """Series read at scrape time from the service's memory (and the outbox numbers the
    scrape just fetched)."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops

    def collect(self) -> Iterator[Metric]:
        ops = self.ops
        service = ops.service
        chats = GaugeMetricFamily("refdesk_chats", "Open chats by state.", labels=["state"])
        states = {state: 0 for state in ChatState if state.open}
        for live in service.open_chats():
            states[live.state] = states.get(live.state, 0) + 1
        for state, count in states.items():
            chats.add_metric([state.value], count)
        yield chats

        waiting = GaugeMetricFamily(
            "refdesk_waiting", "Patrons waiting for an operator, per queue.", labels=["queue"]
        )
        available = GaugeMetricFamily(
            "refdesk_operators_available",
            "Operators able to take a chat now, per queue.",
            labels=["queue"],
        )
        for name in service.queue_names():
            info = service.queue_info(name)
            waiting.add_metric([name], info.waiting)
            available.add_metric([name], info.operators_available)
        yield waiting
        yield available

        outbox = ops.outbox_snapshot
        mail = GaugeMetricFamily(
            "refdesk_outbox_mail", "Emails in the outbox not sent yet.", labels=["status"]
        )
        mail.add_metric(["pending"], outbox.pending)
        mail.add_metric(["failed"], outbox.failed)
        yield mail
        oldest = outbox.oldest_pending
        yield GaugeMetricFamily(
            "refdesk_outbox_oldest_pending_seconds",
            "Age of the oldest email still to be sent (0 when none).",
            value=0.0 if oldest is None else (service.clock() - oldest).total_seconds(),
        )

        yield GaugeMetricFamily(
            "refdesk_bans_active",
            "Bans in force now.",
            value=service.moderation.active_ban_count(),
        )
        refusals = CounterMetricFamily(
            "refdesk_rate_limit_refusals",
            "Requests refused by a rate limit: new chats or messages from one address or network.",
            labels=["limit"],
        )
        for limit in ("chats", "messages"):
            refusals.add_metric([limit], service.moderation.refusals[limit])
        yield refusals

        link = ops.link()
        yield GaugeMetricFamily(
            "refdesk_xmpp_connected",
            "1 while the component stream to the XMPP server is up.",
            value=1 if link.connected else 0,
        )
        yield CounterMetricFamily(
            "refdesk_xmpp_reconnects",
            "Component sessions started again after the first one.",
            value=max(0, link.sessions - 1),
        )
