"""Checks on configuration values, and how a bad value is reported.

The settings in `component.config` name these checks (`check=`); the loader
(`component.config_loader`) runs each on the value read from the file and turns an
`Invalid` into a `ConfigError` with the file, line and key. Each check returns the value
to keep (possibly normalised) or raises `Invalid`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from email.utils import parseaddr
from typing import TypeVar
from urllib.parse import SplitResult, parse_qs, urlsplit

from component.core.redact import redacted_url
from component.core.text import one_line

_Number = TypeVar("_Number", int, float)


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


class Invalid(ValueError):
    """A value that was read but cannot be used; the loader adds file, line and key.

    `suffix` is appended to the dotted key, e.g. "[2]" for the third element of a list.
    """

    def __init__(self, reason: str, suffix: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.suffix = suffix


def show_value(value: object, depth: int = 0) -> str:
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
        inner = (
            ", ".join(show_value(item, depth + 1) for item in value[:10]) if depth < 3 else "..."
        )
        text = "[" + inner + "]"
    elif isinstance(value, dict):
        text = "a table"
    else:
        text = f"a {type(value).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."


def port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise Invalid(f"must be a port number between 1 and 65535, got {value}")
    return value


# A host name or IPv4 address with an optional port, or a bracketed IPv6 address with
# one; at most 5 digits, so that a huge number is refused rather than converted.
_HOST_PORT = re.compile(
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})))"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


def component_address(item: str, default_port: int) -> tuple[str, int]:
    """`HOST`, `HOST:PORT` or `[IPv6]:PORT` as (host, port); a bare host takes
    `default_port`. Raises ValueError for anything else. Called by the check below and by
    `XmppConfig.component_addresses`."""
    match = _HOST_PORT.fullmatch(item)
    if match is None:
        raise ValueError(item)
    host = match.group("v6") or match.group("host")
    if match.group("v6") is not None:
        ipaddress.IPv6Address(host)  # a ValueError when it is none
    number = match.group("port")
    if number is None:
        return host, default_port
    value = int(number)
    if not 1 <= value <= 65535:
        raise ValueError(item)
    return host, value


def component_hosts(value: tuple[str, ...]) -> tuple[str, ...]:
    for index, item in enumerate(value):
        try:
            component_address(item, 1)
        except ValueError:
            raise Invalid(
                f"expected HOST or HOST:PORT (an IPv6 address as [ADDRESS]:PORT), got "
                f"{show_value(item)}",
                f"[{index}]",
            ) from None
    return value


def positive(value: _Number) -> _Number:
    if not value > 0:
        raise Invalid(f"must be greater than 0, got {value}")
    return value


# Bounds of [xmpp] max_stanza_bytes: below the lower one, once room is kept for the
# addresses and the rest of the envelope (8 KiB), too little is left for text and ordinary
# lines would come in parts; the upper one stays well under Prosody's default component
# limit (512 KiB).
MIN_STANZA_BYTES = 16 * 1024
MAX_STANZA_BYTES = 256 * 1024


def stanza_bytes(value: int) -> int:
    if not MIN_STANZA_BYTES <= value <= MAX_STANZA_BYTES:
        raise Invalid(
            f"must be between {MIN_STANZA_BYTES} and {MAX_STANZA_BYTES} bytes, got {value}"
        )
    return value


# Bounds of [storage] lease (seconds). Below the lower one a confirmation of the active
# lock (a third of the lease) would have to reach the database and back within a third of
# a second even on a busy machine, and the active process would step down at every
# hiccup; above the upper one a crashed active process leaves nobody serving for a minute.
MIN_LEASE = 1.0
MAX_LEASE = 60.0


def lease(value: float) -> float:
    if not MIN_LEASE <= value <= MAX_LEASE:
        raise Invalid(f"must be between {MIN_LEASE:g} and {MAX_LEASE:g} seconds, got {value}")
    return value


_DOMAIN_LABEL = re.compile(r"^(?!-)[^\s@/.:]{1,63}(?<!-)$")


def domain(value: str) -> str:
    # A bare domain, not a JID: an "@" or "/" here would make every queue and guest JID
    # built on it invalid, which would otherwise only show up as stanza errors at run time.
    labels = value.split(".")
    if len(value) > 253 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise Invalid(
            f"must be a bare domain name such as desk.example.org, got {show_value(value)}"
        )
    return value


def optional_domain(value: str) -> str:
    """`[xmpp] server_domain`: empty (derived from the component's domain), or a bare
    domain name."""
    return value if value == "" else domain(value)


def _server_url(value: str, schemes: tuple[str, ...], what: str) -> SplitResult:
    """The rule every configured server URL shares (`public_url`, `websocket_url`): one
    of `schemes`, a host, a valid port, no white space and no user name or password;
    `what` names the expected URL in the refusal."""
    bad = f"must be {what} with a host, got {show_value(value)}"
    if any(ch.isspace() for ch in value):
        raise Invalid(bad)
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise Invalid(bad)
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        raise Invalid(f"has an invalid port: {show_value(value)}") from None
    if parts.username is not None or parts.password is not None:
        raise Invalid("must not contain a user name or password")
    return parts


def public_url(value: str) -> str:
    parts = _server_url(value, ("http", "https"), "an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise Invalid(f"must not have a query or fragment, got {show_value(value)}")
    # Callers build links as public_url + "/chat/q"; a trailing slash would double up.
    return value.rstrip("/")


def networks(value: tuple[str, ...]) -> tuple[str, ...]:
    for index, item in enumerate(value):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise Invalid(
                f"expected an IP address or CIDR network, got {show_value(item)}", f"[{index}]"
            ) from None
    return value


def forwarded_header(value: str) -> str:
    for name in ("X-Forwarded-For", "Forwarded"):
        if value.strip().lower() == name.lower():
            return name
    raise Invalid(f'expected "X-Forwarded-For" or "Forwarded", got {show_value(value)}')


def smtp_security(value: str) -> str:
    if value not in ("none", "starttls", "tls"):
        raise Invalid('expected "none", "starttls" or "tls"')
    return value


def email_address(value: str) -> str:
    # Accepts "desk@example.org" and "Ask a Librarian <desk@example.org>" alike.
    if "=?" in value or any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in value):
        # An encoded word decodes to any characters at all, line breaks included; TOML
        # carries a name in plain UTF-8.
        raise Invalid(
            f'must be plain text without "=?" or control characters, got {show_value(value)}'
        )
    # The address itself gets the same check as every address typed anywhere else.
    # Imported here: the address rules load the email and XMPP libraries, which commands
    # that only read the configuration (`refdesk check-config`) need not wait for.
    from component.core import validators

    _name, address = parseaddr(value)
    try:
        validators.own_address(address)
    except ValueError as exc:
        raise Invalid(f"expected an email address, got {show_value(value)}: {exc}") from None
    return value


def ladder(value: str) -> str:
    from component.core.bans import BanError, parse_ladder

    try:
        return str(parse_ladder(value))
    except BanError as exc:
        raise Invalid(str(exc)) from None


def log_format(value: str) -> str:
    if value not in ("text", "json"):
        raise Invalid('expected "text" or "json"')
    return value


def password_hashing(value: str) -> str:
    if value not in ("strong", "test"):
        raise Invalid('expected "strong" or "test"')
    return value


# The component secret config.example.toml ships with: published, so never a real one.
EXAMPLE_SECRET = "change-me-to-a-long-random-string"


def example_secret_left(secret: str) -> str | None:
    """Why `[xmpp] secret` is unusable although well-formed (still the example's), or
    None. Called by `refdesk check-config`, the step the README and the deploy guide have
    a new installation run after copying config.example.toml."""
    if secret == EXAMPLE_SECRET:
        return (
            "xmpp.secret is still the example's published placeholder: set a long random "
            'secret (python3 -c "import secrets; print(secrets.token_urlsafe(32))"), the '
            "same as the component secret in the XMPP server's configuration"
        )
    return None


def postgresql_url(value: str) -> str:
    """`[storage] url`: empty (SQLite), or a postgresql:// URL with a host, given before
    the path or, for a socket directory, as the query's `host` (libpq's form)."""
    # Not `_server_url`: a database URL may carry a user name and password, which that
    # check refuses.
    if value == "":
        return value
    # The refusal shows the URL without its password (this line goes to the terminal and
    # to the service's log).
    bad = (
        "must be a postgresql:// URL with a host (or host=/socket/directory in its "
        f"query), got {show_value(redacted_url(value))}"
    )
    if any(ch.isspace() for ch in value) or len(value) > 2048:
        raise Invalid(bad)
    parts = urlsplit(value)
    # PostgreSQL on the same machine is reached through its socket directory
    # (`postgresql://refdesk@/refdesk?host=/run/postgresql`), where Debian's default peer
    # authentication needs no password; asyncpg reads that form as libpq does.
    host = parts.hostname or "".join(parse_qs(parts.query).get("host", []))
    if parts.scheme not in ("postgresql", "postgres") or not host:
        raise Invalid(bad)
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when it is read
    except ValueError:
        raise Invalid("has an invalid port") from None
    return value


def mixed_content(public_url: str, websocket_url: str) -> str | None:
    """Why `[operator_web] websocket_url` cannot work with `[web] public_url`, or None.
    Called by the loader once every section is read, so start-up and `refdesk
    check-config` refuse the same files. A page served over https may not open a ws://
    socket (browsers block mixed content without a word to the user), so an https page
    with a ws:// endpoint would leave operators at a login that never connects."""
    if urlsplit(public_url).scheme == "https" and urlsplit(websocket_url).scheme == "ws":
        return (
            "must be a wss:// URL while web.public_url is https: browsers refuse a ws:// "
            "connection from an https page (mixed content), so operators could not log in"
        )
    return None


def websocket_url(value: str) -> str:
    """`[operator_web] websocket_url`: empty, or a ws:// or wss:// URL safe to quote in a
    Content-Security-Policy."""
    if value == "":
        return value  # the browser client is off
    if not all("!" <= ch <= "~" for ch in value):
        # Spaces, controls and non-ASCII: a header cannot carry them and a CSP source
        # cannot match them (write an internationalised host in its xn-- form).
        raise Invalid(f"must be a ws:// or wss:// URL with a host, got {show_value(value)}")
    if "*" in value:
        # In a Content-Security-Policy source "*" is a wildcard: "wss://*" is every host.
        raise Invalid(f"must name one endpoint, without '*', got {show_value(value)}")
    parts = _server_url(value, ("ws", "wss"), "a ws:// or wss:// URL")
    if parts.fragment or any(ch in value for ch in "\"'<>;,"):
        # The URL goes into the operator page's Content-Security-Policy and its settings:
        # a quote or a semicolon there could add directives or break out of the value.
        raise Invalid(f"must be a ws:// or wss:// URL with a host, got {show_value(value)}")
    return value
