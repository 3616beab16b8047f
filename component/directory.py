"""The one way to change the directory: groups, queues, operators, canned messages, local
resource links and exempt networks.

The command line and the admin pages describe a change as one of the dataclasses of
`component.directory_changes` (re-exported here), holding the values as typed (text;
None leaves a setting as it is, "" clears an optional one), and hand it to `Directory`.
The directory validates every value with `component.core.validators`, refuses with
`DirectoryError` (a field name and a sentence: the CLI prints it as one line, the admin
forms show it next to the field), writes the change in one store transaction, and then
refreshes the running service's in-memory view (when it runs in the service's process;
the CLI's changes reach the service through its store poll).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from component.core import validators
from component.core.changes import UNSET, GroupUpdate, QueueUpdate, Unset
from component.core.models import Group, Operator, Queue
from component.directory_changes import (
    DEFAULT_GROUP,
    RESERVED_PREFIX,
    CannedChange,
    DirectoryError,
    GroupChange,
    NewExempt,
    NewGroup,
    NewLink,
    NewQueue,
    OperatorChange,
    Problems,
    QueueChange,
    Scope,
    as_text,
    email_check,
    given,
    link_url,
    logo_url,
    name_check,
    optional_note,
    optional_text,
    optional_title,
    referral_domains_check,
    sentence,
)
from component.store import Store, StoreError

if TYPE_CHECKING:
    from component.service import DeskService

# The changes are defined beside their field checks; callers import them from here too.
__all__ = [
    "DEFAULT_GROUP",
    "RESERVED_PREFIX",
    "CannedChange",
    "Directory",
    "DirectoryError",
    "GroupChange",
    "NewExempt",
    "NewGroup",
    "NewLink",
    "NewQueue",
    "OperatorChange",
    "QueueChange",
    "Scope",
]


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
        group = await self.store.groups.by_name(name)
        if group is None:
            raise DirectoryError(field, f"There is no group called {name[:80]!r}.")
        return group

    async def queue_named(self, name: str, field: str = "queue") -> Queue:
        queue = await self.store.queues.by_name(name)
        if queue is None:
            raise DirectoryError(field, f"There is no queue called {name[:80]!r}.")
        return queue

    # Groups ----------------------------------------------------------------------------

    async def add_group(self, change: NewGroup) -> Group:
        problems = Problems()
        name = problems.take("name", name_check("group"), change.name)
        title = problems.take("title", optional_title, change.title)
        problems.check()
        assert name is not None
        if await self.store.groups.by_name(name) is not None:
            raise DirectoryError("name", f"There is already a group called {name!r}.")
        try:
            group = await self.store.groups.add(name, title or name, self.clock())
        except StoreError:
            raise DirectoryError("name", f"There is already a group called {name!r}.") from None
        await self._changed()
        return group

    async def change_group(self, group: Group, change: GroupChange) -> list[str]:
        """Apply the settings that are given; returns their names."""
        problems = Problems()
        update = GroupUpdate(
            title=given(problems, "title", validators.title, change.title),
            operators_may_ban=UNSET
            if change.operators_may_ban is None
            else change.operators_may_ban,
            appeal_email=given(problems, "appeal_email", email_check, change.appeal_email),
            coordinator_emails=given(
                problems, "coordinator_emails", validators.email_list, change.coordinator_emails
            ),
            referral_domains=given(
                problems, "referral_domains", referral_domains_check, change.referral_domains
            ),
        )
        if isinstance(update.referral_domains, str) and update.referral_domains:
            # The group's queues' referral addresses must stay inside the new domains, or
            # a plain `!refer` would mail where a typed address may not go.
            await self._referrals_inside(problems, group, update.referral_domains)
        problems.check()
        await self.store.groups.update(group.id, update)
        await self._changed()
        return sorted(update.columns())

    async def _referrals_inside(self, problems: Problems, group: Group, stored: str) -> None:
        """Refuse new referral domains (`stored`, comma-separated) that would leave a
        queue of `group` with a referral address outside them. Called by `change_group`."""
        domains = tuple(stored.split(","))
        for queue in await self.store.queues.all():
            if queue.group_id != group.id or not queue.referral_email:
                continue
            if not validators.in_domains(queue.referral_email, domains):
                problems.add(
                    "referral_domains",
                    f"Queue {queue.name!r} refers chats to {queue.referral_email}, outside "
                    "these domains: change its referral address first.",
                )
                return

    async def delete_group(self, group: Group) -> None:
        try:
            await self.store.groups.delete(group.id)
        except StoreError as exc:
            raise DirectoryError("confirm", f"The group cannot be deleted: {exc}.") from None
        await self._changed()

    async def add_link(self, group: Group, change: NewLink) -> str:
        problems = Problems()
        title = problems.take("title", validators.title, change.title)
        url = problems.take("url", link_url, change.url)
        problems.check()
        assert title is not None and url is not None
        await self.store.links.add(group.id, title, url)
        await self._changed()
        return title

    async def delete_link(self, group: Group, link_id: int) -> bool:
        removed = await self.store.links.delete(group.id, link_id)
        await self._changed()
        return removed

    async def add_exempt(self, group: Group, change: NewExempt) -> str:
        problems = Problems()
        network = problems.take("network", validators.network, change.network)
        note = problems.take("note", optional_note, change.note)
        contact = problems.take("contact_email", email_check, change.contact_email)
        problems.check()
        assert network is not None
        await self.store.exempt.add(group.id, network, note or "", contact)
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
            rows = [r for r in await self.store.exempt.rows(group.id) if r.network == wanted]
            if not rows:
                raise DirectoryError("network", f"{wanted} is not exempt in {group.name}.")
            exempt_id = rows[0].id
        assert exempt_id is not None
        removed = await self.store.exempt.delete(group.id, exempt_id)
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
        problems = Problems()
        name = problems.take("name", name_check("queue"), change.name)
        title = problems.take("title", optional_title, change.title)
        email = problems.take("followup_email", email_check, change.followup_email)
        group = await self.store.groups.by_name(change.group) if change.group else None
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
        if name is not None and await self.store.queues.by_name(name) is not None:
            problems.add("name", f"There is already a queue called {name!r}.")
        problems.check()
        if make_default:
            group = await self.store.groups.add(DEFAULT_GROUP, "Default", self.clock())
        assert name is not None and group is not None
        title = title or name.replace("-", " ").capitalize()
        try:
            queue = await self.store.queues.add(name, group.id, title, email, self.clock())
        except StoreError:
            raise DirectoryError("name", f"There is already a queue called {name!r}.") from None
        await self._changed()
        return queue

    async def change_queue(
        self, queue: Queue, change: QueueChange, visible_groups: Collection[int] | None = None
    ) -> list[str]:
        """Apply the settings that are given; returns their names. A backup queue outside
        `visible_groups` (a coordinator's) is refused like a missing one."""
        problems = Problems()
        backup_id: int | Unset | None = UNSET
        if change.backup is not None:
            backup_id = await self._backup(problems, queue, change.backup, visible_groups)
        offer = given(problems, "offer_timeout", validators.seconds, change.offer_timeout)
        rollover = given(
            problems, "rollover_after", validators.optional_seconds, change.rollover_after
        )
        retention = given(
            problems, "retention_days", validators.optional_days, change.retention_days
        )
        hours = self._hours(problems, queue, change)
        update = QueueUpdate(
            title=given(problems, "title", validators.title, change.title),
            routing=given(problems, "routing", validators.routing, change.routing),
            offer_timeout=offer,
            rollover_after=rollover,
            backup_queue_id=backup_id,
            escalation=given(problems, "escalation", validators.escalation, change.escalation),
            followup_email=given(problems, "followup_email", email_check, change.followup_email),
            referral_email=given(problems, "referral_email", email_check, change.referral_email),
            max_wait=given(problems, "max_wait", validators.optional_seconds, change.max_wait),
            privacy=given(problems, "privacy", validators.privacy, change.privacy),
            retention_days=retention,
            purge_transcripts=UNSET
            if change.purge_transcripts is None
            else change.purge_transcripts,
            feedback=UNSET if change.feedback is None else change.feedback,
            widget_color=given(problems, "widget_color", validators.color, change.widget_color),
            widget_logo=given(problems, "widget_logo", logo_url, change.widget_logo),
            greeting=given(problems, "greeting", optional_text(500), change.greeting),
            text_available=given(
                problems, "text_available", optional_text(300), change.text_available
            ),
            text_away=given(problems, "text_away", optional_text(300), change.text_away),
            text_offline=given(problems, "text_offline", optional_text(300), change.text_offline),
            allowed_origins=given(
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
        referral = update.referral_email
        if isinstance(referral, str) and not problems.has("referral_email"):
            group = await self.store.groups.by_id(queue.group_id)
            domains = group.referral_domains if group is not None else ()
            try:
                validators.referral_address(referral, domains)
            except ValueError as exc:
                problems.add("referral_email", str(exc))
        final_purge = (
            queue.purge_transcripts
            if change.purge_transcripts is None
            else change.purge_transcripts
        )
        final_retention = queue.retention_days if retention is UNSET else retention
        if final_purge and not final_retention and not problems.has("retention_days"):
            problems.add("retention_days", "Say after how many days transcripts are purged.")
        problems.check()
        await self.store.queues.update(queue.id, update)
        await self._changed()
        return update.changed()

    async def _backup(
        self,
        problems: Problems,
        queue: Queue,
        name: str,
        visible_groups: Collection[int] | None,
    ) -> int | Unset | None:
        if not name:
            return None
        target = await self.store.queues.by_name(name)
        if target is None or (visible_groups is not None and target.group_id not in visible_groups):
            problems.add("backup", f"There is no queue called {name[:80]!r}.")
            return UNSET
        if target.id == queue.id:
            problems.add("backup", "A queue cannot be its own backup.")
            return UNSET
        return target.id

    @staticmethod
    def _hours(
        problems: Problems, queue: Queue, change: QueueChange
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
            await self.store.queues.delete(queue.id)
        except StoreError as exc:
            raise DirectoryError("confirm", f"The queue cannot be deleted: {exc}.") from None
        await self._changed()

    # Operators -------------------------------------------------------------------------

    def operator_jid(self, text: str) -> str:
        """An operator's account: a bare JID with a local part, not on this service."""
        # Imported here: slixmpp takes about as long to load as the rest of a directory
        # command, and only operator changes parse a JID.
        from slixmpp.jid import JID, InvalidJID

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
        problems = Problems()
        jid = problems.take("jid", self.operator_jid, change.jid)
        name = given(problems, "name", validators.display_name, change.name)
        max_chats = given(problems, "max_chats", validators.max_chats, as_text(change.max_chats))
        email = given(problems, "email", email_check, change.email)
        queues = manageable if manageable is not None else await self.store.queues.all()
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
        if jid is not None and change.new and await self.store.operators.by_jid(jid) is not None:
            problems.add("jid", f"{jid} is already an operator.")
        problems.check()
        assert jid is not None
        try:
            op = await self.store.operators.save(
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
            raise DirectoryError("jid", sentence(str(exc))) from None
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
            found = await self.store.operators.by_jid(jid)
            if found is None:
                raise DirectoryError("jid", f"There is no operator {jid}.")
            operator = found
        await self.store.operators.delete(
            operator.id, None if queues is None else [q.id for q in queues]
        )
        await self._changed()
        return operator

    async def leave_queue(self, queue: Queue, operator: Operator) -> bool:
        """The operator stops answering one queue (and keeps their others)."""
        removed = await self.store.operators.unassign(queue.id, operator.id)
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
        problems = Problems()
        name = problems.take("name", validators.canned_name, change.name)
        text = problems.take("text", validators.canned_text, change.text)
        problems.check()
        assert name is not None and text is not None
        try:
            await self.store.canned.save(
                name,
                text,
                group_id=scope.group_id,
                queue_id=scope.queue_id,
                canned_id=canned_id,
                replace=replace,
            )
        except StoreError as exc:
            raise DirectoryError("name", sentence(str(exc))) from None
        await self._changed()
        return name

    async def delete_canned(
        self, scope: Scope, *, canned_id: int | None = None, name: str | None = None
    ) -> str:
        """Remove a canned message of `scope` by id (admin page) or name (CLI)."""
        rows = await self.store.canned.rows(group_id=scope.group_id, queue_id=scope.queue_id)
        if name is not None:
            try:
                name = validators.canned_name(name)
            except ValueError as exc:
                raise DirectoryError("name", str(exc)) from None
        found = [r for r in rows if r.id == canned_id or (name is not None and r.name == name)]
        if not found:
            raise DirectoryError("name", f"There is no canned message {name!r} at that scope.")
        await self.store.canned.delete(found[0].id)
        await self._changed()
        return found[0].name
