"""Bans: what an admin or operator may ban, and for how long.

The rules this module encodes (docs/admins.md, "Bans", says them for admins): bans are by IP
address and rare; a banned address is a computer, not a person; the public climb a ladder
(30 days, 90 days, one year for a third or further offence); bans are never permanent
unless an admin insists, and end by themselves.

Targets (`normalize_target`): an IPv4 address is banned as its /32; an IPv6 address as its
/64 (one home or phone network normally gets a whole /64 and picks addresses in it at
will), unless the caller passes another `ipv6_prefix` because an admin chose one; CIDR
networks are taken as written, host bits cleared. IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is
the IPv4 address everywhere in this module: in targets, in stored bans, in matching.

Refusals (`refusal`), checked in this order:

- too broad: IPv4 networks shorter than /16 (more than 65,536 addresses) and IPv6 networks
  shorter than /32 (a whole provider's allocation). Nobody, admin included, bans more than
  that from refdesk; `0.0.0.0/0` and `::/0` are the extreme case;
- covering a protected address: loopback always (behind a local reverse proxy that is not
  listed as trusted, every patron looks like 127.0.0.1 or ::1), plus whatever the caller
  passes (trusted proxies, the service's own addresses);
- overlapping an exempt network (a school's or library's public computers) when an
  operator asks; an admin may, and the caller records that they did.

Offences (`next_offence`): a new ban is offence 1 + the number of earlier bans whose
network overlaps it, counting expired bans but not lifted ones. Lifting is how a ban
found to be a mistake (an upheld appeal, the wrong address) is undone, so it must not
push the next ban up the ladder. Callers therefore set `lifted_at` only when a person
lifts a ban, never when a ban simply runs out. Offences never decay with time.

Matching addresses against many bans quickly is `component.core.ban_index`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from types import MappingProxyType

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address

MIN_IPV4_PREFIX = 16
MIN_IPV6_PREFIX = 32
DEFAULT_IPV6_PREFIX = 64

YEAR = timedelta(days=365)
# Longer than this is what the explicit permanent choice is for; it also keeps
# starts_at + duration far from datetime's overflow.
MAX_DURATION = 10 * YEAR
MIN_DURATION = timedelta(hours=1)

LOOPBACK: tuple[Network, ...] = (IPv4Network("127.0.0.0/8"), IPv6Network("::1/128"))

_MAPPED = IPv6Network("::ffff:0:0/96")
_TARGET_EXAMPLES = "write e.g. 203.0.113.7, 203.0.113.0/24, 2001:db8::1 or 2001:db8::/48"
_DURATION_EXAMPLES = "write e.g. 30d, 90d, 1y, 12h or 2w"
_DURATION_RE = re.compile(r"([0-9]{1,6})\s*([a-z]+)")
_UNITS: Mapping[str, timedelta] = MappingProxyType(
    {
        **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), timedelta(hours=1)),
        **dict.fromkeys(("d", "day", "days"), timedelta(days=1)),
        **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), timedelta(weeks=1)),
        **dict.fromkeys(("y", "yr", "yrs", "year", "years"), YEAR),
    }
)


class BanError(ValueError):
    """A ban target, length or ladder that cannot be read or used; the message says why."""


# Addresses and networks --------------------------------------------------------------


def _shown(text: str) -> str:
    # Echo bad input back, but never a page of it.
    return repr(text if len(text) <= 60 else text[:57] + "...")


def canonical_address(address: str | Address) -> Address:
    """The address as this module compares it: IPv4-mapped IPv6 becomes IPv4, an IPv6
    zone (`%eth0`) is dropped. The service calls it on a patron's peer address (or the one
    a trusted proxy vouched for) before looking it up; `BanIndex.match` and the rate
    limiter call it themselves. Raises `BanError` for text that is not an address."""
    if isinstance(address, str):
        text = address
        raw = text.strip()
        if raw.startswith("[") and raw.endswith("]"):
            raw = raw[1:-1]
        try:
            address = ip_address(raw)
        except ValueError:
            raise BanError(f"{_shown(text)} is not an IP address") from None
    if isinstance(address, IPv6Address):
        if address in _MAPPED:
            return IPv4Address(int(address) & 0xFFFFFFFF)
        if address.scope_id is not None:
            return IPv6Address(int(address))
    return address


def usable_address(text: str | None) -> Address | None:
    """`canonical_address` of a patron's address, or None when there is none usable (no
    text, or text that is no address): then no ban and no per-address limit applies to
    it. Called by a patron's connection once, and by moderation for text it is given."""
    if not text:
        return None
    try:
        return canonical_address(text)
    except BanError:
        return None


def canonical_network(network: Network) -> Network:
    """The network as this module compares it: an IPv6 network inside `::ffff:0:0/96` is
    the IPv4 network it maps, and the zone is dropped. Used on every network that enters
    the module (bans, protected and exempt lists)."""
    if isinstance(network, IPv6Network):
        if network.prefixlen >= 96 and network.network_address in _MAPPED:
            v4 = int(network.network_address) & 0xFFFFFFFF
            return IPv4Network((v4, network.prefixlen - 96))
        if network.network_address.scope_id is not None:
            return IPv6Network((int(network.network_address), network.prefixlen))
    return network


def normalize_target(
    text: str, *, ipv6_prefix: int = DEFAULT_IPV6_PREFIX
) -> IPv4Network | IPv6Network:
    """The network a typed ban target stands for.

    The `!ban` command, `refdesk ban add/lift` and the admin page call it on what a person
    typed (the service also calls it on a patron's address when banning from a chat); the
    store reads stored bans back with it, which round-trips because `str(network)` always
    carries its prefix. A bare IPv4 address gives its /32, a bare IPv6 address its /64 or
    `ipv6_prefix` when an admin chose another (128 for the single address); a CIDR network
    is kept as written with host bits cleared; `::ffff:a.b.c.d` forms give IPv4.
    """
    if not 0 <= ipv6_prefix <= 128:
        raise BanError(f"an IPv6 prefix length is 0 to 128, not {ipv6_prefix}")
    raw = text.strip()
    if not raw:
        raise BanError(f"no address given: {_TARGET_EXAMPLES}")
    if "/" in raw:
        try:
            network = ip_network(raw, strict=False)
        except ValueError:
            raise BanError(
                f"{_shown(text)} is not an IP address or network: {_TARGET_EXAMPLES}"
            ) from None
        return canonical_network(network)
    try:
        address = canonical_address(raw)
    except BanError:
        raise BanError(
            f"{_shown(text)} is not an IP address or network: {_TARGET_EXAMPLES}"
        ) from None
    if isinstance(address, IPv4Address):
        return IPv4Network((address, 32))
    return IPv6Network((address, ipv6_prefix), strict=False)


def _overlap(a: Network, b: Network) -> bool:
    return a.version == b.version and a.overlaps(b)


def overlapping(network: Network, networks: Iterable[Network]) -> list[Network]:
    """The members of `networks` that share an address with `network` (either may contain
    the other). The service calls it to record which exempt networks an admin's ban
    covered, and the admin page to list chats and incidents from the same network."""
    network = canonical_network(network)
    return [n for n in networks if _overlap(network, canonical_network(n))]


def refusal(
    network: Network,
    *,
    protected: Sequence[Network],
    exempt: Sequence[Network],
    by_operator: bool,
) -> str | None:
    """Why this ban must not be made, as a sentence for the person who asked, or None.

    The service calls it before every new ban or change of a ban's network, whichever door
    the ban came through: `!ban` (by_operator=True), the admin page and the command line
    (by_operator=False). `protected` holds the trusted proxies and the service's own
    addresses; loopback is always protected. `exempt` holds the networks of shared
    computers the queue's group listed. An admin banning an exempt network gets None here
    and the caller records that the exemption was overridden (see `overlapping`).
    """
    network = canonical_network(network)
    if network.prefixlen == 0:
        everyone = "IPv4" if network.version == 4 else "IPv6"
        return f"{network} would ban every {everyone} address; refused"
    minimum = MIN_IPV4_PREFIX if network.version == 4 else MIN_IPV6_PREFIX
    if network.prefixlen < minimum:
        return (
            f"{network} is too broad to ban: IPv{network.version} bans must be "
            f"/{minimum} or narrower"
        )
    for loop in LOOPBACK:
        if _overlap(network, loop):
            return (
                f"{network} covers the loopback address {loop}; a patron who seems to "
                "come from it is behind a proxy, so banning it would shut out everyone"
            )
    for guarded in protected:
        if _overlap(network, canonical_network(guarded)):
            return (
                f"{network} covers {guarded}, a trusted proxy or one of the service's own "
                "addresses; banning it would shut out everyone who comes through it"
            )
    if by_operator:
        for shared in exempt:
            if _overlap(network, canonical_network(shared)):
                return (
                    f"{network} overlaps the exempt network {shared} (shared computers "
                    "such as a school's or a library's); operators cannot ban it, an "
                    "admin can review the incident"
                )
    return None


# Lengths and the ladder ---------------------------------------------------------------


def parse_duration(text: str) -> timedelta:
    """A ban length such as `30d`, `90d`, `1y`, `12h`, `2w` (`30 days`, `1 year` too).

    The `!ban` command and the admin page call it on what a person typed; `parse_ladder`
    calls it for each step. A year is 365 days. Lengths run from one hour to ten years;
    longer is what an admin's explicit permanent ban is for. Raises `BanError`.
    """
    match = _DURATION_RE.fullmatch(text.strip().lower())
    unit = _UNITS.get(match.group(2)) if match else None
    if match is None or unit is None:
        raise BanError(f"can't read the ban length {_shown(text)}: {_DURATION_EXAMPLES}")
    length = int(match.group(1)) * unit
    if not MIN_DURATION <= length <= MAX_DURATION:
        raise BanError(
            f"a ban length runs from {format_duration(MIN_DURATION)} to "
            f"{format_duration(MAX_DURATION)}, not {text.strip()}"
        )
    return length


def format_duration(length: timedelta) -> str:
    """The shortest text `parse_duration` reads back as `length` (`30d`, `1y`, `12h`).
    For confirmations, ban listings and writing a ladder back into the configuration."""
    if length and length % YEAR == timedelta(0):
        return f"{length // YEAR}y"
    if length % timedelta(days=1) == timedelta(0):
        return f"{length.days}d"
    if length % timedelta(hours=1) == timedelta(0):
        return f"{length // timedelta(hours=1)}h"
    return f"{length.total_seconds():g}s"


DEFAULT_STEPS: tuple[timedelta, ...] = (timedelta(days=30), timedelta(days=90), YEAR)


@dataclass(frozen=True, slots=True)
class Ladder:
    """Ban lengths for the first, second, ... offence; the last step repeats for every
    further offence. Steps never get shorter: a ladder that did would be a typo."""

    steps: tuple[timedelta, ...] = DEFAULT_STEPS

    def __post_init__(self) -> None:
        if not self.steps:
            raise BanError("a ban ladder needs at least one step")
        for step in self.steps:
            if not MIN_DURATION <= step <= MAX_DURATION:
                raise BanError(
                    f"a ladder step runs from {format_duration(MIN_DURATION)} to "
                    f"{format_duration(MAX_DURATION)}, not {format_duration(step)}"
                )
        for shorter, longer in zip(self.steps, self.steps[1:], strict=False):
            if longer < shorter:
                raise BanError(
                    f"a ban ladder must not get shorter: {format_duration(longer)} "
                    f"comes after {format_duration(shorter)}"
                )

    def __str__(self) -> str:
        return ",".join(format_duration(step) for step in self.steps)


def parse_ladder(text: str) -> Ladder:
    """The ladder written as comma-separated lengths, `30d,90d,1y`. The configuration
    loader calls it once at start-up; `str(ladder)` writes it back. Raises `BanError`."""
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise BanError(f"no ban ladder given: write e.g. {Ladder()}")
    if not all(parts):
        raise BanError(f"empty step in the ban ladder {_shown(text)}: write e.g. {Ladder()}")
    return Ladder(tuple(parse_duration(part) for part in parts))


def ladder_duration(ladder: Ladder, offence: int) -> timedelta:
    """How long the `offence`-th ban (1 for the first) lasts under `ladder`; offences past
    the top step get the top step. The service calls it when a ban names no length."""
    if offence < 1:
        raise BanError(f"offences are counted from 1, not {offence}")
    return ladder.steps[min(offence, len(ladder.steps)) - 1]


def ban_ends_at(
    starts_at: datetime,
    *,
    offence: int,
    ladder: Ladder,
    duration: timedelta | None = None,
    permanent: bool = False,
) -> datetime | None:
    """When a new ban ends: after `duration` when a person chose one, else after the
    ladder's step for `offence`. None (no end) only when the caller passes
    `permanent=True`, which only an admin's explicit choice may lead to. The service calls
    it when it creates a ban."""
    if permanent:
        if duration is not None:
            raise BanError("a ban is either permanent or has a length, not both")
        return None
    if duration is None:
        duration = ladder_duration(ladder, offence)
    elif not MIN_DURATION <= duration <= MAX_DURATION:
        raise BanError(
            f"a ban length runs from {format_duration(MIN_DURATION)} to "
            f"{format_duration(MAX_DURATION)}, not {format_duration(duration)}"
        )
    return starts_at + duration


# Bans ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ban:
    """One ban as stored. `ends_at` None means permanent, which must be said twice:
    `permanent=True` too, so that a missing end can never make a ban last for ever by
    accident. `lifted_at` is set only when a person lifts the ban (see `next_offence`).
    Times must be timezone-aware. The network is kept canonical (mapped IPv6 → IPv4)."""

    id: int
    network: Network
    offence: int
    reason: str
    starts_at: datetime
    ends_at: datetime | None
    lifted_at: datetime | None = None
    permanent: bool = False
    created_by: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.network, IPv4Network | IPv6Network):
            raise BanError(f"a ban's network must be a network, not {self.network!r}")
        object.__setattr__(self, "network", canonical_network(self.network))
        if self.offence < 1:
            raise BanError(f"offences are counted from 1, not {self.offence}")
        for when in (self.starts_at, self.ends_at, self.lifted_at):
            if when is not None and when.utcoffset() is None:
                raise BanError("ban times must be timezone-aware")
        if self.ends_at is None and not self.permanent:
            raise BanError("a ban without an end must be marked permanent explicitly")
        if self.ends_at is not None and self.permanent:
            raise BanError("a permanent ban has no end")
        if self.ends_at is not None and self.ends_at <= self.starts_at:
            raise BanError("a ban must end after it starts")

    def active(self, at: datetime) -> bool:
        """Whether the ban bars its network at `at`: from `starts_at` included to
        `ends_at` (or the lift) excluded, so a ban that ends at 12:00 no longer bars at
        12:00. Enforcement calls it through `BanIndex.match`."""
        if at < self.starts_at:
            return False
        if self.lifted_at is not None and at >= self.lifted_at:
            return False
        return self.ends_at is None or at < self.ends_at

    @property
    def effective_end(self) -> datetime | None:
        """When the ban stops barring: the earlier of its end and its lift (None: never)."""
        if self.lifted_at is None:
            return self.ends_at
        if self.ends_at is None:
            return self.lifted_at
        return min(self.ends_at, self.lifted_at)

    def lift(self, at: datetime) -> Ban:
        """This ban lifted by a person at `at`; the service stores it and re-adds it to
        its `BanIndex` (or removes it there)."""
        return replace(self, lifted_at=at)


def next_offence(previous_bans: Iterable[Ban], network: Network) -> int:
    """The offence number of a new ban on `network`: one more than the earlier bans whose
    network overlaps it (the same address, a network containing it or one inside it),
    counting bans that ran out but not bans that were lifted. The service calls it with
    the stored bans on overlapping networks when it creates a ban without a chosen
    offence."""
    network = canonical_network(network)
    return 1 + sum(
        1 for ban in previous_bans if ban.lifted_at is None and _overlap(ban.network, network)
    )
