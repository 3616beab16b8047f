"""Tests for component.config: the settings, the loader's errors and the example file."""

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from component.config import (
    ChatConfig,
    Config,
    ConfigError,
    MailConfig,
    StorageConfig,
    WebConfig,
    XmppConfig,
    iter_settings,
    write_config_toml,
)
from component.config_loader import load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"

REQUIRED = '[xmpp]\ndomain = "desk.localhost"\nsecret = "s3cret"\n'


def write(tmp_path: Path, text: str, name: str = "refdesk.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> tuple[Path, ConfigError]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return path, caught.value


# --- the example file ------------------------------------------------------------------------


def test_example_loads() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.source == EXAMPLE
    assert cfg.xmpp.domain == "desk.localhost"
    assert cfg.storage.path == EXAMPLE.parent / "refdesk.sqlite3"


def test_example_documents_every_setting_and_nothing_else() -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    in_example = {f"{section}.{key}" for section, keys in data.items() for key in keys}
    declared = {name for name, _field in iter_settings()}
    assert declared - in_example == set(), "settings missing from config.example.toml"
    assert in_example - declared == set(), "config.example.toml has undeclared keys"


def test_example_sections_are_in_documented_order() -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert list(data) == [
        "xmpp",
        "web",
        "storage",
        "mail",
        "chat",
        "bans",
        "limits",
        "log",
        "operator_web",
    ]


def test_example_shows_defaults_and_help_above_each_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    lines = text.splitlines()
    defaults = parse_config(REQUIRED)
    example = parse_config(text)  # no base_dir: paths stay as written, like the defaults
    for name, field in iter_settings():
        section, key = name.split(".")
        if dataclasses.is_dataclass(field.type) or field.default is not dataclasses.MISSING:
            assert getattr(getattr(example, section), key) == getattr(
                getattr(defaults, section), key
            ), f"{name}: example value is not the default"
        # The comment block right above the key line must contain the help text.
        index = _line_of_key(lines, section, key)
        comments: list[str] = []
        for line in reversed(lines[:index]):
            if not line.startswith("#"):
                break
            comments.insert(0, line.lstrip("# ").strip())
        assert _squash(field.metadata["help"]) in _squash(" ".join(comments)), name


def _line_of_key(lines: list[str], section: str, key: str) -> int:
    current = None
    for index, line in enumerate(lines):
        header = re.match(r"\[(\w+)\]", line)
        if header:
            current = header.group(1)
        elif current == section and re.match(rf"{key}\s*=", line):
            return index
    raise AssertionError(f"{section}.{key} not found in the example")


def _squash(text: str) -> str:
    return " ".join(text.split())


def test_every_setting_has_help() -> None:
    for name, field in iter_settings():
        assert field.metadata["help"].strip(), name


# --- values ----------------------------------------------------------------------------------


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, REQUIRED))
    assert cfg.xmpp == XmppConfig(domain="desk.localhost", secret="s3cret")
    assert cfg.xmpp.host == "127.0.0.1"
    assert cfg.xmpp.port == 5347
    assert cfg.xmpp.reconnect_max_delay == 30.0
    assert cfg.web == WebConfig()
    assert cfg.web.public_url == "http://127.0.0.1:8080"
    assert cfg.web.trusted_proxies == ()
    assert cfg.mail == MailConfig()
    assert cfg.mail.smtp_port == 25
    assert cfg.chat == ChatConfig()
    assert cfg.chat.max_message_chars == 4000
    assert cfg.chat.max_frame_bytes == 16384
    assert cfg.chat.resume_ttl == 300.0
    assert cfg.storage == StorageConfig(path=tmp_path / "refdesk.sqlite3")
    assert cfg.source == tmp_path / "refdesk.toml"


def test_parse_config_without_file() -> None:
    cfg = parse_config(REQUIRED)
    assert cfg.source is None
    assert cfg.storage.path == Path("refdesk.sqlite3")


def test_values_are_read_and_converted(tmp_path: Path) -> None:
    text = REQUIRED + (
        "port = 5348\n"
        "reconnect_max_delay = 5\n"  # an int is fine for a float
        "[web]\n"
        'public_url = "https://ask.example.org/desk/"\n'
        'trusted_proxies = ["127.0.0.1", "10.0.0.0/8", "2001:db8::/64", "192.168.1.7/24"]\n'
        "[mail]\n"
        'from_address = "Ask a Librarian <desk@example.org>"\n'
        "[chat]\n"
        "resume_ttl = 60\n"
    )
    cfg = load_config(write(tmp_path, text))
    assert cfg.xmpp.port == 5348
    assert cfg.xmpp.reconnect_max_delay == 5.0
    assert isinstance(cfg.xmpp.reconnect_max_delay, float)
    assert cfg.web.public_url == "https://ask.example.org/desk"
    assert cfg.web.trusted_proxies == ("127.0.0.1", "10.0.0.0/8", "2001:db8::/64", "192.168.1.7/24")
    assert [str(net) for net in cfg.web.trusted_networks] == [
        "127.0.0.1/32",
        "10.0.0.0/8",
        "2001:db8::/64",
        "192.168.1.0/24",
    ]
    assert cfg.mail.from_address == "Ask a Librarian <desk@example.org>"
    assert cfg.chat.resume_ttl == 60.0


def test_relative_storage_path_is_resolved_against_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    path = write(conf_dir, REQUIRED + '[storage]\npath = "data/desk.sqlite3"\n')
    monkeypatch.chdir(tmp_path)  # a relative config path, and a working dir that differs
    cfg = load_config(Path("etc") / "refdesk.toml")
    assert cfg.storage.path == conf_dir / "data" / "desk.sqlite3"
    assert cfg.storage.path.is_absolute()
    assert cfg.source == path


def test_absolute_storage_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "x.sqlite3"
    cfg = load_config(write(tmp_path, REQUIRED + f'[storage]\npath = "{target}"\n'))
    assert cfg.storage.path == target


def test_parse_config_resolves_against_base_dir(tmp_path: Path) -> None:
    cfg = parse_config(REQUIRED + '[storage]\npath = "x.sqlite3"\n', base_dir=tmp_path)
    assert cfg.storage.path == tmp_path / "x.sqlite3"


def test_config_objects_are_frozen() -> None:
    cfg = parse_config(REQUIRED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.xmpp.port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.web = WebConfig()  # type: ignore[misc]
    for part in (cfg, cfg.xmpp, cfg.web, cfg.storage, cfg.mail, cfg.chat):
        for field in dataclasses.fields(part):
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(part, field.name, None)
    assert isinstance(cfg.web.trusted_proxies, tuple)
    hash(cfg)  # frozen all the way down, so usable as a dict key


def test_secret_is_not_shown(tmp_path: Path) -> None:
    cfg = parse_config(REQUIRED)
    assert "s3cret" not in repr(cfg)
    _path, error = load_error(tmp_path, '[xmpp]\ndomain = "d.localhost"\nsecret = 123456789\n')
    assert "xmpp.secret" in str(error)
    assert "123456789" not in str(error)


def test_iter_settings_names() -> None:
    names = [name for name, _field in iter_settings()]
    assert names[:2] == ["xmpp.domain", "xmpp.secret"]
    assert "web.trusted_proxies" in names
    assert "chat.resume_ttl" in names
    assert [name.split(".")[0] for name in names] == sorted(
        (name.split(".")[0] for name in names),
        key=[
            "xmpp",
            "web",
            "storage",
            "mail",
            "chat",
            "bans",
            "limits",
            "log",
            "operator_web",
        ].index,
    )
    assert {f.name for f in dataclasses.fields(Config)} == {
        "xmpp",
        "web",
        "storage",
        "mail",
        "chat",
        "bans",
        "limits",
        "log",
        "operator_web",
        "source",
    }


# --- errors ----------------------------------------------------------------------------------


def test_unknown_section(tmp_path: Path) -> None:
    path, error = load_error(tmp_path, REQUIRED + "\n[xmmp]\nport = 1\n")
    assert str(error).startswith(f"{path}:5: xmmp: unknown section")
    assert error.line == 5
    assert error.key == "xmmp"


def test_unknown_key(tmp_path: Path) -> None:
    text = REQUIRED + "[web]\nport = 8081\n# comment\nprot = 8080\n"
    path, error = load_error(tmp_path, text)
    assert str(error) == f"{path}:7: web.prot: unknown key (did you mean web.port?)"


def test_unknown_key_line_is_in_its_own_section(tmp_path: Path) -> None:
    # "host" exists in [xmpp] too; the line must be the one under [mail].
    text = REQUIRED + 'host = "x"\n[mail]\nsmtp_host = "m"\nhost = "y"\n'
    path, error = load_error(tmp_path, text)
    assert str(error).startswith(f"{path}:7: mail.host: unknown key")


def test_string_for_port(tmp_path: Path) -> None:
    text = "# refdesk\n\n" + REQUIRED + "host = 'x'\nport = \"abc\"\n"
    path, error = load_error(tmp_path, text)
    assert str(error) == f'{path}:7: xmpp.port: expected an integer, got "abc"'


def test_bool_for_port(tmp_path: Path) -> None:
    path, error = load_error(tmp_path, REQUIRED + "[web]\nport = true\n")
    assert str(error) == f"{path}:5: web.port: expected an integer, got true"


def test_float_for_int(tmp_path: Path) -> None:
    path, error = load_error(tmp_path, REQUIRED + "[chat]\nmax_frame_bytes = 1.5\n")
    assert str(error) == f"{path}:5: chat.max_frame_bytes: expected an integer, got 1.5"


def test_bool_for_float(tmp_path: Path) -> None:
    path, error = load_error(tmp_path, REQUIRED + "[chat]\nresume_ttl = false\n")
    assert str(error) == f"{path}:5: chat.resume_ttl: expected a number, got false"


def test_int_in_string_list(tmp_path: Path) -> None:
    text = REQUIRED + '[web]\ntrusted_proxies = ["10.0.0.1", 5]\n'
    path, error = load_error(tmp_path, text)
    assert str(error) == f"{path}:5: web.trusted_proxies[1]: expected a string, got 5"


def test_string_for_list(tmp_path: Path) -> None:
    path, error = load_error(tmp_path, REQUIRED + '[web]\ntrusted_proxies = "10.0.0.1"\n')
    assert str(error).startswith(f"{path}:5: web.trusted_proxies: expected a list of strings")


def test_int_for_path(tmp_path: Path) -> None:
    path, error = load_error(tmp_path, REQUIRED + "[storage]\npath = 3\n")
    assert str(error).startswith(f"{path}:5: storage.path: expected a path")


def test_empty_string(tmp_path: Path) -> None:
    path, error = load_error(tmp_path, REQUIRED + '[mail]\nsmtp_host = " "\n')
    assert str(error) == f"{path}:5: mail.smtp_host: must not be empty"


def test_missing_required_key(tmp_path: Path) -> None:
    path, error = load_error(tmp_path, '[xmpp]\ndomain = "desk.localhost"\n')
    assert str(error) == f"{path}: xmpp.secret: missing required key"


def test_missing_required_section(tmp_path: Path) -> None:
    path, error = load_error(tmp_path, "[web]\nport = 8080\n")
    assert str(error) == f"{path}: xmpp.domain: missing required key"


@pytest.mark.parametrize("port", [0, -1, 65536, 100000])
def test_port_out_of_range(tmp_path: Path, port: int) -> None:
    path, error = load_error(tmp_path, REQUIRED + f"[mail]\nsmtp_port = {port}\n")
    assert str(error).startswith(f"{path}:5: mail.smtp_port: must be a port number")
    assert str(port) in str(error)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("xmpp.reconnect_max_delay", "0"),
        ("xmpp.reconnect_max_delay", "-1.5"),
        ("xmpp.reconnect_max_delay", "inf"),
        ("chat.max_message_chars", "0"),
        ("chat.max_frame_bytes", "-5"),
        ("chat.resume_ttl", "nan"),
    ],
)
def test_numbers_must_be_positive(tmp_path: Path, key: str, value: str) -> None:
    section, name = key.split(".")
    text = REQUIRED + ("port = 5347\n" if section == "xmpp" else f"\n[{section}]\n")
    text += f"{name} = {value}\n"
    path, error = load_error(tmp_path, text)
    line = len(text.splitlines())
    assert str(error).startswith(f"{path}:{line}: {key}: ")


@pytest.mark.parametrize("proxy", ["10.0.0.300", "example.org", "10.0.0.0/33", ""])
def test_bad_trusted_proxy(tmp_path: Path, proxy: str) -> None:
    text = REQUIRED + f'[web]\ntrusted_proxies = ["127.0.0.1", "{proxy}"]\n'
    path, error = load_error(tmp_path, text)
    assert str(error).startswith(f"{path}:5: web.trusted_proxies[1]: expected an IP address")
    assert f'"{proxy}"' in str(error)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org",
        "example.org",
        "http://",
        "https:///path",
        "http://example.org:99999",
        "http://user:pw@example.org",
        "http://example.org/?q=1",
        "http://exa mple.org",
    ],
)
def test_bad_public_url(tmp_path: Path, url: str) -> None:
    path, error = load_error(tmp_path, REQUIRED + f'[web]\npublic_url = "{url}"\n')
    assert str(error).startswith(f"{path}:5: web.public_url: ")


@pytest.mark.parametrize(
    "url",
    [
        "https://xmpp.example.org/ws",
        "wss://",
        "wss://user:pw@xmpp.example.org/ws",
        "wss://xmpp.example.org:99999/ws",
        "wss://xmpp.example.org/ws; script-src *",
        "wss://xmpp.example.org/ws\\u0022,x",
        "wss://xmpp.example.org/ws#frag",
        "wss://xmpp.example.org/a b",
        # A CSP wildcard would let the page connect anywhere: "wss://*" is every host.
        "wss://*",
        "wss://*.example.org/ws",
        "wss://xmpp.example.org/*",
        # Controls and non-ASCII: a header cannot carry them, a CSP source cannot match.
        "wss://xmpp.example.org/\\u0000ws",
        "wss://xmpp.example.org/ws\\u007f",
        "wss://exämple.org/ws",
    ],
)
def test_bad_operator_websocket_url(tmp_path: Path, url: str) -> None:
    path, error = load_error(tmp_path, REQUIRED + f'[operator_web]\nwebsocket_url = "{url}"\n')
    assert str(error).startswith(f"{path}:5: operator_web.websocket_url: ")


def test_operator_websocket_url_default_off_and_kept() -> None:
    assert parse_config(REQUIRED).operator_web.websocket_url == ""
    text = (
        REQUIRED + '[operator_web]\nwebsocket_url = "wss://xmpp.example.org:5281/xmpp-websocket"\n'
    )
    cfg = parse_config(text)
    assert cfg.operator_web.websocket_url == "wss://xmpp.example.org:5281/xmpp-websocket"


def test_ws_operator_endpoint_under_an_https_public_url_is_refused(tmp_path: Path) -> None:
    """An https page may not open a ws:// socket (mixed content): the browser refuses it
    without telling the operator, so such a file is refused before anything starts."""
    text = (
        REQUIRED
        + '[web]\npublic_url = "https://ask.example.org"\n'
        + '[operator_web]\nwebsocket_url = "ws://xmpp.example.org/xmpp-websocket"\n'
    )
    path, error = load_error(tmp_path, text)
    assert str(error).startswith(f"{path}:7: operator_web.websocket_url: ")
    assert "wss://" in str(error) and "mixed content" in str(error)
    # wss:// under https, and ws:// under plain http (a test desk on loopback), are fine.
    assert parse_config(text.replace("ws://", "wss://")).operator_web.websocket_url
    assert parse_config(text.replace("https://", "http://")).operator_web.websocket_url


@pytest.mark.parametrize("domain", ["user@desk.localhost", "desk.localhost/res", "desk..x", " "])
def test_bad_domain(tmp_path: Path, domain: str) -> None:
    path, error = load_error(tmp_path, f'[xmpp]\nsecret = "s"\ndomain = "{domain}"\n')
    assert str(error).startswith(f"{path}:3: xmpp.domain: ")


@pytest.mark.parametrize(
    "value", ["=?utf-8?q?Desk=0D=0AX-Injected:_1?= <desk@example.org>", "Desk\\u0085 <d@e.org>"]
)
def test_from_address_without_encoded_words_or_controls(tmp_path: Path, value: str) -> None:
    path, error = load_error(tmp_path, REQUIRED + f'[mail]\nfrom_address = "{value}"\n')
    assert str(error).startswith(f"{path}:5: mail.from_address: must be plain text")


def test_bad_from_address(tmp_path: Path) -> None:
    path, error = load_error(tmp_path, REQUIRED + '[mail]\nfrom_address = "desk"\n')
    assert str(error).startswith(f"{path}:5: mail.from_address: expected an email address")


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    path, error = load_error(tmp_path, 'web = "yes"\n' + REQUIRED)
    assert str(error) == f'{path}:1: web: expected a [web] section, got "yes"'


def test_array_of_tables_for_a_section(tmp_path: Path) -> None:
    path, error = load_error(tmp_path, REQUIRED + "[[chat]]\nresume_ttl = 1\n")
    assert str(error).startswith(f"{path}:4: chat: expected a [chat] section")


def test_top_level_dotted_key_line(tmp_path: Path) -> None:
    text = 'xmpp.domain = "d.localhost"\nxmpp.secret = "s"\nxmpp.port = "x"\n'
    path, error = load_error(tmp_path, text)
    assert str(error).startswith(f"{path}:3: xmpp.port: expected an integer")


def test_invalid_toml_syntax(tmp_path: Path) -> None:
    path, error = load_error(tmp_path, REQUIRED + "[web]\nport 8080\n")
    assert str(error).startswith(f"{path}:5: invalid TOML: ")
    assert "line 5" in str(error)
    assert error.line == 5


def test_duplicate_key_is_a_syntax_error(tmp_path: Path) -> None:
    path, error = load_error(tmp_path, REQUIRED + "port = 1\nport = 2\n")
    assert str(error).startswith(f"{path}:5: invalid TOML: ")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: config file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path}: cannot read config file")


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "refdesk.toml"
    path.write_bytes(b'[xmpp]\ndomain = "d\xe9sk"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: config file is not valid UTF-8")


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "refdesk.toml"
    path.write_bytes(b"\xef\xbb\xbf" + REQUIRED.encode())
    assert load_config(path).xmpp.domain == "desk.localhost"


def test_parse_config_names_its_source() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(REQUIRED + "port = 0\n", source="inline")
    assert str(caught.value).startswith("inline:4: xmpp.port: ")
    with pytest.raises(ConfigError) as caught:
        parse_config("[xmpp]\n")
    assert str(caught.value) == "<config>: xmpp.domain: missing required key"


def test_errors_are_one_line(tmp_path: Path) -> None:
    _path, error = load_error(tmp_path, REQUIRED + '[web]\npublic_url = "http://a\\nb"\n')
    assert "\n" not in str(error)


# --- writing ---------------------------------------------------------------------------------


def test_write_config_toml_round_trips() -> None:
    values: dict[str, dict[str, object]] = {
        "xmpp": {"domain": "desk.localhost", "secret": 'q"uo\\te\n\t\x01\x7f é 🦉', "port": 5348},
        "web": {"trusted_proxies": ["127.0.0.1", "::1"], "public_url": "http://x:1"},
        "chat": {"resume_ttl": 12.5},
        "odd section": {"odd key": True, "n": -3, "f": 1e-5, "empty": []},
    }
    text = write_config_toml(values)
    assert tomllib.loads(text) == values


def test_write_config_toml_output_loads(tmp_path: Path) -> None:
    text = write_config_toml(
        {
            "xmpp": {"domain": "desk.localhost", "secret": "s", "port": 15347},
            "web": {"port": 18080, "trusted_proxies": ["127.0.0.1"]},
            "storage": {"path": Path("demo.sqlite3")},
        }
    )
    cfg = load_config(write(tmp_path, text))
    assert cfg.xmpp.port == 15347
    assert cfg.web.port == 18080
    assert cfg.web.trusted_proxies == ("127.0.0.1",)
    assert cfg.storage.path == tmp_path / "demo.sqlite3"


def test_write_config_toml_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        write_config_toml({"xmpp": {"domain": object()}})


def test_max_stanza_bytes_stays_well_under_the_servers_limits(tmp_path: Path) -> None:
    for value in (1000, 600_000):
        text = REQUIRED.replace("[xmpp]\n", f"[xmpp]\nmax_stanza_bytes = {value}\n")
        _path, error = load_error(tmp_path, text)
        assert "xmpp.max_stanza_bytes: must be between 16384 and 262144 bytes" in str(error)


@pytest.mark.parametrize("value", ["0", "0.5", "60.5", "-3", "nan", "inf", '"3 s"'])
def test_a_lease_outside_its_bounds_is_refused(tmp_path: Path, value: str) -> None:
    """The active lock's lease: a check (a third of it) must reach the database and back
    in time, and a crash must not leave nobody serving for minutes."""
    _, error = load_error(tmp_path, REQUIRED + f"[storage]\nlease = {value}\n")
    assert "storage.lease" in str(error)


def test_a_lease_within_its_bounds_is_kept(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, REQUIRED)).storage.lease == 3.0
    for value in (1, 2.5, 60):
        cfg = load_config(write(tmp_path, REQUIRED + f"[storage]\nlease = {value}\n"))
        assert cfg.storage.lease == value


@pytest.mark.parametrize("value", ["-1", "2592001", '"a day"', "nan", "inf"])
def test_sticky_pickup_out_of_range_is_refused(tmp_path: Path, value: str) -> None:
    _, error = load_error(tmp_path, REQUIRED + f"[bans]\nsticky_pickup = {value}\n")
    assert "sticky_pickup" in str(error)


def test_sticky_pickup_zero_turns_it_off(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, REQUIRED + "[bans]\nsticky_pickup = 0\n"))
    assert cfg.bans.sticky_pickup == 0.0
    assert load_config(write(tmp_path, REQUIRED)).bans.sticky_pickup == 86400.0


@pytest.mark.parametrize(
    "url",
    [
        "http://db.example.org/refdesk",
        "postgresql://",
        "postgresql:///refdesk",
        "postgresql:///refdesk?host=",
        "postgresql://db.example.org:99999/refdesk",
        "postgresql://db.example.org/ref desk",
        "refdesk.sqlite3",
    ],
)
def test_bad_storage_url(tmp_path: Path, url: str) -> None:
    path, error = load_error(tmp_path, REQUIRED + f'[storage]\nurl = "{url}"\n')
    assert str(error).startswith(f"{path}:5: storage.url: ")


def test_storage_target_is_the_file_unless_a_url_is_set() -> None:
    assert parse_config(REQUIRED).storage.target == parse_config(REQUIRED).storage.path
    url = "postgresql://refdesk@db.example.org:5432/refdesk"
    assert parse_config(REQUIRED + f'[storage]\nurl = "{url}"\n').storage.target == url


def test_fallback_hosts_are_tried_after_host(tmp_path: Path) -> None:
    fallbacks = '["node-b", "10.0.0.3:5348", "[::1]:5349"]'
    text = REQUIRED + f'host = "node-a"\nfallback_hosts = {fallbacks}\n'
    cfg = load_config(write(tmp_path, text))
    assert cfg.xmpp.component_addresses == (
        ("node-a", 5347),
        ("node-b", 5347),
        ("10.0.0.3", 5348),
        ("::1", 5349),
    )


@pytest.mark.parametrize(
    "item",
    ["", "node-b:", "node-b:99999", "node-b:0", "node b", "[::1", "::1:5347", "-b", "a" * 300,
     "node-b:5347/x", "user@node-b", "node-b:123456789012345678901234567890", "[:::::]:5347",
     "[10.0.0.1]:5347"],
)  # fmt: skip
def test_bad_fallback_host(tmp_path: Path, item: str) -> None:
    path, error = load_error(tmp_path, REQUIRED + f'fallback_hosts = ["node-b", "{item}"]\n')
    assert str(error).startswith(f"{path}:4: xmpp.fallback_hosts[1]: expected HOST or HOST:PORT")


@pytest.mark.parametrize("value", ["0", "1", "-2", "101", '"3"', "2.5", "true"])
def test_repeated_incidents_out_of_range_is_refused(tmp_path: Path, value: str) -> None:
    _, error = load_error(tmp_path, REQUIRED + f"[bans]\nrepeated_incidents = {value}\n")
    assert "bans.repeated_incidents" in str(error)


def test_repeated_incidents_is_read_with_a_default_of_two(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, REQUIRED + "[bans]\nrepeated_incidents = 4\n"))
    assert cfg.bans.repeated_incidents == 4
    assert load_config(write(tmp_path, REQUIRED)).bans.repeated_incidents == 2


@pytest.mark.parametrize("domain", ["ann@example.org", "example.org/res", "example..org"])
def test_bad_server_domain(tmp_path: Path, domain: str) -> None:
    path, error = load_error(tmp_path, REQUIRED + f'server_domain = "{domain}"\n')
    assert str(error).startswith(f"{path}:4: xmpp.server_domain: ")


def test_server_domain_empty_or_a_domain() -> None:
    assert parse_config(REQUIRED).xmpp.server_domain == ""
    assert parse_config(REQUIRED + 'server_domain = "example.org"\n').xmpp.server_domain == (
        "example.org"
    )
