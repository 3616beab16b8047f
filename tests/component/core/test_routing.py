"""Tests for component.core.routing and the Presence model it relies on."""

from __future__ import annotations

import pytest

from component.core.models import Presence, QueueStatus
from component.core.routing import OperatorLoad, eligible, queue_status

ALL = list(Presence)
TAKING = [Presence.AVAILABLE, Presence.CHAT]
NOT_TAKING = [Presence.AWAY, Presence.XA, Presence.DND, Presence.OFFLINE]
ONLINE_NOT_TAKING = [Presence.AWAY, Presence.XA, Presence.DND]


def load(jid: str, presence: Presence, active: int = 0, max_chats: int = 3) -> OperatorLoad:
    return OperatorLoad(jid=jid, presence=presence, active_chats=active, max_chats=max_chats)


# Presence ------------------------------------------------------------------------------


@pytest.mark.parametrize("show", [None, ""])
def test_from_show_plain_available(show: str | None) -> None:
    assert Presence.from_show(show) is Presence.AVAILABLE


@pytest.mark.parametrize(
    ("show", "presence"),
    [
        ("chat", Presence.CHAT),
        ("away", Presence.AWAY),
        ("xa", Presence.XA),
        ("dnd", Presence.DND),
    ],
)
def test_from_show_each_rfc_value(show: str, presence: Presence) -> None:
    assert Presence.from_show(show) is presence


@pytest.mark.parametrize(
    "show",
    ["busy", "AWAY", "Away", " away", "online", "invisible", "unavailable", "offline"],
)
def test_from_show_unknown_value_is_available(show: str) -> None:
    # RFC 6121 allows only chat/away/xa/dnd in <show/>; the model documents that anything
    # else counts as available, so that a client quirk never drops an operator from routing.
    assert Presence.from_show(show) is Presence.AVAILABLE


def test_takes_chats_and_online() -> None:
    assert {p for p in ALL if p.takes_chats} == set(TAKING)
    assert {p for p in ALL if not p.online} == {Presence.OFFLINE}


def test_rank_orders_presences_by_reachability() -> None:
    ordered = sorted(ALL, key=lambda p: p.rank, reverse=True)
    assert ordered == [
        Presence.CHAT,
        Presence.AVAILABLE,
        Presence.AWAY,
        Presence.XA,
        Presence.DND,
        Presence.OFFLINE,
    ]


# eligible --------------------------------------------------------------------------------


def test_eligible_nobody() -> None:
    assert eligible([]) == []


@pytest.mark.parametrize("presence", TAKING)
def test_eligible_takes_available_and_chat(presence: Presence) -> None:
    assert eligible([load("a@x", presence)]) == ["a@x"]


@pytest.mark.parametrize("presence", NOT_TAKING)
def test_eligible_skips_away_xa_dnd_offline(presence: Presence) -> None:
    assert eligible([load("a@x", presence)]) == []


@pytest.mark.parametrize("presence", TAKING)
def test_eligible_skips_operators_at_max_chats(presence: Presence) -> None:
    assert eligible([load("a@x", presence, active=3, max_chats=3)]) == []
    assert eligible([load("a@x", presence, active=4, max_chats=3)]) == []
    assert eligible([load("a@x", presence, active=2, max_chats=3)]) == ["a@x"]


def test_eligible_mix_keeps_input_order() -> None:
    ops = [load(f"{p.value}@x", p) for p in ALL] + [
        load("full@x", Presence.AVAILABLE, active=1, max_chats=1),
        load("room@x", Presence.CHAT, active=1, max_chats=2),
    ]
    assert eligible(ops) == ["chat@x", "available@x", "room@x"]


def test_eligible_accepts_a_generator() -> None:
    assert eligible(load(f"{i}@x", Presence.AVAILABLE) for i in range(3)) == [
        "0@x",
        "1@x",
        "2@x",
    ]


def test_has_room() -> None:
    assert load("a@x", Presence.AVAILABLE, active=0, max_chats=1).has_room
    assert not load("a@x", Presence.AVAILABLE, active=1, max_chats=1).has_room


# queue_status ----------------------------------------------------------------------------


def test_status_no_operators_is_offline() -> None:
    assert queue_status([]) is QueueStatus.OFFLINE


def test_status_everyone_offline_is_offline() -> None:
    ops = [load("a@x", Presence.OFFLINE), load("b@x", Presence.OFFLINE)]
    assert queue_status(ops) is QueueStatus.OFFLINE


@pytest.mark.parametrize("presence", TAKING)
def test_status_available(presence: Presence) -> None:
    assert queue_status([load("a@x", presence)]) is QueueStatus.AVAILABLE


@pytest.mark.parametrize("presence", ONLINE_NOT_TAKING)
def test_status_away_when_only_away_xa_dnd_are_online(presence: Presence) -> None:
    ops = [load("a@x", presence), load("b@x", Presence.OFFLINE)]
    assert queue_status(ops) is QueueStatus.AWAY


@pytest.mark.parametrize("presence", TAKING)
def test_status_busy_when_everyone_taking_chats_is_full(presence: Presence) -> None:
    ops = [
        load("a@x", presence, active=2, max_chats=2),
        load("b@x", Presence.AVAILABLE, active=1, max_chats=1),
    ]
    assert queue_status(ops) is QueueStatus.BUSY


def test_status_busy_beats_away() -> None:
    ops = [
        load("full@x", Presence.AVAILABLE, active=1, max_chats=1),
        load("away@x", Presence.AWAY),
        load("gone@x", Presence.OFFLINE),
    ]
    assert queue_status(ops) is QueueStatus.BUSY


def test_status_available_when_one_of_several_has_room() -> None:
    ops = [
        load("full@x", Presence.AVAILABLE, active=1, max_chats=1),
        load("room@x", Presence.CHAT, active=0, max_chats=1),
        load("dnd@x", Presence.DND),
    ]
    assert queue_status(ops) is QueueStatus.AVAILABLE


def test_status_away_operator_with_room_is_not_available() -> None:
    # Room alone does not make an away operator take chats.
    assert queue_status([load("a@x", Presence.XA, active=0, max_chats=5)]) is QueueStatus.AWAY


def test_status_full_away_operator_is_away_not_busy() -> None:
    ops = [load("a@x", Presence.AWAY, active=3, max_chats=3)]
    assert queue_status(ops) is QueueStatus.AWAY


@pytest.mark.parametrize("first", ALL)
@pytest.mark.parametrize("second", ALL)
def test_status_for_every_pair_of_presences(first: Presence, second: Presence) -> None:
    ops = [load("a@x", first), load("b@x", second)]
    pair = {first, second}
    if pair & set(TAKING):
        expected = QueueStatus.AVAILABLE
    elif pair & set(ONLINE_NOT_TAKING):
        expected = QueueStatus.AWAY
    else:
        expected = QueueStatus.OFFLINE
    assert queue_status(ops) is expected
    assert queue_status(reversed(ops)) is expected
    assert (len(eligible(ops)) > 0) == (expected is QueueStatus.AVAILABLE)


def test_status_accepts_a_generator() -> None:
    assert queue_status(load(f"{i}@x", Presence.DND) for i in range(2)) is QueueStatus.AWAY
