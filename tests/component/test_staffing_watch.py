"""The unstaffed-queue watch on the service's injectable clock: a manual clock moves the
time, so ten minutes pass without a real sleep."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from component.clock import ManualClock
from component.core.changes import GroupUpdate
from component.core.events import Event, OperatorNotice
from component.core.models import Presence
from component.service import DeskService
from component.store import Store
from tests.component.test_service import ANN, BOB, DOMAIN, Clock, seed


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[DeskService, list[Event], ManualClock]]:
    clock = Clock()
    store = await Store.open(tmp_path / "refdesk.sqlite3")
    service = DeskService(store, domain=DOMAIN, clock=clock, unstaffed_alert_after=600.0)
    await service.start()
    await seed(store, clock.now())
    group = await store.groups.by_name("library")
    assert group is not None
    await store.groups.update(group.id, GroupUpdate(coordinator_emails=("coord@example.org",)))
    ask = await store.queues.by_name("ask")
    bob = await store.operators.by_jid(BOB)
    assert ask is not None and bob is not None
    await store.operators.assign(ask.id, bob.id, on_call=True)
    await service.reload_directory()
    events: list[Event] = []
    service.bus.subscribe(events.append)
    try:
        yield service, events, clock
    finally:
        await service.close()
        await store.close()


def _lines(events: list[Event], jid: str) -> list[str]:
    return [e.text for e in events if isinstance(e, OperatorNotice) and e.operator_jid == jid]


async def test_the_watch_runs_on_the_injected_clock(
    service: tuple[DeskService, list[Event], ManualClock],
) -> None:
    desk, events, clock = service
    await desk.on_operator_presence(ANN, "laptop", Presence.AVAILABLE)
    await desk.on_operator_presence(ANN, "laptop", Presence.AWAY)
    assert any("last one available" in t for t in _lines(events, ANN))

    await clock.advance(599, settle=desk.idle)
    assert not any("nobody available" in t for t in _lines(events, BOB))
    await clock.advance(1, settle=desk.idle)
    assert [t for t in _lines(events, BOB) if "nobody available" in t and "(ask)" in t]
    mails = await desk.store.mail.all()
    assert {m.recipients for m in mails if "(ask)" in m.message.decode("ascii", "replace")} >= {
        ("coord@example.org",)
    }
    # An hour more: still told once.
    await clock.advance(3600, settle=desk.idle)
    await desk.tick()
    await desk.idle()
    assert len([t for t in _lines(events, BOB) if "nobody available" in t and "(ask)" in t]) == 1

    await desk.on_operator_presence(ANN, "laptop", Presence.AVAILABLE)
    await desk.idle()
    assert [t for t in _lines(events, BOB) if "staffed again" in t and "(ask)" in t]
    trail = await desk.store.notices.recent()
    assert {(n.purpose, n.channel) for n in trail} >= {
        ("unstaffed", "xmpp"),
        ("unstaffed", "email"),
        ("staffed", "xmpp"),
        ("staffed", "email"),
    }


async def test_unstaffed_from_start_up_then_staffed_then_unstaffed_again_is_told_once_per_spell(
    service: tuple[DeskService, list[Event], ManualClock],
) -> None:
    """Nobody online from start-up is a spell of its own: told after the delay, ended by
    someone coming online ("staffed again"); the next spell is told once more. Checks
    racing at the moment the delay is up (the timer, the tick, a presence change) tell it
    once."""
    desk, events, clock = service
    await desk.tick()  # nobody online since start-up: the watch starts
    # The delay is up: the watch's timer fires, and while its check is telling (awaiting
    # the trail), the tick and other checks run.
    await clock.advance(600)
    await asyncio.gather(desk.tick(), desk.notices.check_staffing(), desk.notices.check_staffing())
    await desk.idle()
    await desk.on_operator_presence(ANN, "laptop", Presence.AVAILABLE)
    await desk.on_operator_presence(ANN, "laptop", Presence.AWAY)
    await clock.advance(600)
    await asyncio.gather(
        desk.tick(),
        desk.notices.check_staffing(),
        desk.on_operator_presence(ANN, "phone", Presence.AWAY),
    )
    for _ in range(3):
        await clock.advance(600, settle=desk.idle)
        await desk.tick()
    await desk.idle()

    lines = [t for t in _lines(events, BOB) if "(ask)" in t]
    assert ["nobody" if "nobody available" in t else "staffed" for t in lines] == [
        "nobody",
        "staffed",
        "nobody",
    ]
    ask = await desk.store.queues.by_name("ask")
    assert ask is not None
    trail = await desk.store.notices.staffing_for_queue(ask.id)
    for who in (BOB, "coord@example.org"):
        told = [n.purpose for n in reversed(trail) if n.recipient == who]
        assert told == ["unstaffed", "staffed", "unstaffed"]


def test_a_stored_unstaffed_notice_resumes_the_watch_only_within_the_same_opening() -> None:
    from datetime import UTC, datetime, timedelta

    from component.core.hours import ServiceHours, parse_hours
    from component.core.staffing import Watch, resumed

    monday = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    office = parse_hours("Mon-Fri 09:00-17:00", "UTC")
    later = monday + timedelta(hours=3)
    assert resumed(monday, later, office, 5.0) == Watch(since=5.0, told=True)
    # Closed in between (the evening), or closed now: a fresh watch.
    assert resumed(monday, monday + timedelta(days=1), office, 5.0) == Watch()
    assert resumed(monday, monday + timedelta(hours=8), office, 5.0) == Watch()
    # No stored notice, or one from outside the hours: a fresh watch.
    assert resumed(None, later, office, 5.0) == Watch()
    assert resumed(monday - timedelta(hours=3), later, office, 5.0) == Watch()
    # Always open: the notice stands however long ago.
    always = ServiceHours.always()
    assert resumed(monday, monday + timedelta(days=40), always, 1.0) == Watch(since=1.0, told=True)
    # Open every day but one, three weeks after the notice: that closing ended the watch.
    closing = parse_hours("always", "UTC", ["2026-12-14"])
    assert resumed(monday, monday + timedelta(days=30), closing, 1.0) == Watch()
    assert resumed(monday, monday + timedelta(days=15), closing, 1.0) == Watch(since=1.0, told=True)
