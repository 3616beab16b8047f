"""When an admin page login attempt may go ahead: the throttle's rules, without I/O.

The store counts recent failed attempts (`LoginRecord`) and records the new attempt in
the same transaction only if `allowed` says so, so that a burst of simultaneous guesses
cannot all pass the check before the first of them is recorded.

Three counters, each over the last `window`:

- per user and network: a few guesses at one account from one place. A success of that
  user from that place starts this count again.
- per network: guesses at any accounts from one place. Never reset by a success, or an
  attacker with an account of their own could wipe their record by logging in.
- per user, from anywhere: guessing spread over many networks. Such an attack must not
  lock the owner out, so a network the user has logged in from within `known_good_for`
  is exempt from this one counter (the other two still apply there).

A "network" is the address for IPv4 and its /64 for IPv6, since one home or phone
normally gets a whole /64 and can pick a fresh address in it for every request.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import timedelta

# The key for attempts whose address is unknown (no peer address at all): they share one
# bucket rather than escaping the per-network count.
UNKNOWN_NETWORK = "unknown"


@dataclass(frozen=True, slots=True)
class LoginLimits:
    """The throttle's numbers. The admin page uses the defaults."""

    window: timedelta = timedelta(minutes=15)
    per_user_and_network: int = 5
    per_network: int = 20
    per_user: int = 30
    known_good_for: timedelta = timedelta(days=90)


@dataclass(frozen=True, slots=True)
class LoginRecord:
    """What the store found about an attempt's user and network (failures in the window)."""

    user_and_network: int
    network: int
    user: int
    known_good: bool  # the user logged in from this network within known_good_for


def throttle_network(address: str | None) -> str:
    """The key an attempt from `address` is counted under: the address itself for IPv4,
    its /64 for IPv6 (IPv4-mapped IPv6 counts as the IPv4 address). Called by the login
    handler for every attempt."""
    if address is None:
        return UNKNOWN_NETWORK
    try:
        addr = ipaddress.ip_address(address.strip())
    except ValueError:
        return UNKNOWN_NETWORK
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


def allowed(record: LoginRecord, limits: LoginLimits) -> bool:
    """Whether an attempt with this record may be checked (else: 429). Called by the
    store inside the transaction that records the attempt."""
    if record.user_and_network >= limits.per_user_and_network:
        return False
    if record.network >= limits.per_network:
        return False
    return record.known_good or record.user < limits.per_user
