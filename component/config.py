"""refdesk configuration: the settings, their TOML loader and a small TOML writer.

Every setting is declared exactly once below, as a field of a frozen dataclass carrying its
type, its default (or none, meaning required) and its help text. The loader, the
`check-config` command, the documentation test and `config.example.toml` all work from
these declarations, so a new key is added here and in the example file and nowhere else.

Only the loader validates: code (mostly tests) that builds these dataclasses directly is
trusted to pass sensible values.
"""

import dataclasses
import difflib
import ipaddress
import json
import math
import re
import tomllib
from collections.abc import Callable, Collection, Iterator, Mapping
from email.utils import parseaddr
from pathlib import Path, PurePath
from typing import Any, TypeVar, dataclass_transform, get_args, get_origin
from urllib.parse import urlsplit

from component.core import validators
from component.core.text import one_line

__all__ = [
    "BansConfig",
    "ChatConfig",
    "Config",
    "ConfigError",
    "LimitsConfig",
    "LogConfig",
    "MailConfig",
    "StorageConfig",
    "WebConfig",
    "XmppConfig",
    "iter_settings",
    "load_config",
    "parse_config",
    "setting",
    "write_config_toml",
]

_T = TypeVar("_T")
_Number = TypeVar("_Number", int, float)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(Exception):
    """A configuration file that cannot be used, described in one line.

    Raised by `load_config` and `parse_config`; the CLI prints `str(error)` and exits
    non-zero. The parts are also kept as attributes for callers that want them.
    """

    def __init__(
        self,
        reason: str,
        *,
        source: str,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        self.key = key
        where = source if line is None else f"{source}:{line}"
        what = reason if key is None else f"{key}: {reason}"
        # One line whatever the file holds: a key, a value or the file's own name may
        # carry line breaks or terminal escapes.
        super().__init__(one_line(f"{where}: {what}"))


class _Invalid(ValueError):
    """A value that was read but cannot be used; the loader adds file, line and key.

    `suffix` is appended to the dotted key, e.g. "[2]" for the third element of a list.
    """

    def __init__(self, reason: str, suffix: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.suffix = suffix


# --- declaring settings -------------------------------------------------------------------


def setting(
    help: str,
    *,
    default: Any = dataclasses.MISSING,
    default_factory: Any = dataclasses.MISSING,
    check: Callable[[Any], Any] | None = None,
    secret: bool = False,
    allow_empty: bool = False,
) -> Any:
    """Declare one configuration setting; used only in the dataclass bodies of this module.

    Without `default` or `default_factory` the setting is required. `check` receives the
    type-converted value when it comes from a file, returns the value to keep (possibly
    normalised) and raises `_Invalid` to reject it. A `secret` is never echoed in error
    messages nor in the dataclass repr, so it cannot leak into logs.

    `default` is keyword-only on purpose: mypy's dataclass_transform support only sees a
    default passed by keyword, and then knows which constructor arguments are required.
    """
    metadata = {"help": help, "check": check, "secret": secret, "allow_empty": allow_empty}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, repr=not secret, metadata=metadata)


@dataclass_transform(frozen_default=True, field_specifiers=(setting,))
def _settings(cls: type[_T]) -> type[_T]:
    # A decorator rather than a bare @dataclass(frozen=True) so that mypy treats `setting`
    # as a field specifier (required vs optional arguments) instead of as a plain default.
    return dataclasses.dataclass(frozen=True)(cls)


# --- checks on values (each returns the value to keep or raises _Invalid) ------------------


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise _Invalid(f"must be a port number between 1 and 65535, got {value}")
    return value


def _positive(value: _Number) -> _Number:
    if not value > 0:
        raise _Invalid(f"must be greater than 0, got {value}")
    return value


# Bounds of [xmpp] max_stanza_bytes: below the lower one, once room is kept for the
# addresses and the rest of the envelope (8 KiB), too little is left for text and ordinary
# lines would come in parts; the upper one stays well under Prosody's default component
# limit (512 KiB).
MIN_STANZA_BYTES = 16 * 1024
MAX_STANZA_BYTES = 256 * 1024


def _stanza_bytes(value: int) -> int:
    if not MIN_STANZA_BYTES <= value <= MAX_STANZA_BYTES:
        raise _Invalid(
            f"must be between {MIN_STANZA_BYTES} and {MAX_STANZA_BYTES} bytes, got {value}"
        )
    return value


_DOMAIN_LABEL = re.compile(r"^(?!-)[^\s@/.:]{1,63}(?<!-)$")


def _domain(value: str) -> str:
    # A bare domain, not a JID: an "@" or "/" here would make every queue and guest JID
    # built on it invalid, which would otherwise only show up as stanza errors at run time.
    labels = value.split(".")
    if len(value) > 253 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise _Invalid(f"must be a bare domain name such as desk.example.org, got {_show(value)}")
    return value


def _public_url(value: str) -> str:
    bad = f"must be an http:// or https:// URL with a host, got {_show(value)}"
    if any(ch.isspace() for ch in value):
        raise _Invalid(bad)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Invalid(bad)
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        raise _Invalid(f"has an invalid port: {_show(value)}") from None
    if parts.username is not None or parts.password is not None:
        raise _Invalid("must not contain a user name or password")
    if parts.query or parts.fragment:
        raise _Invalid(f"must not have a query or fragment, got {_show(value)}")
    # Callers build links as public_url + "/chat/q"; a trailing slash would double up.
    return value.rstrip("/")


def _networks(value: tuple[str, ...]) -> tuple[str, ...]:
    for index, item in enumerate(value):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise _Invalid(
                f"expected an IP address or CIDR network, got {_show(item)}", f"[{index}]"
            ) from None
    return value


def _forwarded_header(value: str) -> str:
    for name in ("X-Forwarded-For", "Forwarded"):
        if value.strip().lower() == name.lower():
            return name
    raise _Invalid(f'expected "X-Forwarded-For" or "Forwarded", got {_show(value)}')


def _smtp_security(value: str) -> str:
    if value not in ("none", "starttls", "tls"):
        raise _Invalid('expected "none", "starttls" or "tls"')
    return value


def _email_address(value: str) -> str:
    # Accepts "desk@example.org" and "Ask a Librarian <desk@example.org>" alike.
    if "=?" in value or any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in value):
        # An encoded word decodes to any characters at all, line breaks included; TOML
        # carries a name in plain UTF-8.
        raise _Invalid(f'must be plain text without "=?" or control characters, got {_show(value)}')
    # The address itself gets the same check as every address typed anywhere else.
    _name, address = parseaddr(value)
    try:
        validators.own_address(address)
    except ValueError as exc:
        raise _Invalid(f"expected an email address, got {_show(value)}: {exc}") from None
    return value


# --- the settings --------------------------------------------------------------------------


@_settings
class XmppConfig:
    """Connection to the XMPP server as an external component (XEP-0114)."""

    domain: str = setting(
        "The component's domain, as declared in the XMPP server's configuration "
        "(e.g. desk.example.org); queue and guest JIDs live on it.",
        check=_domain,
    )
    secret: str = setting(
        "Shared secret of the component connection; must match the component secret in "
        "the XMPP server's configuration.",
        secret=True,
    )
    host: str = setting(
        "Address of the XMPP server's component listener.",
        default="127.0.0.1",
    )
    port: int = setting(
        "TCP port of the XMPP server's component listener (5347 by convention in Prosody "
        "and ejabberd).",
        default=5347,
        check=_port,
    )
    reconnect_max_delay: float = setting(
        "Seconds: the longest wait between two attempts to reconnect to the XMPP server "
        "(the cap of the exponential back-off).",
        default=30.0,
        check=_positive,
    )
    max_stanza_bytes: int = setting(
        "Bytes: the largest stanza refdesk writes to the XMPP server, measured as sent "
        "(escaped, UTF-8). XMPP servers close the component's stream on a stanza over their "
        "own limit (Prosody: component_stanza_size_limit, 512 KiB by default; ejabberd: "
        "max_stanza_size), which would stop every chat; longer texts are sent in parts or "
        "cut, and the operator is told. Keep it well under the server's limit.",
        default=64 * 1024,
        check=_stanza_bytes,
    )


@_settings
class WebConfig:
    """The aiohttp server: patron widget, its WebSocket and the admin pages."""

    host: str = setting(
        "Address the web server listens on (0.0.0.0 or :: for all interfaces).",
        default="127.0.0.1",
    )
    port: int = setting(
        "TCP port the web server listens on.",
        default=8080,
        check=_port,
    )
    public_url: str = setting(
        "Base URL that patrons' browsers use to reach this server (http or https, host, "
        "optional port and path); used in links and the embed snippet and for the WebSocket "
        "Origin check. A trailing slash is dropped.",
        default="http://127.0.0.1:8080",
        check=_public_url,
    )
    trusted_proxies: tuple[str, ...] = setting(
        "IP addresses or CIDR networks of reverse proxies whose forwarding header "
        "(forwarded_header) is believed; for any other peer the connection's own address is "
        "the patron's.",
        default=(),
        check=_networks,
    )
    forwarded_header: str = setting(
        'The one header the trusted proxies write the client\'s address in: "X-Forwarded-For" '
        '(nginx: proxy_set_header X-Forwarded-For $remote_addr) or "Forwarded" (RFC 7239). '
        "The other header is ignored, since a proxy passes it through from the client.",
        default="X-Forwarded-For",
        check=_forwarded_header,
    )
    header_timeout: float = setting(
        "Seconds a client has, from connecting or from its previous response, to send a "
        "complete request line and headers (a slowly trickled request is cut off "
        "however much it trickles), and a new patron WebSocket to say hello; also how long "
        "an idle keep-alive connection stays open.",
        default=10.0,
        check=_positive,
    )
    connections_per_address: int = setting(
        "Open connections (HTTP and WebSocket) that one address may hold at once (IPv6: "
        "one /64); more are refused with 429. Trusted proxies are exempt; behind them, "
        "patron WebSockets and long-poll sessions are counted per forwarded address instead.",
        default=64,
        check=_positive,
    )
    connections_per_network: int = setting(
        "The same for one network (/24 for IPv4, /48 for IPv6).",
        default=256,
        check=_positive,
    )

    metrics_networks: tuple[str, ...] = setting(
        "IP addresses or CIDR networks allowed to read /metrics, decided on the connection's "
        "own address (forwarded headers are never believed for it); others get 404. Behind a "
        "reverse proxy on the same host, loopback includes the proxy: deny /metrics there.",
        default=("127.0.0.0/8", "::1"),
        check=_networks,
    )

    @property
    def trusted_networks(self) -> tuple[IPNetwork, ...]:
        """`trusted_proxies` parsed, for the web layer's client-address lookup per request.

        Computed on each access; callers on a hot path should keep the result.
        """
        return tuple(ipaddress.ip_network(item, strict=False) for item in self.trusted_proxies)

    @property
    def metrics_network_list(self) -> tuple[IPNetwork, ...]:
        """`metrics_networks` parsed; read once by the web app factory."""
        return tuple(ipaddress.ip_network(item, strict=False) for item in self.metrics_networks)


@_settings
class StorageConfig:
    """Where refdesk keeps its data."""

    path: Path = setting(
        "SQLite database file; a relative path is resolved against the directory of this "
        "config file.",
        default=Path("refdesk.sqlite3"),
    )


@_settings
class MailConfig:
    """Outgoing email: offline questions, follow-ups and transcripts."""

    smtp_host: str = setting(
        "SMTP server that refdesk hands its email to.",
        default="127.0.0.1",
    )
    smtp_port: int = setting(
        "TCP port of that SMTP server.",
        default=25,
        check=_port,
    )
    from_address: str = setting(
        'Sender address of the email refdesk sends (a bare address or "Display Name <address>").',
        default="desk@example.org",
        check=_email_address,
    )
    smtp_security: str = setting(
        '"none" (plain SMTP), "starttls" (upgrade required) or "tls" (implicit TLS, port 465).',
        default="none",
        check=_smtp_security,
    )
    smtp_username: str = setting(
        "User name for SMTP authentication (empty: no authentication).",
        default="",
        allow_empty=True,
    )
    smtp_password: str = setting(
        "Password for SMTP authentication.",
        default="",
        secret=True,
        allow_empty=True,
    )
    smtp_verify_tls: bool = setting(
        "Check the SMTP server's TLS certificate (turn off only for a relay with a "
        "self-signed certificate on a trusted network).",
        default=True,
    )


@_settings
class ChatConfig:
    """Limits of patron chats."""

    max_message_chars: int = setting(
        "Longest message, in characters, accepted from a patron or an operator.",
        default=4000,
        check=_positive,
    )
    max_frame_bytes: int = setting(
        "Largest WebSocket frame, in bytes, accepted from a patron's browser.",
        default=16384,
        check=_positive,
    )
    resume_ttl: float = setting(
        "Seconds a patron whose connection dropped has to come back to their chat; after "
        "that the chat ends as 'patron left' and the operator is told.",
        default=300.0,
        check=_positive,
    )
    operator_grace: float = setting(
        "Seconds an operator may be offline (a dropped phone connection, a client restart) "
        "before their open chats are handed back to the queue and offered to someone else.",
        default=60.0,
        check=_positive,
    )


def _ladder(value: str) -> str:
    from component.core.bans import BanError, parse_ladder

    try:
        return str(parse_ladder(value))
    except BanError as exc:
        raise _Invalid(str(exc)) from None


@_settings
class BansConfig:
    """Bans and what a banned patron is told."""

    ladder: str = setting(
        "Ban lengths for a first, second, third... offence on the same address or network "
        "(the last repeats).",
        default="30d,90d,1y",
        check=_ladder,
    )
    message: str = setting(
        "What a banned patron sees; the appeal address is added after it.",
        default="We're sorry. Your IP address has been blocked from this service for a "
        "violation of our policy of mutual respect.",
    )
    appeal_address: str = setting(
        "Where a banned patron may write if they think the ban is a mistake (a group's own "
        "appeal address takes precedence).",
        default="desk@example.org",
        check=_email_address,
    )


@_settings
class LimitsConfig:
    """Rate limits against floods of chat requests, messages and email."""

    chats_per_address: int = setting(
        "New chats one address may start within chat_window seconds.",
        default=5,
        check=_positive,
    )
    chats_per_network: int = setting(
        "New chats one network (/24 for IPv4, /48 for IPv6) may start within chat_window.",
        default=30,
        check=_positive,
    )
    chat_window: float = setting(
        "The window, in seconds, of the two limits above.",
        default=600.0,
        check=_positive,
    )
    messages_per_second: float = setting(
        "Sustained messages per second one address may send.",
        default=3.0,
        check=_positive,
    )
    message_burst: int = setting(
        "Messages one address may send at once before messages_per_second applies.",
        default=10,
        check=_positive,
    )
    mails_per_recipient: int = setting(
        "Emails to one address that patrons typed (transcript copies, receipts of emailed "
        "questions) within mail_window seconds, whoever asks.",
        default=3,
        check=_positive,
    )
    mails_per_address: int = setting(
        "Emails to addresses that patrons typed which one patron address may cause within "
        "mail_window seconds.",
        default=5,
        check=_positive,
    )
    mails_per_network: int = setting(
        "Emails to addresses that patrons typed which one network (/24 for IPv4, /48 for "
        "IPv6) may cause within mail_window seconds.",
        default=20,
        check=_positive,
    )
    mail_window: float = setting(
        "The window, in seconds, of the three mail limits above.",
        default=3600.0,
        check=_positive,
    )


def _log_format(value: str) -> str:
    if value not in ("text", "json"):
        raise _Invalid('expected "text" or "json"')
    return value


@_settings
class LogConfig:
    """What refdesk logs look like."""

    format: str = setting(
        '"text" (readable lines) or "json" (one JSON object per line: time, level, logger, '
        "message and any traceback, for log collectors). Neither names a patron's IP or "
        "email address.",
        default="text",
        check=_log_format,
    )


def _websocket_url(value: str) -> str:
    if value == "":
        return value  # the browser client is off
    bad = f"must be a ws:// or wss:// URL with a host, got {_show(value)}"
    if any(ch.isspace() for ch in value):
        raise _Invalid(bad)
    parts = urlsplit(value)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise _Invalid(bad)
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        raise _Invalid(f"has an invalid port: {_show(value)}") from None
    if parts.username is not None or parts.password is not None:
        raise _Invalid("must not contain a user name or password")
    if parts.fragment or any(ch in value for ch in "\"'<>;,"):
        # The URL goes into the operator page's Content-Security-Policy and its settings:
        # a quote or a semicolon there could add directives or break out of the value.
        raise _Invalid(bad)
    return value


@_settings
class OperatorWebConfig:
    """The browser XMPP client for operators served at /operator/."""

    websocket_url: str = setting(
        "The operators' XMPP server's WebSocket endpoint (RFC 7395), e.g. "
        "\"wss://xmpp.example.org/xmpp-websocket\" (Prosody's mod_websocket, ejabberd's "
        "ejabberd_http_ws). The browser connects there directly, so refdesk never sees an "
        "operator's password. Empty: /operator/ explains that the browser client is off.",
        default="",
        check=_websocket_url,
        allow_empty=True,
    )


@_settings
class Config:
    """The whole configuration, as returned by `load_config` and `parse_config`."""

    xmpp: XmppConfig = setting("Connection to the XMPP server as an external component.")
    web: WebConfig = setting(
        "The web server: patron widget, WebSocket and admin pages.", default_factory=WebConfig
    )
    storage: StorageConfig = setting("Where refdesk keeps its data.", default_factory=StorageConfig)
    mail: MailConfig = setting("Outgoing email.", default_factory=MailConfig)
    chat: ChatConfig = setting("Limits of patron chats.", default_factory=ChatConfig)
    bans: BansConfig = setting("Bans.", default_factory=BansConfig)
    limits: LimitsConfig = setting("Rate limits.", default_factory=LimitsConfig)
    log: LogConfig = setting("Log output.", default_factory=LogConfig)
    operator_web: OperatorWebConfig = setting(
        "The operators' browser client.", default_factory=OperatorWebConfig
    )
    source: Path | None = setting(
        "The file this configuration was loaded from; None when parsed from text.",
        default=None,
    )


def _sections() -> Iterator[tuple[str, type[Any]]]:
    # The TOML sections are the fields of Config whose type is a settings dataclass; the
    # others (`source`) describe the configuration itself and cannot be set from a file.
    for field in dataclasses.fields(Config):
        if isinstance(field.type, type) and dataclasses.is_dataclass(field.type):
            yield field.name, field.type


def iter_settings() -> Iterator[tuple[str, dataclasses.Field[Any]]]:
    """Yield ("section.key", field) for every setting, in the order of the example file.

    Used by the documentation test, and by anything that lists or explains settings (such
    as the `check-config` command). `field.metadata["help"]` is the help text; a field with
    neither `default` nor `default_factory` is required.
    """
    for section, cls in _sections():
        for field in dataclasses.fields(cls):
            yield f"{section}.{field.name}", field


def _is_required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


# --- loading -------------------------------------------------------------------------------


def load_config(path: Path) -> Config:
    """Read and validate the configuration file at `path`.

    Called once at start-up by the CLI (for every subcommand, `check-config` included).
    Relative paths inside the file are resolved against the file's directory. Raises
    ConfigError for a missing or unreadable file as for a bad one.
    """
    source = str(path)
    try:
        # utf-8-sig: editors on Windows like to start the file with a BOM, which TOML forbids.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError("config file not found", source=source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file is not valid UTF-8 ({exc.reason})", source=source) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot read config file: {reason}", source=source) from None
    except ValueError:  # a NUL in the path: no file can have that name
        raise ConfigError(
            "cannot read config file: the path contains a NUL", source=source
        ) from None
    absolute = path.absolute()
    return _build(text, source, absolute.parent, absolute)


def parse_config(text: str, source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Validate configuration given as TOML text; `source` names it in error messages.

    Used by tests and by tools that hold the text rather than a file. Relative paths are
    resolved against `base_dir`; without one they are kept relative (to the working
    directory of whoever opens them). The result's `source` is None.
    """
    return _build(text, source, base_dir, None)


def _build(text: str, source: str, base_dir: Path | None, source_path: Path | None) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"invalid TOML: {exc}", source=source, line=_decode_error_line(exc)
        ) from None
    except ValueError as exc:
        # Another ValueError from tomllib: an integer beyond Python's digit limit.
        raise ConfigError(f"invalid TOML: {exc}".split(";")[0], source=source) from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise ConfigError(
            "invalid TOML: arrays or tables nested too deeply", source=source
        ) from None

    def fail(reason: str, section: str, key: str | None = None, suffix: str = "") -> ConfigError:
        dotted = section if key is None else f"{section}.{key}"
        line = _find_line(text, section, key)
        return ConfigError(reason, source=source, line=line, key=dotted + suffix)

    sections = dict(_sections())
    for name, value in data.items():
        if name not in sections:
            hint = _did_you_mean(name, sections)
            raise fail(f"unknown section{hint}", name)
        if not isinstance(value, dict):
            raise fail(f"expected a [{name}] section, got {_show(value)}", name)

    built: dict[str, Any] = {}
    for name, cls in sections.items():
        raw: dict[str, Any] = data.get(name, {})
        fields = {field.name: field for field in dataclasses.fields(cls)}
        for key in raw:
            if key not in fields:
                hint = _did_you_mean(key, fields, prefix=f"{name}.")
                raise fail(f"unknown key{hint}", name, key)
        values: dict[str, Any] = {}
        for key, field in fields.items():
            if key in raw:
                try:
                    value = _convert(raw[key], field)
                    check = field.metadata["check"]
                    if check is not None:
                        value = check(value)
                except _Invalid as exc:
                    raise fail(exc.reason, name, key, exc.suffix) from None
            elif _is_required(field):
                raise ConfigError("missing required key", source=source, key=f"{name}.{key}")
            elif field.default_factory is not dataclasses.MISSING:
                value = field.default_factory()
            else:
                value = field.default
            # Defaults too: the database belongs next to the config file, not wherever the
            # service happens to be started from.
            if isinstance(value, Path) and base_dir is not None and not value.is_absolute():
                value = base_dir / value
            values[key] = value
        built[name] = cls(**values)
    return Config(**built, source=source_path)


def _convert(value: object, field: dataclasses.Field[Any]) -> Any:
    """Check a TOML value against the field's declared type and convert it to that type."""
    kind = field.type
    shown = _type_name(value) if field.metadata["secret"] else _show(value)
    # bool is a subclass of int in Python, but `port = true` is a mistake, not port 1.
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise _Invalid(f"expected true or false, got {shown}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Invalid(f"expected an integer, got {shown}")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                raise _Invalid(f"number too large: {shown}") from None
            if not math.isfinite(number):
                raise _Invalid(f"expected a finite number, got {shown}")
            return number
        raise _Invalid(f"expected a number, got {shown}")
    if kind is str:
        if not isinstance(value, str):
            raise _Invalid(f"expected a string, got {shown}")
        if not value.strip() and not field.metadata.get("allow_empty"):
            raise _Invalid("must not be empty")
        return value
    if kind is Path:
        if not isinstance(value, str):
            raise _Invalid(f"expected a path (a string), got {shown}")
        if not value.strip():
            raise _Invalid("must not be empty")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            # A NUL cannot be opened at all; other controls are surely a mistake.
            raise _Invalid(f"must not contain control characters, got {shown}")
        return Path(value).expanduser()
    if get_origin(kind) is tuple and get_args(kind) == (str, ...):
        if not isinstance(value, list):
            raise _Invalid(f"expected a list of strings, got {shown}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise _Invalid(f"expected a string, got {_show(item)}", f"[{index}]")
        return tuple(value)
    raise TypeError(f"setting {field.name} has an unsupported type {kind!r}")


def _show(value: object, depth: int = 0) -> str:
    """Render a value from the file for an error message: TOML-like, one line, short."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value[:100], ensure_ascii=False)
    elif isinstance(value, int) and abs(value) >= 10**30:
        text = f"an integer with {len(str(abs(value)))} digits"
    elif isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, list):
        # Only the start of a long or deeply nested list: the message keeps 80 characters.
        inner = ", ".join(_show(item, depth + 1) for item in value[:10]) if depth < 3 else "..."
        text = "[" + inner + "]"
    elif isinstance(value, dict):
        text = "a table"
    else:
        text = f"a {type(value).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(value: object) -> str:
    """Describe a value by its TOML type alone, for settings whose value must not be shown."""
    names = {bool: "a boolean", int: "an integer", float: "a number", list: "a list"}
    return names.get(type(value), "a table" if isinstance(value, dict) else "a date or time")


def _did_you_mean(name: str, known: Collection[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f" (did you mean {prefix}{close[0]}?)"
    return " (known: " + ", ".join(prefix + item for item in known) + ")"


# --- line numbers --------------------------------------------------------------------------

_TOML_DECODE_LINE = re.compile(r"\(at line (\d+), column \d+\)")
_HEADER = re.compile(r"^\s*\[(?P<array>\[)?\s*(?P<name>[^\]]*?)\s*\]")


def _decode_error_line(exc: tomllib.TOMLDecodeError) -> int | None:
    # Python 3.14 gives TOMLDecodeError a lineno; before that it is only in the message.
    lineno = getattr(exc, "lineno", None)
    if isinstance(lineno, int):
        return lineno
    match = _TOML_DECODE_LINE.search(str(exc))
    return int(match.group(1)) if match else None


def _key_pattern(key: str) -> str:
    escaped = re.escape(key)
    return rf"""(?:{escaped}|"{escaped}"|'{escaped}')"""


def _header_name(raw: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in raw.split("."))


def _find_line(text: str, section: str, key: str | None) -> int | None:
    """Best-effort line number of `[section]` or of `key` inside it, for error messages.

    tomllib reports no positions for the values it returns, so this scans the text again
    with simple patterns. It understands `[section]` headers, `key = ...` lines under them,
    and top-level `section.key = ...`. It can be fooled by lines inside multi-line strings
    or arrays that look like headers or keys, and does not look into inline tables; then
    the line is wrong or missing, while the key in the message is always right.
    """
    # Patterns for lines that define the wanted name, keyed by the table they must be in.
    section_re = _key_pattern(section)
    if key is None:
        wanted = {"": re.compile(rf"\s*{section_re}\s*[=.]")}
    else:
        key_re = _key_pattern(key)
        wanted = {
            section: re.compile(rf"\s*{key_re}\s*[=.]"),
            "": re.compile(rf"\s*{section_re}\s*\.\s*{key_re}\s*="),
        }
    full_name = section if key is None else f"{section}.{key}"
    current: str | None = ""  # "" is the root table; None is an array-of-tables element
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            name = _header_name(header["name"])
            current = None if header["array"] else name
            if name == full_name:
                return number
            continue
        pattern = wanted.get(current) if current is not None else None
        if pattern is not None and pattern.match(line):
            return number
    return None


# --- writing -------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_STRING_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n"}
_STRING_ESCAPES |= {"\f": "\\f", "\r": "\\r"}


def write_config_toml(values: Mapping[str, Mapping[str, object]]) -> str:
    """Render `{section: {key: value}}` as TOML text, sections and keys in the given order.

    Used by the demo command to write a config file it then loads with `load_config`.
    Values may be strings (paths are written as strings), ints, floats, bools and lists of
    those. It does not check keys against the settings: `load_config` does that.
    """
    chunks = []
    for section, keys in values.items():
        lines = [f"[{_toml_key(section)}]"]
        lines.extend(f"{_toml_key(key)} = {_toml_value(value)}" for key, value in keys.items())
        chunks.append("\n".join(lines) + "\n")
    return "\n".join(chunks)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_string(key)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, PurePath):
        return _toml_string(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write a {type(value).__name__} as a TOML value")


def _toml_string(text: str) -> str:
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _STRING_ESCAPES:
            out.append(_STRING_ESCAPES[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:
            # TOML (and UTF-8) cannot carry a lone surrogate; writing it would fail later.
            raise ValueError(f"cannot write a lone surrogate (U+{code:04X}) in a TOML string")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)
