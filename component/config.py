"""refdesk configuration: the settings.

Every setting is declared exactly once below, as a field of a frozen dataclass carrying its
type, its default (or none, meaning required) and its help text. The loader, the
`check-config` command, the documentation test and `config.example.toml` all work from
these declarations, so a new key is added here and in the example file and nowhere else.

The checks on values are in `component.config_checks`, the loader (`load_config`,
`parse_config`) in `component.config_loader` and the TOML writer in `component.config_toml`.
Only the loader validates: code (mostly tests) that builds these dataclasses directly is
trusted to pass sensible values.
"""

import dataclasses
import ipaddress
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, dataclass_transform

from component import config_checks as checks
from component.config_checks import ConfigError
from component.config_toml import write_config_toml

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
    "config_sections",
    "is_required",
    "iter_settings",
    "setting",
    "write_config_toml",
]

_T = TypeVar("_T")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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
    normalised) and raises `config_checks.Invalid` to reject it. A `secret` is never echoed in error
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


# --- the settings --------------------------------------------------------------------------


@_settings
class XmppConfig:
    """Connection to the XMPP server as an external component (XEP-0114)."""

    domain: str = setting(
        "The component's domain, as declared in the XMPP server's configuration "
        "(e.g. desk.example.org); queue and guest JIDs live on it.",
        check=checks.domain,
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
        check=checks.port,
    )
    fallback_hosts: tuple[str, ...] = setting(
        "Other nodes of a clustered XMPP server (ejabberd), as HOST or HOST:PORT (port "
        "defaults to port above): when the connection to host fails or its stream drops, "
        "refdesk tries the next address in turn. Empty: host only (Prosody has no "
        "clustering).",
        default=(),
        check=checks.component_hosts,
    )
    server_domain: str = setting(
        "The XMPP server's own domain, one it serves itself (e.g. example.org). A line "
        "counts as relayed only once the server has taken it: refdesk follows what it "
        "writes with a ping to this domain, which the server answers after everything "
        "written before it. Empty: the component's domain without its first label "
        "(desk.example.org gives example.org). If the server does not serve it (an error, "
        "or no answer within 5 s), refdesk says so in its log and pings its own domain "
        "instead (twice the traffic).",
        default="",
        check=checks.optional_domain,
        allow_empty=True,
    )
    reconnect_max_delay: float = setting(
        "Seconds: the longest wait between two attempts to reconnect to the XMPP server "
        "(the cap of the exponential back-off).",
        default=30.0,
        check=checks.positive,
    )
    max_stanza_bytes: int = setting(
        "Bytes: the largest stanza refdesk writes to the XMPP server, measured as sent "
        "(escaped, UTF-8). XMPP servers close the component's stream on a stanza over their "
        "own limit (Prosody: component_stanza_size_limit, 512 KiB by default; ejabberd: "
        "max_stanza_size), which would stop every chat; longer texts are sent in parts or "
        "cut, and the operator is told. Keep it well under the server's limit.",
        default=64 * 1024,
        check=checks.stanza_bytes,
    )

    @property
    def component_addresses(self) -> tuple[tuple[str, int], ...]:
        """(host, port) and then the fallback nodes, in the order the component tries
        them. Read by the XMPP adapter at each connection attempt."""
        fallbacks = (checks.component_address(item, self.port) for item in self.fallback_hosts)
        return ((self.host, self.port), *fallbacks)


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
        check=checks.port,
    )
    password_hashing: str = setting(
        'How much work an admin password\'s hash takes: "strong" (argon2id as RFC 9106 '
        'recommends: 3 passes over 64 MiB) or "test" (almost none, for test suites only: '
        "a copied database would give its passwords up at once). Applies to passwords set "
        "from now on (`admin add`, `admin password`) and to the stand-in checked for "
        "unknown usernames; a stored hash keeps the parameters it was made with.",
        default="strong",
        check=checks.password_hashing,
    )
    public_url: str = setting(
        "Base URL that patrons' browsers use to reach this server (http or https, host, "
        "optional port and path); used in links and the embed snippet and for the WebSocket "
        "Origin check. A trailing slash is dropped.",
        default="http://127.0.0.1:8080",
        check=checks.public_url,
    )
    trusted_proxies: tuple[str, ...] = setting(
        "IP addresses or CIDR networks of reverse proxies whose forwarding header "
        "(forwarded_header) is believed; for any other peer the connection's own address is "
        "the patron's.",
        default=(),
        check=checks.networks,
    )
    forwarded_header: str = setting(
        'The one header the trusted proxies write the client\'s address in: "X-Forwarded-For" '
        '(nginx: proxy_set_header X-Forwarded-For $remote_addr) or "Forwarded" (RFC 7239). '
        "The other header is ignored, since a proxy passes it through from the client.",
        default="X-Forwarded-For",
        check=checks.forwarded_header,
    )
    header_timeout: float = setting(
        "Seconds a client has, from connecting or from its previous response, to send a "
        "complete request line and headers (a slowly trickled request is cut off "
        "however much it trickles), and a new patron WebSocket to say hello; also how long "
        "an idle keep-alive connection stays open.",
        default=10.0,
        check=checks.positive,
    )
    connections_per_address: int = setting(
        "Open connections (HTTP and WebSocket) that one address may hold at once (IPv6: "
        "one /64); more are refused with 429. Trusted proxies are exempt; behind them, "
        "patron WebSockets and long-poll sessions are counted per forwarded address instead.",
        default=64,
        check=checks.positive,
    )
    connections_per_network: int = setting(
        "The same for one network (/24 for IPv4, /48 for IPv6).",
        default=256,
        check=checks.positive,
    )

    metrics_networks: tuple[str, ...] = setting(
        "IP addresses or CIDR networks allowed to read /metrics, decided on the connection's "
        "own address (forwarded headers are never believed for it); others get 404. Behind a "
        "reverse proxy on the same host, loopback includes the proxy: deny /metrics there.",
        default=("127.0.0.0/8", "::1"),
        check=checks.networks,
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
    url: str = setting(
        "PostgreSQL instead of SQLite: a postgresql:// URL (e.g. "
        "postgresql://refdesk@db.example.org/refdesk; a password may also come from "
        "~/.pgpass or PGPASSWORD; a server on this machine through its socket, without a "
        "password: postgresql://refdesk@/refdesk?host=/run/postgresql). Empty: the SQLite "
        "file at path.",
        default="",
        check=checks.postgresql_url,
        allow_empty=True,
    )
    change_poll: float = setting(
        "Seconds, PostgreSQL only: how often the active process also polls for changes made "
        "by other processes (the CLI, another instance's admin page). Such changes reach it "
        "at once by LISTEN/NOTIFY; this slow poll is only a backstop for a lost "
        "notification.",
        default=30.0,
        check=checks.positive,
    )
    lease: float = setting(
        "Seconds, PostgreSQL only: the active process's lease on the database's active lock. "
        "It confirms the lock every third of this and steps down once this long has passed "
        "since its last confirmation; a process taking over waits up to this plus 1 s "
        "before it serves. Longer rides out a flaky network to the database, shorter "
        "fails over sooner. Every instance on one database must use the same value "
        "(1 to 60).",
        default=3.0,
        check=checks.lease,
    )

    @property
    def target(self) -> Path | str:
        """What `Store.open` opens: the PostgreSQL URL when one is set, else the file.
        Read by the composition root, the CLI and the doctor."""
        return self.url or self.path


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
        check=checks.port,
    )
    from_address: str = setting(
        'Sender address of the email refdesk sends (a bare address or "Display Name <address>").',
        default="desk@example.org",
        check=checks.email_address,
    )
    smtp_security: str = setting(
        '"none" (plain SMTP), "starttls" (upgrade required) or "tls" (implicit TLS, port 465).',
        default="none",
        check=checks.smtp_security,
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
        check=checks.positive,
    )
    max_frame_bytes: int = setting(
        "Largest WebSocket frame, in bytes, accepted from a patron's browser.",
        default=16384,
        check=checks.positive,
    )
    resume_ttl: float = setting(
        "Seconds a patron whose connection dropped has to come back to their chat; after "
        "that the chat ends as 'patron left' and the operator is told.",
        default=300.0,
        check=checks.positive,
    )
    operator_grace: float = setting(
        "Seconds an operator may be offline (a dropped phone connection, a client restart) "
        "before their open chats are handed back to the queue and offered to someone else.",
        default=60.0,
        check=checks.positive,
    )
    unstaffed_alert_after: float = setting(
        "Seconds a queue may be inside its service hours with nobody available before its "
        "group's coordinators and its on-call operators are told (once; and again when "
        "someone is available).",
        default=600.0,
        check=checks.positive,
    )


# A month: a longer memory of a troublesome address is a ban in all but name.
MAX_STICKY_PICKUP = 30 * 24 * 3600.0


def _sticky_pickup(value: float) -> float:
    if not 0 <= value <= MAX_STICKY_PICKUP:
        raise checks.Invalid(
            f"must be between 0 (off) and {MAX_STICKY_PICKUP:.0f} seconds (30 days), got {value}"
        )
    return value


# "Repeated" means at least twice; beyond a hundred a month the draft would never come.
MAX_REPEATED_INCIDENTS = 100


def _repeated_incidents(value: int) -> int:
    if not 2 <= value <= MAX_REPEATED_INCIDENTS:
        raise checks.Invalid(f"must be between 2 and {MAX_REPEATED_INCIDENTS}, got {value}")
    return value


@_settings
class BansConfig:
    """Bans and what a banned patron is told."""

    ladder: str = setting(
        "Ban lengths for a first, second, third... offence on the same address or network "
        "(the last repeats).",
        default="30d,90d,1y",
        check=checks.ladder,
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
        check=checks.email_address,
    )
    sticky_pickup: float = setting(
        "Seconds during which new chats from a patron whose chat an operator ended as "
        "inappropriate (the goodbye-inappropriate canned message, !ban, or an incident "
        "tag) are offered first to that operator alone, for the queue's offer timeout. The "
        "address or network is remembered only as the queue's privacy mode allows; 0 "
        "turns this off.",
        default=86400.0,
        check=_sticky_pickup,
    )
    repeated_incidents: int = setting(
        "Incidents from one exempt network (a school's or a library's public computers) "
        "within 30 days that make a message to the network's contact, drafted for an admin "
        "to review and send instead of a ban. Between 2 and 100.",
        default=2,
        check=_repeated_incidents,
    )


@_settings
class LimitsConfig:
    """Rate limits against floods of chat requests, messages and email."""

    chats_per_address: int = setting(
        "New chats one address may start within chat_window seconds.",
        default=5,
        check=checks.positive,
    )
    chats_per_network: int = setting(
        "New chats one network (/24 for IPv4, /48 for IPv6) may start within chat_window.",
        default=30,
        check=checks.positive,
    )
    chat_window: float = setting(
        "The window, in seconds, of the two limits above.",
        default=600.0,
        check=checks.positive,
    )
    messages_per_second: float = setting(
        "Sustained messages per second one address may send (also the limit on each "
        "operator's back-channel lines to colleagues, and on their commands that write or "
        "send).",
        default=3.0,
        check=checks.positive,
    )
    message_burst: int = setting(
        "Messages one address (or operator, on the back-channel or in commands that write "
        "or send) may send at once before messages_per_second applies.",
        default=10,
        check=checks.positive,
    )
    mails_per_recipient: int = setting(
        "Emails to one address that patrons typed (transcript copies, receipts of emailed "
        "questions) within mail_window seconds, whoever asks.",
        default=3,
        check=checks.positive,
    )
    mails_per_address: int = setting(
        "Emails to addresses that patrons typed which one patron address may cause within "
        "mail_window seconds.",
        default=5,
        check=checks.positive,
    )
    mails_per_network: int = setting(
        "Emails to addresses that patrons typed which one network (/24 for IPv4, /48 for "
        "IPv6) may cause within mail_window seconds.",
        default=20,
        check=checks.positive,
    )
    mail_window: float = setting(
        "The window, in seconds, of the three mail limits above.",
        default=3600.0,
        check=checks.positive,
    )


@_settings
class LogConfig:
    """What refdesk logs look like."""

    format: str = setting(
        '"text" (readable lines) or "json" (one JSON object per line: time, level, logger, '
        "message and any traceback, for log collectors). Neither names a patron's IP or "
        "email address.",
        default="text",
        check=checks.log_format,
    )


@_settings
class OperatorWebConfig:
    """The browser XMPP client for operators served at /operator/."""

    websocket_url: str = setting(
        "The operators' XMPP server's WebSocket endpoint (RFC 7395), e.g. "
        "\"wss://xmpp.example.org/xmpp-websocket\" (Prosody's mod_websocket, ejabberd's "
        "ejabberd_http_ws). The browser connects there directly, so refdesk never sees an "
        "operator's password. Must be wss:// when [web] public_url is https (browsers refuse "
        "a ws:// socket from an https page). Empty: /operator/ explains that the browser "
        "client is off.",
        default="",
        check=checks.websocket_url,
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


def config_sections() -> Iterator[tuple[str, type[Any]]]:
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
    for section, cls in config_sections():
        for field in dataclasses.fields(cls):
            yield f"{section}.{field.name}", field


def is_required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
