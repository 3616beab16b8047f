"""`refdesk queue set --feedback on|off`, run as a real process."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.component.test_cli import refdesk, write_config


def stored_feedback(db: Path, queue: str) -> int:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT feedback FROM queues WHERE name = ?", (queue,)).fetchone()
    return int(row[0])


def test_queue_feedback_flag(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    db = tmp_path / "db.sqlite3"
    assert refdesk("queue", "add", "ask", config=cfg).returncode == 0
    assert stored_feedback(db, "ask") == 0  # off unless asked for

    r = refdesk("queue", "set", "ask", "--feedback", "on", config=cfg)
    assert r.returncode == 0, r.stderr
    assert "feedback" in r.stdout
    assert stored_feedback(db, "ask") == 1
    r = refdesk("queue", "set", "ask", "--feedback", "off", config=cfg)
    assert r.returncode == 0, r.stderr
    assert stored_feedback(db, "ask") == 0

    for bad in ("yes", "1", "", "ON"):
        r = refdesk("queue", "set", "ask", "--feedback", bad, config=cfg)
        assert r.returncode == 2, bad
        assert "invalid choice" in r.stderr and "Traceback" not in r.stderr
    assert stored_feedback(db, "ask") == 0
