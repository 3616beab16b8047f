"""Fast matching of addresses against the bans in force (`BanIndex`), and the ban records
it is built from at start-up (`StoredBan`). The rules of bans themselves are
`component.core.bans`.

Matching (`BanIndex`) keeps one hash table per prefix length that actually occurs, keyed
by the network's leading bits, so a look-up costs one dictionary probe per distinct prefix
length (at most 33 for IPv4, 129 for IPv6; in practice a handful), however many bans there
are. At start-up the index is built from `StoredBan` records (the row's fields and the
network as integers, no `ipaddress` object and no checked `Ban`): a whole `Ban` is made
only for a ban that matches, is listed or leaves the index.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Network, IPv6Network
from typing import NamedTuple, Protocol

from component.core.bans import (
    Address,
    Ban,
    BanError,
    Network,
    canonical_address,
)

# Address bits per IP version.
_BITS = {4: 32, 6: 128}


class StoredBan(NamedTuple):
    """A ban as the store reads it for the index, before it is needed whole: its network
    as (IP version, prefix length, integer of the network address), canonical (see
    `network_key`), and the fields of the row. The store makes one per ban that may still
    bar at start-up; `BanIndex` makes the `Ban` (`whole`) only when one is asked for.
    Never lifted: the store reads only bans that are not."""

    id: int
    version: int
    prefixlen: int
    value: int
    offence: int
    reason: str
    starts_at: datetime
    ends_at: datetime | None
    created_by: str

    @property
    def lifted_at(self) -> None:
        return None

    @property
    def effective_end(self) -> datetime | None:
        return self.ends_at

    def active(self, at: datetime) -> bool:
        """As `Ban.active` (no lift)."""
        return self.starts_at <= at and (self.ends_at is None or at < self.ends_at)

    def whole(self) -> Ban:
        """The checked `Ban` (raises `BanError` as `Ban` would for a corrupt row)."""
        network: Network = (
            IPv4Network((self.value, self.prefixlen))
            if self.version == 4
            else IPv6Network((self.value, self.prefixlen))
        )
        return Ban(
            id=self.id,
            network=network,
            offence=self.offence,
            reason=self.reason,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            permanent=self.ends_at is None,
            created_by=self.created_by,
        )


def network_key(version: int, prefixlen: int, value: int) -> tuple[int, int, int]:
    """(version, prefix length, network integer) as `canonical_network` would make it:
    host bits cleared, an IPv6 network inside `::ffff:0:0/96` turned into the IPv4
    network it maps. The store calls it on each stored network it reads for the index;
    raises `BanError` for a prefix length out of range."""
    bits = _BITS.get(version)
    if bits is None or not 0 <= prefixlen <= bits:
        raise BanError(f"no IPv{version} network has the prefix length {prefixlen}")
    value &= ((1 << bits) - 1) ^ ((1 << (bits - prefixlen)) - 1)
    if version == 6 and prefixlen >= 96 and value >> 32 == 0xFFFF:
        return 4, prefixlen - 96, value & 0xFFFFFFFF
    return version, prefixlen, value


class _Entry(Protocol):
    """What the index weighs for a match: a `Ban` or a `StoredBan`."""

    @property
    def id(self) -> int: ...
    @property
    def starts_at(self) -> datetime: ...
    @property
    def effective_end(self) -> datetime | None: ...
    def active(self, at: datetime) -> bool: ...


def _key(entry: Ban | StoredBan) -> tuple[int, int, int]:
    if isinstance(entry, StoredBan):
        return entry.version, entry.prefixlen, entry.value
    network = entry.network
    return network.version, network.prefixlen, int(network.network_address)


def _lasts_key(ban: _Entry) -> tuple[bool, datetime, int]:
    end = ban.effective_end
    # Permanent sorts last; among equals, the newer ban (higher id) wins, so the answer
    # does not depend on insertion order.
    return (end is None, end if end is not None else ban.starts_at, ban.id)


def longest_lasting(bans: Iterable[Ban]) -> Ban | None:
    """Of several bans, the one that bars longest (permanent first, then the latest
    effective end, then the highest id); None for none. `BanIndex.match` uses it on the
    active matches; the service may use it to say until when an address is barred."""
    return max(bans, key=_lasts_key, default=None)


@dataclass(slots=True)
class _Table:
    # Prefix length → (leading bits of the network → bans on exactly that network).
    by_prefix: dict[int, dict[int, dict[int, Ban | StoredBan]]] = field(default_factory=dict)
    # The prefix lengths present, so a look-up probes only those (the order is immaterial:
    # every match is weighed).
    prefixes: list[int] = field(default_factory=list)


class BanIndex:
    """Answers "is this address banned now?" quickly whatever the number of bans.

    The service builds one at start-up from the stored bans that can still bar (not
    lifted, not run out; as `StoredBan` records, made whole only when needed), adds each
    new ban, re-adds a changed one (same id replaces), removes lifted ones, calls `prune`
    now and then, and asks `match` at every door a patron comes through. Not thread-safe;
    the service owns it in one event loop.
    """

    def __init__(self, bans: Iterable[Ban | StoredBan] = ()) -> None:
        self._tables: dict[int, _Table] = {4: _Table(), 6: _Table()}
        self._by_id: dict[int, Ban | StoredBan] = {}
        # (effective end, id) of every indexed ban that ends, soonest first, so `prune`
        # looks only at bans that ran out instead of walking all of them on every call.
        # Entries of bans removed or changed since stay until they reach the top.
        self._ends: list[tuple[datetime, int]] = []
        # The first build (100,000 bans at start-up) in one pass: no removal to try but
        # for a repeated id, the heap of end times made once at the end.
        tables = self._tables
        by_id = self._by_id
        ends = self._ends
        for ban in bans:
            if ban.id in by_id:
                self.remove(ban.id)
            version, prefixlen, value = _key(ban)
            table = tables[version]
            buckets = table.by_prefix.get(prefixlen)
            if buckets is None:
                buckets = table.by_prefix[prefixlen] = {}
            key = value >> (_BITS[version] - prefixlen)
            bucket = buckets.get(key)
            if bucket is None:
                buckets[key] = {ban.id: ban}
            else:
                bucket[ban.id] = ban
            by_id[ban.id] = ban
            if (end := ban.effective_end) is not None:
                ends.append((end, ban.id))
        for table in tables.values():
            table.prefixes = sorted(table.by_prefix, reverse=True)
        heapq.heapify(ends)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Ban]:
        """Every ban held, made whole (for listings; `count_active` counts without)."""
        return iter([self._whole(entry) for entry in list(self._by_id.values())])

    def count_active(self, at: datetime) -> int:
        """How many held bans bar at `at` (for metrics), without making them whole."""
        return sum(1 for entry in self._by_id.values() if entry.active(at))

    def get(self, ban_id: int) -> Ban | None:
        """The ban with this id, if the index holds it."""
        entry = self._by_id.get(ban_id)
        return None if entry is None else self._whole(entry)

    def _whole(self, entry: Ban | StoredBan) -> Ban:
        """The `Ban` of an entry; a `StoredBan` is made whole once and replaced by it."""
        if isinstance(entry, Ban):
            return entry
        ban = entry.whole()
        version, prefixlen, value = _key(entry)
        bucket = self._tables[version].by_prefix[prefixlen][value >> (_BITS[version] - prefixlen)]
        bucket[ban.id] = ban
        self._by_id[ban.id] = ban
        return ban

    def add(self, ban: Ban | StoredBan) -> None:
        """Index `ban`, replacing any ban with the same id (so a changed ban is re-added)."""
        self.remove(ban.id)
        version, prefixlen, value = _key(ban)
        table = self._tables[version]
        buckets = table.by_prefix.get(prefixlen)
        if buckets is None:
            buckets = table.by_prefix[prefixlen] = {}
            table.prefixes = sorted(table.by_prefix, reverse=True)
        buckets.setdefault(value >> (_BITS[version] - prefixlen), {})[ban.id] = ban
        self._by_id[ban.id] = ban
        if (end := ban.effective_end) is not None:
            heapq.heappush(self._ends, (end, ban.id))

    def remove(self, ban_id: int) -> Ban | None:
        """Forget the ban with this id; returns it, or None if the index did not hold it."""
        entry = self._by_id.get(ban_id)
        if entry is None:
            return None
        ban = self._whole(entry)
        del self._by_id[ban_id]
        version, prefixlen, value = _key(entry)
        table = self._tables[version]
        key = value >> (_BITS[version] - prefixlen)
        buckets = table.by_prefix[prefixlen]
        bucket = buckets[key]
        del bucket[ban_id]
        if not bucket:
            del buckets[key]
            if not buckets:
                del table.by_prefix[prefixlen]
                table.prefixes = sorted(table.by_prefix, reverse=True)
        return ban

    def prune(self, at: datetime) -> list[Ban]:
        """Forget the bans that can never bar again at or after `at` (ended or lifted by
        then) and return them; the service calls it on a timer and writes an `expire`
        audit entry for each returned ban that was not lifted."""
        gone: list[Ban] = []
        while self._ends and self._ends[0][0] <= at:
            end, ban_id = heapq.heappop(self._ends)
            entry = self._by_id.get(ban_id)
            # A stale entry (the ban was removed, or changed to end another time) is skipped.
            if entry is not None and entry.effective_end == end:
                ban = self.remove(ban_id)
                assert ban is not None
                gone.append(ban)
        return gone

    def match(self, address: str | Address, at: datetime) -> Ban | None:
        """The active ban that bars `address` at `at` and lasts longest, or None. Mapped
        IPv6 addresses are looked up as IPv4. Raises `BanError` for text that is not an
        address."""
        address = canonical_address(address)
        table = self._tables[address.version]
        bits = _BITS[address.version]
        value = int(address)
        best: Ban | StoredBan | None = None
        for prefix in table.prefixes:
            bucket = table.by_prefix[prefix].get(value >> (bits - prefix))
            if bucket is None:
                continue
            for ban in bucket.values():
                if ban.active(at) and (best is None or _lasts_key(ban) > _lasts_key(best)):
                    best = ban
        return None if best is None else self._whole(best)
