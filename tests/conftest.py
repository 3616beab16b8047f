"""Shared fixtures: real XMPP servers, a running refdesk, operators and patrons.

Tests that need a server FAIL when it is missing (`start_server` raises); nothing here
skips.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from component.clock import LoopClock
from component.config import (
    BansConfig,
    ChatConfig,
    Config,
    LimitsConfig,
    MailConfig,
    OperatorWebConfig,
    StorageConfig,
    WebConfig,
    XmppConfig,
)
from component.config_checks import MAX_LEASE
from component.core.changes import QueueUpdate
from component.core.models import Queue
from component.prosody import free_port
from component.runner import Refdesk
from component.store import Store
from tests.mail_sink import MailSink
from tests.operator_client import OperatorClient
from tests.patron_client import PatronClient
from tests.pg_server import PgServer
from tests.scheduling import SuiteScheduling
from tests.xmpp_servers import XmppServer, start_server


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist asks the controller for its scheduler once per run: `--dist loadgroup`
    (what scripts/test passes) gets the suite's own (tests/scheduling.py); any other
    `--dist` is left to xdist."""
    if config.getvalue("dist") != "loadgroup":
        return None
    return SuiteScheduling(config, log)


# Property tests judge results, never speed: on a loaded 2-core machine an example may take
# far longer than hypothesis's default 200 ms deadline without anything being wrong.
settings.register_profile("refdesk", deadline=None)
settings.load_profile("refdesk")

COMPONENT_DOMAIN = "desk.localhost"
SECRET = "component-secret-" + secrets.token_hex(4)
_names = itertools.count(1)


def make_config(
    tmp: Path,
    *,
    xmpp_host: str = "127.0.0.1",
    xmpp_port: int | None = None,
    smtp_port: int | None = None,
    trusted_proxies: tuple[str, ...] = (),
    metrics_networks: tuple[str, ...] | None = None,
    forwarded_header: str = "X-Forwarded-For",
    web: dict[str, Any] | None = None,
    limits: LimitsConfig | None = None,
    websocket_url: str = "",
    bans: dict[str, Any] | None = None,
    server_domain: str = "",
    **chat: float,
) -> Config:
    """A config for one test: its own database, web port chosen by the OS."""
    return Config(
        xmpp=XmppConfig(
            domain=COMPONENT_DOMAIN,
            secret=SECRET,
            host=xmpp_host,
            port=xmpp_port if xmpp_port is not None else free_port(),
            reconnect_max_delay=1.0,
            server_domain=server_domain,
        ),
        web=WebConfig(
            port=0,
            public_url="http://127.0.0.1:8080",
            trusted_proxies=trusted_proxies,
            **({} if metrics_networks is None else {"metrics_networks": metrics_networks}),
            forwarded_header=forwarded_header,
            # Logins in tests hash with next to no work; one test logs in with "strong".
            **({"password_hashing": "test"} | (web or {})),
        ),
        bans=BansConfig(**({"appeal_address": "appeals@library.example"} | (bans or {}))),
        limits=limits or LimitsConfig(),
        storage=StorageConfig(path=tmp / "refdesk.sqlite3"),
        mail=MailConfig(
            smtp_port=smtp_port if smtp_port is not None else free_port(),
            from_address="Ask Desk <desk@library.example>",
        ),
        chat=replace(ChatConfig(), **chat),
        operator_web=OperatorWebConfig(websocket_url=websocket_url),
    )


async def seed(path: Path | str, queues: tuple[str, ...] = ("ask",)) -> None:
    """Create a group and queues in a fresh database, as the CLI would."""
    store = await Store.open(path)
    try:
        now = datetime.now(UTC)
        group = await store.groups.add("library", "Library", now)
        for name in queues:
            await store.queues.add(name, group.id, f"Ask us ({name})", None, now)
    finally:
        await store.close()


class SeededTemplates:
    """Migrated and seeded SQLite databases, one per set of queues, made once per session
    (each xdist worker has its own) and copied for each test that wants one.

    Migrating a fresh file runs every migration script, a tenth of a second on a busy
    2-core machine and more than the rest of the `desk` fixture's database work; a copy
    of a file seeded the same way takes milliseconds. Only the `desk` and `offline_desk`
    fixtures use it: tests that are about migrating or seeding call `seed` themselves.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._made: dict[tuple[str, ...], Path] = {}

    async def seed(self, target: Path | str, queues: tuple[str, ...] = ("ask",)) -> None:
        """Give `target` a group and `queues`, as `seed` would: a copy of this session's
        template for SQLite (made on first use), `seed` itself for a PostgreSQL URL."""
        if not isinstance(target, Path):
            await seed(target, queues)
            return
        template = self._made.get(queues)
        if template is None:
            template = self._folder / f"{'-'.join(queues)}.sqlite3"
            await seed(template, queues)
            # Closing the last connection folded the write-ahead log into the file.
            assert not template.with_name(template.name + "-wal").exists()
            self._made[queues] = template
        # shutil.copy keeps the owner-only mode the store gave the file.
        shutil.copy(template, target)


@pytest.fixture(scope="session")
def seeded_templates(tmp_path_factory: pytest.TempPathFactory) -> SeededTemplates:
    """The session's `SeededTemplates`, for the desk fixtures."""
    return SeededTemplates(tmp_path_factory.mktemp("seeded"))


@pytest.fixture(scope="session")
def postgresql() -> Iterator[PgServer]:
    """One throwaway PostgreSQL server for the whole session (started on first use), its
    data in shared memory when there is room (see `PgServer.start`). Fails, never skips,
    when PostgreSQL is not installed: the store runs on both engines."""
    server = PgServer.start(in_memory=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | str]:
    """Where a store test opens its database: a fresh SQLite file, or a fresh database
    on the session's PostgreSQL (handed back emptied afterwards); each store test runs
    once on each."""
    if request.param == "sqlite":
        yield tmp_path / "refdesk.sqlite3"
        return
    server: PgServer = request.getfixturevalue("postgresql")
    url = server.fresh_url()
    yield url
    server.recycle(url)


async def _session_server(
    kind: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[XmppServer]:
    server = await start_server(kind, tmp_path_factory.mktemp(kind), COMPONENT_DOMAIN, SECRET)
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def prosody_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[XmppServer]:
    """The session's Prosody (each xdist worker has its own), started on first use."""
    async for server in _session_server("prosody", tmp_path_factory):
        yield server


@pytest.fixture(scope="session")
async def ejabberd_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[XmppServer]:
    """The session's ejabberd (each xdist worker has its own), started on first use."""
    async for server in _session_server("ejabberd", tmp_path_factory):
        yield server


@pytest.fixture(params=["prosody", "ejabberd"])
def xmpp_server(request: pytest.FixtureRequest) -> XmppServer:
    """Each test that asks for it runs once on Prosody and once on ejabberd.

    Two session fixtures behind one per-test parameter, rather than one session fixture
    with two parameters: pytest keeps only one parameter of a session fixture alive at a
    time, so under xdist each test file that ran both stopped one server and started the
    other (an ejabberd start is seconds), file after file. Both now start once per worker.
    """
    server: XmppServer = request.getfixturevalue(f"{request.param}_server")
    return server


class _TestTimer:
    """A timer of `TestClock`: it fires when due, or earlier if the test says so, once."""

    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        self.delay = delay
        self.done = False
        self._callback = callback
        self.handle: asyncio.TimerHandle | None = None

    def fire(self) -> None:
        if not self.done:
            self.done = True
            if self.handle is not None:
                self.handle.cancel()
            self._callback()

    def cancel(self) -> None:
        self.done = True
        if self.handle is not None:
            self.handle.cancel()


class TestClock(LoopClock):
    """The service's clock in end-to-end tests: real time and real timers on the event
    loop (the servers on the other side run in real time too), except that a test may pin
    the wall clock with `set`, and bring a timer forward with `fire_now`."""

    def __init__(self) -> None:
        self.fixed: datetime | None = None
        self._timers: list[_TestTimer] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> _TestTimer:
        self._timers = [t for t in self._timers if not t.done]
        timer = _TestTimer(delay, callback)
        timer.handle = asyncio.get_running_loop().call_later(max(0.0, delay), timer.fire)
        self._timers.append(timer)
        return timer

    def fire_now(self, delay: float) -> int:
        """Fire at once every pending timer that was set for `delay` seconds, instead of
        when it falls due; returns how many fired. A test gives a time-out a value of its
        own, long enough never to fall due while the test sets up (an offer time-out of
        1 s ran out on a loaded machine before the test had looked at the first offer),
        and says when it happens."""
        due = [t for t in self._timers if not t.done and t.delay == delay]
        for timer in due:
            timer.fire()
        return len(due)

    def now(self) -> datetime:
        return self.fixed if self.fixed is not None else datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now()

    def set(self, when: datetime) -> None:
        self.fixed = when


class Desk:
    """A running refdesk connected to a test XMPP server, with helpers to add people."""

    def __init__(self, refdesk: Refdesk, server: XmppServer | None, clock: TestClock) -> None:
        self.refdesk = refdesk
        self.server = server
        self.clock = clock
        self.url = f"http://127.0.0.1:{refdesk.port}"
        self.clients: list[OperatorClient] = []
        self.patrons: list[PatronClient] = []

    @property
    def service(self):  # type: ignore[no-untyped-def]
        return self.refdesk.service

    async def add_operator(
        self, queues: tuple[str, ...] = ("ask",), *, name: str | None = None, max_chats: int = 3
    ) -> OperatorClient:
        """Register a fresh account, make it an operator of `queues`, log it in and wait
        until refdesk sees it available."""
        assert self.server is not None
        user = f"op{next(_names)}x{secrets.token_hex(2)}"
        password = secrets.token_hex(8)
        await self.server.register(user, password)
        jid = f"{user}@{self.server.domain}"
        store = self.refdesk.store
        op = await store.operators.upsert(
            jid, name or user.capitalize(), max_chats, datetime.now(UTC)
        )
        for q in queues:
            queue = await store.queues.by_name(q)
            assert queue is not None
            await store.operators.assign(queue.id, op.id)
        await self.service.reload_directory()
        client = OperatorClient(jid, password, self.server.host, self.server.c2s_port)
        await client.connect()
        self.clients.append(client)
        await wait_for(lambda: self.service.presence_of(jid).takes_chats, what=f"{jid} available")
        return client

    async def set_queue(self, name: str, **settings: object) -> None:
        """Change queue settings as the admin page or CLI would, and make them live."""
        store = self.refdesk.store
        queue = await store.queues.by_name(name)
        assert queue is not None
        await store.queues.update(queue.id, QueueUpdate(**settings))
        await self.service.reload_directory()

    async def store_queue(self, name: str) -> Queue:
        queue = await self.refdesk.store.queues.by_name(name)
        assert queue is not None
        return queue

    async def set_on_call(self, queue_name: str, jid: str) -> None:
        store = self.refdesk.store
        queue = await self.store_queue(queue_name)
        op = await store.operators.by_jid(jid)
        assert op is not None
        await store.operators.assign(queue.id, op.id, on_call=True)
        await self.service.reload_directory()

    async def patron(self, queue: str = "ask") -> PatronClient:
        patron = PatronClient(self.url, queue)
        await patron.connect()
        self.patrons.append(patron)
        return patron

    async def close(self) -> None:
        """Called by the desk fixtures at teardown. The people leave at once rather than
        one after another: each operator's polite stream close waits for the server's
        answer (a tenth of a second on ejabberd), and a test may have several."""
        await asyncio.gather(*(p.close() for p in self.patrons))
        await asyncio.gather(*(c.disconnect() for c in self.clients))
        await self.refdesk.stop()


async def wait_for(
    predicate: Callable[[], bool], *, timeout: float = 15.0, what: str = "condition"
) -> None:
    """Poll `predicate` until true; fail the test with `what` otherwise.

    Every 10 ms: the predicates read in-memory state, so a poll costs microseconds, while
    each wait outlasted its event by half the interval on average (25 ms at the former
    50 ms, over several hundred waits a run: every `add_operator` waits once)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def mail_sink() -> Iterator[MailSink]:
    """A real SMTP server (aiosmtpd) that the desk fixtures send to."""
    sink = MailSink()
    sink.start()
    yield sink
    sink.stop()


def pg_storage(server: PgServer) -> StorageConfig:
    """A fresh PostgreSQL database for one desk, with the longest lease: the shipped 3 s
    lets a process starved for 3 s on a loaded machine step down mid-test (rightly: it
    cannot prove it still holds the lock), which these tests are not about. The
    fail-over tests set their own lease. Called by the desk fixtures."""
    return StorageConfig(url=server.fresh_url(), lease=MAX_LEASE)


def _on_postgresql(request: pytest.FixtureRequest) -> bool:
    """Whether a desk fixture puts its data in PostgreSQL: a test marked
    `@pytest.mark.postgresql_store`, or every test when REFDESK_TEST_STORE=postgresql (to
    run chosen modules on PostgreSQL by hand: `REFDESK_TEST_STORE=postgresql pytest
    tests/web/admin`)."""
    if os.environ.get("REFDESK_TEST_STORE") == "postgresql":
        return True
    return request.node.get_closest_marker("postgresql_store") is not None


@pytest.fixture
async def desk(
    xmpp_server: XmppServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    mail_sink: MailSink,
    seeded_templates: SeededTemplates,
) -> AsyncIterator[Desk]:
    """refdesk on the session's XMPP server with queues `ask` and `other`, online.
    `@pytest.mark.chat_config(key=value)` overrides [chat] settings;
    `@pytest.mark.postgresql_store` puts its data in a fresh PostgreSQL database."""
    marker = request.node.get_closest_marker("chat_config")
    desk_marker = request.node.get_closest_marker("desk_config")
    config = make_config(
        tmp_path,
        xmpp_port=xmpp_server.component_port,
        smtp_port=mail_sink.port,
        websocket_url=xmpp_server.websocket_url,
        **(desk_marker.kwargs if desk_marker else {}),
        **(marker.kwargs if marker else {}),
    )
    server: PgServer | None = None
    if _on_postgresql(request):
        server = request.getfixturevalue("postgresql")
        config = replace(config, storage=pg_storage(server))
    await seeded_templates.seed(config.storage.target, ("ask", "other"))
    clock = TestClock()
    refdesk = Refdesk(config, clock=clock)
    await refdesk.start()
    d = Desk(refdesk, xmpp_server, clock)
    try:
        await asyncio.wait_for(refdesk.adapter.online.wait(), 20)
        yield d
    finally:
        await d.close()
    if server is not None:  # the database goes back emptied, for the next test
        server.recycle(config.storage.url)


@pytest.fixture
async def offline_desk(
    tmp_path: Path,
    mail_sink: MailSink,
    request: pytest.FixtureRequest,
    seeded_templates: SeededTemplates,
) -> AsyncIterator[Desk]:
    """refdesk with no XMPP server at all (it keeps trying): for the web side alone.
    `@pytest.mark.desk_config(...)` passes keyword arguments to `make_config`;
    `@pytest.mark.postgresql_store` puts its data in a fresh PostgreSQL database."""
    desk_marker = request.node.get_closest_marker("desk_config")
    config = make_config(
        tmp_path, smtp_port=mail_sink.port, **(desk_marker.kwargs if desk_marker else {})
    )
    server: PgServer | None = None
    if _on_postgresql(request):
        server = request.getfixturevalue("postgresql")
        config = replace(config, storage=pg_storage(server))
    await seeded_templates.seed(config.storage.target)
    clock = TestClock()
    refdesk = Refdesk(config, clock=clock)
    await refdesk.start()
    d = Desk(refdesk, None, clock)
    try:
        yield d
    finally:
        await d.close()
    if server is not None:  # the database goes back emptied, for the next test
        server.recycle(config.storage.url)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    """Debian's Chromium driven by Playwright (never a downloaded browser). Fails, not
    skips, when Chromium is missing."""
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium package")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # Playwright names its own download as `pw.chromium.executable_path` whether or not
        # it is used: check the program actually running instead.
        running = await browser_program(browser)
        if running != DEBIAN_CHROMIUM_PROGRAM:
            await browser.close()
            raise RuntimeError(f"the browser runs {running}, not Debian's Chromium")
        yield browser
        await browser.close()


# What Debian's /usr/bin/chromium (a shell script) starts.
DEBIAN_CHROMIUM_PROGRAM = Path("/usr/lib/chromium/chromium")


async def browser_program(browser: Any) -> Path:
    """The executable of a launched browser's main process, as the kernel sees it (the
    browser names its process ids over the DevTools protocol). Used by the `browser`
    fixture and by the test that shows which Chromium the tests drive."""
    session = await browser.new_browser_cdp_session()
    try:
        info = await session.send("SystemInfo.getProcessInfo")
    finally:
        await session.detach()
    (pid,) = [p["id"] for p in info["processInfo"] if p["type"] == "browser"]
    return Path(os.readlink(f"/proc/{pid}/exe"))


async def full_page_screenshot(page: Any, path: str) -> None:
    """The whole page, below the fold too, as a PNG at `path` (test artifacts for people
    to look at). Through the DevTools protocol with Chromium's faster PNG encoder
    (`optimizeForSpeed`): Playwright's own full-page screenshot took about twice as long,
    half a second on the tallest admin pages of a busy two-core machine."""
    session = await page.context.new_cdp_session(page)
    try:
        size = (await session.send("Page.getLayoutMetrics"))["cssContentSize"]
        shot = await session.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "optimizeForSpeed": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": size["width"],
                    "height": size["height"],
                    "scale": 1,
                },
            },
        )
    finally:
        await session.detach()
    Path(path).write_bytes(base64.b64decode(shot["data"]))


ADMIN_PASSWORD = "correct horse battery staple"


async def admin_account(
    desk: Desk, username: str = "boss", *, role: str = "admin", group: str | None = None
) -> tuple[str, str]:
    """Create an admin page account directly in the store; returns (username, password)."""
    from component.passwords import hash_password

    store = desk.refdesk.store
    group_id = None
    if group is not None:
        found = await store.groups.by_name(group)
        assert found is not None
        group_id = found.id
    # Hashed as the desk's config says, as `refdesk admin add` would.
    hashed = hash_password(ADMIN_PASSWORD, desk.refdesk.config.web.password_hashing)
    await store.accounts.add_admin(username, hashed, role, group_id, datetime.now(UTC))
    return username, ADMIN_PASSWORD


async def admin_page(browser: Any, desk: Desk, username: str, password: str) -> Any:
    """A logged-in admin in a fresh browser context, on the admin home page; returns the
    Playwright page. It logs in with the requests the login form makes (GET for the
    form's CSRF token and cookie, then the POST, in the context's own cookie jar) rather
    than by typing into the form, which cost every admin test two page loads; the form
    itself is driven by tests/web/admin/test_auth.py and the pages' axe tests."""
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    form = await context.request.get(f"{desk.url}/admin/login")
    found = re.search(r'name="csrf" value="([^"]+)"', await form.text())
    assert found is not None, "no CSRF token on the login form"
    answer = await context.request.post(
        f"{desk.url}/admin/login",
        form={"csrf": found.group(1), "username": username, "password": password},
        headers={"Origin": desk.url},
        max_redirects=0,
    )
    assert answer.status in (302, 303), (answer.status, await answer.text())
    page = await context.new_page()
    await page.goto(f"{desk.url}/admin/")
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()
    return page
