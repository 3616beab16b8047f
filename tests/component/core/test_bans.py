"""Tests for component.core.bans: targets, refusals, the ladder, offences and matching."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from component.core.ban_index import BanIndex, longest_lasting
from component.core.bans import (
    DEFAULT_STEPS,
    MAX_DURATION,
    MIN_IPV4_PREFIX,
    MIN_IPV6_PREFIX,
    Address,
    Ban,
    BanError,
    Ladder,
    Network,
    ban_ends_at,
    canonical_address,
    format_duration,
    ladder_duration,
    next_offence,
    normalize_target,
    overlapping,
    parse_duration,
    parse_ladder,
    refusal,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def net(text: str) -> Network:
    return ip_network(text)


def ban(
    id: int,
    network: str | Network,
    *,
    start: datetime = T0,
    days: float | None = 30,
    lifted: datetime | None = None,
    offence: int = 1,
) -> Ban:
    return Ban(
        id=id,
        network=net(network) if isinstance(network, str) else network,
        offence=offence,
        reason="test",
        starts_at=start,
        ends_at=None if days is None else start + timedelta(days=days),
        lifted_at=lifted,
        permanent=days is None,
    )


# Targets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.7", "203.0.113.7/32"),
        ("  203.0.113.7\n", "203.0.113.7/32"),
        ("203.0.113.0/24", "203.0.113.0/24"),
        ("203.0.113.77/24", "203.0.113.0/24"),  # host bits set: normalized
        ("203.0.113.7/32", "203.0.113.7/32"),
        ("203.0.113.7/255.255.255.0", "203.0.113.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),  # a bare IPv6 address: its /64
        ("[2001:db8:1:2::9]", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::9", "2001:db8:1:2::/64"),
        ("2001:db8::/48", "2001:db8::/48"),
        ("2001:db8:0:0:ff::1/48", "2001:db8::/48"),
        ("2001:db8::1/128", "2001:db8::1/128"),
        ("::ffff:198.51.100.4", "198.51.100.4/32"),  # IPv4-mapped: the IPv4 /32
        ("::FFFF:198.51.100.4", "198.51.100.4/32"),
        ("::ffff:c633:6404", "198.51.100.4/32"),
        ("::ffff:198.51.100.4/128", "198.51.100.4/32"),
        ("::ffff:198.51.100.0/120", "198.51.100.0/24"),
        ("fe80::1%eth0", "fe80::/64"),
    ],
)
def test_normalize_target_forms(text: str, expected: str) -> None:
    assert normalize_target(text) == net(expected)


def test_mapped_address_is_ipv4_types() -> None:
    target = normalize_target("::ffff:198.51.100.4")
    assert isinstance(target, IPv4Network)
    assert canonical_address("::ffff:198.51.100.4") == IPv4Address("198.51.100.4")


def test_ipv6_prefix_chosen_by_admin() -> None:
    assert normalize_target("2001:db8::1", ipv6_prefix=128) == net("2001:db8::1/128")
    assert normalize_target("2001:db8::1", ipv6_prefix=56) == net("2001:db8::/56")
    # An explicit CIDR wins over the default prefix; IPv4 ignores it.
    assert normalize_target("2001:db8::1/96", ipv6_prefix=128) == net("2001:db8::/96")
    assert normalize_target("192.0.2.1", ipv6_prefix=48) == net("192.0.2.1/32")
    # A mapped address stays IPv4 whatever IPv6 prefix is asked for.
    assert normalize_target("::ffff:192.0.2.1", ipv6_prefix=64) == net("192.0.2.1/32")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "banana",
        "203.0.113",
        "203.0.113.256",
        "203.0.113.7/33",
        "2001:db8::/129",
        "10/8",
        "1.2.3.4/",
        "/24",
        "2001:db8:::1",
        "203.0.113.7 203.0.113.8",
        "x" * 5000,
    ],
)
def test_normalize_target_refuses_garbage(text: str) -> None:
    with pytest.raises(BanError) as caught:
        normalize_target(text)
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert "e.g." in message
    assert len(message) < 200


def test_bad_ipv6_prefix_parameter() -> None:
    with pytest.raises(BanError):
        normalize_target("2001:db8::1", ipv6_prefix=129)


def test_round_trips_through_text() -> None:
    for text in ("203.0.113.7", "2001:db8::5", "10.1.0.0/16", "::ffff:10.0.0.1"):
        network = normalize_target(text)
        assert normalize_target(str(network)) == network


# Refusals -----------------------------------------------------------------------------

PROXIES = [net("192.0.2.10/32"), net("2001:db8:ffff::/48")]
EXEMPT = [net("198.51.100.0/24"), net("2001:db8:5::/48")]


def refuse(network: str, *, by_operator: bool = True) -> str | None:
    return refusal(
        normalize_target(network), protected=PROXIES, exempt=EXEMPT, by_operator=by_operator
    )


@pytest.mark.parametrize("everyone", ["0.0.0.0/0", "::/0", "::ffff:0.0.0.0/96"])
def test_refuses_everyone(everyone: str) -> None:
    for by_operator in (True, False):
        reason = refuse(everyone, by_operator=by_operator)
        assert reason is not None
        assert "every" in reason


@pytest.mark.parametrize("broad", ["10.0.0.0/8", "172.16.0.0/12", "10.0.0.0/15", "2001::/16"])
def test_refuses_too_broad_even_for_admins(broad: str) -> None:
    reason = refuse(broad, by_operator=False)
    assert reason is not None
    assert "too broad" in reason


def test_minimum_prefixes_are_allowed() -> None:
    assert MIN_IPV4_PREFIX == 16
    assert MIN_IPV6_PREFIX == 32
    assert refuse("10.20.0.0/16") is None
    assert refuse("2001:db9::/32") is None


def test_refuses_trusted_proxy_inside_or_equal() -> None:
    assert refuse("192.0.2.10") is not None
    assert refuse("192.0.2.0/24", by_operator=False) is not None  # the proxy is inside
    assert refuse("2001:db8:ffff:1::9") is not None  # inside a protected /48
    assert refuse("192.0.2.11") is None


def test_protected_given_as_mapped_ipv6() -> None:
    reason = refusal(
        net("192.0.2.0/24"),
        protected=[net("::ffff:192.0.2.10/128")],
        exempt=[],
        by_operator=False,
    )
    assert reason is not None


@pytest.mark.parametrize("loop", ["127.0.0.1", "127.5.5.5", "::1", "::ffff:127.0.0.1"])
def test_loopback_always_protected(loop: str) -> None:
    reason = refusal(normalize_target(loop), protected=[], exempt=[], by_operator=False)
    assert reason is not None
    assert "loopback" in reason


def test_exempt_network_operator_refused_admin_allowed() -> None:
    reason = refuse("198.51.100.23", by_operator=True)
    assert reason is not None
    assert "admin" in reason
    assert refuse("198.51.100.23", by_operator=False) is None
    # Overlap counts both ways: a network containing the exempt one as well.
    assert refuse("198.51.0.0/16", by_operator=True) is not None
    assert refuse("2001:db8:5:7::1", by_operator=True) is not None
    assert refuse("198.51.101.1", by_operator=True) is None


def test_overlapping_lists_what_an_admin_overrode() -> None:
    assert overlapping(net("198.51.0.0/16"), EXEMPT) == [net("198.51.100.0/24")]
    assert overlapping(net("2001:db8:5::1/128"), EXEMPT) == [net("2001:db8:5::/48")]
    assert overlapping(net("203.0.113.0/24"), EXEMPT) == []


def test_ipv4_and_ipv6_never_overlap() -> None:
    assert overlapping(net("0.0.0.0/16"), [net("::/16")]) == []


# Lengths and the ladder ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("90d", timedelta(days=90)),
        ("1y", timedelta(days=365)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(weeks=2)),
        (" 30 days ", timedelta(days=30)),
        ("1 Year", timedelta(days=365)),
        ("1D", timedelta(days=1)),
        ("10y", MAX_DURATION),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "30", "d", "30x", "-5d", "0d", "1.5d", "30m", "11y", "30d 2h", "forever", "9" * 9]
)
def test_parse_duration_refuses_garbage(text: str) -> None:
    with pytest.raises(BanError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["30d", "90d", "1y", "12h", "2y", "400d", "36h"])
def test_format_duration_round_trips(text: str) -> None:
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)
    assert format_duration(parse_duration("1y")) == "1y"
    assert format_duration(parse_duration("2w")) == "14d"


def test_default_ladder() -> None:
    ladder = Ladder()
    assert ladder.steps == DEFAULT_STEPS
    assert ladder_duration(ladder, 1) == timedelta(days=30)
    assert ladder_duration(ladder, 2) == timedelta(days=90)
    assert ladder_duration(ladder, 3) == timedelta(days=365)
    assert ladder_duration(ladder, 4) == timedelta(days=365)
    assert ladder_duration(ladder, 40) == timedelta(days=365)
    assert str(ladder) == "30d,90d,1y"
    assert parse_ladder("30d,90d,1y") == ladder


def test_custom_ladder() -> None:
    ladder = parse_ladder(" 7d , 30d,30d, 2y ")
    assert [ladder_duration(ladder, n) for n in range(1, 7)] == [
        timedelta(days=7),
        timedelta(days=30),
        timedelta(days=30),
        timedelta(days=730),
        timedelta(days=730),
        timedelta(days=730),
    ]
    single = parse_ladder("14d")
    assert ladder_duration(single, 1) == ladder_duration(single, 9) == timedelta(days=14)


@pytest.mark.parametrize("text", ["", " , ", "30d,,1y", "1y,30d", "30d,banana"])
def test_bad_ladders(text: str) -> None:
    with pytest.raises(BanError):
        parse_ladder(text)


def test_ladder_offence_counted_from_one() -> None:
    with pytest.raises(BanError):
        ladder_duration(Ladder(), 0)


def test_ban_ends_at_ladder_chosen_and_permanent() -> None:
    ladder = Ladder()
    assert ban_ends_at(T0, offence=1, ladder=ladder) == T0 + 30 * DAY
    assert ban_ends_at(T0, offence=3, ladder=ladder) == T0 + 365 * DAY
    assert ban_ends_at(T0, offence=1, ladder=ladder, duration=2 * DAY) == T0 + 2 * DAY
    assert ban_ends_at(T0, offence=1, ladder=ladder, permanent=True) is None
    with pytest.raises(BanError):
        ban_ends_at(T0, offence=1, ladder=ladder, duration=DAY, permanent=True)
    with pytest.raises(BanError):
        ban_ends_at(T0, offence=1, ladder=ladder, duration=timedelta(0))


def test_ladder_never_gives_permanent() -> None:
    for offence in range(1, 50):
        assert ban_ends_at(T0, offence=offence, ladder=Ladder()) is not None


# The Ban value ------------------------------------------------------------------------


def test_permanent_must_be_explicit() -> None:
    with pytest.raises(BanError):
        Ban(1, net("192.0.2.1/32"), 1, "r", T0, None)
    with pytest.raises(BanError):
        Ban(1, net("192.0.2.1/32"), 1, "r", T0, T0 + DAY, permanent=True)
    forever = Ban(1, net("192.0.2.1/32"), 1, "r", T0, None, permanent=True)
    assert forever.active(T0 + 100 * 365 * DAY)


def test_ban_validation() -> None:
    with pytest.raises(BanError):
        Ban(1, net("192.0.2.1/32"), 0, "r", T0, T0 + DAY)
    with pytest.raises(BanError):
        Ban(1, net("192.0.2.1/32"), 1, "r", T0, T0)
    with pytest.raises(BanError):
        Ban(1, net("192.0.2.1/32"), 1, "r", T0.replace(tzinfo=None), None, permanent=True)


def test_ban_network_kept_canonical() -> None:
    mapped = Ban(1, net("::ffff:192.0.2.1/128"), 1, "r", T0, T0 + DAY)
    assert mapped.network == net("192.0.2.1/32")


def test_expiry_at_the_exact_instant() -> None:
    b = ban(1, "192.0.2.1/32", days=30)
    end = T0 + 30 * DAY
    assert not b.active(T0 - timedelta(microseconds=1))
    assert b.active(T0)
    assert b.active(end - timedelta(microseconds=1))
    assert not b.active(end)
    index = BanIndex([b])
    assert index.match("192.0.2.1", end - timedelta(microseconds=1)) == b
    assert index.match("192.0.2.1", end) is None


def test_lift_takes_effect_at_once() -> None:
    b = ban(1, "192.0.2.1/32")
    lifted = b.lift(T0 + DAY)
    assert lifted.active(T0 + DAY - timedelta(microseconds=1))
    assert not lifted.active(T0 + DAY)
    assert lifted.effective_end == T0 + DAY
    index = BanIndex([b])
    index.add(lifted)  # same id replaces
    assert len(index) == 1
    assert index.match("192.0.2.1", T0 + 2 * DAY) is None


# Offences -----------------------------------------------------------------------------


def test_next_offence_same_address_and_overlaps() -> None:
    target = normalize_target("203.0.113.7")
    assert next_offence([], target) == 1
    history = [
        ban(1, "203.0.113.7/32", start=T0 - 400 * DAY),  # expired long ago: still counts
        ban(2, "203.0.113.0/24", start=T0 - 200 * DAY),  # contains the address
        ban(3, "203.0.113.8/32", start=T0 - 100 * DAY),  # a neighbour: no overlap
        ban(4, "2001:db8::/64", start=T0 - 100 * DAY),  # other family
    ]
    assert next_offence(history, target) == 3
    # A wider new ban counts the narrower ones inside it.
    assert next_offence(history, normalize_target("203.0.113.0/24")) == 4


def test_next_offence_ignores_lifted_bans() -> None:
    target = normalize_target("203.0.113.7")
    history = [
        ban(1, "203.0.113.7/32", start=T0 - 100 * DAY),
        ban(2, "203.0.113.7/32", start=T0 - 50 * DAY, lifted=T0 - 49 * DAY),
    ]
    assert next_offence(history, target) == 2


def test_next_offence_ipv6_by_64_and_mapped() -> None:
    history = [ban(1, normalize_target("2001:db8:1:2::1"), start=T0 - 100 * DAY)]
    # Another address in the same /64 is the same offender.
    assert next_offence(history, normalize_target("2001:db8:1:2::ffff")) == 2
    assert next_offence(history, normalize_target("2001:db8:1:3::1")) == 1
    v4 = [ban(2, "192.0.2.1/32", start=T0 - 100 * DAY)]
    assert next_offence(v4, net("::ffff:192.0.2.1/128")) == 2


# The index ----------------------------------------------------------------------------


def test_index_basic_matching() -> None:
    narrow = ban(1, "203.0.113.7/32", days=30)
    wide = ban(2, "203.0.113.0/24", days=90)
    v6 = ban(3, normalize_target("2001:db8:1:2::1"), days=30)
    index = BanIndex([narrow, wide, v6])
    assert index.match("203.0.113.7", T0) == wide  # longest-lasting of the two
    assert index.match("203.0.113.9", T0) == wide
    assert index.match("203.0.114.1", T0) is None
    assert index.match("::ffff:203.0.113.7", T0) == wide
    assert index.match(IPv6Address("::ffff:203.0.113.7"), T0) == wide
    assert index.match("2001:db8:1:2:aaaa::5", T0) == v6
    assert index.match("2001:db8:1:3::1", T0) is None
    assert index.match("203.0.113.7", T0 + 31 * DAY) == wide
    assert index.match("203.0.113.7", T0 + 91 * DAY) is None
    with pytest.raises(BanError):
        index.match("not an address", T0)


def test_index_permanent_wins() -> None:
    forever = ban(1, "203.0.113.0/24", days=None)
    year = ban(2, "203.0.113.7/32", days=365)
    assert BanIndex([year, forever]).match("203.0.113.7", T0) == forever


def test_index_add_remove_prune() -> None:
    a = ban(1, "203.0.113.7/32", days=30)
    b = ban(2, "203.0.113.0/24", days=10)
    c = ban(3, "2001:db8::/48", days=5, lifted=T0 + DAY)
    index = BanIndex([a, b, c])
    assert len(index) == 3
    assert index.remove(1) == a
    assert index.remove(1) is None
    assert index.match("203.0.113.7", T0) == b
    assert index.get(2) == b
    pruned = index.prune(T0 + 10 * DAY)
    assert sorted(x.id for x in pruned) == [2, 3]
    assert len(index) == 0
    assert index.match("203.0.113.7", T0) is None
    index.add(a)
    assert index.match("203.0.113.7", T0) == a
    assert list(index) == [a]


# Property test against brute force ----------------------------------------------------

V4_BASE = int(IPv4Address("10.20.0.0"))
V6_BASE = int(IPv6Address("2001:db8::"))


@st.composite
def networks(draw: st.DrawFn) -> Network:
    # Addresses drawn from a small corner of each space so that bans and look-ups collide.
    if draw(st.booleans()):
        prefix = draw(st.integers(16, 32))
        host = V4_BASE + draw(st.integers(0, 2**10 - 1)) * 61
        return IPv4Network((host, prefix), strict=False)
    prefix = draw(st.sampled_from([32, 40, 48, 56, 63, 64, 65, 96, 127, 128]))
    host = V6_BASE + (draw(st.integers(0, 2**8 - 1)) << 62) + draw(st.integers(0, 3))
    return IPv6Network((host, prefix), strict=False)


@st.composite
def addresses(draw: st.DrawFn) -> Address | str:
    if draw(st.booleans()):
        v4 = IPv4Address(V4_BASE + draw(st.integers(0, 2**10 - 1)) * 61)
        return f"::ffff:{v4}" if draw(st.booleans()) else v4
    return IPv6Address(V6_BASE + (draw(st.integers(0, 2**8 - 1)) << 62) + draw(st.integers(0, 3)))


@st.composite
def bans(draw: st.DrawFn, id: int) -> Ban:
    start = T0 + timedelta(hours=draw(st.integers(-48, 48)))
    permanent = draw(st.integers(0, 9)) == 0
    end = None if permanent else start + timedelta(hours=draw(st.integers(1, 96)))
    lifted = start + timedelta(hours=draw(st.integers(0, 96))) if draw(st.booleans()) else None
    return Ban(id, draw(networks()), 1, "r", start, end, lifted, permanent=permanent)


def brute_force(all_bans: list[Ban], address: Address | str, at: datetime) -> Ban | None:
    where = canonical_address(address)
    return longest_lasting(
        b
        for b in all_bans
        if where.version == b.network.version and where in b.network and b.active(at)
    )


# Hypothesis's default count: each example already checks some 30 look-ups (random ones
# and every start, end and lift instant) against the brute-force answer.
@settings(max_examples=100, deadline=None)
@given(st.data())
def test_index_matches_brute_force(data: st.DataObject) -> None:
    count = data.draw(st.integers(0, 40))
    all_bans = [data.draw(bans(i)) for i in range(count)]
    index = BanIndex(all_bans)
    # Some removals and replacements, mirrored in the reference list.
    for _ in range(data.draw(st.integers(0, 5))):
        if not all_bans:
            break
        victim = data.draw(st.sampled_from(all_bans))
        all_bans.remove(victim)
        index.remove(victim.id)
        if data.draw(st.booleans()):
            fresh = data.draw(bans(victim.id))
            all_bans.append(fresh)
            index.add(fresh)
    assert len(index) == len(all_bans)
    for _ in range(20):
        address = data.draw(addresses())
        at = T0 + timedelta(minutes=data.draw(st.integers(-60 * 60, 150 * 60)))
        assert index.match(address, at) == brute_force(all_bans, address, at)
    # Look-ups at the exact instants where bans start, end and are lifted.
    for b in all_bans:
        for instant in (b.starts_at, b.ends_at, b.lifted_at):
            if instant is not None:
                address = b.network.network_address
                assert index.match(address, instant) == brute_force(all_bans, address, instant)


# 100 examples, as `test_index_matches_brute_force`: each indexes up to 30 bans, replaces or
# removes up to 10 of them and prunes at up to 4 instants, so a run prunes a few hundred
# times over bans changed after indexing, the case this test is about. (300 took three
# times as long, almost all of it drawing the bans.)
@settings(max_examples=100, deadline=None)
@given(st.data())
def test_prune_forgets_exactly_the_bans_that_ran_out_after_replacements(
    data: st.DataObject,
) -> None:
    count = data.draw(st.integers(0, 30))
    held = {i: data.draw(bans(i)) for i in range(count)}
    index = BanIndex(held.values())
    # Bans changed (re-added with another end or lift) or removed after indexing: prune
    # must go by what the index holds now, not by what it held when the ban was added.
    for _ in range(data.draw(st.integers(0, 10))):
        if not held:
            break
        victim = data.draw(st.sampled_from(sorted(held)))
        if data.draw(st.booleans()):
            held[victim] = data.draw(bans(victim))
            index.add(held[victim])
        else:
            del held[victim]
            index.remove(victim)
    for hours in sorted(data.draw(st.lists(st.integers(-50, 200), max_size=4))):
        at = T0 + timedelta(hours=hours)
        expected = {
            i for i, b in held.items() if (end := b.effective_end) is not None and end <= at
        }
        assert {b.id for b in index.prune(at)} == expected
        for i in expected:
            del held[i]
        assert {b.id for b in index} == set(held)


def test_hundred_thousand_bans() -> None:
    rng = random.Random(5)
    many: list[Ban] = []
    for i in range(100_000):
        if i % 2:
            network: Network = IPv4Network(
                (rng.getrandbits(32), rng.choice([32, 32, 24, 16])), strict=False
            )
        else:
            network = IPv6Network(
                (rng.getrandbits(128), rng.choice([64, 64, 48, 128])), strict=False
            )
        many.append(Ban(i, network, 1, "r", T0, T0 + 30 * DAY))
    index = BanIndex(many)
    assert len(index) == 100_000
    for b in many[:2000]:
        assert index.match(b.network.network_address, T0 + DAY) is not None
    for _ in range(2000):
        index.match(IPv4Address(rng.getrandbits(32)), T0 + DAY)
        index.match(IPv6Address(rng.getrandbits(128)), T0 + DAY)
    assert index.match(many[1].network.network_address, T0 + 31 * DAY) is None
