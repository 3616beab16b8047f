"""The open-chat registry keeps waiting counts, places in line and operators' loads as
chats change (so a hello costs the same with 10 or 10,000 chats open). Pure logic: its
answers must always equal a plain recount over every open chat, whatever sequence of
opening, asking, taking, handing back, transferring and ending happened."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from component.core.models import ChatState, Operator, Queue, RoutingMode
from component.live import LiveChat
from component.open_chats import OpenChats
from component.store import Store

T0 = datetime(2026, 3, 1, tzinfo=UTC)
QUEUES = [Queue(n, f"q{n}", 1, f"Q{n}", RoutingMode.RING_ALL, None) for n in (1, 2, 3)]
OPERATORS = [Operator(n, f"op{n}@example.org", f"Op {n}", 5) for n in (1, 2, 3)]

step = st.one_of(
    st.tuples(st.just("open"), st.integers(0, 2)),
    st.tuples(st.just("ask"), st.integers(0, 40)),
    st.tuples(st.just("take"), st.integers(0, 40), st.integers(0, 2)),
    st.tuples(st.just("hand_back"), st.integers(0, 40)),
    st.tuples(st.just("transfer"), st.integers(0, 40), st.integers(0, 2)),
    st.tuples(st.just("end"), st.integers(0, 40)),
)


def recount(chats: OpenChats, everything: list[LiveChat]) -> dict[str, Any]:
    """What the registry should answer, counted the slow way."""
    live = [c for c in everything if chats.is_open(c)]
    waiting = {
        q.id: sorted(c.id for c in live if c.queue.id == q.id and c.unanswered) for q in QUEUES
    }
    active: dict[str, int] = {}
    for c in live:
        if c.operator is not None:
            active[c.operator.jid] = active.get(c.operator.jid, 0) + 1
    return {
        "waiting": {q.id: len(waiting[q.id]) for q in QUEUES},
        "positions": {
            q.id: {
                c.id: (waiting[q.id].index(c.id) + 1 if c.unanswered else None)
                for c in live
                if c.queue.id == q.id
            }
            for q in QUEUES
        },
        "position": {
            c.id: (waiting[c.queue.id].index(c.id) + 1 if c.unanswered else None) for c in live
        },
        "active": active,
        "all": [c.id for c in sorted(live, key=lambda c: c.id)],
        "unanswered": sorted(c.id for c in live if c.unanswered),
    }


def answers(chats: OpenChats, everything: list[LiveChat]) -> dict[str, Any]:
    live = [c for c in everything if chats.is_open(c)]
    return {
        "waiting": {q.id: chats.waiting(q) for q in QUEUES},
        "positions": {q.id: chats.positions(q) for q in QUEUES},
        "position": {c.id: chats.position(c.id) for c in live},
        "active": dict(chats.active_count()),
        "all": [c.id for c in chats.all()],
        "unanswered": [c.id for c in chats.unanswered()],
    }


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=60))
def test_the_registry_agrees_with_a_recount_after_any_changes(steps: list[tuple[Any, ...]]) -> None:
    # The store is not used by the registry's bookkeeping (only by `append`).
    chats = OpenChats(cast(Store, None), lambda: T0)
    everything: list[LiveChat] = []
    for action, *args in steps:
        if action == "open":
            live = LiveChat(
                id=len(everything) + 1,
                queue=QUEUES[args[0]],
                guest=f"guest-{len(everything)}",
                state=ChatState.WAITING,
                operator=None,
                created_at=T0,
                last_seq=0,
            )
            everything.append(live)
            chats.add(live)
            continue
        if not everything:
            continue
        live = everything[args[0] % len(everything)]
        if action == "ask":
            live.last_seq += 1
        elif action == "take":
            live.operator = OPERATORS[args[1]]
            live.state = ChatState.ACTIVE
        elif action == "hand_back":
            live.operator = None
        elif action == "transfer":
            live.queue = QUEUES[args[1]]
        elif action == "end":
            chats.remove(live)
        assert answers(chats, everything) == recount(chats, everything)
