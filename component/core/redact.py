"""Secrets inside a database URL (`[storage] url`, `store copy --to`), kept out of every
message and log line: the password of its user part and a `password` query parameter."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote

HIDDEN = "***"
# Query parameters libpq and asyncpg read a password from.
_SECRET_PARAMETERS = frozenset({"password"})


def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets `url` carries, as written and percent-decoded (an error may quote
    either). Called by `redacted_url`, and by the CLI and the runner to hide them in
    errors and logs."""
    _scheme, sep, rest = url.partition("://")
    if not sep:
        return ()
    # The user part ends at the last "@" before the path, as URL parsers read it.
    netloc = rest.split("/", 1)[0].split("?", 1)[0]
    userinfo, at, _host = netloc.rpartition("@")
    found: list[str] = []
    if at and ":" in userinfo:
        found.append(userinfo.split(":", 1)[1])
    query = rest.partition("?")[2].split("#", 1)[0]
    for part in query.split("&"):
        key, eq, value = part.partition("=")
        if eq and unquote(key).lower() in _SECRET_PARAMETERS:
            found.append(value)
    out: list[str] = []
    for secret in found:
        for form in (secret, unquote(secret)):
            # A password with an "@" in it is read by some parsers as ending at that "@"
            # (the rest becoming the host): the pieces may then be quoted on their own.
            # Pieces shorter than 3 characters are left: hiding every "1" or "a" would
            # only garble the message.
            pieces = [p for p in form.split("@") if len(p) >= 3] if "@" in form else []
            for piece in (form, *pieces):
                if piece and piece not in out:
                    out.append(piece)
    return tuple(out)


def redacted_url(url: str) -> str:
    """`url` with its secrets replaced by "***", for messages: the user part's password
    and any password parameter, however the URL is otherwise formed (even one the
    configuration refuses)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    head, slash, tail = rest.partition("/")
    netloc, qmark, query = head.partition("?")
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:{HIDDEN}@{host}"
    head = netloc + qmark + _hidden_query(query)
    if slash:
        path, qmark, query = tail.partition("?")
        tail = path + qmark + _hidden_query(query)
    return f"{scheme}://{head}{slash}{tail}"


def _hidden_query(query: str) -> str:
    parts = []
    for part in query.split("&") if query else []:
        key, eq, value = part.partition("=")
        if eq and unquote(key).lower() in _SECRET_PARAMETERS:
            value = HIDDEN
        parts.append(key + eq + value)
    return "&".join(parts)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret replaced by "***" (longest first, so a
    secret inside another is not left half-shown). For error texts that quote a URL or a
    connection parameter (asyncpg's own messages among them)."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, HIDDEN)
    return text


__all__ = ["HIDDEN", "redacted_url", "scrub", "url_secrets"]
