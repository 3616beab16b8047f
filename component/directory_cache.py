"""The directory as the running service sees it: queues, groups, operators, who belongs
to which queue, who is on call, and the state of each operator's presence subscription
to each queue, as loaded from the store.

Owned by the service (`DeskService.directory`), which reloads it at start and whenever
another connection (the CLI, the admin page) committed a change. Everything else reads
it; only the subscription bookkeeping writes through the store from here. It holds no
chat and takes no lock.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from component.core.errors import NotAnOperator, UnknownQueue
from component.core.escalation import EscalationRule, RuleError, parse_rule
from component.core.hours import HoursError, ServiceHours, is_open, parse_hours
from component.core.models import Group, Operator, Queue
from component.store import Store

log = logging.getLogger(__name__)

# Arrival times kept per queue for escalation rules (enough for any sane rule).
_ARRIVALS_KEPT = 200


@dataclass
class QueueRuntime:
    """Parsed settings and recent history of one queue (kept across reloads)."""

    hours: ServiceHours
    escalation: EscalationRule | None
    arrivals: deque[datetime] = field(default_factory=lambda: deque(maxlen=_ARRIVALS_KEPT))
    last_escalation: datetime | None = None
    open_at_minute: tuple[datetime, bool] | None = None


class DirectoryCache:
    """Created once by the service with its store; `load` fills it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._groups: dict[int, Group] = {}
        self._queues: dict[str, Queue] = {}
        self._queues_by_id: dict[int, Queue] = {}
        self._runtime: dict[int, QueueRuntime] = {}
        self._operators: dict[str, Operator] = {}
        self._members: dict[int, set[str]] = {}  # queue id -> operator JIDs
        self._on_call: dict[int, set[str]] = {}  # queue id -> on-call operator JIDs
        self._subscriptions: dict[tuple[str, str], str] = {}  # (queue, jid) -> state

    async def load(self) -> list[tuple[str, str]]:
        """Read queues, operators and memberships from the store. Called by the service
        at start and on `reload_directory`. Returns the (queue, operator JID) pairs that
        are new since the last load and still lack a granted subscription."""
        queues = await self.store.queues.all()
        self._groups = {g.id: g for g in await self.store.groups.all()}
        operators = await self.store.operators.all()
        assignments = await self.store.operators.assignments()
        self._queues = {q.name: q for q in queues}
        self._queues_by_id = {q.id: q for q in queues}
        self._runtime = {q.id: self._queue_runtime(q) for q in queues}
        self._operators = {op.jid: op for op in operators}
        ops_by_id = {op.id: op for op in operators}
        members: dict[int, set[str]] = {q.id: set() for q in queues}
        on_call: dict[int, set[str]] = {q.id: set() for q in queues}
        subscriptions: dict[tuple[str, str], str] = {}
        for a in assignments:
            queue = self._queues_by_id.get(a.queue_id)
            op = ops_by_id.get(a.operator_id)
            if queue is None or op is None:
                continue
            members[queue.id].add(op.jid)
            if a.on_call:
                on_call[queue.id].add(op.jid)
            subscriptions[(queue.name, op.jid)] = a.subscription
        new = [k for k in subscriptions if k not in self._subscriptions]
        self._members = members
        self._on_call = on_call
        self._subscriptions = subscriptions
        return [k for k in new if subscriptions[k] != "granted"]

    def _queue_runtime(self, queue: Queue) -> QueueRuntime:
        old = self._runtime.get(queue.id)
        try:
            hours = parse_hours(queue.hours, queue.timezone, queue.closed_days)
        except HoursError as exc:
            # Stored settings were validated on the way in; a bad one must not take the
            # queue down, so it stays open and the problem is logged.
            log.error("queue %s: bad service hours (%s); treating as always open", queue.name, exc)
            hours = ServiceHours.always()
        rule = None
        if queue.escalation:
            try:
                rule = parse_rule(queue.escalation)
            except RuleError as exc:
                log.error("queue %s: bad escalation rule (%s); ignored", queue.name, exc)
        runtime = QueueRuntime(hours, rule)
        if old is not None:
            runtime.arrivals = old.arrivals
            runtime.last_escalation = old.last_escalation
        return runtime

    # Queues and groups -----------------------------------------------------------------------

    def queue_names(self) -> list[str]:
        return sorted(self._queues)

    def queues(self) -> list[Queue]:
        return [self._queues[name] for name in sorted(self._queues)]

    def is_queue(self, name: str) -> bool:
        return name in self._queues

    def queue(self, name: str) -> Queue:
        queue = self._queues.get(name)
        if queue is None:
            raise UnknownQueue(f"There is no queue called {name!r}.")
        return queue

    def find_queue(self, name: str) -> Queue | None:
        return self._queues.get(name)

    def queue_by_id(self, queue_id: int) -> Queue:
        queue = self._queues_by_id.get(queue_id)
        if queue is None:
            raise UnknownQueue(f"There is no queue number {queue_id}.")
        return queue

    def find_queue_by_id(self, queue_id: int | None) -> Queue | None:
        return self._queues_by_id.get(queue_id) if queue_id is not None else None

    def group_of(self, queue: Queue) -> Group | None:
        return self._groups.get(queue.group_id)

    def runtime(self, queue: Queue) -> QueueRuntime | None:
        """The queue's parsed hours and escalation rule, with its recent arrivals."""
        return self._runtime.get(queue.id)

    def is_open(self, queue: Queue, now: datetime) -> bool:
        """Within the queue's service hours at `now` (outside them it is offline whatever
        the operators' presence)."""
        runtime = self._runtime.get(queue.id)
        if runtime is None or runtime.hours.is_always:
            return True
        # Hours change on whole minutes: one real check per queue and minute is enough.
        minute = now.replace(second=0, microsecond=0)
        if runtime.open_at_minute is None or runtime.open_at_minute[0] != minute:
            runtime.open_at_minute = (minute, is_open(runtime.hours, minute))
        return runtime.open_at_minute[1]

    # Operators -------------------------------------------------------------------------------

    def operator(self, jid: str) -> Operator | None:
        return self._operators.get(jid)

    def operator_by_id(self, operator_id: int) -> Operator | None:
        return next((op for op in self._operators.values() if op.id == operator_id), None)

    def operators(self) -> list[Operator]:
        return sorted(self._operators.values(), key=lambda op: op.jid)

    def require_operator(self, jid: str) -> Operator:
        op = self._operators.get(jid)
        if op is None:
            raise NotAnOperator("You are not an operator of this service.")
        return op

    def find_operator(self, text: str) -> Operator | None:
        """An operator by bare JID or by display name (case-insensitive), for `!transfer`."""
        if text in self._operators:
            return self._operators[text]
        wanted = text.casefold()
        matches = [op for op in self._operators.values() if op.name.casefold() == wanted]
        return matches[0] if len(matches) == 1 else None

    def members(self, queue: Queue) -> list[str]:
        """The queue's operators' JIDs, sorted."""
        return sorted(jid for jid in self._members.get(queue.id, ()) if jid in self._operators)

    def on_call(self, queue: Queue) -> list[str]:
        return sorted(self._on_call.get(queue.id, ()))

    def queues_of(self, jid: str) -> list[str]:
        return sorted(q.name for q in self._queues.values() if jid in self._members[q.id])

    def is_member(self, jid: str, queue: Queue) -> bool:
        return jid in self._members.get(queue.id, set())

    # Presence subscriptions ------------------------------------------------------------------

    def subscriptions(self) -> dict[tuple[str, str], str]:
        """(queue, operator JID) -> 'none' | 'asked' | 'granted'."""
        return dict(self._subscriptions)

    def subscribers(self, queue_name: str) -> list[str]:
        """Operators of the queue who granted it their presence (they see its presence)."""
        return [
            jid for (q, jid), s in self._subscriptions.items() if q == queue_name and s == "granted"
        ]

    async def on_subscription(self, queue_name: str, jid: str, kind: str) -> bool:
        """A subscription stanza of type `kind` from `jid` to a queue JID; records a grant
        or a withdrawal. Returns whether `jid` is an operator of that queue."""
        key = (queue_name, jid)
        if key not in self._subscriptions:
            return False
        queue = self._queues[queue_name]
        op = self._operators[jid]
        if kind == "subscribed" and self._subscriptions[key] != "granted":
            self._subscriptions[key] = "granted"
            await self.store.operators.set_subscription(queue.id, op.id, "granted")
        elif kind == "unsubscribed" and self._subscriptions[key] != "none":
            self._subscriptions[key] = "none"
            await self.store.operators.set_subscription(queue.id, op.id, "none")
        return True

    async def mark_subscription_asked(self, queue_name: str, jid: str) -> bool:
        """The adapter sent a subscription request; remember so it is not re-sent
        blindly. Returns whether anything was written."""
        key = (queue_name, jid)
        if self._subscriptions.get(key) != "none":
            return False
        self._subscriptions[key] = "asked"
        await self.store.operators.set_subscription(
            self._queues[queue_name].id, self._operators[jid].id, "asked"
        )
        return True


__all__ = ["DirectoryCache", "QueueRuntime"]
