"""A `[storage] url` (or `store copy --to`) password never reaches the terminal or the
logs: every command that quotes the URL or a driver's error about it is run as a real
process against a PostgreSQL address where nothing listens, with URLs written in each way
that carries a password (user part, empty user name, an "@" inside the password, a
`password` query parameter)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from component.config import write_config_toml
from component.core.redact import redacted_url, scrub, url_secrets
from component.prosody import free_port
from component.store.pg import safe_url
from tests.conftest import COMPONENT_DOMAIN, SECRET

PASSWORD = "Hunter2pw"
# Port 1 on loopback: nothing listens, so every connection attempt fails at once.
URLS = [
    f"postgresql://ann:{PASSWORD}@127.0.0.1:1/refdesk",
    f"postgresql://:{PASSWORD}@127.0.0.1:1/refdesk",
    "postgresql://ann:Hun@ter2pw@127.0.0.1:1/refdesk",
    f"postgresql://ann@127.0.0.1:1/refdesk?password={PASSWORD}&sslmode=disable",
    f"postgres://ann:{PASSWORD}@127.0.0.1:1/refdesk?sslmode=bogus",
]
# What must never appear: the password, and its part after an "@" (a parser that stops at
# the first "@" would show that part).
NEEDLES = (PASSWORD, "ter2pw")


def _config(tmp: Path, storage: dict[str, object]) -> Path:
    path = tmp / "refdesk.toml"
    path.write_text(
        write_config_toml(
            {
                "xmpp": {"domain": COMPONENT_DOMAIN, "secret": SECRET, "port": free_port()},
                "web": {"port": free_port(), "password_hashing": "test"},
                "storage": storage,
            }
        ),
        "utf-8",
    )
    return path


def _refdesk(config: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "component.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0, (args, result)
    return result.stdout + result.stderr


def _assert_hidden(text: str, what: object) -> None:
    for needle in NEEDLES:
        assert needle not in text, (what, text)


def test_the_redaction_rules() -> None:
    for url in URLS:
        _assert_hidden(redacted_url(url), url)
        assert redacted_url(url).endswith(("refdesk", "disable", "bogus")), redacted_url(url)
        _assert_hidden(scrub(f"could not connect to {url}", url_secrets(url)), url)
    assert redacted_url("postgresql://ann:pw@db.example/x") == "postgresql://ann:***@db.example/x"
    assert redacted_url("postgresql://db.example/x") == "postgresql://db.example/x"
    assert url_secrets("postgresql://ann:p%40ss@db/x") == ("p%40ss", "p@ss")


def test_the_store_quotes_urls_by_the_same_rules() -> None:
    """The store's own messages (the active lock, the listener, open errors) use
    `safe_url`; it must hide what `redacted_url` hides (it once kept an empty user name's
    password, an "@" inside one, and a `password` parameter)."""
    for url in URLS:
        _assert_hidden(safe_url(url), url)
        assert safe_url(url) == redacted_url(url)


@pytest.mark.parametrize("url", URLS)
def test_commands_against_an_unreachable_database_never_show_the_password(
    tmp_path: Path, url: str
) -> None:
    config = _config(tmp_path, {"url": url})
    for args in (["check-config", "--connect"], ["purge"], ["backup", str(tmp_path / "b")]):
        _assert_hidden(_refdesk(config, *args), args)


@pytest.mark.parametrize("url", URLS)
def test_a_refused_url_is_shown_without_its_password(tmp_path: Path, url: str) -> None:
    # A mistyped scheme: the refusal quotes the URL.
    config = _config(tmp_path, {"url": "x" + url})
    output = _refdesk(config, "check-config")
    assert "storage.url" in output
    _assert_hidden(output, "check-config")


@pytest.mark.parametrize("url", URLS)
def test_store_copy_never_shows_the_target_password(tmp_path: Path, url: str) -> None:
    config = _config(tmp_path, {"path": "db.sqlite3"})
    # The SQLite database to copy from (nothing to purge: it is only created).
    subprocess.run(
        [sys.executable, "-m", "component.cli", "--config", str(config), "purge"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    _assert_hidden(_refdesk(config, "store", "copy", "--to", url), "store copy")


@pytest.mark.parametrize(
    ("url", "log_format"), [(url, "text") for url in URLS[:3]] + [(URLS[1], "json")]
)
def test_the_service_log_never_shows_the_password(
    tmp_path: Path, url: str, log_format: str
) -> None:
    """`refdesk run` waits for the database (it cannot take the active lock) and logs
    why; the line is read, then the process is killed."""
    config = _config(tmp_path, {"url": url})
    config.write_text(config.read_text("utf-8") + f'[log]\nformat = "{log_format}"\n', "utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "component.cli", "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    try:
        assert process.stdout is not None
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "waiting to become active" in line:
                break
    finally:
        process.kill()
        process.wait()
    text = "".join(seen)
    assert "waiting to become active" in text, text
    _assert_hidden(text, "run")
