"""Hostile input to the configuration loader and the command line (a standing suite).

Property-based: hypothesis writes malformed, oversized and adversarial config files
(bytes that are not UTF-8, broken TOML, wrong types, unknown keys, huge strings and
numbers, control and line-separator characters, deep nesting) and adversarial arguments
for every management subcommand. Whatever it writes, refdesk must answer with one clear
line on standard error and a non-zero exit (or accept the input), never a traceback.

The loader and `main(argv)` run in-process (fast enough for many examples); a few cases
also run the installed `refdesk` script as a real process. Example counts are modest so
the suite can stay in CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import string
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from component.cli import main
from component.config import ConfigError, iter_settings
from component.config_loader import load_config, parse_config
from component.core.bans import Ban
from component.core.text import one_line
from component.store import Store

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
REQUIRED = '[xmpp]\ndomain = "desk.example.org"\nsecret = "s3cret"\n'
KNOWN = [name for name, _ in iter_settings()]
SECTIONS = sorted({name.split(".")[0] for name in KNOWN})


def assert_one_line(message: str) -> None:
    """A message a person can read in a terminal: one line, nothing unprintable."""
    assert message, "empty error message"
    assert "Traceback" not in message
    assert len(message.splitlines()) == 1, repr(message)
    assert message.isprintable(), repr(message)


# Values and documents ------------------------------------------------------------------

# Text that makes trouble: line breaks of every kind, C0/C1 controls, terminal escapes,
# bidirectional overrides, non-characters, quotes and backslashes.
NASTY_CHARS = "\n\r\t\x00\x01\x08\x0b\x0c\x1b\x1c\x7f\x85\x9b\u2028\u2029\u202e\ufeff\ufffe\"'\\"
nasty_text = st.text(
    alphabet=st.one_of(st.sampled_from(NASTY_CHARS), st.characters(codec="utf-8")),
    max_size=40,
)
huge_text = st.builds(lambda ch, n: ch * n, st.sampled_from("a\n\x85é€"), st.integers(1, 200_000))


def toml_string(text: str) -> str:
    """`text` as a TOML basic string (every character escaped that TOML asks for)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(depth: int = 3) -> st.SearchStrategy[str]:
    """Any TOML value as text: scalars of every type, dates, arrays and inline tables."""
    scalars = st.one_of(
        st.booleans().map(lambda b: "true" if b else "false"),
        st.integers(-(2**70), 2**70).map(str),
        st.sampled_from(["inf", "-inf", "nan", "1e400", "-0.0", "0x7FFFFFFFFFFFFFFF", "0o777"]),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        nasty_text.map(toml_string),
        huge_text.map(toml_string),
        st.sampled_from(["1979-05-27T07:32:00Z", "1979-05-27", "07:32:00", "''", '""""""']),
    )
    if depth == 0:
        return scalars
    inner = toml_value(depth - 1)
    return st.one_of(
        scalars,
        st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.dictionaries(st.sampled_from(["a", "b", "port", "x"]), inner, max_size=3).map(
            lambda d: "{" + ", ".join(f"{k} = {v}" for k, v in d.items()) + "}"
        ),
    )


key_name = st.one_of(
    st.sampled_from([name.split(".")[1] for name in KNOWN]),
    st.text(alphabet=string.ascii_letters + "_-", min_size=1, max_size=20),
    nasty_text.filter(bool).map(toml_string),
)


@st.composite
def config_documents(draw: st.DrawFn) -> str:
    """A syntactically valid TOML file shaped like a config, with adversarial contents."""
    lines = [] if draw(st.booleans()) else [REQUIRED]
    for _ in range(draw(st.integers(1, 5))):
        section = draw(st.one_of(st.sampled_from(SECTIONS), key_name))
        lines.append(f"[{section}]")
        for key in draw(st.lists(key_name, max_size=4, unique=True)):
            lines.append(f"{key} = {draw(toml_value())}")
    return "\n".join(lines) + "\n"


def deep(kind: str, depth: int) -> str:
    if kind == "array":
        return "[" * depth + "]" * depth
    if kind == "table":
        return "{a = " * depth + "1" + "}" * depth
    return "a." * depth + "b = 1"  # dotted keys


@contextlib.contextmanager
def config_file(content: bytes) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "refdesk.toml"
        path.write_bytes(content)
        path.chmod(0o600)  # as documented; a looser mode adds a (correct) warning line
        yield path


def load_or_error(content: bytes) -> str | None:
    """Load a config file; None if it is valid, else the error message."""
    with config_file(content) as path:
        try:
            load_config(path)
        except ConfigError as exc:
            return str(exc)
    return None


# The config loader ----------------------------------------------------------------------


@SETTINGS
@given(
    st.text(
        alphabet=st.one_of(
            st.characters(),
            st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
            st.sampled_from(NASTY_CHARS),
        )
    )
)
def test_one_line_is_one_printable_line(text: str) -> None:
    """The escaping every error message goes through."""
    shown = one_line(text)
    assert shown.isprintable()
    assert len(shown.splitlines()) <= 1
    if text.isprintable():
        assert shown == text


@SETTINGS
@given(st.binary(max_size=2000))
@example(b"\xff\xfe\x00garbage")
@example(b'[xmpp]\ndomain = "d\xc3"\n')
@example(REQUIRED.encode() + b'port = "\xed\xa0\x80"\n')  # an encoded lone surrogate
def test_any_bytes(content: bytes) -> None:
    message = load_or_error(content)
    if message is not None:
        assert_one_line(message)


@SETTINGS
@given(config_documents())
@example(REQUIRED + '[web]\nport = "\\u2028\\u0085\\u001b[31m"\n')
@example(REQUIRED + '"\\n[evil]" = 1\n')
@example(REQUIRED + "[chat]\nresume_ttl = 1e400\n")
@example(REQUIRED + "[chat]\nmax_message_chars = " + "9" * 5000 + "\n")
def test_adversarial_documents(document: str) -> None:
    message = load_or_error(document.encode("utf-8"))
    if message is not None:
        assert_one_line(message)
        assert len(message) < 2000, len(message)


@pytest.mark.parametrize("kind", ["array", "table", "dotted"])
@pytest.mark.parametrize("depth", [50, 1000, 100_000])
def test_deep_nesting(kind: str, depth: int) -> None:
    message = load_or_error((REQUIRED + f"[web]\nport = {deep(kind, depth)}\n").encode())
    assert message is not None
    assert_one_line(message)


@SETTINGS
@given(st.sampled_from(KNOWN), toml_value())
def test_every_setting_refuses_wrong_values_clearly(name: str, value: str) -> None:
    section, key = name.split(".")
    xmpp = {"domain": '"desk.example.org"', "secret": '"s3cret"'}
    if section == "xmpp":
        xmpp[key] = value
    lines = ["[xmpp]", *(f"{k} = {v}" for k, v in xmpp.items())]
    if section != "xmpp":
        lines += [f"[{section}]", f"{key} = {value}"]
    document = "\n".join(lines) + "\n"
    try:
        parse_config(document, source="hostile.toml")
    except ConfigError as exc:
        assert_one_line(str(exc))
        assert name in str(exc) or "invalid TOML" in str(exc), str(exc)


def test_a_secret_is_never_echoed() -> None:
    document = '[xmpp]\ndomain = "desk.example.org"\nsecret = ["hunter2-secret"]\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(document)
    assert "hunter2" not in str(caught.value)


# The command line, in-process ---------------------------------------------------------------


def run_main(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    """`refdesk ARGV` in this process: exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's own exits (usage errors, --help)
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdin = saved
    return code, out.getvalue(), err.getvalue()


def assert_clean(code: int, out: str, err: str) -> None:
    """Accepted, or refused with one line: never a traceback."""
    assert "Traceback" not in out + err
    if code != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert lines[0].startswith("refdesk"), lines[0]
        assert lines[0].isprintable(), repr(lines[0])


@pytest.fixture(scope="module")
def desk_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config with a group, a queue, an operator and an admin, for the CLI runs."""
    folder = tmp_path_factory.mktemp("hostile-cli")
    path = folder / "refdesk.toml"
    path.write_text(REQUIRED + '[storage]\npath = "db.sqlite3"\n', "utf-8")
    cfg = ["--config", str(path)]
    for argv in (
        ["group", "add", "central"],
        ["queue", "add", "ask", "--group", "central"],
        ["operator", "add", "ana@example.org", "--queue", "ask"],
    ):
        assert run_main(cfg + argv)[0] == 0, argv
    assert run_main([*cfg, "admin", "add", "boss"], "a long enough password\n")[0] == 0
    return path


# Argument values that make trouble: options, empties, huge, controls, non-UTF-8 bytes
# (which Python hands over as lone surrogates), numbers at the edges, addresses.
hostile_arg = st.one_of(
    nasty_text,
    st.text(alphabet=st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF), min_size=1),
    huge_text,
    st.sampled_from(
        [
            "", "-", "--", "--help=x", "-x", "0", "-1", "1e9", "99999999999999999999", "nan",
            "inf", "ask", "central", "ana@example.org", "none", "off", "::", "0.0.0.0/0",
            "::/0", "2001:db8::/129", "256.1.1.1", "1.2.3.4/33", "a@b/c", "@", "x" * 3000,
            "mon-fri 09:00-17:00", "Nowhere/Zone", "4 in 10m", "99999 in 0m", "2026-02-30",
        ]
    ),
)  # fmt: skip

# (subcommand words, how many free values it takes, options that take a value)
COMMANDS: list[tuple[list[str], int, list[str]]] = [
    (["group", "add"], 1, ["--title"]),
    (["group", "link"], 3, []),
    (["group", "links"], 1, []),
    (["group", "set"], 1, ["--title", "--appeal-email"]),
    (["group", "exempt"], 2, []),
    (["queue", "add"], 1, ["--group", "--email", "--title"]),
    (
        ["queue", "set"],
        1,
        [
            "--title",
            "--email",
            "--routing",
            "--offer-timeout",
            "--rollover-after",
            "--backup",
            "--hours",
            "--timezone",
            "--closed-days",
            "--escalation",
        ],
    ),
    (["operator", "add"], 1, ["--queue", "--max-chats", "--name", "--email"]),
    (["operator", "remove"], 1, []),
    (["canned", "set"], 2, ["--queue", "--group"]),
    (["canned", "remove"], 1, ["--queue", "--group"]),
    (["canned", "list"], 0, ["--queue"]),
    (["ban", "add"], 1, ["--reason", "--days", "--ipv6-prefix"]),
    (["ban", "lift"], 1, ["--ipv6-prefix"]),
    (["admin", "add"], 1, ["--role", "--group"]),
    (["admin", "password"], 1, []),
    (["admin", "remove"], 1, []),
]


@st.composite
def command_lines(draw: st.DrawFn) -> tuple[list[str], str]:
    words, free, options = draw(st.sampled_from(COMMANDS))
    argv = list(words) + [draw(hostile_arg) for _ in range(draw(st.integers(0, free + 1)))]
    for option in draw(st.lists(st.sampled_from(options), max_size=3)) if options else []:
        argv += [option, draw(hostile_arg)]
    stdin = draw(st.one_of(st.just("a long enough password\n"), hostile_arg))
    return argv, stdin


@settings(SETTINGS, max_examples=150)
@given(command_lines())
@example((["group", "add", "ok", "--title", "\udcff"], ""))
@example((["queue", "add", "q1", "--title", "\udcff"], ""))
@example((["ban", "add", "203.0.113.5", "--reason", "\udcff"], ""))
@example((["group", "add", "x\ny"], ""))
@example((["check-config", "x\ny"], ""))
@example((["queue", "set", "ask", "--hours", "mon 25:00-26:00"], ""))
@example((["queue", "set", "ask", "--timezone", "../../etc/passwd"], ""))
@example((["admin", "add", "eve"], "\udcff" * 20 + "\n"))
def test_management_commands_refuse_hostile_arguments(
    desk_config: Path, command: tuple[list[str], str]
) -> None:
    argv, stdin = command
    code, out, err = run_main(["--config", str(desk_config), *argv], stdin)
    assert_clean(code, out, err)
    for line in out.splitlines():
        assert all(ch.isprintable() or ch == "\t" for ch in line), repr(line)


def test_listings_stay_one_line_per_item(desk_config: Path) -> None:
    """Stored text with line breaks and terminal escapes (from here or the admin page)
    cannot split or colour a listing's lines."""
    cfg = ["--config", str(desk_config)]
    nasty = "two\nlines\x1b[31m\u2028red\x85"
    # The command line refuses such text where it must be one line...
    for argv in (
        ["ban", "add", "203.0.113.77", "--reason", nasty],
        ["group", "set", "central", "--title", nasty],
        ["operator", "add", "nasty@example.org", "--queue", "ask", "--name", nasty],
        ["canned", "set", "nasty", "line one\x0bline two", "--queue", "ask"],
    ):
        code, out, err = run_main(cfg + argv)
        assert code != 0, argv
        assert_clean(code, out, err)
    # ...but other paths store it (an operator's "!ban" reason, a multi-line canned text).
    assert (
        run_main([*cfg, "canned", "set", "multi", "line one\nline two", "--queue", "ask"])[0] == 0
    )
    asyncio.run(_store_ban(desk_config.parent / "db.sqlite3", nasty))
    for argv, items in (
        (["ban", "list"], 1),
        (["group", "list"], 1),
        (["canned", "list", "--queue", "ask"], 1),
        (["operator", "list"], 1),
    ):
        code, out, err = run_main(cfg + argv)
        assert code == 0, err
        lines = out.splitlines()
        assert len(lines) >= items, (argv, out)
        for line in lines:
            assert all(ch.isprintable() or ch == "\t" for ch in line), (argv, line)
        if argv[0] == "ban":
            assert any("reason=two\\nlines\\x1b[31m" in line for line in lines), out


async def _store_ban(database: Path, reason: str) -> None:
    store = await Store.open(database)
    try:
        now = datetime.now(UTC)
        ban = Ban(0, ip_network("203.0.113.78"), 1, reason, now, now + timedelta(days=30))
        await store.bans.add(ban, now)
    finally:
        await store.close()


@SETTINGS
@given(st.one_of(st.binary(max_size=500), config_documents().map(str.encode)))
def test_check_config_in_process(desk_config: Path, content: bytes) -> None:
    with config_file(content) as path:
        code, out, err = run_main(["--config", str(path), "check-config"])
    assert_clean(code, out, err)
    if code == 0:
        assert out.strip().endswith(": OK")


@SETTINGS
@given(hostile_arg)
def test_hostile_config_paths(path: str) -> None:
    assert_clean(*run_main(["--config", path, "check-config"]))


@pytest.mark.parametrize("where", ["directory", "missing folder", "not a database", "/dev/null"])
def test_unusable_databases(tmp_path: Path, where: str) -> None:
    """A storage path that cannot hold the database: one line, for every command."""
    path = {
        "directory": tmp_path,
        "missing folder": tmp_path / "no" / "such" / "db.sqlite3",
        "not a database": tmp_path / "notes.txt",
        "/dev/null": Path("/dev/null"),
    }[where]
    (tmp_path / "notes.txt").write_text("not sqlite\n" * 100, "utf-8")
    cfg = tmp_path / "refdesk.toml"
    cfg.write_text(REQUIRED + f"[storage]\npath = {toml_string(str(path))}\n", "utf-8")
    for argv in (["queue", "list"], ["group", "add", "x"], ["ban", "list"], ["purge"]):
        code, out, err = run_main(["--config", str(cfg), *argv])
        assert code != 0, argv
        assert_clean(code, out, err)
        assert "database" in err, err


# The installed script, as a real process -------------------------------------------------


def installed_refdesk() -> str:
    found = shutil.which("refdesk", path=str(Path(sys.executable).parent))
    assert found is not None, "the refdesk console script is not installed next to python"
    return found


@pytest.mark.parametrize(
    ("content", "args", "needle"),
    [
        (b"\xff\xfe\x00garbage", ["check-config"], "not valid UTF-8"),
        ((REQUIRED + "[web]\nport = " + "[" * 100_000 + "]" * 100_000).encode(), ["check-config"],
         "nested too deeply"),
        ((REQUIRED + '[web]\nport = "\\u2028\\u0085\\u001b[2J"\n').encode(), ["check-config"],
         "web.port"),
        (REQUIRED.encode(), ["group", "add", "ok", "--title", "\udcff"], "not valid UTF-8"),
        (REQUIRED.encode(), ["check-config", "x\ny"], "unrecognized arguments"),
        (REQUIRED.encode(), ["ban", "add", "10.0.0.0/0", "--reason", "x" * 100_000], "refdesk"),
        ((REQUIRED + '[storage]\npath = "/"\n').encode(), ["queue", "list"], "database"),
        ((REQUIRED + '[storage]\npath = "/dev/null"\n').encode(), ["run"], "database"),
    ],
    ids=[
        "not-utf8", "deep-nesting", "line-separators", "undecodable-argument",
        "newline-argument", "huge-reason", "database-is-a-directory", "database-is-dev-null",
    ],
)  # fmt: skip
def test_installed_script(content: bytes, args: list[str], needle: str) -> None:
    with config_file(content) as path:
        argv = [installed_refdesk(), "--config", str(path), *args]
        # Arguments go to the process as bytes, as a shell would pass them.
        raw = [a.encode("utf-8", "surrogateescape") for a in argv]
        result = subprocess.run(raw, capture_output=True, timeout=60)
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode != 0
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert needle in lines[0], lines[0]
