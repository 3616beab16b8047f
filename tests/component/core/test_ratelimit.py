"""Tests for component.core.ratelimit: limits per address and network, time passed in."""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from component.core.ratelimit import (
    MAIL_LIMITS,
    MESSAGE_LIMITS,
    NEW_CHAT_LIMITS,
    Limit,
    OperatorLimiter,
    RateLimiter,
    Refusal,
    recipient_key,
)

PER_ADDRESS = Limit("new chats per address", "address", 5, 600.0)
PER_NETWORK = Limit("new chats per network", "network", 30, 600.0)


def hits(limiter: RateLimiter, address: str, times: list[float]) -> list[Refusal | None]:
    return [limiter.check(address, t) for t in times]


def test_trips_at_the_limit() -> None:
    limiter = RateLimiter([PER_ADDRESS])
    assert hits(limiter, "203.0.113.7", [0, 1, 2, 3, 4]) == [None] * 5
    refused = limiter.check("203.0.113.7", 5)
    assert refused is not None
    assert refused.limit == PER_ADDRESS
    assert refused.subject == "203.0.113.7"
    assert refused.retry_after == pytest.approx(595)


def test_window_slides() -> None:
    limiter = RateLimiter([PER_ADDRESS])
    hits(limiter, "203.0.113.7", [0, 100, 200, 300, 400])
    assert limiter.check("203.0.113.7", 599.9) is not None
    # The first hit leaves the window exactly 600 s after it came.
    assert limiter.check("203.0.113.7", 600) is None
    refused = limiter.check("203.0.113.7", 650)
    assert refused is not None
    assert refused.retry_after == pytest.approx(50)  # the hit at 100 leaves at 700
    assert limiter.check("203.0.113.7", 700) is None


def test_refused_hits_are_not_recorded() -> None:
    limiter = RateLimiter([PER_ADDRESS])
    hits(limiter, "203.0.113.7", [0, 0, 0, 0, 0])
    # Retrying in a loop does not push the end of the lockout back.
    for t in range(1, 600, 7):
        assert limiter.check("203.0.113.7", t) is not None
    assert limiter.check("203.0.113.7", 600) is None


def test_other_addresses_unaffected() -> None:
    limiter = RateLimiter(NEW_CHAT_LIMITS)
    hits(limiter, "203.0.113.7", [0, 0, 0, 0, 0])
    assert limiter.check("203.0.113.7", 1) is not None
    assert limiter.check("203.0.113.8", 1) is None  # same /24, own address limit
    assert limiter.check("198.51.100.7", 1) is None
    assert limiter.check("2001:db8::7", 1) is None


def test_per_network_aggregation_ipv4() -> None:
    limiter = RateLimiter(NEW_CHAT_LIMITS)
    # 30 different addresses of one /24, one chat each: the network limit is reached.
    for host in range(30):
        assert limiter.check(f"203.0.113.{host}", host) is None
    refused = limiter.check("203.0.113.200", 31)
    assert refused is not None
    assert refused.limit.per == "network"
    assert refused.subject == "203.0.113.0/24"
    assert refused.retry_after == pytest.approx(600 - 31)
    # The neighbouring /24 is another network.
    assert limiter.check("203.0.114.1", 31) is None


def test_per_network_aggregation_ipv6_48() -> None:
    limiter = RateLimiter(NEW_CHAT_LIMITS)
    for n in range(30):
        assert limiter.check(f"2001:db8:1:{n:x}::1", n) is None
    refused = limiter.check("2001:db8:1:ffff::1", 31)
    assert refused is not None
    assert refused.subject == "2001:db8:1::/48"
    assert limiter.check("2001:db8:2::1", 31) is None


def test_ipv6_address_means_its_64() -> None:
    limiter = RateLimiter([PER_ADDRESS])
    # A host rotating addresses inside its /64 is still one patron.
    for n in range(5):
        assert limiter.check(f"2001:db8:1:2::{n + 1:x}", n) is None
    refused = limiter.check("2001:db8:1:2:ffff::9", 6)
    assert refused is not None
    assert refused.subject == "2001:db8:1:2::/64"
    assert limiter.check("2001:db8:1:3::1", 6) is None


def test_ipv6_address_prefix_configurable() -> None:
    limiter = RateLimiter([PER_ADDRESS], ipv6_address_prefix=128)
    for n in range(10):
        assert limiter.check(f"2001:db8:1:2::{n + 1:x}", n) is None


def test_mapped_addresses_are_ipv4() -> None:
    limiter = RateLimiter([PER_ADDRESS])
    hits(limiter, "203.0.113.7", [0, 0, 0, 0])
    assert limiter.check(IPv6Address("::ffff:203.0.113.7"), 1) is None
    refused = limiter.check("::ffff:203.0.113.7", 2)
    assert refused is not None
    assert refused.subject == "203.0.113.7"
    assert limiter.check(IPv4Address("203.0.113.7"), 3) is not None


def test_refusal_names_the_longest_wait() -> None:
    short = Limit("short", "address", 1, 10.0)
    long = Limit("long", "address", 2, 1000.0)
    limiter = RateLimiter([short, long])
    assert limiter.check("192.0.2.1", 0) is None
    assert limiter.check("192.0.2.1", 20) is None
    refused = limiter.check("192.0.2.1", 25)
    assert refused is not None
    assert refused.limit == long
    assert refused.retry_after == pytest.approx(975)


def test_one_refusing_limit_uses_up_nothing_else() -> None:
    per_address = Limit("address", "address", 1, 100.0)
    per_network = Limit("network", "network", 3, 100.0)
    limiter = RateLimiter([per_address, per_network])
    assert limiter.check("192.0.2.1", 0) is None
    for t in range(1, 10):
        assert limiter.check("192.0.2.1", t) is not None
    # Those refused hits did not count against the network.
    assert limiter.check("192.0.2.2", 10) is None
    assert limiter.check("192.0.2.3", 10) is None
    assert limiter.check("192.0.2.4", 10) is not None


def test_message_bucket_burst_then_rate() -> None:
    limiter = RateLimiter(MESSAGE_LIMITS)
    (limit,) = MESSAGE_LIMITS
    assert limit.burst == 10
    # A burst of ten at once passes; the eleventh waits a third of a second.
    assert hits(limiter, "192.0.2.1", [0.0] * 10) == [None] * 10
    refused = limiter.check("192.0.2.1", 0.0)
    assert refused is not None
    assert refused.retry_after == pytest.approx(1 / 3)
    # Then three a second, sustained.
    t = 0.0
    for _ in range(30):
        t += 1 / 3
        assert limiter.check("192.0.2.1", t) is None
        assert limiter.check("192.0.2.1", t) is not None
    # After a quiet spell the burst is back, no more than that.
    t += 10
    assert hits(limiter, "192.0.2.1", [t] * 10) == [None] * 10
    assert limiter.check("192.0.2.1", t) is not None


def test_forget_older_than() -> None:
    limiter = RateLimiter([*NEW_CHAT_LIMITS, *MESSAGE_LIMITS])
    limiter.check("192.0.2.1", 0)
    limiter.check("198.51.100.1", 300)
    assert len(limiter) == 6
    assert limiter.forget_older_than(599) == 2  # the message buckets are full again
    assert len(limiter) == 4
    assert limiter.forget_older_than(600) == 2  # the first address's window is empty
    assert len(limiter) == 2
    assert limiter.forget_older_than(900) == 2
    assert len(limiter) == 0


def test_memory_bound_under_a_flood() -> None:
    limiter = RateLimiter(NEW_CHAT_LIMITS, max_keys=1000)
    rng = random.Random(7)
    # Ten thousand random addresses, ten times the bound: once it is reached every check
    # must evict, thousands of times over, with the bound checked after each. More
    # addresses would only repeat the same eviction (50,000 took five times as long).
    for i in range(10_000):
        if i % 2:
            address: IPv4Address | IPv6Address = IPv4Address(rng.getrandbits(32))
        else:
            address = IPv6Address(rng.getrandbits(128))
        limiter.check(address, i / 1000)
        assert len(limiter) <= 1000
    # A patron who keeps coming is the most recently hit and survives the flood.
    busy = RateLimiter([PER_ADDRESS], max_keys=100)
    for t in range(4):
        busy.check("192.0.2.1", t)
        for _ in range(50):
            busy.check(IPv4Address(rng.getrandbits(32)), t)
    assert busy.check("192.0.2.1", 5) is None
    assert busy.check("192.0.2.1", 6) is not None


def test_bad_configuration_and_input() -> None:
    with pytest.raises(ValueError):
        Limit("x", "address", 0, 10)
    with pytest.raises(ValueError):
        Limit("x", "address", 1, 0)
    with pytest.raises(ValueError):
        Limit("x", "person", 1, 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Limit("x", "address", 1, 10, burst=0)
    with pytest.raises(ValueError):
        RateLimiter([])
    with pytest.raises(ValueError):
        RateLimiter(NEW_CHAT_LIMITS, max_keys=1)
    with pytest.raises(ValueError):
        RateLimiter(NEW_CHAT_LIMITS).check("not an address", 0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["192.0.2.1", "192.0.2.2", "198.51.100.1"]), st.floats(0, 5)),
        max_size=60,
    )
)
def test_sliding_window_matches_reference(events: list[tuple[str, float]]) -> None:
    limit = Limit("l", "address", 3, 2.0)
    limiter = RateLimiter([limit])
    allowed: dict[str, list[float]] = {}
    t = 0.0
    for address, step in events:
        t += step
        mine = [h for h in allowed.get(address, []) if t - h < limit.window_seconds]
        expected = len(mine) < limit.count
        assert (limiter.check(address, t) is None) == expected
        if expected:
            allowed.setdefault(address, []).append(t)


# TypingThrottle ---------------------------------------------------------------------------


def test_typing_throttle_sends_changes_at_most_once_per_interval() -> None:
    from component.core.ratelimit import TypingThrottle

    throttle = TypingThrottle(2.0)
    assert throttle.offer(True, 0.0) is True
    assert throttle.offer(True, 0.1) is False  # no change
    assert throttle.offer(False, 0.5) == pytest.approx(1.5)  # held back: flush in 1.5 s
    assert throttle.offer(True, 0.6) is False  # the flush will send the latest state
    assert throttle.offer(False, 0.7) is False
    assert throttle.flush(2.0) is False  # the latest, "paused"
    assert throttle.offer(False, 2.1) is False
    assert throttle.offer(True, 4.0) is True


def test_typing_throttle_flush_sends_nothing_when_back_where_it_was() -> None:
    from component.core.ratelimit import TypingThrottle

    throttle = TypingThrottle(2.0)
    assert throttle.offer(True, 0.0) is True
    assert throttle.offer(False, 0.5) == pytest.approx(1.5)
    assert throttle.offer(True, 0.6) is False
    assert throttle.flush(2.0) is None
    with pytest.raises(ValueError):
        TypingThrottle(0)


def test_recipient_limits_count_the_address_whoever_asks() -> None:
    limiter = RateLimiter(MAIL_LIMITS)
    # Three emails to one recipient from three networks far apart; the fourth is refused
    # for the recipient, however the address is spelt.
    for ip in ("203.0.113.1", "198.51.100.1", "2001:db8::1"):
        assert limiter.check(ip, 0, recipient="pat@example.org") is None
    refused = limiter.check("192.0.2.1", 1, recipient="PAT+again@Example.org")
    assert refused is not None and refused.limit.per == "recipient"
    assert refused.subject == "pat@example.org" and refused.retry_after == 3599
    # Nothing was recorded for the refused request's address: it may mail someone else.
    assert limiter.check("192.0.2.1", 2, recipient="other@example.org") is None
    # Without an address, the recipient limit still applies; without a recipient, it
    # does not.
    assert limiter.check(None, 3, recipient="pat@example.org") is not None
    assert limiter.check("192.0.2.1", 4) is None
    assert limiter.check(None, 5) is None


def test_mail_limits_per_address_and_network() -> None:
    limiter = RateLimiter(MAIL_LIMITS)
    for i in range(5):
        assert limiter.check("203.0.113.7", i, recipient=f"r{i}@example.org") is None
    refused = limiter.check("203.0.113.7", 5, recipient="r9@example.org")
    assert refused is not None and refused.limit.name == "emails per address"
    for i in range(15):
        assert limiter.check(f"203.0.113.{20 + i}", 6, recipient=f"s{i}@example.org") is None
    refused = limiter.check("203.0.113.99", 7, recipient="t@example.org")
    assert refused is not None and refused.subject == "203.0.113.0/24"
    # An hour later, all is forgotten.
    assert limiter.forget_older_than(3600 + 7) > 0 and len(limiter) == 0
    assert limiter.check("203.0.113.99", 3600 + 7, recipient="t@example.org") is None


def test_recipient_key() -> None:
    assert recipient_key(" Pat.Ron+Maps@Example.ORG ") == "pat.ron@example.org"
    assert recipient_key("pat@example.org") == "pat@example.org"
    assert recipient_key("no-at-sign") == "no-at-sign"
    with pytest.raises(ValueError):
        Limit("x", "mailbox", 1, 1.0)  # type: ignore[arg-type]


def test_operator_limiter_counts_each_operator_alone() -> None:
    limiter = OperatorLimiter(Limit("lines", "operator", 1, 10.0, burst=2))
    assert limiter.check("ana@x", 0.0) == 0.0
    assert limiter.check("ana@x", 0.0) == 0.0
    assert limiter.check("ana@x", 0.0) == pytest.approx(10.0)
    # A refused line is not counted: the wait does not grow.
    assert limiter.check("ana@x", 0.0) == pytest.approx(10.0)
    assert limiter.check("ben@x", 0.0) == 0.0
    assert limiter.check("ana@x", 10.0) == 0.0
    # Full buckets are forgotten on the way.
    assert limiter.check("cat@x", 1000.0) == 0.0
    assert len(limiter) == 1


def test_operator_limits_belong_in_an_operator_limiter() -> None:
    with pytest.raises(ValueError, match="OperatorLimiter"):
        RateLimiter([Limit("lines", "operator", 1, 1.0)])
    with pytest.raises(ValueError, match="per 'operator'"):
        OperatorLimiter(Limit("x", "address", 1, 1.0))
