"""The store's shape: every SQL statement and every database connection lives in
`component/store/`, and `Store` is a plain object holding one sub-store per concept
(no mixins, no class hierarchy to read through)."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from component.store import Store
from component.store.db import Database

ROOT = Path(__file__).resolve().parent.parent
STORE_DIR = ROOT / "component" / "store"
# The start of an SQL statement in a string literal (refdesk writes SQL in capitals).
SQL = re.compile(
    r"^\s*(SELECT\s|INSERT\s+(OR\s+\w+\s+)?INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|PRAGMA\s"
    r"|BEGIN\b|CREATE\s+(TABLE|INDEX)\s)"
)


def outside_the_store() -> list[Path]:
    files = [*(ROOT / "component").rglob("*.py"), *(ROOT / "web").rglob("*.py")]
    return sorted(f for f in files if STORE_DIR not in f.parents)


def test_no_sql_and_no_connection_outside_the_store() -> None:
    found = []
    for path in outside_the_store():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if SQL.match(node.value):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: SQL")
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                if any(n.split(".")[0] in ("sqlite3", "aiosqlite") for n in names):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: database import")
    assert not found, "\n".join(found)


def test_the_scan_sees_sql() -> None:
    # The pattern must recognise what the store writes, or the test above proves nothing.
    for statement in (
        "SELECT * FROM chats",
        "INSERT OR IGNORE INTO chat_tags (chat_id) VALUES (?)",
        "UPDATE chats SET state = ? WHERE id = ?",
        "DELETE FROM bans WHERE id = ?",
        "PRAGMA user_version",
    ):
        assert SQL.match(statement), statement
    assert not SQL.match("Select a queue to see its chats.")


def test_store_is_a_plain_object_of_sub_stores() -> None:
    assert Store.__bases__ == (object,)
    store = Store.__new__(Store)
    Store.__init__(store, Database.__new__(Database))
    subs = {name: value for name, value in vars(store).items() if name != "db"}
    assert {"groups", "queues", "operators", "chats", "bans", "mail"} <= set(subs)
    for name, sub in subs.items():
        cls = type(sub)
        assert cls.__bases__ == (object,), f"store.{name} is a {cls.__name__} with bases"
        source = Path(inspect.getfile(cls))
        assert source.parent == STORE_DIR, f"store.{name} is defined outside the store"


def test_one_statement_puts_mail_in_the_outbox() -> None:
    # Every email (follow-up, ticket, transcript, a contact draft) goes through
    # `component.store.mail.enqueue_in`, so the outbox row's columns cannot drift apart
    # between the sub-stores that queue mail inside their own transactions.
    found = [
        str(path.relative_to(ROOT))
        for path in sorted(STORE_DIR.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.match(r"\s*INSERT\s+INTO\s+mail_outbox\b", node.value)
    ]
    assert found == ["component/store/mail.py"], found
