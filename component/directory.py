"""The one way to change the directory: groups, queues, operators, canned messages, local
resource links and exempt networks.

The command line and the admin pages describe a change as one of the dataclasses below,
holding the values as typed (text; None leaves a setting as it is, "" clears an optional
one), and hand it to `Directory`. The directory validates every value with
`component.core.validators`, refuses with `DirectoryError` (a field name and a sentence:
the CLI prints it as one line, the admin forms show it next to the field), writes the
change in one store transaction, and then refreshes the running service's in-memory view
(when it runs in the service's process; the CLI's changes reach the service through its
store poll).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from slixmpp.jid import JID, InvalidJID

from component.core import validators
from component.core.changes import UNSET, GroupUpdate, QueueUpdate, Unset
from component.core.models import Group, Operator, Queue
from component.store import Store, StoreError

if TYPE_CHECKING:
    from component.service import DeskService

T = TypeVar("T")

# The local parts of chats' guest JIDs (the service's GUEST_PREFIX): never a queue name.
RESERVED_PREFIX = "guest-"
DEFAULT_GROUP = "default"


class DirectoryError(Exception):
    """A change refused: `field` names what was wrong (the admin form's field name),
    `message` says why in one sentence. `problems` lists every refused field of the
    change, the first being (`field`, `message`)."""

    def __init__(self, field: str, message: str, *more: tuple[str, str]) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.problems: tuple[tuple[str, str], ...] = ((field, message), *more)


class _Problems:
    """Collects every refused field of one change, so a form shows them all at once."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, field: str, message: str) -> None:
        if field not in {f for f, _ in self.found}:
            self.found.append((field, message))

    def take(self, field: str, parse: Callable[[str], T], text: str) -> T | None:
        try:
            return parse(text)
        except ValueError as exc:
            self.add(field, str(exc))
            return None

    def has(self, field: str) -> bool:
        return any(f == field for f, _ in self.found)

    def check(self) -> None:
        if self.found:
            raise DirectoryError(*self.found[0], *self.found[1:])


# The changes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewGroup:
    name: str
    title: str = ""  # empty: the name


@dataclass(frozen=True, slots=True)
class GroupChange:
    title: str | None = None
    operators_may_ban: bool | None = None
    appeal_email: str | None = None  # "" clears


@dataclass(frozen=True, slots=True)
class NewLink:
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class NewExempt:
    network: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class NewQueue:
    name: str
    group: str
    title: str = ""  # empty: made from the name
    followup_email: str = ""


@dataclass(frozen=True, slots=True)
class QueueChange:
    """Settings as typed; None keeps one, "" clears an optional one. `backup` is a queue
    name. Hours, time zone and closed days are checked together (a change of one is
    checked against the stored others)."""

    title: str | None = None
    routing: str | None = None
    offer_timeout: str | None = None
    rollover_after: str | None = None
    backup: str | None = None
    hours: str | None = None
    timezone: str | None = None
    closed_days: str | None = None  # dates separated by commas or spaces
    escalation: str | None = None
    followup_email: str | None = None
    referral_email: str | None = None
    max_wait: str | None = None
    privacy: str | None = None
    retention_days: str | None = None
    purge_transcripts: bool | None = None
    feedback: bool | None = None
    widget_color: str | None = None
    widget_logo: str | None = None
    greeting: str | None = None
    text_available: str | None = None
    text_away: str | None = None
    text_offline: str | None = None
    allowed_origins: str | None = None


@dataclass(frozen=True, slots=True)
class OperatorChange:
    """An operator (by JID) and the queues (by name) they answer.

    `name` and `max_chats` None keep the stored values (a new operator gets the JID's
    local part and 3); `email` "" clears the alert address. `on_call` is the queues the
    operator is on call for, or True/False for all of `queues`, or None to leave the
    flags. With `exclusive`, `queues` become all of the operator's queues among those the
    caller manages; else they are added. `new` refuses an existing operator."""

    jid: str
    queues: tuple[str, ...]
    name: str | None = None
    max_chats: str | int | None = None
    email: str | None = None
    on_call: frozenset[str] | bool | None = None
    exclusive: bool = False
    new: bool = False


@dataclass(frozen=True, slots=True)
class CannedChange:
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a canned message belongs: every queue (no ids), a group or a queue."""

    group_id: int | None = None
    queue_id: int | None = None


@dataclass(slots=True)
class Directory:
    """Validates and applies directory changes. The CLI makes one over its own store;
    the admin pages use `for_service`, whose changes the running service sees at once."""

    store: Store
    clock: Callable[[], datetime]
    # The component's own domain: its addresses are never an operator's account.
    domain: str
    refresh: Callable[[], Awaitable[None]] | None = field(default=None)

    @classmethod
    def for_service(cls, service: DeskService) -> Directory:
        """The directory of the running service (the admin pages' changes): after each
        change, queues, operators and exempt networks are read again."""

        async def refresh() -> None:
            await service.reload_directory()
            await service.moderation.load()

        return cls(service.store, service.clock, service.domain, refresh)

    async def _changed(self) -> None:
        if self.refresh is not None:
            await self.refresh()

    # Lookups ---------------------------------------------------------------------------

    async def group_named(self, name: str, field: str = "group") -> Group:
        group = await self.store.group_by_name(name)
        if group is None:
            raise DirectoryError(field, f"There is no group called {name[:80]!r}.")
        return group

    async def queue_named(self, name: str, field: str = "queue") -> Queue:
        queue = await self.store.queue_by_name(name)
        if queue is None:
            raise DirectoryError(field, f"There is no queue called {name[:80]!r}.")
        return queue

    # Groups ----------------------------------------------------------------------------

    async def add_group(self, change: NewGroup) -> Group:
        problems = _Problems()
        name = problems.take("name", _name("group"), change.name)
        title = problems.take("title", _optional_title, change.title)
        problems.check()
        assert name is not None
        if await self.store.group_by_name(name) is not None:
            raise DirectoryError("name", f"There is already a group called {name!r}.")
        try:
            group = await self.store.add_group(name, title or name, self.clock())
        except StoreError:
            raise DirectoryError("name", f"There is already a group called {name!r}.") from None
        await self._changed()
        return group

    async def change_group(self, group: Group, change: GroupChange) -> list[str]:
        """Apply the settings that are given; returns their names."""
        problems = _Problems()
        update = GroupUpdate(
            title=_given(problems, "title", validators.title, change.title),
            operators_may_ban=UNSET
            if change.operators_may_ban is None
            else change.operators_may_ban,
            appeal_email=_given(problems, "appeal_email", _email, change.appeal_email),
        )
        problems.check()
        await self.store.update_group(group.id, update)
        await self._changed()
        return sorted(update.columns())

    async def delete_group(self, group: Group) -> None:
        try:
            await self.store.delete_group(group.id)
        except StoreError as exc:
            raise DirectoryError("confirm", f"The group cannot be deleted: {exc}.") from None
        await self._changed()

    async def add_link(self, group: Group, change: NewLink) -> str:
        problems = _Problems()
        title = problems.take("title", validators.title, change.title)
        url = problems.take("url", _link_url, change.url)
        problems.check()
        assert title is not None and url is not None
        await self.store.add_link(group.id, title, url)
        await self._changed()
        return title

    async def delete_link(self, group: Group, link_id: int) -> bool:
        removed = await self.store.delete_link(group.id, link_id)
        await self._changed()
        return removed

    async def add_exempt(self, group: Group, change: NewExempt) -> str:
        problems = _Problems()
        network = problems.take("network", validators.network, change.network)
        note = problems.take("note", _optional_note, change.note)
        problems.check()
        assert network is not None
        await self.store.add_exempt_network(group.id, network, note or "")
        await self._changed()
        return network

    async def delete_exempt(
        self, group: Group, *, exempt_id: int | None = None, network: str | None = None
    ) -> bool:
        """Remove an exemption by its id (admin page) or by the network (CLI)."""
        if network is not None:
            try:
                wanted = validators.network(network)
            except ValueError as exc:
                raise DirectoryError("network", str(exc)) from None
            rows = [r for r in await self.store.exempt_rows(group.id) if r.network == wanted]
            if not rows:
                raise DirectoryError("network", f"{wanted} is not exempt in {group.name}.")
            exempt_id = rows[0].id
        assert exempt_id is not None
        removed = await self.store.delete_exempt(group.id, exempt_id)
        await self._changed()
        return removed

    # Queues ----------------------------------------------------------------------------

    async def add_queue(
        self,
        change: NewQueue,
        allowed_groups: Collection[int] | None = None,
        *,
        create_default: bool = False,
    ) -> Queue:
        """A new queue in the named group. With `create_default` (the CLI), the default
        group is made when missing; a group outside `allowed_groups` (a coordinator's)
        is refused like a missing one."""
        problems = _Problems()
        name = problems.take("name", _name("queue"), change.name)
        title = problems.take("title", _optional_title, change.title)
        email = problems.take("followup_email", _email, change.followup_email)
        group = await self.store.group_by_name(change.group) if change.group else None
        if group is not None and allowed_groups is not None and group.id not in allowed_groups:
            group = None
        make_default = group is None and change.group == DEFAULT_GROUP and create_default
        if group is None and not make_default:
            problems.add(
                "group",
                f"There is no group called {change.group[:80]!r}."
                if change.group
                else "Choose the group the queue belongs to.",
            )
        if name is not None and await self.store.queue_by_name(name) is not None:
            problems.add("name", f"There is already a queue called {name!r}.")
        problems.check()
        if make_default:
            group = await self.store.add_group(DEFAULT_GROUP, "Default", self.clock())
        assert name is not None and group is not None
        title = title or name.replace("-", " ").capitalize()
        try:
            queue = await self.store.add_queue(name, group.id, title, email, self.clock())
        except StoreError:
            raise DirectoryError("name", f"There is already a queue called {name!r}.") from None
        await self._changed()
        return queue

    async def change_queue(
        self, queue: Queue, change: QueueChange, visible_groups: Collection[int] | None = None
    ) -> list[str]:
        """Apply the settings that are given; returns their names. A backup queue outside
        `visible_groups` (a coordinator's) is refused like a missing one."""
        problems = _Problems()
        backup_id: int | Unset | None = UNSET
        if change.backup is not None:
            backup_id = await self._backup(problems, queue, change.backup, visible_groups)
        offer = _given(problems, "offer_timeout", validators.seconds, change.offer_timeout)
        rollover = _given(
            problems, "rollover_after", validators.optional_seconds, change.rollover_after
        )
        retention = _given(
            problems, "retention_days", validators.optional_days, change.retention_days
        )
        hours = self._hours(problems, queue, change)
        update = QueueUpdate(
            title=_given(problems, "title", validators.title, change.title),
            routing=_given(problems, "routing", validators.routing, change.routing),
            offer_timeout=offer,
            rollover_after=rollover,
            backup_queue_id=backup_id,
            escalation=_given(problems, "escalation", validators.escalation, change.escalation),
            followup_email=_given(problems, "followup_email", _email, change.followup_email),
            referral_email=_given(problems, "referral_email", _email, change.referral_email),
            max_wait=_given(problems, "max_wait", validators.optional_seconds, change.max_wait),
            privacy=_given(problems, "privacy", validators.privacy, change.privacy),
            retention_days=retention,
            purge_transcripts=UNSET
            if change.purge_transcripts is None
            else change.purge_transcripts,
            feedback=UNSET if change.feedback is None else change.feedback,
            widget_color=_given(problems, "widget_color", validators.color, change.widget_color),
            widget_logo=_given(problems, "widget_logo", _logo, change.widget_logo),
            greeting=_given(problems, "greeting", _optional_text(500), change.greeting),
            text_available=_given(
                problems, "text_available", _optional_text(300), change.text_available
            ),
            text_away=_given(problems, "text_away", _optional_text(300), change.text_away),
            text_offline=_given(problems, "text_offline", _optional_text(300), change.text_offline),
            allowed_origins=_given(
                problems, "allowed_origins", validators.origins, change.allowed_origins
            ),
            hours=hours[0] if hours else UNSET,
            timezone=hours[1] if hours else UNSET,
            closed_days=hours[2] if hours else UNSET,
        )
        # Rules across settings, on the queue as it would be after the change.
        final_rollover = queue.rollover_after if rollover is UNSET else rollover
        final_backup = queue.backup_queue_id if backup_id is UNSET else backup_id
        if not problems.has("rollover_after") and not problems.has("backup"):
            if final_rollover and final_backup is None:
                problems.add("backup", "Choose the backup queue that unanswered chats move to.")
            if final_backup is not None and not final_rollover:
                problems.add(
                    "rollover_after", "Say after how many seconds chats move to the backup."
                )
        final_purge = (
            queue.purge_transcripts
            if change.purge_transcripts is None
            else change.purge_transcripts
        )
        final_retention = queue.retention_days if retention is UNSET else retention
        if final_purge and not final_retention and not problems.has("retention_days"):
            problems.add("retention_days", "Say after how many days transcripts are purged.")
        problems.check()
        await self.store.update_queue(queue.id, update)
        await self._changed()
        return update.changed()

    async def _backup(
        self,
        problems: _Problems,
        queue: Queue,
        name: str,
        visible_groups: Collection[int] | None,
    ) -> int | Unset | None:
        if not name:
            return None
        target = await self.store.queue_by_name(name)
        if target is None or (visible_groups is not None and target.group_id not in visible_groups):
            problems.add("backup", f"There is no queue called {name[:80]!r}.")
            return UNSET
        if target.id == queue.id:
            problems.add("backup", "A queue cannot be its own backup.")
            return UNSET
        return target.id

    @staticmethod
    def _hours(
        problems: _Problems, queue: Queue, change: QueueChange
    ) -> tuple[str, str, tuple[str, ...]] | None:
        """Hours, time zone and closed days, each error on its own field; the ones not
        given are the stored ones."""
        if change.hours is None and change.timezone is None and change.closed_days is None:
            return None
        tz = problems.take(
            "timezone",
            validators.timezone,
            queue.timezone if change.timezone is None else change.timezone,
        )
        closed: tuple[str, ...] | None = queue.closed_days
        if change.closed_days is not None:
            closed = problems.take("closed_days", validators.closed_days, change.closed_days)
        hours = problems.take(
            "hours",
            lambda text: validators.hours(text, tz or "UTC"),
            queue.hours if change.hours is None else change.hours,
        )
        if tz is None or closed is None or hours is None:
            return None
        return hours, tz, closed

    async def delete_queue(self, queue: Queue) -> None:
        try:
            await self.store.delete_queue(queue.id)
        except StoreError as exc:
            raise DirectoryError("confirm", f"The queue cannot be deleted: {exc}.") from None
        await self._changed()

    # Operators -------------------------------------------------------------------------

    def operator_jid(self, text: str) -> str:
        """An operator's account: a bare JID with a local part, not on this service."""
        value = text.strip()
        if not value:
            raise ValueError("Enter the operator's XMPP address, like name@example.org.")
        try:
            jid = JID(value)
        except InvalidJID:
            raise ValueError(
                f"{value[:100]!r} is not a valid XMPP address: write it like name@example.org."
            ) from None
        if not jid.user or jid.resource:
            raise ValueError(
                f"{value[:100]!r} must be a bare JID like name@example.org "
                "(with a name before the @, and no /resource)."
            )
        if jid.domain == self.domain or jid.domain.endswith("." + self.domain):
            raise ValueError("That is an address of this service, not an operator's account.")
        return str(jid.bare)

    async def save_operator(
        self, change: OperatorChange, manageable: Collection[Queue] | None = None
    ) -> Operator:
        """Add or change an operator. `manageable` (None: every queue) are the queues the
        caller may change; a queue outside them is refused like a missing one."""
        problems = _Problems()
        jid = problems.take("jid", self.operator_jid, change.jid)
        name = _given(problems, "name", validators.display_name, change.name)
        max_chats = _given(problems, "max_chats", validators.max_chats, _text(change.max_chats))
        email = _given(problems, "email", _email, change.email)
        queues = manageable if manageable is not None else await self.store.list_queues()
        by_name = {q.name: q for q in queues}
        wanted: dict[int, bool | None] = {}
        for queue_name in change.queues:
            queue = by_name.get(queue_name)
            if queue is None:
                problems.add("queue", f"There is no queue called {queue_name[:80]!r}.")
                continue
            on_call = change.on_call
            wanted[queue.id] = queue_name in on_call if isinstance(on_call, frozenset) else on_call
        if not change.queues:
            problems.add("queue", "Choose at least one queue for this operator.")
        if isinstance(change.on_call, frozenset):
            if change.on_call - set(by_name):
                problems.add("on_call", "There is no such queue to be on call for.")
            elif change.on_call - set(change.queues):
                problems.add("on_call", "An operator can only be on call for their own queues.")
        if jid is not None and change.new and await self.store.operator_by_jid(jid) is not None:
            problems.add("jid", f"{jid} is already an operator.")
        problems.check()
        assert jid is not None
        try:
            op = await self.store.save_operator(
                jid,
                name=None if isinstance(name, Unset) else name,
                max_chats=None if isinstance(max_chats, Unset) else max_chats,
                email=email,
                memberships=wanted,
                exclusive=change.exclusive,
                manageable=None if manageable is None else [q.id for q in manageable],
                create_only=change.new,
                now=self.clock(),
            )
        except StoreError as exc:
            raise DirectoryError("jid", _sentence(str(exc))) from None
        await self._changed()
        return op

    async def remove_operator(
        self, operator: Operator | str, queues: Iterable[Queue] | None = None
    ) -> Operator:
        """Take an operator (or a JID) out of `queues` (None: all); they go altogether
        when no queue is left and nothing refers to them."""
        if isinstance(operator, str):
            try:
                jid = self.operator_jid(operator)
            except ValueError as exc:
                raise DirectoryError("jid", str(exc)) from None
            found = await self.store.operator_by_jid(jid)
            if found is None:
                raise DirectoryError("jid", f"There is no operator {jid}.")
            operator = found
        await self.store.delete_operator(
            operator.id, None if queues is None else [q.id for q in queues]
        )
        await self._changed()
        return operator

    async def leave_queue(self, queue: Queue, operator: Operator) -> bool:
        """The operator stops answering one queue (and keeps their others)."""
        removed = await self.store.remove_assignment(queue.id, operator.id)
        await self._changed()
        return removed

    # Canned messages -------------------------------------------------------------------

    async def save_canned(
        self,
        scope: Scope,
        change: CannedChange,
        *,
        canned_id: int | None = None,
        replace: bool = False,
    ) -> str:
        """Add a canned message at `scope`, or change the one with `canned_id`, or with
        `replace` overwrite the one of that name. Returns the name."""
        problems = _Problems()
        name = problems.take("name", validators.canned_name, change.name)
        text = problems.take("text", validators.canned_text, change.text)
        problems.check()
        assert name is not None and text is not None
        try:
            await self.store.save_canned(
                name,
                text,
                group_id=scope.group_id,
                queue_id=scope.queue_id,
                canned_id=canned_id,
                replace=replace,
            )
        except StoreError as exc:
            raise DirectoryError("name", _sentence(str(exc))) from None
        await self._changed()
        return name

    async def delete_canned(
        self, scope: Scope, *, canned_id: int | None = None, name: str | None = None
    ) -> str:
        """Remove a canned message of `scope` by id (admin page) or name (CLI)."""
        rows = await self.store.canned_rows(group_id=scope.group_id, queue_id=scope.queue_id)
        if name is not None:
            try:
                name = validators.canned_name(name)
            except ValueError as exc:
                raise DirectoryError("name", str(exc)) from None
        found = [r for r in rows if r.id == canned_id or (name is not None and r.name == name)]
        if not found:
            raise DirectoryError("name", f"There is no canned message {name!r} at that scope.")
        await self.store.delete_canned(found[0].id)
        await self._changed()
        return found[0].name


# Field checks with the directory's wording -------------------------------------------------


def _given(
    problems: _Problems, field: str, parse: Callable[[str], T], text: str | None
) -> T | Unset:
    """UNSET when the setting is not given, else the parsed value (or a problem)."""
    if text is None:
        return UNSET
    try:
        return parse(text)
    except ValueError as exc:
        problems.add(field, str(exc))
        return UNSET


def _text(value: str | int | None) -> str | None:
    return None if value is None else str(value)


def _name(what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        return validators.name(text, what, RESERVED_PREFIX)

    return parse


def _email(text: str) -> str | None:
    """An address, or None for "" (clears it); the refusal quotes what was typed."""
    if not text.strip():
        return None
    try:
        return validators.email_address(text)
    except ValueError as exc:
        raise ValueError(f"{text.strip()[:80]!r} is not an email address. {exc}") from None


def _optional_title(text: str) -> str | None:
    return validators.title(text) if text.strip() else None


def _optional_note(text: str) -> str | None:
    return validators.optional_one_line(text, validators.MAX_NOTE, "the note")


def _optional_text(limit: int) -> Callable[[str], str | None]:
    def parse(text: str) -> str | None:
        return validators.optional_text(text, limit)

    return parse


def _link_url(text: str) -> str:
    return validators.url(text, "http", "https")


def _logo(text: str) -> str | None:
    return validators.url(text, "https") if text.strip() else None


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
