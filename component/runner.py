"""The composition root: the only module that knows both the XMPP adapter and the web
app. `Refdesk` starts and stops everything in one asyncio loop; `refdesk run` and the
tests use it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator
from email.utils import parseaddr

from aiohttp import web

from component.clock import Clock, LoopClock
from component.config import Config, MailConfig
from component.core.events import Event, MailQueued
from component.files import warn_if_open
from component.mailer import SmtpSender, smtp_settings
from component.moderation import Limits, policy_from_config
from component.operations import LinkState, Operations
from component.outbox import MailOutbox
from component.service import DeskService
from component.store import Store, StoreError
from component.store.active import ActiveLock
from component.store.listen import ChangeListener
from component.store.pg import PgDatabase
from component.xmpp import XmppAdapter
from web.app import make_app
from web.connlimits import AddressSlots
from web.listener import ConnectionGuard, GuardedSite, connection_budget
from web.standby import fence_middleware, make_standby_app

log = logging.getLogger(__name__)

DIRECTORY_POLL_SECONDS = 2.0
LISTEN_BACKLOG = 128


def envelope_from(mail: MailConfig) -> str:
    """The bare address of `mail.from_address` (which may carry a display name)."""
    return parseaddr(mail.from_address)[1]


class Refdesk:
    """The whole service. `await start()` opens the store, starts the service, the web
    server and the component; `await stop()` undoes it in reverse order."""

    def __init__(self, config: Config, *, clock: Clock | None = None) -> None:
        self.config = config
        # Real time unless a test passes its own; the service, the outbox, the XMPP
        # adapter and the directory poll all take their timers from it.
        self._clock: Clock = clock or LoopClock()
        self._store: Store | None = None
        self._service: DeskService | None = None
        self._adapter: XmppAdapter | None = None
        self._runner: web.AppRunner | None = None
        self._poller: asyncio.Task[None] | None = None
        self._outbox: MailOutbox | None = None
        self.port = config.web.port
        # On PostgreSQL several processes may share the database; the holder of this
        # lock is the one that serves (see component/store/active.py).
        self._lock: ActiveLock | None = None
        self._watch: asyncio.Task[None] | None = None
        # Set when the lock was lost while serving: `serve_forever` then stops.
        self.lost = asyncio.Event()
        # Seconds this process waited out a previous holder's lease before serving (0
        # after a clean release); None until it holds the lock.
        self.fence_waited: float | None = None
        # On PostgreSQL: the listener that hears other processes' changes at once, and
        # the task that reloads the directory when it does (or its slow poll comes).
        self._listener: ChangeListener | None = None
        self._listening: asyncio.Task[None] | None = None
        self._changes: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @property
    def service(self) -> DeskService:
        assert self._service is not None, "not started"
        return self._service

    @property
    def adapter(self) -> XmppAdapter:
        assert self._adapter is not None, "not started"
        return self._adapter

    @property
    def store(self) -> Store:
        assert self._store is not None, "not started"
        return self._store

    async def start(self) -> None:
        cfg = self.config
        # The config holds the component secret; the database holds patrons' chats.
        warn_if_open(cfg.source, "the config file")
        if not cfg.storage.url:
            warn_if_open(cfg.storage.path, "the database")
        else:
            await self._become_active(cfg.storage.url)
            assert self._lock is not None
            # From here on the lease runs: losing the lock fences this process at once.
            self._watch = asyncio.create_task(self._lock.watch(self._step_down))
        self._store = await Store.open(cfg.storage.target)
        if isinstance(self._store.db, PgDatabase):
            # Before reading any state: an old active process's session can no longer
            # commit once this returns (see PgDatabase.claim_active).
            ended = await self._store.db.claim_active()
            if ended:
                log.warning("ended %d store session(s) of a previous active process", ended)
            self._check_still_active()
        self._service = DeskService(
            self._store,
            domain=cfg.xmpp.domain,
            max_message_chars=cfg.chat.max_message_chars,
            resume_ttl=cfg.chat.resume_ttl,
            operator_grace=cfg.chat.operator_grace,
            admin_url=cfg.web.public_url,
            unstaffed_alert_after=cfg.chat.unstaffed_alert_after,
            from_address=cfg.mail.from_address,
            ban_policy=policy_from_config(cfg),
            limits=Limits(
                chats_per_address=cfg.limits.chats_per_address,
                chats_per_network=cfg.limits.chats_per_network,
                chat_window=cfg.limits.chat_window,
                messages_per_second=cfg.limits.messages_per_second,
                message_burst=cfg.limits.message_burst,
                mails_per_recipient=cfg.limits.mails_per_recipient,
                mails_per_address=cfg.limits.mails_per_address,
                mails_per_network=cfg.limits.mails_per_network,
                mail_window=cfg.limits.mail_window,
            ),
            clock=self._clock,
        )
        await self._service.start()
        self._outbox = MailOutbox(
            self._store, SmtpSender(smtp_settings(cfg.mail)), envelope_from(cfg.mail), self._clock
        )
        self._service.bus.subscribe(self._wake_outbox)
        self._outbox.start()
        # No access log: it would keep every patron's address, whatever the queues'
        # privacy modes say, and it costs a seventh of each status request.
        operations = Operations(self._service, self._link_state)
        # The keep-alive timeout doubles as the request-head timeout (see web.listener).
        self._runner = web.AppRunner(
            make_app(self._service, cfg, operations),
            shutdown_timeout=5.0,
            access_log=None,
            keepalive_timeout=cfg.web.header_timeout,
        )
        if self._lock is not None:
            # Outermost, so no answer (an acknowledgement included) leaves once fenced.
            self._runner.app.middlewares.insert(0, fence_middleware(self.lost.is_set))
        await self._runner.setup()
        guard = ConnectionGuard(
            AddressSlots(cfg.web.connections_per_address, cfg.web.connections_per_network),
            max_open=connection_budget(LISTEN_BACKLOG),
            trusted=cfg.web.trusted_networks,
        )
        site = GuardedSite(self._runner, cfg.web.host, cfg.web.port, guard, backlog=LISTEN_BACKLOG)
        try:
            await site.start()
        except OSError as exc:
            # Name the address: "Address already in use" alone does not say which.
            raise OSError(exc.errno, exc.strerror, f"{cfg.web.host}:{cfg.web.port}") from None
        # Port 0 in tests: learn the port the OS chose.
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        self._check_still_active()
        self._adapter = XmppAdapter(self._service, cfg.xmpp)
        await self._adapter.start()
        self._poller = asyncio.create_task(self._poll_directory())
        if isinstance(self._store.db, PgDatabase):
            db = self._store.db
            self._listener = ChangeListener(db.url, self._changed.set, lambda: db.session_id)
            self._listening = asyncio.create_task(self._listener.run())
            self._changes = asyncio.create_task(self._follow_changes(cfg.storage.change_poll))
        log.info("refdesk is serving on http://%s:%s", cfg.web.host, self.port)

    async def _become_active(self, url: str) -> None:
        """Take the active lock; while another process holds it, serve 503 on the web
        port (a standby) and wait. Called by `start` for a PostgreSQL store, before
        anything else starts: only the holder connects the component."""
        self._lock = ActiveLock(url, lease=self.config.storage.lease)
        try:
            if await self._lock.try_acquire():
                # Free at once, but a holder cut a moment ago may still be serving.
                self.fence_waited = await self._lock.fence()
                log.info("took the active lock (waited %.1f s)", self.fence_waited)
                return
        except StoreError as exc:
            log.warning("waiting to become active: %s", exc)
        cfg = self.config
        runner = web.AppRunner(make_standby_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, cfg.web.host, cfg.web.port, backlog=LISTEN_BACKLOG)
            await site.start()
            log.info("standing by: another refdesk holds the database's active lock")
            await self._lock.acquire()
            log.info("took the active lock: waiting out any previous holder's lease")
            # Still answering 503: an old holder cut from the database may serve until
            # its lease runs out.
            self.fence_waited = await self._lock.fence()
        finally:
            await runner.cleanup()
        log.info("took the active lock (waited %.1f s): starting", self.fence_waited)

    def _step_down(self) -> None:
        """The active lock could not be confirmed within its lease: stop being active at
        once, synchronously (called by the lock's timer). The web answers 503 from now
        on (`fence_middleware`), the store's session is dropped so nothing in flight
        commits or is acknowledged, and `lost` makes `serve_forever` stop the rest."""
        self.lost.set()
        store = self._store
        if store is not None and isinstance(store.db, PgDatabase):
            store.db.fence()

    def _check_still_active(self) -> None:
        """Refuse to go on starting once the lock was lost during start-up."""
        if self.lost.is_set():
            raise StoreError("lost the database's active lock while starting")

    def _link_state(self) -> LinkState:
        """The XMPP link for health and metrics (the web side never sees the adapter)."""
        adapter = self._adapter
        if adapter is None:
            return LinkState(connected=False, sessions=0)
        return LinkState(connected=adapter.online.is_set(), sessions=adapter.sessions)

    @property
    def web_app(self) -> web.Application:
        """The running web application (tests reach its parts through it)."""
        assert self._runner is not None, "not started"
        return self._runner.app

    @property
    def outbox(self) -> MailOutbox:
        assert self._outbox is not None, "not started"
        return self._outbox

    def _wake_outbox(self, event: Event) -> None:
        if isinstance(event, MailQueued) and self._outbox is not None:
            self._outbox.wake()

    async def _poll_directory(self) -> None:
        """Pick up queues and operators changed by the CLI while the service runs (on
        SQLite; PostgreSQL notifies, see `_follow_changes`), and let the service re-check
        what changes with the clock (service hours)."""
        polls = not isinstance(self.store.db, PgDatabase)
        while True:
            await self._clock.sleep(DIRECTORY_POLL_SECONDS)
            try:
                if polls:
                    await self.service.poll_directory()
                await self.service.tick()
            except Exception:
                log.exception("periodic service work failed")

    async def _follow_changes(self, backstop: float) -> None:
        """On PostgreSQL: reload the directory and bans as soon as the change listener
        hears another process's change (or reconnects), and poll the change counter every
        `backstop` seconds in case a notification was lost. Run as a task while active."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), backstop)
            try:
                if self._changed.is_set():
                    # Cleared before reloading: a change during the reload reloads again.
                    self._changed.clear()
                    await self.service.refresh_directory()
                else:
                    await self.service.poll_directory()
            except Exception:
                log.exception("reloading after a change failed")

    async def stop(self) -> None:
        """Stop what `start` started, in reverse order; also after a start that failed
        half-way (see `running`)."""
        opened = self._store is not None
        for task in (self._listening, self._changes):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.lost.is_set() and self._adapter:
            # Fenced: let the XMPP server give the component to the new active process
            # before anything else.
            await self._adapter.stop()
        if self._poller:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._runner:
            await self._runner.cleanup()
        if self._adapter:
            await self._adapter.stop()
        if self._outbox:
            await self._outbox.stop()
        try:
            if self._service:
                await self._service.close()
            if self._store:
                await self._store.close()
        except Exception as exc:
            if not self.lost.is_set():
                await self._stop_watch()
                raise
            # Fenced: the store's session is gone on purpose; what was not saved is the
            # new active process's to redo (relay cursors: lines sent again, not lost).
            log.warning("stopping after the lock was lost: %s", exc)
        # Only now: until everything above has stopped, this process still serves and
        # its lease must keep running (and stepping down if it cannot be kept).
        await self._stop_watch()
        if self._lock:
            # Last: a standby must not start while this process still writes.
            await self._lock.release()
        if opened:  # a start refused before the database opened has said why already
            log.info("refdesk stopped")

    async def _stop_watch(self) -> None:
        """Stop confirming the lock (and its step-down timer). Called by `stop` once
        this process no longer serves, before it releases the lock."""
        watch, self._watch = self._watch, None
        if watch:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[Refdesk]:
    """A started Refdesk for the body of the `async with`, stopped after it. Used by
    `refdesk run` and the demo. A start that fails half-way (the web port is taken, the
    database is refused) stops what did start: the database's and the outbox's threads
    would otherwise keep the process alive after the error is printed."""
    desk = Refdesk(config)
    try:
        await desk.start()
    except BaseException:
        await desk.stop()
        raise
    try:
        yield desk
    finally:
        await desk.stop()


async def serve_forever(config: Config) -> None:
    """`refdesk run`: start, wait for SIGINT or SIGTERM, stop cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    starting = True

    def on_signal() -> None:
        # While starting (a standby waits for the active lock without end) nothing looks
        # at `stop`: cancel the start, which stops whatever had started.
        stop.set()
        if starting and main is not None:
            main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        async with running(config) as desk:
            starting = False
            await _serve(desk, stop)
    except asyncio.CancelledError:
        if not stop.is_set():
            raise
        log.info("stopped before start-up finished")
        return
    if desk.lost.is_set():
        # Another process may be active now: exit non-zero, so the supervisor restarts
        # this one, which then stands by.
        raise StoreError("lost the database's active lock (connection cut?): stopped")


async def _serve(desk: Refdesk, stop: asyncio.Event) -> None:
    """The body of `serve_forever` once started: until a signal or the lock is lost."""
    # Everything loaded at start-up lives for the whole run: keep the collector off it,
    # and collect the young generation less often (full collections of a large heap
    # stalled every chat for up to 200 ms in the capacity benchmark). The middle
    # generation is collected after 5 young collections rather than 20, so it holds at
    # most 50,000 objects: at 1,000 chatting sessions, with 20 its collections took up
    # to 64 ms of CPU each, the longest pause the collector caused. The last number
    # keeps full collections as rare as before (one per 10 million allocations).
    gc.freeze()
    gc.set_threshold(10_000, 5, 200)
    stopped = asyncio.create_task(stop.wait())
    lost = asyncio.create_task(desk.lost.wait())
    await asyncio.wait((stopped, lost), return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    lost.cancel()
    log.info("shutting down")
