"""Log output: readable text by default, or one JSON object per line (`[log] format =
"json"`) for log collectors.

Neither format carries a patron's address beyond what the queue's privacy mode keeps:
log lines name chats, queues and operators, never a patron's IP address or email address.
"""

from __future__ import annotations

import logging

from pythonjsonlogger.json import JsonFormatter

from component.core.redact import scrub

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: bool) -> None:
    """Text logs on standard error; called first thing by the CLI (before the config is
    read, so that its errors are logged too)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=TEXT_FORMAT)
    if not verbose:
        logging.getLogger("slixmpp").setLevel(logging.WARNING)


class _HideSecrets(logging.Filter):
    """Replaces given secrets in a record's message and traceback by "***"; one per
    root handler, installed by `hide_secrets`."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message, self.secrets)
        if record.exc_info:
            # A driver's exception text may quote the URL: the traceback is formatted
            # here and put into the message only when it held a secret.
            trace = logging.Formatter().formatException(record.exc_info)
            clean_trace = scrub(trace, self.secrets)
            if clean_trace != trace:
                clean = f"{clean}\n{clean_trace}"
                record.exc_info = None
                record.exc_text = None
        if clean != message:
            record.msg, record.args = clean, None
        return True


def hide_secrets(secrets: tuple[str, ...]) -> None:
    """Keep `secrets` (the database URL's password) out of every log line from now on.
    Called by the CLI once the config is read, before any command runs."""
    if not secrets:
        return
    for handler in logging.getLogger().handlers:
        handler.addFilter(_HideSecrets(secrets))


def use_format(name: str) -> None:
    """Switch the root handlers to the configured format; called by the CLI once the
    config is loaded, for the commands that run the service."""
    if name != "json":
        return
    formatter = JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        # ISO 8601 in UTC under "time"; tracebacks go into "exc_info", inside the line.
        timestamp="time",
    )
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
