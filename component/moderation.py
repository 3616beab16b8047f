"""Bans, rate limits and incident reports: the service's moderation desk.

`create_ban` and `lift_bans` hold the rules every door shares (the `!ban` command, the
admin page, the command line): the ladder, what may not be banned, the audit trail.
`Moderation` is the running service's part: an in-memory index answering "is this address
banned?" in about a microsecond, the rate limiters, and the events that make a new ban
end the banned patron's open chat at once. It owns the sticky-pickup memory
(`component.sticky_pickup`) and the exempt-network contact drafts
(`component.exempt_contacts`).
"""

from __future__ import annotations

import collections
import gc
import ipaddress
import logging
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from component.bus import EventBus
from component.clock import Clock
from component.config import Config
from component.core import validators
from component.core.ban_index import BanIndex
from component.core.bans import (
    Address,
    Ban,
    BanError,
    Ladder,
    Network,
    ban_ends_at,
    canonical_address,
    next_offence,
    normalize_target,
    overlapping,
    parse_ladder,
    refusal,
    usable_address,
)
from component.core.errors import DeskError
from component.core.events import BanImposed, BansLifted
from component.core.ratelimit import Limit, RateLimiter, Refusal
from component.exempt_contacts import ExemptContacts
from component.sticky_pickup import StickyPickup
from component.store import Store


class ModerationHost(Protocol):
    """What `Moderation` needs from the service that owns it (`DeskService` provides it;
    named here so this module never imports the service)."""

    store: Store
    bus: EventBus
    scheduler: Clock

    def clock(self) -> datetime: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...

    async def end_chats_from(self, network: Network, text: str) -> int: ...


log = logging.getLogger(__name__)

# Seconds between two sweeps of a rate limiter's idle keys.
FORGET_EVERY = 60.0


class BanRefused(DeskError):
    code = "ban_refused"


class Banned(DeskError):
    """The patron's address is banned; `text` is what they are shown."""

    code = "banned"


class RateLimited(DeskError):
    code = "rate_limited"


@dataclass(frozen=True, slots=True)
class BanPolicy:
    """The configured rules: the ladder, the ban message and appeal address, and the
    networks that must never be banned (trusted proxies; loopback always)."""

    ladder: Ladder
    message: str
    appeal_address: str
    protected: tuple[Network, ...] = ()
    ipv6_prefix: int = 64
    # Seconds a patron's chat ended as inappropriate sends their next chats to the same
    # operator first ([bans] sticky_pickup); 0: never.
    sticky_pickup: float = 0.0
    # Incidents from an exempt network within the window that draft a message to its
    # contact ([bans] repeated_incidents).
    repeated_incidents: int = 2

    def text(self, appeal_address: str | None = None, seen: str | None = None) -> str:
        """What a banned patron reads. `seen` is the address refdesk saw for them, told
        back so that an appeal can quote it (the patron has no other way to learn it); it
        is left out of texts that are stored, such as the ended line of a transcript."""
        address = appeal_address or self.appeal_address
        text = (
            f"{self.message} If you feel you have reached this page in error, please email "
            f"{address}."
        )
        if seen:
            text += f" Your address as this service saw it: {seen} (quote it when you write)."
        return text

    def notice(self, appeal_address: str | None, seen: str | None) -> BanNotice:
        """Called by the web transports (page, socket, long-poll, offline form) when
        they refuse a banned patron: the text and its parts, labelled for the widget."""
        appeal = appeal_address or self.appeal_address
        return BanNotice(text=self.text(appeal, seen), address=seen, appeal=appeal)


@dataclass(frozen=True, slots=True)
class BanNotice:
    """What a banned patron is shown: the whole sentence, and separately the address
    refdesk saw for them and where to appeal (the widget links the latter)."""

    text: str
    address: str | None
    appeal: str

    def frame(self) -> dict[str, str | None]:
        """The widget-protocol `banned` frame (also the offline form's 403 body, with
        `error` for the text)."""
        return {"type": "banned", "text": self.text, "address": self.address, "appeal": self.appeal}


def policy_from_config(cfg: Config) -> BanPolicy:
    """The ban rules from the configuration; trusted proxies can never be banned."""
    return BanPolicy(
        ladder=parse_ladder(cfg.bans.ladder),
        message=cfg.bans.message,
        appeal_address=cfg.bans.appeal_address,
        protected=tuple(cfg.web.trusted_networks),
        sticky_pickup=cfg.bans.sticky_pickup,
        repeated_incidents=cfg.bans.repeated_incidents,
    )


async def create_ban(
    store: Store,
    policy: BanPolicy,
    target: str,
    *,
    reason: str,
    actor: str,
    now: datetime,
    duration: timedelta | None = None,
    permanent: bool = False,
    by_operator: bool = False,
    exempt: Sequence[Network] = (),
    ipv6_prefix: int | None = None,
    chat_id: int | None = None,
) -> Ban:
    """Ban an address or network (as typed) and record it. The offence number counts
    earlier bans of overlapping networks; the length is `duration` or the ladder's step.
    Raises BanRefused with a sentence for whoever asked."""
    try:
        reason = validators.ban_reason(reason)
    except ValueError as exc:
        raise BanRefused(str(exc)) from None
    if permanent and by_operator:
        raise BanRefused("Only an admin can make a ban permanent.")
    try:
        network = normalize_target(target, ipv6_prefix=ipv6_prefix or policy.ipv6_prefix)
    except BanError as exc:
        raise BanRefused(str(exc)) from None
    why = refusal(network, protected=policy.protected, exempt=exempt, by_operator=by_operator)
    if why:
        raise BanRefused(why[0].upper() + why[1:] + ".")
    previous = await store.bans.all()
    offence = next_offence(previous, network)
    try:
        ends = ban_ends_at(
            now, offence=offence, ladder=policy.ladder, duration=duration, permanent=permanent
        )
    except BanError as exc:
        raise BanRefused(str(exc)) from None
    covered = overlapping(network, exempt)
    detail = reason + (
        f" (admin override of exempt network {', '.join(map(str, covered))})" if covered else ""
    )
    ban = Ban(
        id=0,
        network=network,
        offence=offence,
        reason=reason,
        starts_at=now,
        ends_at=ends,
        permanent=ends is None,
        created_by=actor,
    )
    return await store.bans.add(ban, now, chat_id=chat_id, detail=detail)


async def lift_bans(
    store: Store,
    target: str,
    *,
    actor: str,
    now: datetime,
    ipv6_prefix: int = 64,
    detail: str = "",
) -> list[Ban]:
    """Lift every active ban on exactly this address or network, with `detail` (the
    reason) in the audit. Returns what was lifted; raises BanRefused if there was none."""
    try:
        network = normalize_target(target, ipv6_prefix=ipv6_prefix)
    except BanError as exc:
        raise BanRefused(str(exc)) from None
    lifted = []
    for ban in await store.bans.that_may_bar(now):
        if ban.network == network and ban.active(now):
            await store.bans.lift(ban.id, actor, now, detail)
            lifted.append(ban)
    if not lifted:
        raise BanRefused(f"No active ban on {network}.")
    return lifted


@dataclass(frozen=True, slots=True)
class Limits:
    """The configured rate limits ([limits] in the configuration)."""

    chats_per_address: int = 5
    chats_per_network: int = 30
    chat_window: float = 600.0
    messages_per_second: float = 3.0
    message_burst: int = 10
    # Emails to addresses that patrons typed: per recipient, per asking address, per
    # asking network, within mail_window seconds.
    mails_per_recipient: int = 3
    mails_per_address: int = 5
    mails_per_network: int = 20
    mail_window: float = 3600.0


def _limiters(limits: Limits) -> tuple[RateLimiter, RateLimiter, RateLimiter]:
    """(new chats, messages, emails) limiters for `Moderation`."""
    chats = RateLimiter(
        [
            Limit("new chats per address", "address", limits.chats_per_address, limits.chat_window),
            Limit("new chats per network", "network", limits.chats_per_network, limits.chat_window),
        ]
    )
    per_second = max(1, round(limits.messages_per_second))
    messages = RateLimiter(
        [Limit("messages per address", "address", per_second, 1.0, burst=limits.message_burst)]
    )
    window = limits.mail_window
    mails = RateLimiter(
        [
            Limit("emails per recipient", "recipient", limits.mails_per_recipient, window),
            Limit("emails per address", "address", limits.mails_per_address, window),
            Limit("emails per network", "network", limits.mails_per_network, window),
        ]
    )
    return chats, messages, mails


class Moderation:
    """Owned by the service (`service.moderation`); `load()` at start and whenever the
    store changed under it."""

    def __init__(self, service: ModerationHost, policy: BanPolicy, limits: Limits) -> None:
        self.service = service
        self.policy = policy
        self._index = BanIndex()
        self._loaded = False
        self._mark = 0  # the ban audit line the index is up to date with
        self._exempt: dict[int, list[Network]] = {}
        self.sticky = StickyPickup(service, policy.sticky_pickup)
        self.exempt_contacts = ExemptContacts(service, policy.repeated_incidents)
        self._chats, self._messages, self._mails = _limiters(limits)
        # When each limiter last forgot its idle keys (monotonic seconds).
        self._forgotten: dict[RateLimiter, float] = {}
        # One rate-limit incident per limit and subject per window, not one per request.
        self._reported: dict[tuple[str, str], float] = {}
        # Requests refused by each limit ("chats", "messages") since start, for metrics.
        self.refusals: collections.Counter[str] = collections.Counter()

    @property
    def store(self) -> Store:
        return self.service.store

    async def load(self) -> None:
        """Build the index from the store at start-up; afterwards (another process wrote)
        re-read only the bans created, changed or lifted since the last load. Bans this
        process did not know (made by the command line) are imposed, so open chats from
        those addresses end at once; bans lifted by another process are announced, so the
        group's coordinators hear of every lift. Rebuilding the whole index took seconds
        with 100,000 bans, and ran on every write of the command line."""
        now = self.service.clock()
        # The mark first: a ban changed between the two reads is read again next time.
        mark = await self.store.bans.change_mark()
        fresh: list[Ban] = []
        lifted: list[int] = []
        if not self._loaded:
            entries = await self.store.bans.index_entries(now)
            # The collector would walk the young objects again and again while 100,000
            # entries are filed (half the build's CPU); nothing else runs meanwhile.
            collecting = gc.isenabled()
            gc.disable()
            try:
                self._index = BanIndex(entries)
            finally:
                if collecting:
                    gc.enable()
        else:
            for ban in await self.store.bans.changed_since(self._mark):
                known = self._index.get(ban.id) is not None
                if ban.lifted_at is None and (ban.ends_at is None or ban.ends_at > now):
                    if not known:
                        fresh.append(ban)
                    self._index.add(ban)
                else:
                    if known and ban.lifted_at is not None:
                        lifted.append(ban.id)
                    self._index.remove(ban.id)
        self._mark = mark
        exempt = await self.store.exempt.by_group()
        self._exempt = {
            group: [ipaddress.ip_network(n, strict=False) for n in networks]
            for group, networks in exempt.items()
        }
        self._loaded = True
        for ban in fresh:
            if ban.active(now):
                await self._impose(ban)
        for ban_id in lifted:
            self.service.bus.publish(BansLifted((ban_id,), "", ""))

    def active_ban_count(self) -> int:
        """Bans in force now (for metrics)."""
        return self._index.count_active(self.service.clock())

    def exempt(self, group_id: int) -> list[Network]:
        return list(self._exempt.get(group_id, ()))

    def banned(self, address: str | Address | None) -> Ban | None:
        """The ban that bars this address now, if any; called at every patron entry and,
        by a patron's connection, on every frame (with the address it parsed once: parsing
        the text costs five times the look-up)."""
        if not address:
            return None
        try:
            return self._index.match(address, self.service.clock())
        except BanError:
            return None

    def refuse_if_banned(self, address: str | None, appeal_address: str | None = None) -> None:
        if self.banned(address) is not None:
            raise Banned(self.policy.text(appeal_address))

    def ban_text(self, appeal_address: str | None = None, seen: str | None = None) -> str:
        return self.policy.text(appeal_address, seen)

    def ban_notice(self, appeal_address: str | None, seen: str | None) -> BanNotice:
        return self.policy.notice(appeal_address, seen)

    async def ban(
        self,
        target: str,
        *,
        reason: str,
        actor: str,
        duration: timedelta | None = None,
        permanent: bool = False,
        by_operator: bool = False,
        group_id: int | None = None,
        chat_id: int | None = None,
        ipv6_prefix: int | None = None,
        patron_emails: Sequence[str] = (),
    ) -> Ban:
        """Ban and make it bite now: the index learns it and open chats from the network
        end with the ban message. `patron_emails` are the addresses the patron gave in
        the chat `chat_id`, for the ban notice (the notices desk hears of the ban)."""
        exempt = (
            self.exempt(group_id)
            if group_id is not None
            else [n for nets in self._exempt.values() for n in nets]
        )
        ban = await create_ban(
            self.store,
            self.policy,
            target,
            reason=reason,
            actor=actor,
            now=self.service.clock(),
            duration=duration,
            permanent=permanent,
            by_operator=by_operator,
            exempt=exempt,
            ipv6_prefix=ipv6_prefix,
            chat_id=chat_id,
        )
        self._index.add(ban)
        await self._impose(ban, chat_id, by_operator, tuple(patron_emails))
        return ban

    async def lift(self, target: str, *, actor: str, detail: str = "") -> list[Ban]:
        """Lift the active bans on exactly this address or network; at once."""
        lifted = await lift_bans(
            self.store,
            target,
            actor=actor,
            now=self.service.clock(),
            ipv6_prefix=self.policy.ipv6_prefix,
            detail=detail,
        )
        for ban in lifted:
            self._index.remove(ban.id)
        self.service.bus.publish(BansLifted(tuple(b.id for b in lifted), actor, detail))
        return lifted

    async def expire(self) -> list[Ban]:
        """Drop bans that ran out (audited as expiries); called every few seconds."""
        now = self.service.clock()
        gone = self._index.prune(now)
        for ban in gone:
            if ban.lifted_at is None:
                await self.store.bans.audit_expiry(ban.id, now)
        return gone

    async def _impose(
        self,
        ban: Ban,
        chat_id: int | None = None,
        by_operator: bool = False,
        patron_emails: tuple[str, ...] = (),
    ) -> None:
        self.service.bus.publish(
            BanImposed(ban.id, ban.network, self.policy.text(), chat_id, by_operator, patron_emails)
        )
        # In a task: the caller may hold the lock of one of those chats (`!ban`).
        self.service.spawn(self._end_chats(ban))

    async def _end_chats(self, ban: Ban) -> None:
        await self.service.end_chats_from(ban.network, self.policy.text())

    # Rate limits -------------------------------------------------------------------------

    async def admit_new_chat(self, address: str | None, queue_id: int | None) -> None:
        """Count a new chat (or emailed question) from this address; raise RateLimited
        with a polite sentence, and record an incident, when it is one too many."""
        refusal_ = self._check(self._chats, address)
        if refusal_ is None:
            return
        self.refusals["chats"] += 1
        await self._report(refusal_, "excessive chat requests", queue_id)
        raise RateLimited(
            "We are receiving too many chat requests from your network right now. "
            f"Please try again in {_minutes(refusal_.retry_after)}."
        )

    async def admit_message(self, address: str | Address | None, queue_id: int | None) -> None:
        """Count a patron's line (or rating) from this address; raise RateLimited, and
        record an incident, when it is one too many. Called by the patron's connection
        for every line, with the address it parsed once."""
        refusal_ = self._check(self._messages, address)
        if refusal_ is None:
            return
        self.refusals["messages"] += 1
        await self._report(refusal_, "excessive messages", queue_id)
        raise RateLimited("You are sending messages very quickly; please wait a moment.")

    async def admit_mail(self, address: str | None, recipient: str, queue_id: int | None) -> None:
        """Count an email to an address a patron typed (`recipient`: a transcript copy, the
        receipt for an emailed question), asked for from `address`; raise RateLimited with
        a polite sentence, and record an incident, when it is one too many.

        Called by the follow-up desk before anything is stored or mailed, on every path
        that mails such an address. Without a usable `address` the recipient's own limit
        still applies."""
        refusal_ = self._check(self._mails, address, recipient=recipient)
        if refusal_ is None:
            return
        # The incident names the network that asked, never the recipient's address.
        subject = refusal_.subject if refusal_.limit.per != "recipient" else address
        await self._report(refusal_, "excessive email requests", queue_id, subject=subject)
        whom = (
            "this email address"
            if refusal_.limit.per == "recipient"
            else "your network"
            if refusal_.limit.per == "network"
            else "your address"
        )
        raise RateLimited(
            f"Too many emails have been requested for {whom} recently. "
            f"Please try again in {_minutes(refusal_.retry_after)}."
        )

    def admit_staff_mail(self, recipient: str) -> None:
        """Count a message staff send to an outside address (a shared computer's contact)
        against that recipient's mail limit, shared with patrons' mail; raise RateLimited
        when it is one too many. No incident: no patron asked for it. Called by the
        follow-up desk before the message is queued."""
        refused = self._check(self._mails, None, recipient=recipient)
        if refused is not None:
            raise RateLimited(
                f"Too many emails have gone to {recipient} recently. "
                f"Please try again in {_minutes(refused.retry_after)}."
            )

    def _check(
        self,
        limiter: RateLimiter,
        address: str | Address | None,
        *,
        recipient: str | None = None,
    ) -> Refusal | None:
        # Parsed once here, not again by the limiter (text that is no address counts as none).
        if isinstance(address, str):
            usable = usable_address(address)
        else:
            usable = None if address is None else canonical_address(address)
        if usable is None and recipient is None:
            return None
        now = self._monotonic()
        # Forgetting idle keys walks every key the limiter holds: done on every check it
        # made each hello and each line cost more the more patrons were around. Forgetting
        # changes no answer (see `RateLimiter.forget_older_than`), so once a minute will do.
        if now - self._forgotten.get(limiter, -FORGET_EVERY) >= FORGET_EVERY:
            self._forgotten[limiter] = now
            limiter.forget_older_than(now)
        return limiter.check(usable, now, recipient=recipient)

    def _monotonic(self) -> float:
        return self.service.scheduler.monotonic()

    async def _report(
        self,
        refused: Refusal,
        kind: str,
        queue_id: int | None,
        *,
        subject: str | None = None,
    ) -> None:
        """Record a rate-limit incident, once per limit and subject per window. `subject`
        is the address shown in the incident (default: what the limit counted)."""
        key = (refused.limit.name, refused.subject)
        now = self._monotonic()
        if now - self._reported.get(key, -1e18) < refused.limit.window_seconds:
            return
        self._reported[key] = now
        if len(self._reported) > 10_000:
            self._reported.clear()
        await self.store.incidents.add(
            kind="rate-limit",
            reporter="system",
            now=self.service.clock(),
            address=refused.subject if subject is None else subject,
            queue_id=queue_id,
            tags=(kind.replace(" ", "-"),),
            notes=f"{kind}: over the limit '{refused.limit.name}' "
            f"({refused.limit.count} per {refused.limit.window_seconds:g} s).",
        )


def _minutes(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return "a minute" if minutes == 1 else f"{minutes} minutes"


def networks(texts: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(t, strict=False) for t in texts)
