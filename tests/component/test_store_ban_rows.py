"""Stored bans read back through the fast paths: networks equal what `ip_network` makes of
them, and the start-up index built from rows answers like the `Ban`s the rows make."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from component.core.ban_index import BanIndex, StoredBan, longest_lasting
from component.core.bans import Ban, canonical_address
from component.store.bans import _network, ban_from_row, stored_ban_from_row
from component.store.db import iso

v4 = st.builds(
    lambda value, prefix: IPv4Network((value, prefix), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
v6 = st.builds(
    lambda value, prefix: IPv6Network((value, prefix), strict=False),
    st.integers(0, 2**128 - 1),
    st.integers(0, 128),
)


@given(st.one_of(v4, v6))
def test_stored_networks_read_back_equal(network: IPv4Network | IPv6Network) -> None:
    text = str(network)
    assert _network(text) == ip_network(text, strict=False)
    assert type(_network(text)) is type(network)


def test_unusual_text_falls_back_to_the_standard_parser() -> None:
    for text in ("192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1/128", "192.0.2.7/24"):
        assert _network(text) == ip_network(text, strict=False)


# The start-up index: built from `StoredBan` records straight from rows ----------------

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
V4_BASE = int(IPv4Address("10.20.0.0"))
V6_BASE = int(IPv6Address("2001:db8::"))


@st.composite
def stored_networks(draw: st.DrawFn) -> str:
    """A network as a row may hold it: drawn from small corners of each space so that
    bans overlap and look-ups hit them; sometimes with host bits set, sometimes as the
    IPv4-mapped IPv6 form of an IPv4 network, sometimes a bare address."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        prefix = draw(st.integers(16, 32))
        return f"{IPv4Address(V4_BASE + draw(st.integers(0, 2**10 - 1)) * 61)}/{prefix}"
    if kind == 1:
        prefix = draw(st.integers(112, 128))
        v4 = IPv4Address(V4_BASE + draw(st.integers(0, 2**10 - 1)) * 61)
        return f"::ffff:{v4}/{prefix}"
    host = V6_BASE + (draw(st.integers(0, 2**8 - 1)) << 62) + draw(st.integers(0, 3))
    if kind == 2:
        return str(IPv6Address(host))
    prefix = draw(st.sampled_from([32, 40, 48, 56, 63, 64, 65, 96, 127, 128]))
    return f"{IPv6Address(host)}/{prefix}"


@st.composite
def rows(draw: st.DrawFn, ban_id: int) -> dict[str, Any]:
    """A `bans` row that `index_entries` reads (not lifted, not ended at T0 - 48 h)."""
    start = T0 + timedelta(hours=draw(st.integers(-48, 48)))
    permanent = draw(st.integers(0, 9)) == 0
    end = None if permanent else start + timedelta(hours=draw(st.integers(1, 96)))
    return {
        "id": ban_id,
        "network": draw(stored_networks()),
        "offence": draw(st.integers(1, 4)),
        "reason": "r",
        "created_by": "admin",
        "starts_at": iso(start),
        "ends_at": iso(end) if end else None,
        "lifted_at": None,
    }


@st.composite
def addresses(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        v4 = IPv4Address(V4_BASE + draw(st.integers(0, 2**10 - 1)) * 61 + draw(st.integers(0, 3)))
        return f"::ffff:{v4}" if draw(st.booleans()) else str(v4)
    return str(
        IPv6Address(V6_BASE + (draw(st.integers(0, 2**8 - 1)) << 62) + draw(st.integers(0, 3)))
    )


def obvious(bans: list[Ban], address: str, at: datetime) -> Ban | None:
    """The answer by the definition: every ban, checked one by one."""
    where = canonical_address(address)
    return longest_lasting(
        b
        for b in bans
        if where.version == b.network.version and where in b.network and b.active(at)
    )


def as_entry(row: dict[str, Any]) -> StoredBan:
    columns = ("id", "network", "offence", "reason", "created_by", "starts_at", "ends_at")
    return stored_ban_from_row(tuple(row[c] for c in columns))


# 100 examples: each holds up to 40 rows over a deliberately tiny address space (2**10
# IPv4 and 2**8 IPv6 bases, mixed prefixes), so nearly every example has overlapping and
# nested bans, and checks 20 random look-ups plus every ban's start, end and lift instant:
# about 2,000 rows and 4,000 look-ups per run, each against the obvious answer. (300 took
# three times as long, almost all of it drawing the rows, and found nothing more.)
@settings(max_examples=100, deadline=None)
@given(st.data())
def test_index_from_stored_rows_answers_like_whole_bans(data: st.DataObject) -> None:
    """The index built from rows (no `Ban` made until one matches) answers every look-up
    as the obvious check over the `Ban`s the same rows make, v4 and v6 (mapped forms,
    overlapping prefixes), at any time (before a ban starts, at its end, after), also
    after bans were lifted, replaced and pruned the way the service does."""
    table = [data.draw(rows(i)) for i in range(data.draw(st.integers(0, 40)))]
    bans = {row["id"]: ban_from_row(row) for row in table}
    index = BanIndex(as_entry(row) for row in table)
    assert len(index) == len(bans)
    for _ in range(data.draw(st.integers(0, 5))):
        if not bans:
            break
        victim = data.draw(st.sampled_from(sorted(bans)))
        if data.draw(st.booleans()):
            # Lifted (the service re-adds it changed, or drops it) or replaced.
            lifted = bans[victim].lift(T0 + timedelta(hours=data.draw(st.integers(-48, 96))))
            bans[victim] = lifted
            index.add(lifted)
        else:
            assert index.remove(victim) == bans.pop(victim)
    for hours in sorted(data.draw(st.lists(st.integers(-50, 200), max_size=2))):
        at = T0 + timedelta(hours=hours)
        gone = {b.id: b for b in index.prune(at)}
        expected = {i for i, b in bans.items() if (e := b.effective_end) is not None and e <= at}
        assert set(gone) == expected
        for i in expected:
            assert gone[i] == bans.pop(i)
    everything = list(bans.values())
    for _ in range(20):
        address = data.draw(addresses())
        at = T0 + timedelta(minutes=data.draw(st.integers(-60 * 60, 200 * 60)))
        assert index.match(address, at) == obvious(everything, address, at)
        assert index.count_active(at) == sum(1 for b in everything if b.active(at))
    for ban in everything:
        for instant in (ban.starts_at, ban.ends_at, ban.lifted_at):
            if instant is not None:
                address = str(ban.network.network_address)
                assert index.match(address, instant) == obvious(everything, address, instant)
    assert sorted(index, key=lambda b: b.id) == sorted(everything, key=lambda b: b.id)
    for ban_id, ban in bans.items():
        assert index.get(ban_id) == ban


@pytest.mark.parametrize(
    "row",
    [
        (1, "10.0.0.0/24", 0, "r", "a", "2026-03-01T12:00:00+00:00", None),
        (2, "10.0.0.0/24", 1, "r", "a", "2026-03-01T12:00:00+00:00", "2026-03-01T11:00:00+00:00"),
        (3, "10.0.0.0/24", 1, "r", "a", "2026-03-01T12:00:00", "2026-03-02T12:00:00"),
        (4, "10.0.0.0/33", 1, "r", "a", "2026-03-01T12:00:00+00:00", None),
    ],
)
def test_a_corrupt_stored_ban_stops_the_load_as_before(row: tuple[Any, ...]) -> None:
    """What `Ban` refuses (offence 0, an end before the start, a time without zone, a
    prefix out of range) is refused when the row is read, not at some later look-up."""
    with pytest.raises(ValueError):
        ban_from_row(
            dict(
                zip(
                    ("id", "network", "offence", "reason", "created_by", "starts_at", "ends_at"),
                    row,
                    strict=True,
                )
            )
            | {"lifted_at": None}
        )
    with pytest.raises(ValueError):
        stored_ban_from_row(row)
