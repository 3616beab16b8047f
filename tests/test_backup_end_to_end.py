"""`refdesk backup` while the service runs a chat, and restoring from the copy."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from component.config import LimitsConfig, write_config_toml
from component.core.models import Sender
from component.runner import Refdesk
from tests.conftest import Desk, make_config, wait_for


def _config_for(desk: Desk, tmp: Path) -> Path:
    """A config file for the CLI naming the running desk's database."""
    cfg = desk.refdesk.config
    path = tmp / "refdesk.toml"
    path.write_text(
        write_config_toml(
            {
                "xmpp": {"domain": cfg.xmpp.domain, "secret": cfg.xmpp.secret},
                "storage": {"path": str(cfg.storage.path)},
            }
        ),
        "utf-8",
    )
    path.chmod(0o600)
    return path


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "component.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.desk_config(limits=LimitsConfig(messages_per_second=1000.0, message_burst=1000))
async def test_backup_mid_chat_holds_every_acknowledged_line(desk: Desk, tmp_path: Path) -> None:
    op = await desk.add_operator(name="Ana")
    patron = await desk.patron()
    await patron.say("first question")
    offer = await op.next_message()
    guest = offer["from"].bare
    op.send_message(guest, "Go on.")
    await patron.next("message", lambda f: f["from"] == "operator")

    acked: list[str] = []
    stop = asyncio.Event()

    async def keep_talking() -> None:
        n = 0
        while not stop.is_set() and n < 5000:
            n += 1
            text = f"line {n}"
            await patron.say(text)
            acked.append(text)

    talker = asyncio.create_task(keep_talking())
    await wait_for(lambda: len(acked) >= 5, what="patron lines acknowledged")
    before_backup = list(acked)
    config = _config_for(desk, tmp_path)
    copy = tmp_path / "backups" / "refdesk-copy.sqlite3"
    copy.parent.mkdir()
    status, out, err = await _cli("--config", str(config), "backup", str(copy))
    stop.set()
    await talker
    assert status == 0, err
    assert "integrity ok" in out

    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    db = sqlite3.connect(copy)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        texts = {row[0] for row in db.execute("SELECT text FROM chat_events")}
    finally:
        db.close()
    assert {"first question", "Go on.", *before_backup} <= texts
    assert list(tmp_path.joinpath("backups").iterdir()) == [copy], "no partial file left"

    # An existing file is not overwritten without --force.
    status, _, err = await _cli("--config", str(config), "backup", str(copy))
    assert status != 0
    assert "--force" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    status, out, err = await _cli("--config", str(config), "backup", str(copy), "--force")
    assert status == 0, err

    # Restoring: refdesk starts on the copy and serves the chat's history from it.
    restored_dir = tmp_path / "restored"
    restored_dir.mkdir()
    config_r = make_config(restored_dir)
    copy.replace(config_r.storage.path)
    restored = Refdesk(config_r)
    await restored.start()
    try:
        chats = restored.service.open_chats()
        assert [f"{c.guest}@{config_r.xmpp.domain}" for c in chats] == [guest]
        events = await restored.store.chats.events_after(chats[0].id, 0)
        patron_lines = {e.text for e in events if e.sender is Sender.PATRON}
        assert {"first question", *before_backup} <= patron_lines
    finally:
        await restored.stop()


async def test_backup_of_a_missing_target_directory_is_one_clear_line(
    desk: Desk, tmp_path: Path
) -> None:
    config = _config_for(desk, tmp_path)
    status, _, err = await _cli(
        "--config", str(config), "backup", str(tmp_path / "nowhere" / "copy.sqlite3")
    )
    assert status != 0
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


async def test_backup_refuses_to_overwrite_the_database_itself(desk: Desk, tmp_path: Path) -> None:
    config = _config_for(desk, tmp_path)
    database = desk.refdesk.config.storage.path
    for target in (database, Path(f"{database}-wal")):
        status, _, err = await _cli("--config", str(config), "backup", str(target), "--force")
        assert status != 0
        assert "the database itself" in err and len(err.strip().splitlines()) == 1, err
    # A name beside it is fine.
    status, _, err = await _cli("--config", str(config), "backup", f"{database}.bak")
    assert status == 0, err
    # The service still writes to its own file.
    await desk.refdesk.store.groups.add("after", "After", datetime.now(UTC))
    db = sqlite3.connect(database)
    try:
        assert db.execute("SELECT name FROM groups WHERE name = 'after'").fetchone() == ("after",)
    finally:
        db.close()


@pytest.mark.parametrize("force", [False, True])
async def test_backup_into_a_directory_or_a_missing_one_names_what_was_given(
    tmp_path: Path, force: bool
) -> None:
    """`refdesk backup /var/backups/refdesk` (a directory, as an admin may well type) and a
    target in a directory that does not exist: one line that names the path given and
    what is wrong with it, never the hidden temporary file beside it."""
    path = tmp_path / "refdesk.toml"
    path.write_text(
        write_config_toml(
            {
                "xmpp": {"domain": "desk.example.org", "secret": "s3cret-s3cret"},
                "storage": {"path": str(tmp_path / "refdesk.sqlite3")},
            }
        ),
        "utf-8",
    )
    path.chmod(0o600)
    status, _, err = await _cli("--config", str(path), "group", "add", "central")
    assert status == 0, err
    backups = tmp_path / "backups"
    backups.mkdir()
    extra = ["--force"] if force else []
    status, _, err = await _cli("--config", str(path), "backup", *extra, str(backups))
    assert status != 0
    assert len(err.strip().splitlines()) == 1 and "partial" not in err, err
    assert f"{backups} is a directory" in err, err
    assert list(backups.iterdir()) == []
    missing = tmp_path / "nowhere" / "copy.sqlite3"
    status, _, err = await _cli("--config", str(path), "backup", *extra, str(missing))
    assert status != 0
    assert len(err.strip().splitlines()) == 1 and "partial" not in err, err
    assert f"{missing.parent} does not exist" in err, err
