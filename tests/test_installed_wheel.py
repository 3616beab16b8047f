"""The installed artifact is what is tested: build the sdist and the wheel from a copy of
the source tree (`python -m build`: the wheel is built from the sdist, so both must carry
every file), install the wheel into a fresh virtualenv (not editable), run `refdesk run`
from there against a real XMPP server, and fetch every asset the patron page, the embed
script and the admin pages reference.

Built and installed without the network or a second copy of every dependency: the build
backend is the test environment's own (`--no-isolation`; the test extra pins setuptools
as `[build-system]` does), the fresh virtualenv has no pip of its own (the test
environment's pip installs into it), and the wheel's dependencies are the test
environment's installed copies, linked in one by one from the wheel's own `Requires-Dist`
(and theirs, recursively): a module that imports an undeclared package fails there, as
after a real install."""

from __future__ import annotations

import asyncio
import email.parser
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiohttp
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from component.config import write_config_toml
from component.prosody import free_port
from tests.conftest import COMPONENT_DOMAIN, SECRET
from tests.listening import listens_on
from tests.xmpp_servers import XmppServer

ROOT = Path(__file__).resolve().parent.parent
_SKIP = {".git", ".venv", "node_modules", "build", "dist", "test-artifacts", "__pycache__"}
ADMIN_PASSWORD = "a long admin password"


@dataclass
class Installed:
    venv: Path
    wheel: Path
    sdist: Path
    build_log: str

    @property
    def refdesk(self) -> Path:
        return self.venv / "bin" / "refdesk"


def _ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n in _SKIP or n.endswith((".egg-info", ".sqlite3", ".pyc"))}


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """The wheel built from the sdist, installed into a fresh virtualenv: once per session.

    Session scope, not module scope: the test that runs the installed service is
    parametrized by the session's XMPP server, so pytest runs its two cases among the
    other Prosody and ejabberd tests, away from this module, and a module-scoped build
    would be torn down and redone for each of them (three builds instead of one)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=_ignore)
    dist = tmp / "dist"
    built = _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)])
    (wheel,) = dist.glob("refdesk-*.whl")
    (sdist,) = dist.glob("refdesk-*.tar.gz")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
          "--no-index", str(wheel)])  # fmt: skip
    (site,) = venv.glob("lib/python*/site-packages")
    _link_dependencies(wheel, site)
    # The package the service runs is the installed one, not the checkout's.
    where = _run([str(python), "-c", "import component; print(component.__file__)"], cwd=tmp)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout
    yield Installed(venv, wheel, sdist, built.stdout + built.stderr)


def _wanted(requirement: Requirement, extras: frozenset[str]) -> bool:
    """Whether a Requires-Dist line applies to an install asking for `extras`."""
    marker = requirement.marker
    return marker is None or any(marker.evaluate({"extra": e}) for e in {"", *extras})


def _link_dependencies(wheel: Path, site: Path) -> None:
    """Make the wheel's declared dependencies importable in the fresh virtualenv `site`:
    each distribution its `Requires-Dist` names (with their own, recursively) is linked
    from the test environment's installed copy, top-level entries and dist-info alike,
    after checking its version satisfies the requirement. Only what is declared is there.
    Called once by the `installed` fixture, after the wheel itself is installed."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        headers = email.parser.Parser().parsestr(archive.read(name).decode("utf-8"))
    todo = [(Requirement(line), frozenset[str]()) for line in headers.get_all("Requires-Dist", [])]
    seen: set[str] = set()
    while todo:
        requirement, extras = todo.pop()
        if not _wanted(requirement, extras):
            continue
        key = canonicalize_name(requirement.name)
        if key in seen:
            continue
        seen.add(key)
        found = metadata.distribution(requirement.name)
        assert requirement.specifier.contains(found.version, prereleases=True), (
            requirement,
            found.version,
        )
        # Top-level modules, packages and the dist-info; not scripts (outside site-packages)
        # nor byte code, which Python writes afresh next to the links.
        tops = {Path(str(f)).parts[0] for f in found.files or ()} - {"..", "__pycache__"}
        for top in sorted(tops):
            link = site / top
            if not link.exists():
                link.symlink_to(Path(str(found.locate_file(top))))
        asked = frozenset(requirement.extras)
        todo += [(Requirement(line), asked) for line in found.requires or ()]


def test_wheel_and_sdist_carry_what_the_service_serves(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for served in ("chat.js", "chat.css", "embed.js", "strings.js"):
        assert f"web/widget/{served}" in names, sorted(names)
    # Every module of the source tree is in the wheel (the package list is explicit).
    for package in ("component", "web"):
        for module in (ROOT / package).rglob("*.py"):
            assert module.relative_to(ROOT).as_posix() in names, module
    assert "web/templates/chat.html" in names
    assert "web/templates/admin/base.html" in names
    assert "web/static/admin.css" in names
    assert "component/migrations/001_initial.sql" in names
    # The vendored operators' client: every file scripts/update-converse puts there.
    for path in (ROOT / "web" / "converse").rglob("*"):
        if path.is_file():
            assert path.relative_to(ROOT).as_posix() in names, path
    with tarfile.open(installed.sdist) as sdist:
        members = {m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name}
    for path in ("widget/chat.js", "widget/embed.js", "CHANGELOG.md", "config.example.toml"):
        assert path in members, sorted(members)


def test_every_data_file_is_packaged_and_the_build_says_nothing_is_left_out(
    installed: Installed,
) -> None:
    """Templates, styles, the widget's files and the migrations all reach the wheel, and
    setuptools has no "package would be ignored" warning: those pages of warnings were
    printed at every install (scripts/demo reinstalls on each run) and hid real errors."""
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    sources = {
        "web/templates": ROOT / "web" / "templates",
        "web/static": ROOT / "web" / "static",
        "web/widget": ROOT / "widget",
        "component/migrations": ROOT / "component" / "migrations",
    }
    for packaged, source in sources.items():
        for path in source.rglob("*"):
            if path.is_file() and path.suffix in (".html", ".css", ".js", ".sql"):
                name = f"{packaged}/{path.relative_to(source).as_posix()}"
                assert name in names, name
    assert "would be ignored" not in installed.build_log, installed.build_log[-3000:]


def test_version_comes_from_the_package_metadata(installed: Installed, tmp_path: Path) -> None:
    result = _run([str(installed.refdesk), "--version"], cwd=tmp_path)
    version = installed.wheel.name.split("-")[1]
    assert result.stdout.strip() == f"refdesk {version}"
    changelog = (ROOT / "CHANGELOG.md").read_text("utf-8")
    assert f"## {version}" in changelog


class _Links(HTMLParser):
    """Collects the src and href attributes of a page (scripts, styles, images, frames,
    links), and the value of hidden inputs by name."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.hidden: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name):
                self.refs.append(values[name] or "")
        if tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.hidden[values["name"] or ""] = values.get("value") or ""


def _parse(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


async def _fetch_assets(http: aiohttp.ClientSession, page_url: str, html: str) -> list[str]:
    """GET every same-server src/href of the page; return the URLs fetched. Fails on any
    answer but 200."""
    fetched = []
    base = urlsplit(page_url)
    for ref in _parse(html).refs:
        if ref.startswith(("data:", "#", "mailto:")):
            continue
        url = urljoin(page_url, ref)
        parts = urlsplit(url)
        if parts.netloc != base.netloc:
            continue
        async with http.get(url, allow_redirects=False) as response:
            assert response.status == 200, (page_url, ref, response.status)
            await response.read()
        fetched.append(parts.path)
    return fetched


def _config(tmp: Path, server: XmppServer, web_port: int) -> Path:
    path = tmp / "refdesk.toml"
    path.write_text(
        write_config_toml(
            {
                "xmpp": {
                    "domain": COMPONENT_DOMAIN,
                    "secret": SECRET,
                    "port": server.component_port,
                    "reconnect_max_delay": 1.0,
                },
                "web": {"port": web_port, "public_url": f"http://127.0.0.1:{web_port}"},
                "storage": {"path": "db.sqlite3"},
                "mail": {"smtp_port": free_port()},
                "operator_web": {"websocket_url": server.websocket_url},
            }
        ),
        "utf-8",
    )
    return path


async def _wait_serving(http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[str]) -> None:
    for _ in range(600):
        assert proc.poll() is None, f"refdesk exited: {proc.communicate()}"
        try:
            async with http.get(url) as response:
                # From `proc` itself, not from another test's desk that took the port
                # first (see tests.listening).
                if response.status < 500 and listens_on(proc.pid, urlsplit(url).port or 0):
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("refdesk did not start serving")


async def test_installed_service_serves_every_referenced_asset(
    installed: Installed, xmpp_server: XmppServer, tmp_path: Path
) -> None:
    web_port = free_port()
    config = _config(tmp_path, xmpp_server, web_port)
    cli = [str(installed.refdesk), "--config", str(config)]
    # Run from a directory outside the source tree, with nothing of it on the path.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([*cli, "queue", "add", "ask"], cwd=tmp_path, env=env)
    _run([*cli, "admin", "add", "boss"], cwd=tmp_path, env=env, input=ADMIN_PASSWORD + "\n")
    proc = subprocess.Popen(
        [*cli, "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{web_port}"
    jar = aiohttp.CookieJar(unsafe=True)
    try:
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            await _wait_serving(http, base + "/api/queues/ask/status", proc)

            # The operations endpoints work from the wheel (their libraries are declared).
            for _ in range(300):
                async with http.get(base + "/healthz") as response:
                    health = await response.json()
                    if response.status == 200:
                        break
                await asyncio.sleep(0.1)
            assert health["xmpp"] == {"connected": True}, health
            async with http.get(base + "/metrics") as response:
                assert response.status == 200
                assert "refdesk_xmpp_connected 1.0" in await response.text()

            async with http.get(base + "/chat/ask") as response:
                assert response.status == 200
                page = await response.text()
            fetched = await _fetch_assets(http, base + "/chat/ask", page)
            assert {"/widget/chat.js", "/widget/chat.css", "/widget/strings.js"} <= set(fetched)
            # Only scripts and styles of the widget package are served.
            for path in ("/widget/__init__.py", "/widget/missing.js", "/widget/..%2fpages.py"):
                async with http.get(base + path) as response:
                    assert response.status == 404, path

            async with http.get(base + "/embed.js") as response:
                assert response.status == 200
                assert "javascript" in response.headers["Content-Type"]
                embed = await response.text()
            # The embed script builds the widget and status URLs from its own address.
            assert "'chat/'" in embed and "'api/queues/'" in embed
            for path in ("/chat/ask?lang=en", "/api/queues/ask/status"):
                async with http.get(base + path) as response:
                    assert response.status == 200, path

            # The operators' browser client and everything its page loads.
            async with http.get(base + "/operator/") as response:
                assert response.status == 200
                operator_page = await response.text()
            fetched = await _fetch_assets(http, base + "/operator/", operator_page)
            assert {"/operator/converse/converse.min.js", "/operator/operator.js"} <= set(fetched)
            for path in ("sounds/msg_received.ogg", "emoji.json", "webfonts/muli.ttf"):
                async with http.get(f"{base}/operator/converse/{path}") as response:
                    assert response.status == 200, path

            async with http.get(base + "/admin/login") as response:
                login = await response.text()
            assert "/admin/static/admin.css" in await _fetch_assets(
                http, base + "/admin/login", login
            )
            form = _parse(login).hidden | {"username": "boss", "password": ADMIN_PASSWORD}
            async with http.post(
                base + "/admin/login", data=form, headers={"Origin": base}, allow_redirects=True
            ) as response:
                assert response.status == 200
                dashboard = await response.text()
            assert "Log out" in dashboard
            nav = [
                ref
                for ref in _parse(dashboard).refs
                if ref.startswith("/admin/") and ref != "/admin/"
            ]
            assert "/admin/queues" in nav
            for path in ["/admin/", *nav]:
                async with http.get(base + path, allow_redirects=False) as response:
                    assert response.status == 200, path
                    html = await response.text()
                await _fetch_assets(http, base + path, html)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "Traceback" not in output, output
