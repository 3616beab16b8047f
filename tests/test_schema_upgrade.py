"""A database made at schema 006 (refdesk 0.1.0) upgrades in place when refdesk starts on
it: every later migration runs against real old data (tests/fixtures/schema-006.sql)."""

from __future__ import annotations

import sqlite3
from html.parser import HTMLParser
from pathlib import Path

import aiohttp

from component.core.models import ChatState, Sender
from component.runner import Refdesk
from component.store import migrations
from tests.conftest import make_config
from tests.fixtures.make_schema_006 import ADMIN_PASSWORD, FIXTURE
from tests.mail_sink import MailSink


def _load_fixture(path: Path) -> None:
    db = sqlite3.connect(path)
    try:
        db.executescript(FIXTURE.read_text("utf-8"))
    finally:
        db.close()


def _schema(db: sqlite3.Connection) -> set[tuple[str, str, str]]:
    return {
        (kind, name, " ".join((sql or "").split()))
        for kind, name, sql in db.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        )
    }


def test_fixture_is_the_schema_of_migrations_1_to_6(tmp_path: Path) -> None:
    fresh = sqlite3.connect(tmp_path / "fresh.sqlite3")
    old = sqlite3.connect(tmp_path / "old.sqlite3")
    try:
        for number, _name, sql in migrations()[:6]:
            fresh.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
        old.executescript(FIXTURE.read_text("utf-8"))
        assert old.execute("PRAGMA user_version").fetchone()[0] == 6
        assert _schema(old) == _schema(fresh)
        assert old.execute("SELECT COUNT(*) FROM chat_events").fetchone()[0] >= 3
    finally:
        fresh.close()
        old.close()


class _Hidden(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.fields[values["name"] or ""] = values.get("value") or ""


async def test_a_schema_006_database_upgrades_in_place_at_start(
    tmp_path: Path, mail_sink: MailSink
) -> None:
    config = make_config(tmp_path, smtp_port=mail_sink.port)
    _load_fixture(config.storage.path)
    refdesk = Refdesk(config)
    await refdesk.start()
    try:
        store = refdesk.store
        assert await store.schema_version() == len(migrations())
        assert await store.ops.integrity_check() == "ok"
        assert {q.name for q in await store.queues.all()} == {"ask", "kids"}
        assert {op.jid for op in await store.operators.all()} == {
            "ana@xmpp.central.example",
            "ben@xmpp.central.example",
        }
        (waiting,) = refdesk.service.open_chats()
        assert waiting.guest == "guest-fixture2" and waiting.state is ChatState.WAITING
        ended = await store.chats.by_id(1)
        assert ended is not None and ended.state is ChatState.ENDED
        texts = [e.text for e in await store.chats.events_after(1, 0) if e.sender is Sender.PATRON]
        assert texts == ["Do you have atlases?", "Thanks ✓ — gracias"]
        (ban,) = await store.bans.all()
        assert ban.network.compressed == "192.0.2.77/32" and ban.reason == "abusive language"
        assert refdesk.service.moderation.banned("192.0.2.77") is not None
        # The old database's pending mail (due long ago) goes out after the upgrade.
        (delivered,) = await mail_sink.wait_for(1)
        assert delivered.rcpt_tos == ["desk@central.example"]
        assert delivered.message["Subject"] == "question"
        # The sink has the message once SMTP DATA is done, a moment before the outbox
        # marks it sent: wait for the outbox's pass in progress (send_due takes its lock).
        assert await refdesk.outbox.send_due() == 0
        assert (await store.ops.outbox_summary()).pending == 0

        # The old admin account logs in on the upgraded database.
        base = f"http://127.0.0.1:{refdesk.port}"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(base + "/api/queues/ask/status") as response:
                assert response.status == 200
            async with http.get(base + "/admin/login") as response:
                parser = _Hidden()
                parser.feed(await response.text())
            form = parser.fields | {"username": "boss", "password": ADMIN_PASSWORD}
            async with http.post(
                base + "/admin/login", data=form, headers={"Origin": base}
            ) as response:
                assert response.status == 200
                assert "Log out" in await response.text()
    finally:
        await refdesk.stop()
