"""`refdesk store copy --to postgresql://…`: a populated SQLite database moved into a
real PostgreSQL one arrives whole (every row of every table equal), the copy keeps
working as a store (new ids continue after the copied ones), and a target that already
holds data is refused without a change."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from component.cli import main
from component.config import write_config_toml
from component.config_loader import parse_config
from component.core.changes import QueueUpdate
from component.core.models import ChatEvent, EventKind, Sender
from component.doctor import check_postgresql
from component.prosody import free_port
from component.store import Store, StoreError
from tests.component.test_store import T0
from tests.conftest import COMPONENT_DOMAIN, SECRET
from tests.pg_server import PgServer


async def populate(path: Path) -> None:
    """A database with rows in the tables that matter, including a queue whose backup
    queue was created after it (a reference forward within one table)."""
    store = await Store.open(path)
    try:
        group = await store.groups.add("library", "Library", T0)
        first = await store.queues.add("ask", group.id, "Ask", None, T0)
        second = await store.queues.add("night", group.id, "Night", None, T0)
        await store.queues.update(first.id, QueueUpdate(backup_queue_id=second.id))
        ann = await store.operators.upsert("ann@example.org", "Ann", 3, T0)
        await store.operators.assign(first.id, ann.id, on_call=True)
        for n in range(3):
            chat = await store.chats.create(first.id, f"guest-{n}", f"h{n}", None, None, T0)
            for seq in range(1, 4):
                await store.chats.append_event(
                    ChatEvent(
                        chat_id=chat.id,
                        seq=seq,
                        kind=EventKind.MESSAGE,
                        sender=Sender.PATRON,
                        name="Guest",
                        text=f"line {seq} of {n} — ünïcode ✓",
                        ts=T0,
                        client_id=f"c{seq}",
                        operator_jid=None,
                    )
                )
            await store.chats.add_tag(chat.id, "catalogue", ann.id, T0)
    finally:
        await store.close()
    # A stored email: bytes (BLOB) must arrive as the same bytes.
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO mail_outbox (purpose, recipients, message, next_attempt_at, created_at)"
            " VALUES ('transcript', 'a@example.org', ?, ?, ?)",
            (b"From: x\r\n\r\n\x00\xff", T0.isoformat(), T0.isoformat()),
        )


async def dump(store: Store, tables: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a fixed order, for comparing two stores."""
    result = {}
    for table in tables:
        rows = await store.db.all(f"SELECT * FROM {table}")
        result[table] = sorted((tuple(r) for r in rows), key=repr)
    return result


def write_config(tmp: Path) -> Path:
    path = tmp / "refdesk.toml"
    path.write_text(
        write_config_toml(
            {
                "xmpp": {"domain": COMPONENT_DOMAIN, "secret": SECRET},
                "storage": {"path": str(tmp / "refdesk.sqlite3")},
            }
        )
    )
    return path


async def copy(tmp: Path, url: str) -> int:
    """Run `refdesk store copy --to url` in-process (it runs its own event loop, hence
    the thread)."""
    cfg = str(write_config(tmp))
    return await asyncio.to_thread(main, ["--config", cfg, "store", "copy", "--to", url])


async def test_copy_moves_every_row_and_the_copy_serves(
    tmp_path: Path, postgresql: PgServer, capsys: Any
) -> None:
    source_path = tmp_path / "refdesk.sqlite3"
    await populate(source_path)
    url = postgresql.fresh_url()
    assert await copy(tmp_path, url) == 0
    assert "copied" in capsys.readouterr().out

    source = await Store.open(source_path)
    target = await Store.open(url)
    try:
        names = [
            str(r[0])
            for r in await source.db.all(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        assert {"chats", "chat_events", "queues", "mail_outbox"} <= set(names)
        assert await dump(target, names) == await dump(source, names)
        # The copy is a working store: the next ids follow the copied ones.
        group = await target.groups.by_name("library")
        assert group is not None
        third = await target.queues.add("third", group.id, "Third", None, T0)
        assert third.id == 3
    finally:
        await target.close()
        await source.close()


async def test_copy_into_a_database_with_data_is_refused(
    tmp_path: Path, postgresql: PgServer, capsys: Any
) -> None:
    await populate(tmp_path / "refdesk.sqlite3")
    url = postgresql.fresh_url()
    target = await Store.open(url)
    try:
        await target.groups.add("other", "Other", T0)
    finally:
        await target.close()
    assert await copy(tmp_path, url) != 0
    assert "already holds data" in capsys.readouterr().err
    target = await Store.open(url)
    try:
        assert [g.name for g in await target.groups.all()] == ["other"]
        assert await target.queues.all() == []
    finally:
        await target.close()


def test_copy_needs_a_postgresql_url(tmp_path: Path, capsys: Any) -> None:
    cfg = write_config(tmp_path)
    assert main(["--config", str(cfg), "store", "copy", "--to", "/tmp/x.sqlite3"]) != 0
    assert "postgresql://" in capsys.readouterr().err


async def test_an_unreachable_postgresql_is_one_clear_error(
    tmp_path: Path, postgresql: PgServer
) -> None:
    gone = f"postgresql://refdesk:secret@127.0.0.1:{free_port()}/refdesk"
    with pytest.raises(StoreError) as caught:
        await Store.open(gone)
    assert "cannot open the database" in str(caught.value)
    assert "secret" not in str(caught.value)  # the password is never shown


async def test_a_url_naming_the_local_socket_directory_is_taken_and_connects(
    tmp_path: Path, postgresql: PgServer
) -> None:
    """PostgreSQL on the same machine: libpq's form that names the socket directory in the
    query (`postgresql://refdesk@/refdesk?host=/run/postgresql`), which Debian's peer
    authentication lets in without a password, is accepted as `[storage] url` and reaches
    the database (the check behind `check-config --connect`)."""
    name = postgresql.fresh_url().rsplit("/", 1)[1]
    url = (
        f"postgresql://{postgresql.user}@/{name}?host={postgresql.directory}&port={postgresql.port}"
    )
    config = parse_config(
        write_config_toml({"xmpp": {"domain": COMPONENT_DOMAIN, "secret": SECRET}})
        + f'\n[storage]\nurl = "{url}"\n',
        base_dir=tmp_path,
    )
    assert config.storage.url == url
    check = await check_postgresql(config.storage.url)
    assert check.ok, check.line()
