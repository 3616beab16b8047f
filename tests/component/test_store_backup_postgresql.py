"""`refdesk backup FILE` on a PostgreSQL store: a live store with chats being written is
backed up as a refdesk SQLite file from one snapshot, the file is restored by `refdesk
store copy --from FILE` into a fresh database, and every table arrives equal. Hostile
targets (an existing file, a path nobody can write, a restore into a database with data)
are refused with one clear line and change nothing."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
from pathlib import Path
from typing import Any

from component.cli import main
from component.config import write_config_toml
from component.core.models import ChatEvent, EventKind, Sender
from component.store import Store
from tests.component.test_store import T0
from tests.component.test_store_copy import dump, populate
from tests.conftest import COMPONENT_DOMAIN, SECRET
from tests.pg_server import PgServer


def _config(tmp: Path, url: str) -> str:
    path = tmp / "refdesk-pg.toml"
    path.write_text(
        write_config_toml(
            {"xmpp": {"domain": COMPONENT_DOMAIN, "secret": SECRET}, "storage": {"url": url}}
        )
    )
    path.chmod(0o600)
    return str(path)


async def _cli(*argv: str) -> int:
    """The CLI in-process (it runs its own event loop, hence the thread)."""
    return await asyncio.to_thread(main, list(argv))


async def _tables(store: Store) -> list[str]:
    rows = await store.db.all(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        " AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'refdesk%'"
    )
    return sorted(str(r[0]) for r in rows)


def _line(chat_id: int, seq: int) -> ChatEvent:
    return ChatEvent(
        chat_id=chat_id,
        seq=seq,
        kind=EventKind.MESSAGE,
        sender=Sender.PATRON,
        name="Guest",
        text=f"live line {seq}",
        ts=T0,
        client_id=f"live{seq}",
        operator_jid=None,
    )


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


async def test_backup_of_a_live_postgresql_store_restores_every_table(
    tmp_path: Path, postgresql: PgServer, capsys: Any
) -> None:
    # A database with rows in every table that matters (a BLOB, a queue referring to a
    # later queue, tagged chats), moved into PostgreSQL the documented way.
    await populate(tmp_path / "refdesk.sqlite3")
    url = postgresql.fresh_url()
    seeded = tmp_path / "seed.toml"
    seeded.write_text(
        write_config_toml(
            {
                "xmpp": {"domain": COMPONENT_DOMAIN, "secret": SECRET},
                "storage": {"path": str(tmp_path / "refdesk.sqlite3")},
            }
        )
    )
    assert await _cli("--config", str(seeded), "store", "copy", "--to", url) == 0
    config = _config(tmp_path, url)
    backups = tmp_path / "backups"
    backups.mkdir()
    copy = backups / "refdesk.sqlite3"

    live = await Store.open(url)
    try:
        queue = await live.queues.by_name("ask")
        assert queue is not None
        chat = await live.chats.create(queue.id, "guest-live", "hl", None, None, T0)
        written: list[int] = []
        stop = asyncio.Event()

        async def keep_writing() -> None:
            seq = 0
            while not stop.is_set() and seq < 20000:
                seq += 1
                await live.chats.append_event(_line(chat.id, seq))
                await live.commits.flush()
                written.append(seq)

        writer = asyncio.create_task(keep_writing())
        while len(written) < 5:
            await asyncio.sleep(0.01)
        before = len(written)
        status = await _cli("--config", config, "backup", str(copy))
        stop.set()
        await writer
        captured = capsys.readouterr()
        assert status == 0, captured.err
        assert "integrity ok" in captured.out

        # One snapshot: the live chat's lines in the copy are exactly 1..n, every line
        # committed before the backup began among them.
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        with sqlite3.connect(copy) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            seqs = [
                int(r[0])
                for r in db.execute(
                    "SELECT seq FROM chat_events WHERE chat_id = ? ORDER BY seq", (chat.id,)
                )
            ]
        db.close()
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= before
        assert list(backups.iterdir()) == [copy], "no partial file left"

        # Quiet now: a second backup, restored into a fresh database, equals the live one
        # table by table, row by row.
        assert await _cli("--config", config, "backup", "--force", str(copy)) == 0
        restored_url = postgresql.fresh_url()
        assert (
            await _cli(
                "--config", config, "store", "copy", "--from", str(copy), "--to", restored_url
            )
            == 0
        )
        restored = await Store.open(restored_url)
        try:
            names = await _tables(live)
            assert {"chats", "chat_events", "queues", "mail_outbox", "canned_messages"} <= set(
                names
            )
            assert await _tables(restored) == names
            assert await dump(restored, names) == await dump(live, names)
            # The restored database is a working store: new ids follow the copied ones.
            group = await restored.groups.by_name("library")
            assert group is not None
            again = await restored.chats.create(queue.id, "guest-new", "hn", None, None, T0)
            assert again.id == chat.id + 1
        finally:
            await restored.close()

        # Restoring over a database that holds data is refused, and changes nothing.
        capsys.readouterr()
        before_rows = await dump(live, names)
        status = await _cli("--config", config, "store", "copy", "--from", str(copy), "--to", url)
        assert status != 0
        assert "already holds data" in _one_line(capsys.readouterr().err)
        assert await dump(live, names) == before_rows
    finally:
        await live.close()


async def test_hostile_backup_targets_on_postgresql_are_one_clear_line(
    tmp_path: Path, postgresql: PgServer, capsys: Any
) -> None:
    url = postgresql.fresh_url()
    config = _config(tmp_path, url)
    store = await Store.open(url)
    try:
        await store.groups.add("library", "Library", T0)
    finally:
        await store.close()
    existing = tmp_path / "existing.sqlite3"
    existing.write_bytes(b"precious")
    assert await _cli("--config", config, "backup", str(existing)) != 0
    assert "--force" in _one_line(capsys.readouterr().err)
    assert existing.read_bytes() == b"precious"

    # /sys refuses new files even to root.
    assert await _cli("--config", config, "backup", "/sys/refdesk-backup.sqlite3") != 0
    assert "cannot write in /sys" in _one_line(capsys.readouterr().err)

    assert await _cli("--config", config, "backup", str(tmp_path)) != 0
    assert "is a directory" in _one_line(capsys.readouterr().err)
    assert await _cli("--config", config, "backup", str(tmp_path / "no" / "x.sqlite3")) != 0
    assert "does not exist" in _one_line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.sqlite3", "refdesk-pg.toml"]
