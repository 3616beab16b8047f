"""Rate limits per address and per network, with time passed in.

The issue on bans and abuse asks for limits on new chats per time window and on messages
per second, per address and per network; over a limit the patron gets a polite refusal and
the service records an incident ("excessive chat requests"). Each kind of event gets its
own `RateLimiter` (one for new chats, one for messages), built from a few `Limit`s:

- `Limit(name, "address", 5, 600)` is a sliding window: at most 5 hits in any 600 s. A hit
  at t counts until t + 600 excluded, so the sixth is allowed again exactly 600 s after
  the first.
- `Limit(name, "address", 3, 1, burst=10)` is a token bucket: 10 hits at once, then 3 a
  second on average. That is how "3 messages a second with a burst" reads: a patron who
  pastes a few lines at once is not refused, one who keeps it up is.

Keys: "address" means the address itself for IPv4 and its /64 for IPv6 (one home or phone
network normally gets a whole /64 and can use a fresh address in it for every request, as
bans assume too); "network" means the /24 for IPv4 and the /48 for IPv6. IPv4-mapped IPv6
is IPv4. The prefixes are parameters of `RateLimiter`. "recipient" means an email address
that a patron typed (see `recipient_key`), for the limits on mail: whoever asks, one
address gets only so many emails.

A hit is recorded only when every limit allows it: a refused request costs nothing, so a
patron refused once can come back as soon as the window has moved on, instead of a client
that retries in a loop keeping itself locked out for ever (and one refused limit does not
use up the others).

Memory: every key is dropped once its window is empty (`forget_older_than`, called by the
service on a timer), and the number of keys is capped with least-recently-hit eviction,
so a flood from random addresses cannot exhaust memory. The price of the cap is that such
a flood can make the limiter forget an address; the per-network limits and the ban list
are what stop a determined abuser.

`now` is seconds on any clock that never goes back (the service passes `loop.time()` or
`time.monotonic()`); a clock that goes back only makes the limits stricter for a while.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Literal

from component.core.bans import canonical_address

Per = Literal["address", "network", "recipient", "operator"]

DEFAULT_MAX_KEYS = 100_000
# Float sums of refill rates drift by a few ulps; a hit that arrives exactly on time must
# not be refused for that.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `count` hits per `window_seconds` for each address or network (`per`);
    with `burst`, a token bucket holding `burst` hits that refills at `count` per
    `window_seconds` instead of a sliding window. `name` says what is limited, for the
    incident record and the logs ("new chats per address")."""

    name: str
    per: Per
    count: int
    window_seconds: float
    burst: int | None = None

    def __post_init__(self) -> None:
        if self.per not in ("address", "network", "recipient", "operator"):
            raise ValueError(
                f"a limit is per 'address', 'network', 'recipient' or 'operator', not {self.per!r}"
            )
        if self.count < 1:
            raise ValueError(f"a limit allows at least 1 hit, not {self.count}")
        if not self.window_seconds > 0:
            raise ValueError(f"a limit's window must be positive, not {self.window_seconds}")
        if self.burst is not None and self.burst < 1:
            raise ValueError(f"a burst is at least 1 hit, not {self.burst}")

    @property
    def rate(self) -> float:
        """Hits per second on average."""
        return self.count / self.window_seconds


@dataclass(frozen=True, slots=True)
class Refusal:
    """A hit that a limit refused: which `limit`, for which address or network (`subject`,
    e.g. "203.0.113.7" or "203.0.113.0/24"), and how many seconds until it would pass."""

    limit: Limit
    subject: str
    retry_after: float


NEW_CHAT_LIMITS: tuple[Limit, ...] = (
    Limit("new chats per address", "address", 5, 600.0),
    Limit("new chats per network", "network", 30, 600.0),
)
MESSAGE_LIMITS: tuple[Limit, ...] = (Limit("messages per address", "address", 3, 1.0, burst=10),)
MAIL_LIMITS: tuple[Limit, ...] = (
    Limit("emails per recipient", "recipient", 3, 3600.0),
    Limit("emails per address", "address", 5, 3600.0),
    Limit("emails per network", "network", 20, 3600.0),
)


def recipient_key(email: str) -> str:
    """The key a "recipient" limit counts an email address under: case-folded, and
    without a "+tag" in the local part, since ``pat+1@example.org`` and ``PAT@example.org``
    reach the same mailbox as ``pat@example.org`` at most providers."""
    local, at, domain = email.strip().rpartition("@")
    if not at:
        return email.strip().casefold()
    return f"{local.split('+', 1)[0]}@{domain}".casefold()


class _Window:
    """Times of the allowed hits still inside a sliding window, oldest first."""

    __slots__ = ("hits",)

    def __init__(self) -> None:
        self.hits: deque[float] = deque()

    def wait(self, limit: Limit, now: float) -> float:
        hits = self.hits
        while hits and hits[0] <= now - limit.window_seconds:
            hits.popleft()
        if len(hits) < limit.count:
            return 0.0
        return hits[len(hits) - limit.count] + limit.window_seconds - now

    def record(self, limit: Limit, now: float) -> None:
        self.hits.append(now)

    def idle(self, limit: Limit, now: float) -> bool:
        return not self.hits or self.hits[-1] <= now - limit.window_seconds


class _Bucket:
    """A token bucket: `tokens` as of `stamp`."""

    __slots__ = ("stamp", "tokens")

    def __init__(self, limit: Limit, now: float) -> None:
        self.tokens = float(limit.burst or limit.count)
        self.stamp = now

    def _available(self, limit: Limit, now: float) -> float:
        capacity = float(limit.burst or limit.count)
        return min(capacity, self.tokens + max(0.0, now - self.stamp) * limit.rate)

    def wait(self, limit: Limit, now: float) -> float:
        available = self._available(limit, now)
        if available >= 1.0 - _EPSILON:
            return 0.0
        return (1.0 - available) / limit.rate

    def record(self, limit: Limit, now: float) -> None:
        self.tokens = self._available(limit, now) - 1.0
        self.stamp = max(now, self.stamp)

    def idle(self, limit: Limit, now: float) -> bool:
        return self._available(limit, now) >= float(limit.burst or limit.count) - _EPSILON


_State = _Window | _Bucket
# (index of the limit, IP version, leading bits of the address or network), or for a
# recipient limit (index, 0, recipient key).
_Key = tuple[int, int, int | str]


class RateLimiter:
    """Counts hits per address and per network against a few `Limit`s.

    The service keeps one for new chats (checked when a widget asks for a chat, before any
    chat is created) and one for patrons' messages, calls `check` for each, and calls
    `forget_older_than` every minute or so. Not thread-safe; owned by one event loop.
    """

    def __init__(
        self,
        limits: Sequence[Limit],
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        ipv4_network_prefix: int = 24,
        ipv6_network_prefix: int = 48,
        ipv6_address_prefix: int = 64,
    ) -> None:
        if not limits:
            raise ValueError("a rate limiter needs at least one limit")
        if any(limit.per == "operator" for limit in limits):
            raise ValueError("limits per operator belong in an OperatorLimiter")
        if max_keys < len(limits):
            raise ValueError(f"max_keys must be at least the number of limits ({len(limits)})")
        if not 0 <= ipv4_network_prefix <= 32:
            raise ValueError(f"an IPv4 prefix is 0 to 32, not {ipv4_network_prefix}")
        for prefix in (ipv6_network_prefix, ipv6_address_prefix):
            if not 0 <= prefix <= 128:
                raise ValueError(f"an IPv6 prefix is 0 to 128, not {prefix}")
        self._limits = tuple(limits)
        self._max_keys = max_keys
        # (per, version) → prefix length that makes the key.
        self._prefix: dict[tuple[Per, int], int] = {
            ("address", 4): 32,
            ("address", 6): ipv6_address_prefix,
            ("network", 4): ipv4_network_prefix,
            ("network", 6): ipv6_network_prefix,
        }
        # Least recently hit first, so eviction pops from the front.
        self._states: OrderedDict[_Key, _State] = OrderedDict()

    @property
    def limits(self) -> tuple[Limit, ...]:
        return self._limits

    def __len__(self) -> int:
        """How many keys (address or network, per limit) the limiter remembers."""
        return len(self._states)

    def _key(self, index: int, limit: Limit, address: IPv4Address | IPv6Address) -> _Key:
        bits = 32 if address.version == 4 else 128
        prefix = self._prefix[(limit.per, address.version)]
        return (index, address.version, int(address) >> (bits - prefix))

    def _subject(self, limit: Limit, address: IPv4Address | IPv6Address) -> str:
        prefix = self._prefix[(limit.per, address.version)]
        if address.version == 4:
            if prefix == 32:
                return str(address)
            return str(IPv4Network((address, prefix), strict=False))
        return str(IPv6Network((address, prefix), strict=False))

    def check(
        self,
        address: str | IPv4Address | IPv6Address | None,
        now: float,
        *,
        recipient: str | None = None,
    ) -> Refusal | None:
        """Whether a hit from `address` (to `recipient`, for recipient limits) at `now` is
        within every limit. If so it is recorded and None returned; if not, nothing is
        recorded and the refusal names the limit that keeps the patron waiting longest.
        Limits whose key is missing (no address, no recipient) do not apply. Raises
        ValueError for text that is not an IP address."""
        ip = canonical_address(address) if address is not None else None
        keyed: list[tuple[_Key, Limit]] = []
        for index, limit in enumerate(self._limits):
            if limit.per == "recipient":
                if recipient is not None:
                    keyed.append(((index, 0, recipient_key(recipient)), limit))
            elif ip is not None:
                keyed.append((self._key(index, limit, ip), limit))
        refused: tuple[_Key, Limit, float] | None = None
        for key, limit in keyed:
            state = self._states.get(key)
            if state is None:
                continue
            wait = state.wait(limit, now)
            if wait > 0 and (refused is None or wait > refused[2]):
                refused = (key, limit, wait)
        if refused is not None:
            # The subject (the address, or the network written out) is named only for a
            # refusal: building it for every hit cost more than the check itself.
            key, limit, wait = refused
            if limit.per == "recipient" or ip is None:
                subject = str(key[2])
            else:
                subject = self._subject(limit, ip)
            return Refusal(limit, subject, wait)
        for key, limit in keyed:
            state = self._states.get(key)
            if state is None:
                state = _Bucket(limit, now) if limit.burst is not None else _Window()
                self._states[key] = state
            else:
                self._states.move_to_end(key)
            state.record(limit, now)
        while len(self._states) > self._max_keys:
            self._states.popitem(last=False)
        return None

    def forget_older_than(self, now: float) -> int:
        """Drop every key whose limit would treat it as new at `now` (its window holds no
        hit, its bucket is full again) and return how many were dropped. The service calls
        it on a timer; forgetting such a key changes no future answer."""
        idle = [key for key, state in self._states.items() if state.idle(self._limits[key[0]], now)]
        for key in idle:
            del self._states[key]
        return len(idle)


class OperatorLimiter:
    """One token bucket per operator JID against one `Limit` (per "operator"). The staff
    channel checks every back-channel line with it: each line fans out to every colleague
    online, so one operator's flood would otherwise reach them all many times over."""

    def __init__(self, limit: Limit) -> None:
        if limit.per != "operator":
            raise ValueError(f"an operator limiter needs a limit per 'operator', not {limit.per!r}")
        self.limit = limit
        self._buckets: dict[str, _Bucket] = {}

    def check(self, jid: str, now: float) -> float:
        """Count a line from `jid` at `now` (seconds, monotonic) if the limit allows it and
        return 0.0; else count nothing and return the seconds until it would pass. Idle
        buckets are dropped on the way, so the map holds only operators who wrote lately."""
        for key in [k for k, b in self._buckets.items() if b.idle(self.limit, now)]:
            if key != jid:
                del self._buckets[key]
        bucket = self._buckets.setdefault(jid, _Bucket(self.limit, now))
        wait = bucket.wait(self.limit, now)
        if wait > 0:
            return wait
        bucket.record(self.limit, now)
        return 0.0

    def __len__(self) -> int:
        return len(self._buckets)


class TypingThrottle:
    """One chat's typing notifications: passed on only when the state changes, at most
    once per `interval` seconds, and always ending on the latest state (a "paused" held
    back is sent later, so nobody is left seeing "typing…" for ever).

    The service keeps one per chat. For each typing frame it calls `offer`: True means
    send now; False means nothing to send; a number means "call `flush` after that many
    seconds", which returns the state to send then, if any.
    """

    __slots__ = ("_flush_due", "_pending", "_sent", "_sent_at", "interval")

    def __init__(self, interval: float) -> None:
        if not interval > 0:
            raise ValueError(f"a throttle's interval must be positive, not {interval}")
        self.interval = interval
        self._sent: bool | None = None
        self._sent_at = float("-inf")
        self._pending: bool | None = None
        self._flush_due = False

    def offer(self, composing: bool, now: float) -> bool | float:
        """A typing state from the patron at `now`."""
        if self._flush_due:
            self._pending = composing  # the scheduled flush sends the latest state
            return False
        if composing == self._sent:
            return False
        wait = self._sent_at + self.interval - now
        if wait <= 0:
            self._sent, self._sent_at = composing, now
            return True
        self._pending, self._flush_due = composing, True
        return wait

    def flush(self, now: float) -> bool | None:
        """The held-back state to send now (None: it is what was last sent)."""
        self._flush_due = False
        state, self._pending = self._pending, None
        if state is None or state == self._sent:
            return None
        self._sent, self._sent_at = state, now
        return state
