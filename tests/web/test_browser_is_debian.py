"""Which Chromium the browser tests drive: Debian's, never a browser Playwright downloaded
(Playwright reports its own download's path as `chromium.executable_path` even when the
tests launch another, which is easy to mistake for what runs)."""

from __future__ import annotations

import subprocess

from playwright.async_api import Browser

from tests.conftest import CHROMIUM, DEBIAN_CHROMIUM_PROGRAM, browser_program


async def test_the_browser_fixture_runs_debians_chromium(browser: Browser) -> None:
    program = await browser_program(browser)
    packaged = subprocess.run(
        [CHROMIUM, "--version"], capture_output=True, text=True, check=True
    ).stdout
    print(f"browser process: {program}, version {browser.version}; {CHROMIUM}: {packaged}")
    assert program == DEBIAN_CHROMIUM_PROGRAM
    assert "ms-playwright" not in str(program)
    # "Chromium 156.0.8078.114 built on Debian GNU/Linux 12 (bookworm)"
    assert packaged.split()[:2] == ["Chromium", browser.version]
    assert "Debian" in packaged
