"""The event loop refdesk runs on: uvloop's where it is installed (Linux and macOS), the
standard library's otherwise.

uvloop runs the same asyncio code with its loop, transports and timers in C; measured on
the line relay at 100 chats it took about a quarter off refdesk's CPU per round trip
(bench/RESULTS.md). slixmpp, aiohttp, aiosqlite and asyncpg run on it unchanged, and the
test suite runs on it (tests/conftest.py), so what is tested is what runs. Called by
`refdesk run` (component/cli.py) and by the tests."""

from __future__ import annotations

import asyncio


def loop_policy() -> asyncio.AbstractEventLoopPolicy:
    """uvloop's event loop policy, or the standard one where uvloop is not installed."""
    try:
        import uvloop
    except ImportError:  # not on Windows; refdesk runs all the same
        return asyncio.DefaultEventLoopPolicy()
    policy: asyncio.AbstractEventLoopPolicy = uvloop.EventLoopPolicy()
    return policy
