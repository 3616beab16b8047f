"""Log output: readable text by default, or one JSON object per line (`[log] format =
"json"`) for log collectors.

Neither format carries a patron's address beyond what the queue's privacy mode keeps:
log lines name chats, queues and operators, never a patron's IP address or email address.
"""

from __future__ import annotations

import logging

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: bool) -> None:
    """Text logs on standard error; called first thing by the CLI (before the config is
    read, so that its errors are logged too)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=TEXT_FORMAT)
    if not verbose:
        logging.getLogger("slixmpp").setLevel(logging.WARNING)


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
