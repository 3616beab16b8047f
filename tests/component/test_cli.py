"""The `refdesk` command line, run as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from component.cli import main
from component.config import write_config_toml
from component.passwords import check_password
from component.prosody import free_port
from tests.conftest import COMPONENT_DOMAIN, SECRET
from tests.xmpp_servers import XmppServer


def write_config(tmp: Path, xmpp_port: int | None = None, web_port: int | None = None) -> Path:
    path = tmp / "refdesk.toml"
    path.write_text(
        write_config_toml(
            {
                "xmpp": {
                    "domain": COMPONENT_DOMAIN,
                    "secret": SECRET,
                    "port": xmpp_port or free_port(),
                    "reconnect_max_delay": 1.0,
                },
                "web": {"port": web_port or free_port(), "password_hashing": "test"},
                "storage": {"path": "db.sqlite3"},
            }
        ),
        "utf-8",
    )
    return path


def refdesk(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "component.cli"]
    if config is not None:
        cmd += ["--config", str(config)]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)


def assert_clean_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_management_commands(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    # Real processes check the config and list operators; the changes go through the same
    # entry point in this process.
    assert refdesk("check-config", config=cfg).returncode == 0
    assert (
        refdesk_here("group", "add", "central", "--title", "Central Library", config=cfg).returncode
        == 0
    )
    r = refdesk_here(
        "queue", "add", "ask", "--group", "central", "--email", "desk@lib.example", config=cfg
    )
    assert r.returncode == 0, r.stderr
    assert refdesk_here("queue", "add", "maps", config=cfg).returncode == 0  # default group
    r = refdesk_here(
        "operator",
        "add",
        "ana@lib.example",
        "--queue",
        "ask",
        "--queue",
        "maps",
        "--max-chats",
        "2",
        config=cfg,
    )
    assert r.returncode == 0, r.stderr
    listing = refdesk("operator", "list", config=cfg).stdout
    assert "ana@lib.example" in listing and "max_chats=2" in listing and "ask,maps" in listing
    queues = refdesk_here("queue", "list", config=cfg).stdout.splitlines()
    assert [q.split("\t")[0] for q in queues] == ["ask", "maps"]
    assert refdesk_here("operator", "remove", "ana@lib.example", config=cfg).returncode == 0
    assert "ana@lib.example" not in refdesk("operator", "list", config=cfg).stdout


def test_a_reader_that_goes_away_ends_the_listing_quietly(tmp_path: Path) -> None:
    """`refdesk queue list | head -1`: the reader closes the pipe before refdesk writes.
    refdesk stops with the status a SIGPIPE would give, and prints no error or traceback
    (it used to print "refdesk: error: Broken pipe" and a traceback at exit)."""
    cfg = write_config(tmp_path)
    for name in ("ask", "maps"):
        assert refdesk_here("queue", "add", name, config=cfg).returncode == 0
    cmd = [sys.executable, "-m", "component.cli", "--config", str(cfg), "queue", "list"]
    read, write = os.pipe()
    os.close(read)  # the reader is gone before refdesk writes its first line
    try:
        result = subprocess.run(cmd, stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert result.returncode == 141, result.stderr
    assert result.stderr == ""


def refdesk_here(*args: str, config: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`refdesk ARGS` through the same entry point (`component.cli.main`) in this process,
    answered like `refdesk` (with `stdin` as its standard input, not a terminal, like a
    pipe): a fresh interpreter per case cost about half a second each."""
    cmd = ["--config", str(config), *args]
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(cmd)
            except SystemExit as exc:  # argparse's own exits
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdin = saved
    return subprocess.CompletedProcess(cmd, code, out.getvalue(), err.getvalue())


def test_bad_arguments_give_one_line_errors(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    assert refdesk_here("queue", "add", "ask", config=cfg).returncode == 0
    # As real processes, once per kind of failure: what `main` turns into one line there
    # depends on which modules that process loaded (argument errors, a directory error,
    # and an operator's address, whose check loads the XMPP library only when it runs).
    assert_clean_error(refdesk("frobnicate", config=cfg), "invalid choice")
    assert_clean_error(refdesk("queue", "add", "ask", config=cfg), "already a queue called")
    assert_clean_error(
        refdesk("operator", "add", "not a jid", "--queue", "ask", config=cfg),
        "not a valid XMPP address",
    )
    # The other refusals, through the same entry point in this process.
    assert_clean_error(refdesk_here(config=cfg), "required")
    assert_clean_error(
        refdesk_here("queue", "add", "Bad Name!", config=cfg), "not a valid queue name"
    )
    assert_clean_error(
        refdesk_here("queue", "add", "guest-x", config=cfg), "not a valid queue name"
    )
    assert_clean_error(
        refdesk_here("queue", "add", "q2", "--group", "nope", config=cfg), "no group"
    )
    assert_clean_error(
        refdesk_here("queue", "add", "q3", "--email", "a\r\nBcc: x", config=cfg),
        "not an email address",
    )
    assert_clean_error(
        refdesk_here("operator", "add", "a@b/res", "--queue", "ask", config=cfg), "bare JID"
    )
    assert_clean_error(
        refdesk_here("operator", "add", "a@b.org", "--queue", "nope", config=cfg), "no queue"
    )
    assert_clean_error(
        refdesk_here(
            "operator", "add", "a@b.org", "--queue", "ask", "--max-chats", "0", config=cfg
        ),
        "from 1 to 50",
    )
    assert_clean_error(refdesk_here("operator", "add", "a@b.org", config=cfg), "--queue")
    assert_clean_error(
        refdesk_here("operator", "remove", "nobody@b.org", config=cfg), "no operator"
    )


def test_directory_commands_do_not_load_the_xmpp_library(tmp_path: Path) -> None:
    # slixmpp took about 45% of a directory command's start-up; only an operator's address
    # needs it, and that check imports it when it runs.
    cfg = write_config(tmp_path)
    probe = (
        "import sys; from component.cli import main; code = main(sys.argv[1:]); "
        "print(code, 'slixmpp' in sys.modules, 'aiohttp' in sys.modules)"
    )
    for args in (("group", "list"), ("queue", "add", "ask"), ("canned", "list", "--queue", "ask")):
        result = subprocess.run(
            [sys.executable, "-c", probe, "--config", str(cfg), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.stdout.splitlines()[-1] == "0 False False", (args, result)


def test_check_config_refuses_a_ws_operator_endpoint_under_https(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    text = cfg.read_text("utf-8").replace(
        "[web]\n", '[web]\npublic_url = "https://ask.example.org"\n'
    )
    cfg.write_text(
        text + '[operator_web]\nwebsocket_url = "ws://xmpp.example.org/xmpp-websocket"\n',
        "utf-8",
    )
    assert_clean_error(refdesk("check-config", config=cfg), "operator_web.websocket_url", "wss://")
    assert_clean_error(refdesk("run", config=cfg), "operator_web.websocket_url", "wss://")


def test_bad_config_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    assert_clean_error(refdesk("check-config", config=missing), "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('[xmpp]\ndomain = "d.example"\nsecret = "s"\nport = "five"\n', "utf-8")
    assert_clean_error(refdesk("check-config", config=bad), "bad.toml:4", "xmpp.port")
    bad.write_text('[xmpp]\ndomain = "d.example"\nsecret = "s"\nsurprise = 1\n', "utf-8")
    assert_clean_error(refdesk("check-config", config=bad), "xmpp.surprise")
    bad.write_text("[xmpp\n", "utf-8")
    assert_clean_error(refdesk("check-config", config=bad), "bad.toml")
    bad.write_bytes(b"\xff\xfe\x00garbage")
    assert_clean_error(refdesk("check-config", config=bad), "bad.toml")
    assert_clean_error(refdesk("run", config=bad), "bad.toml")


async def _run_until_line(proc: asyncio.subprocess.Process, needle: str, timeout: float) -> str:
    assert proc.stderr is not None
    seen = []

    async def read() -> None:
        assert proc.stderr is not None
        while True:
            line = (await proc.stderr.readline()).decode()
            if not line:
                raise AssertionError(f"refdesk exited before {needle!r}: {''.join(seen)}")
            seen.append(line)
            if needle in line:
                return

    await asyncio.wait_for(read(), timeout)
    return "".join(seen)


async def test_run_stops_cleanly_on_ctrl_c(xmpp_server: XmppServer, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, xmpp_port=xmpp_server.component_port)
    assert refdesk("queue", "add", "ask", config=cfg).returncode == 0
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "component.cli",
        "--config",
        str(cfg),
        "run",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await _run_until_line(proc, "is online", 30)
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = err.decode() + out.decode()
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    assert "refdesk stopped" in text
    # The database was closed properly: no WAL left behind to replay.
    assert (
        not (tmp_path / "db.sqlite3-wal").exists()
        or (tmp_path / "db.sqlite3-wal").stat().st_size == 0
    )


def test_queue_settings_canned_messages_and_links(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    for name in ("ask", "backup"):
        assert refdesk_here("queue", "add", name, config=cfg).returncode == 0
    # Real processes for one change, one listing and one refusal of each family; the
    # rest through the same entry point in this process (half a second saved per case).
    r = refdesk(
        "queue",
        "set",
        "ask",
        "--routing",
        "round-robin",
        "--offer-timeout",
        "20",
        "--rollover-after",
        "90",
        "--backup",
        "backup",
        "--hours",
        "mon-fri 09:00-17:00",
        "--timezone",
        "America/Chicago",
        "--closed-days",
        "2026-12-25",
        "--escalation",
        "4 in 10m",
        config=cfg,
    )
    assert r.returncode == 0, r.stderr
    listing = refdesk("queue", "list", config=cfg).stdout
    assert "routing=round-robin" in listing and "backup after 90s" in listing
    assert "America/Chicago" in listing
    assert_clean_error(
        refdesk_here("queue", "set", "ask", "--hours", "fry 09:00-17:00", config=cfg), "fry"
    )
    assert_clean_error(
        refdesk_here("queue", "set", "ask", "--timezone", "Mars/Base", config=cfg), "Mars/Base"
    )
    assert_clean_error(
        refdesk_here("queue", "set", "ask", "--escalation", "lots", config=cfg), "lots"
    )
    assert_clean_error(
        refdesk_here("queue", "set", "ask", "--backup", "ask", config=cfg), "own backup"
    )
    assert_clean_error(
        refdesk_here("queue", "set", "ask", "--offer-timeout", "-1", config=cfg), "positive"
    )
    assert_clean_error(
        refdesk_here("queue", "set", "ask", "--rollover-after", "soon", config=cfg), "not a number"
    )
    assert_clean_error(refdesk_here("queue", "set", "ask", config=cfg), "nothing to change")
    assert_clean_error(refdesk_here("queue", "set", "nope", "--title", "x", config=cfg), "no queue")
    # Titles go into email headers: no encoded words, no line breaks.
    hostile = "=?utf-8?q?Ask=0D=0AX-Injected:_yes?="
    assert_clean_error(refdesk_here("queue", "set", "ask", "--title", hostile, config=cfg), "=?")
    assert_clean_error(refdesk_here("queue", "add", "q2", "--title", hostile, config=cfg), "=?")
    assert_clean_error(
        refdesk_here("queue", "set", "ask", "--title", "Ask\nX-Injected: yes", config=cfg),
        "one line",
    )
    assert_clean_error(refdesk_here("group", "add", "g2", "--title", hostile, config=cfg), "=?")

    assert (
        refdesk_here(
            "canned", "set", "greeting", "Hi from the ask desk!", "--queue", "ask", config=cfg
        ).returncode
        == 0
    )
    canned = refdesk_here("canned", "list", "--queue", "ask", config=cfg).stdout
    assert "greeting\tqueue\tHi from the ask desk!" in canned
    assert "goodbye\tglobal\t" in canned
    assert_clean_error(refdesk("canned", "set", "Bad Name", "x", config=cfg), "not a valid name")
    assert_clean_error(refdesk_here("canned", "set", "x", "\x01", config=cfg), "printable")
    assert (
        refdesk_here("canned", "remove", "greeting", "--queue", "ask", config=cfg).returncode == 0
    )
    assert_clean_error(
        refdesk_here("canned", "remove", "greeting", "--queue", "ask", config=cfg),
        "no canned message",
    )

    assert (
        refdesk_here(
            "group", "link", "default", "Food bank", "https://food.example.org/", config=cfg
        ).returncode
        == 0
    )
    assert (
        "Food bank\thttps://food.example.org/"
        in refdesk_here("group", "links", "default", config=cfg).stdout
    )
    assert_clean_error(
        refdesk_here("group", "link", "default", "x", "javascript:alert(1)", config=cfg),
        "http or https",
    )
    assert_clean_error(
        refdesk_here("group", "link", "nope", "x", "https://a.example/", config=cfg), "no group"
    )
    r = refdesk_here(
        "operator", "add", "olu@lib.example", "--queue", "ask", "--on-call", config=cfg
    )
    assert r.returncode == 0, r.stderr


def test_ban_commands(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    # Real processes for a ban, its listing and one refusal; the rest in this process.
    r = refdesk("ban", "add", "203.0.113.5", "--reason", "spam", config=cfg)
    assert r.returncode == 0, r.stderr
    assert "offence 1" in r.stdout
    listing = refdesk("ban", "list", config=cfg).stdout.splitlines()
    assert len(listing) == 1
    network, offence, start, _end, state, reason = listing[0].split("\t")
    assert network == "203.0.113.5/32" and offence == "offence=1" and state == "active"
    assert start.startswith("start=") and start.endswith("Z") and reason == "reason=spam"
    assert refdesk_here("ban", "lift", "203.0.113.5", config=cfg).returncode == 0
    assert refdesk_here("ban", "list", config=cfg).stdout == ""
    assert "lifted" in refdesk_here("ban", "list", "--all", config=cfg).stdout
    # A lifted ban does not count: the next one is a first offence again, of 7 days here.
    r = refdesk_here("ban", "add", "203.0.113.5", "--reason", "again", "--days", "7", config=cfg)
    assert "offence 1" in r.stdout
    r = refdesk_here("ban", "add", "2001:db8::1", "--reason", "x", "--permanent", config=cfg)
    assert "2001:db8::/64 until permanent" in r.stdout
    for args, needle in [
        (("ban", "add", "0.0.0.0/0", "--reason", "x"), "every IPv4"),
        (("ban", "add", "::/0", "--reason", "x"), "every IPv6"),
        (("ban", "add", "banana", "--reason", "x"), "banana"),
        (("ban", "add", "203.0.113.9", "--reason", ""), "reason"),
        (("ban", "add", "203.0.113.9"), "--reason"),
        (("ban", "add", "203.0.113.9", "--reason", "x", "--days", "0"), "at least 1"),
        (("ban", "add", "203.0.113.9", "--reason", "x", "--days", "3", "--permanent"), "not both"),
        (("ban", "lift", "198.51.100.1"), "No active ban"),
    ]:
        assert_clean_error(refdesk_here(*args, config=cfg), needle)
    assert_clean_error(refdesk("ban", "add", "::/0", "--reason", "x", config=cfg), "every IPv6")
    assert refdesk_here("group", "add", "school", config=cfg).returncode == 0
    assert refdesk_here("group", "exempt", "school", "198.51.100.0/24", config=cfg).returncode == 0
    assert "198.51.100.0/24" in refdesk_here("group", "exempt", "school", config=cfg).stdout
    assert_clean_error(
        refdesk_here("group", "exempt", "school", "nonsense", config=cfg), "nonsense"
    )
    assert (
        refdesk_here(
            "group",
            "set",
            "school",
            "--no-operators-may-ban",
            "--appeal-email",
            "appeals@school.example",
            config=cfg,
        ).returncode
        == 0
    )
    assert "purged 0" in refdesk_here("purge", config=cfg).stdout


def test_admin_accounts(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)

    def process(*args: str, password: str = "") -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "component.cli", "--config", str(cfg), *args]
        return subprocess.run(
            cmd, input=password + "\n", capture_output=True, text=True, timeout=60
        )

    def run(*args: str, password: str = "") -> subprocess.CompletedProcess[str]:
        return refdesk_here(*args, config=cfg, stdin=password + "\n")

    # A real process reads the password from a pipe once, and refuses once; the other
    # cases go through the same entry point in this process.
    assert process("admin", "add", "boss", password="a long enough password").returncode == 0
    assert check_password(_stored_hash(tmp_path, "boss"), "a long enough password")
    assert_clean_error(process("admin", "add", "boss", password="another long one"), "already")
    assert_clean_error(run("admin", "add", "shorty", password="short"), "at least 10")
    assert_clean_error(
        run("admin", "add", "bad name!", password="a long password"), "not a valid username"
    )
    assert_clean_error(
        run("admin", "add", "coord", "--role", "coordinator", password="a long password"),
        "needs --group",
    )
    assert refdesk_here("group", "add", "east", config=cfg).returncode == 0
    r = run(
        "admin",
        "add",
        "coord",
        "--role",
        "coordinator",
        "--group",
        "east",
        password="a long password",
    )
    assert r.returncode == 0, r.stderr
    assert run("admin", "list").stdout.splitlines() == [
        "boss\tadmin",
        "coord\tcoordinator\tgroup=east",
    ]
    assert run("admin", "password", "boss", password="a brand new password").returncode == 0
    stored = _stored_hash(tmp_path, "boss")
    assert stored.startswith("$argon2id$") and check_password(stored, "a brand new password")
    assert run("admin", "remove", "coord").returncode == 0
    assert_clean_error(run("admin", "remove", "coord"), "no account")


def _stored_hash(tmp: Path, username: str) -> str:
    """The password hash `admin add` / `admin password` stored (read straight from the
    database the config names)."""
    with contextlib.closing(sqlite3.connect(tmp / "db.sqlite3")) as db:
        row = db.execute("SELECT password_hash FROM admins WHERE username = ?", (username,))
        found = row.fetchone()
    assert found is not None
    return str(found[0])


def test_check_config_fails_on_the_example_secret_left_in_place(tmp_path: Path) -> None:
    """A sysadmin following the README copies config.example.toml: check-config said "OK"
    with the example's published component secret still in it."""
    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    cfg = tmp_path / "refdesk.toml"
    cfg.write_text(example.read_text("utf-8"), "utf-8")
    result = refdesk("check-config", config=cfg)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "xmpp.secret" in result.stderr and "example" in result.stderr, result.stderr
    # With a secret of its own, the same file is fine.
    cfg.write_text(
        example.read_text("utf-8").replace(
            'secret = "change-me-to-a-long-random-string"', 'secret = "Vq2-a-real-secret-9x"'
        ),
        "utf-8",
    )
    assert refdesk("check-config", config=cfg).returncode == 0


def test_numbers_beyond_any_date_are_clean_errors(tmp_path: Path) -> None:
    """A ban of 10**20 days and an escalation window of 10**20 minutes ended in a
    traceback (OverflowError from the date arithmetic) instead of the one-line error."""
    cfg = write_config(tmp_path)
    assert refdesk_here("group", "add", "central", config=cfg).returncode == 0
    assert refdesk_here("queue", "add", "ask", "--group", "central", config=cfg).returncode == 0
    huge = "99999999999999999999"
    assert_clean_error(
        refdesk("ban", "add", "203.0.113.9", "--reason", "x", "--days", huge, config=cfg),
        "--days",
    )
    for rule in (f"4 in {huge}m", f"4 in {huge}h", f"{huge} in 10m"):
        assert_clean_error(
            refdesk_here("queue", "set", "ask", "--escalation", rule, config=cfg), "large"
        )


def test_group_list_shows_coordinators_and_referral_domains(tmp_path: Path) -> None:
    """A sysadmin checking who hears of a group's bans, and where `!refer` may send,
    reads both in `group list` (a group without them shows '-')."""
    cfg = write_config(tmp_path)
    assert refdesk_here("group", "add", "central", config=cfg).returncode == 0
    assert refdesk_here("group", "add", "plain", config=cfg).returncode == 0
    r = refdesk_here(
        "group",
        "set",
        "central",
        "--coordinator-email",
        "head@lib.example,deputy@lib.example",
        "--referral-domains",
        "lib.example,uni.example",
        config=cfg,
    )
    assert r.returncode == 0, r.stderr
    rows = {
        line.split("\t")[0]: line.split("\t")
        for line in refdesk_here("group", "list", config=cfg).stdout.splitlines()
    }
    assert "coordinators=head@lib.example,deputy@lib.example" in rows["central"]
    assert "referral_domains=lib.example,uni.example" in rows["central"]
    assert "coordinators=-" in rows["plain"] and "referral_domains=-" in rows["plain"]


def test_sticky_list_and_clear(tmp_path: Path) -> None:
    """`refdesk sticky list` shows the marks in force with who set them and when; `sticky
    clear ID` forgets one (the same path as the admin page); bad numbers are one line."""
    from datetime import UTC, datetime, timedelta

    from component.store import Store

    cfg = write_config(tmp_path)
    assert refdesk_here("group", "add", "central", config=cfg).returncode == 0

    async def seed() -> None:
        store = await Store.open(tmp_path / "db.sqlite3")
        try:
            now = datetime.now(UTC)
            for key, when in (("203.0.113.9", now), ("198.51.100.0/24", now - timedelta(days=2))):
                await store.sticky.remember(
                    key=key,
                    operator_jid="ana@lib.example",
                    chat_id=7,
                    why="ended with !ban",
                    now=when,
                    expires_at=when + timedelta(days=1),
                )
        finally:
            await store.close()

    asyncio.run(seed())
    lines = refdesk_here("sticky", "list", config=cfg).stdout.splitlines()
    assert len(lines) == 1  # the other one has expired
    fields = lines[0].split("\t")
    assert fields[1:4] == ["203.0.113.9", "operator=ana@lib.example", "why=ended with !ban"]
    assert fields[4].startswith("set=") and fields[4].endswith("Z")
    # The mark's chat is not in the group's queues.
    assert refdesk_here("sticky", "list", "--group", "central", config=cfg).stdout == ""
    assert_clean_error(refdesk_here("sticky", "list", "--group", "nope", config=cfg), "no group")
    for bad in ("0", "x", "99999999999999999999999"):
        assert_clean_error(refdesk_here("sticky", "clear", bad, config=cfg), "record number")
    r = refdesk_here("sticky", "clear", fields[0], config=cfg)
    assert r.returncode == 0 and "cleared mark" in r.stdout
    assert refdesk_here("sticky", "list", config=cfg).stdout == ""
    assert_clean_error(refdesk_here("sticky", "clear", fields[0], config=cfg), "no sticky")


def test_a_standby_waiting_for_the_database_stops_on_sigterm(tmp_path: Path) -> None:
    """`refdesk run` on a PostgreSQL store it cannot take (here: nothing listens) waits to
    become active; SIGTERM (systemd's stop) must end it cleanly then too, not only once
    it serves: the signal used to be noted and never looked at until start-up finished."""
    cfg = write_config(tmp_path)
    text = cfg.read_text("utf-8").replace(
        'path = "db.sqlite3"', 'url = "postgresql://refdesk@127.0.0.1:1/refdesk"'
    )
    cfg.write_text(text, "utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "component.cli", "--config", str(cfg), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if "waiting to become active" in line:
                break
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = "".join(seen) + rest
    assert process.returncode == 0, output
    assert "Traceback" not in output
