"""What the `refdesk` command prints: listings one line per item, errors as one line.

Used by the entry point (`component.cli`) and the commands (`component.cli_commands`).
Every failure the user can cause ends as one line on standard error and a non-zero exit
status, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from component.core.text import one_line


class UsageError(Exception):
    """Bad input on the command line or in the data it names; printed as one line."""


def print_line(line: str) -> None:
    """Print one line of output: listings are one line per item, with tab-separated
    fields. What the fields hold was typed by people (a ban reason, a canned text, a
    title, here or on the admin page), so anything unprintable in them, such as a line
    break or a terminal escape, is written as an escape; tabs stay as separators."""
    print("\t".join(one_line(part) for part in line.split("\t")), flush=True)


def fail(message: str) -> None:
    """Print an error as the one line the CLI promises."""
    print(f"refdesk: error: {one_line(message)}", file=sys.stderr, flush=True)


def undecodable(argv: Sequence[str]) -> int | None:
    """The position (from 1) of the first argument that was not valid UTF-8 (Python
    keeps such bytes as lone surrogates, which nothing downstream can store or print)."""
    for index, arg in enumerate(argv, start=1):
        if any("\ud800" <= ch <= "\udfff" for ch in arg):
            return index
    return None
