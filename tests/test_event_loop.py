"""refdesk runs on uvloop (`component.loop`), and so does this suite, so that what is
tested is what runs (tests/conftest.py, `pytest_asyncio_loop_factories`)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import uvloop

from component.loop import loop_policy


async def test_the_suite_runs_on_uvloop() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)


def test_refdesk_picks_uvloop() -> None:
    assert isinstance(loop_policy(), uvloop.EventLoopPolicy)


def test_without_uvloop_the_standard_loop_is_used() -> None:
    """Where uvloop is not installed (Windows), refdesk runs on the standard loop."""
    code = (
        "import sys, asyncio; sys.modules['uvloop'] = None; "
        "from component.loop import loop_policy; "
        "print(type(loop_policy()) is asyncio.DefaultEventLoopPolicy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "True"
