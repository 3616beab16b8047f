"""refdesk behind the shipped nginx site file (docs/deploy/nginx-refdesk.conf), with TLS.

Debian's nginx runs that very file, with only its ports, certificate paths and upstream
address replaced, as an unprivileged foreground process in a temporary directory. Three
loopback addresses stand for three machines: Chromium connects from 127.0.0.1 to nginx on
127.0.0.2, and nginx connects to refdesk from 127.0.0.5 (`proxy_bind`), the only address
refdesk trusts as a proxy. A whole chat goes through it over the WebSocket and over
long-poll, then a ban on the patron's address (as nginx passes it) bites, whatever
X-Forwarded-For the patron sends, and the proxy's own address is never taken for a patron's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.async_api import Browser, expect

from component.core.bans import Ban
from component.moderation import BanRefused
from component.prosody import port_accepts, read_tail
from component.runner import Refdesk
from tests import conftest
from tests.conftest import Desk, admin_account, make_config, seed
from tests.mail_sink import MailSink
from tests.web.test_widget_browser import browsing, take_offer
from tests.xmpp_servers import XmppServer

ROOT = Path(__file__).resolve().parent.parent
SITE_FILE = ROOT / "docs" / "deploy" / "nginx-refdesk.conf"
PATRON_IP = "127.0.0.1"  # where Chromium and the test's HTTP client connect from
NGINX_IP = "127.0.0.2"  # where nginx listens
PROXY_IP = "127.0.0.5"  # where nginx connects to refdesk from


def free_port_on(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def self_signed(directory: Path, address: str) -> tuple[Path, Path]:
    """A certificate for `address` (IP SAN) and its key, as PEM files."""
    return _self_signed(
        directory, "cert.pem", "key.pem", x509.IPAddress(ipaddress.ip_address(address))
    )


def self_signed_for(directory: Path, domain: str) -> tuple[Path, Path]:
    """A certificate for `domain` named as Prosody looks for it: DOMAIN.crt, DOMAIN.key."""
    return _self_signed(directory, f"{domain}.crt", f"{domain}.key", x509.DNSName(domain))


def _self_signed(
    directory: Path, cert_name: str, key_name: str, alt_name: x509.GeneralName
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "refdesk test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([alt_name]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / cert_name, directory / key_name
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def fill_site_file(
    text: str, *, https_port: int, http_port: int, upstream: int, cert: Path, key: Path
) -> str:
    """The shipped site file with the test's ports, certificate and upstream. Each
    placeholder must occur exactly once, so the file cannot drift from this test."""
    replacements = {
        "listen 443 ssl http2;": f"listen {NGINX_IP}:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "listen 80;": f"listen {NGINX_IP}:{http_port};",
        "listen [::]:80;": "",
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{upstream};",
        "/etc/letsencrypt/live/chat.example.org/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/chat.example.org/privkey.pem": str(key),
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, f"{old!r} should occur once in {SITE_FILE.name}"
        text = text.replace(old, new)
    return text


class Nginx:
    """Debian's nginx in the foreground with its own prefix, pid, logs and temp paths."""

    def __init__(self, directory: Path, site: str) -> None:
        self.dir = directory
        self.site = site
        self.process: asyncio.subprocess.Process | None = None

    def main_config(self) -> str:
        d = self.dir
        # As root, nginx would run its workers as "nobody", who cannot enter pytest's
        # private temporary directory; the user that runs the test will do.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"  {kind}_temp_path {d / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return f"""
{user}
daemon off;
worker_processes 1;
pid {d / "nginx.pid"};
error_log {d / "error.log"} info;
events {{ worker_connections 256; }}
http {{
  access_log {d / "access.log"};
{temp}
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  # Toward refdesk nginx speaks from another loopback address than the browser's.
  proxy_bind {PROXY_IP};
  include {d / "refdesk.conf"};
}}
"""

    def args(self) -> list[str]:
        binary = shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin")
        if binary is None:
            raise RuntimeError("nginx is not installed: apt-get install nginx")
        conf = self.dir / "nginx.conf"
        return [binary, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log")]

    async def start(self, port: int) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "nginx.conf").write_text(self.main_config())
        (self.dir / "refdesk.conf").write_text(self.site)
        check = await asyncio.create_subprocess_exec(
            *self.args(), "-t", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await check.communicate()
        assert check.returncode == 0, output.decode()
        self.process = await asyncio.create_subprocess_exec(
            *self.args(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(400):
            if self.process.returncode is not None:
                raise RuntimeError(f"nginx exited:\n{read_tail(self.dir / 'error.log')}")
            if await port_accepts(NGINX_IP, port):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"nginx did not listen:\n{read_tail(self.dir / 'error.log')}")

    async def stop(self) -> None:
        process = self.process
        self.process = None
        if process is None or process.returncode is not None:
            return
        # Its own session: the signal reaches the master and its worker.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGQUIT)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


@dataclass
class ProxiedDesk:
    desk: Desk
    url: str  # https://127.0.0.2:PORT
    http_url: str  # http://127.0.0.2:PORT (redirects)
    nginx: Nginx


@pytest.fixture
async def proxied(
    xmpp_server: XmppServer, tmp_path: Path, mail_sink: MailSink
) -> AsyncIterator[ProxiedDesk]:
    https_port, http_port = free_port_on(NGINX_IP), free_port_on(NGINX_IP)
    url = f"https://{NGINX_IP}:{https_port}"
    config = make_config(
        tmp_path,
        xmpp_port=xmpp_server.component_port,
        smtp_port=mail_sink.port,
        trusted_proxies=(PROXY_IP,),
    )
    config = replace(config, web=replace(config.web, public_url=url))
    await seed(config.storage.path)
    clock = conftest.TestClock()
    refdesk = Refdesk(config, clock=clock)
    await refdesk.start()
    desk = Desk(refdesk, xmpp_server, clock)
    cert, key = self_signed(tmp_path, NGINX_IP)
    site = fill_site_file(
        SITE_FILE.read_text("utf-8"),
        https_port=https_port,
        http_port=http_port,
        upstream=refdesk.port,
        cert=cert,
        key=key,
    )
    nginx = Nginx(tmp_path / "nginx", site)
    try:
        await asyncio.wait_for(refdesk.adapter.online.wait(), 20)
        await nginx.start(https_port)
        yield ProxiedDesk(desk, url, f"http://{NGINX_IP}:{http_port}", nginx)
    finally:
        await nginx.stop()
        await desk.close()


def insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def test_a_whole_chat_through_nginx_with_tls(proxied: ProxiedDesk, browser: Browser) -> None:
    desk = proxied.desk
    op = await desk.add_operator(name="Ana")

    # Over the WebSocket, through nginx's upgrade.
    async with browsing(browser, ignore_https_errors=True) as s:
        received: list[str] = []
        fallback: list[str] = []
        s.page.on(
            "websocket",
            lambda ws: ws.on("framereceived", lambda payload: received.append(str(payload))),
        )
        s.page.on("request", lambda r: fallback.append(r.url) if "/lp/" in r.url else None)
        await s.page.goto(f"{proxied.url}/chat/ask")
        await expect(s.page.locator("#rd-status")).to_have_attribute("data-status", "available")
        await s.page.get_by_label("Message").fill("Through the proxy?")
        await s.page.get_by_label("Message").press("Enter")
        guest = await take_offer(op, "Through the proxy?")
        op.send_message(guest, "Yes, over wss.")
        await expect(s.page.locator(".rd-operator").last).to_contain_text("over wss")
        assert "You took this chat" in (await op.next_message(guest))["body"]
        assert s.sockets and all(u.startswith(f"wss://{NGINX_IP}:") for u in s.sockets), s.sockets
        # The reply came over the WebSocket itself, not over the long-poll fallback.
        assert any("over wss" in frame for frame in received), received
        assert not fallback, fallback
        await s.page.get_by_role("button", name="End chat").click()
        await expect(s.page.locator("#rd-over")).to_be_visible()
        assert "ended" in (await op.next_message(guest))["body"]
    assert not s.errors, s.errors

    # Over long-poll: a poll held by refdesk comes back through nginx with the reply.
    async with browsing(browser, ignore_https_errors=True) as s:
        polls: list[str] = []
        s.page.on("request", lambda r: polls.append(r.url) if "/lp/" in r.url else None)
        await s.page.goto(f"{proxied.url}/chat/ask?transport=lp")
        await s.page.get_by_label("Message").fill("And by long-poll?")
        await s.page.get_by_label("Message").press("Enter")
        guest = await take_offer(op, "And by long-poll?")
        op.send_message(guest, "Also fine.")
        assert "You took this chat" in (await op.next_message(guest))["body"]
        await expect(s.page.locator(".rd-operator").last).to_contain_text("Also fine.")
        assert not s.sockets, s.sockets
        assert any(u.startswith(f"{proxied.url}/lp/ask/") for u in polls), polls
    assert not s.errors, s.errors

    # refdesk saw the browser's address, never the proxy's.
    store = desk.refdesk.store
    assert len(await store.chats.from_addresses([PATRON_IP])) == 2
    assert await store.chats.from_addresses([PROXY_IP]) == []


async def test_nginx_headers_redirect_and_caching(proxied: ProxiedDesk) -> None:
    connector = aiohttp.TCPConnector(ssl=insecure())
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.get(f"{proxied.http_url}/chat/ask", allow_redirects=False) as r:
            assert r.status == 301
            assert r.headers["Location"].startswith(f"https://{NGINX_IP}/chat/ask")
        # Certificate renewals are answered on plain HTTP, not redirected.
        challenge = "/.well-known/acme-challenge/missing-token"
        async with http.get(f"{proxied.http_url}{challenge}", allow_redirects=False) as r:
            assert r.status == 404
        async with http.get(f"{proxied.url}/embed.js") as r:
            assert r.status == 200
            assert r.headers["Cache-Control"] == "public, max-age=300"
            assert "javascript" in r.headers["Content-Type"]
            assert r.headers["Strict-Transport-Security"].startswith("max-age=")
        async with http.get(f"{proxied.url}/widget/chat.js") as r:
            assert r.status == 200
            assert r.headers.getall("Cache-Control") == ["public, max-age=3600"]
        async with http.get(f"{proxied.url}/api/queues/ask/status") as r:
            assert r.status == 200 and (await r.json())["queue"] == "ask"
        # Metrics stay off the public side even from an address refdesk would answer.
        async with http.get(f"{proxied.url}/metrics") as r:
            assert r.status == 404


async def test_a_ban_on_the_patron_behind_nginx_bites(
    proxied: ProxiedDesk, browser: Browser
) -> None:
    desk = proxied.desk
    connector = aiohttp.TCPConnector(ssl=insecure())
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.get(f"{proxied.url}/chat/ask") as r:
            assert r.status == 200
        moderation = desk.service.moderation
        # The proxy's address can never be banned: it would shut out every patron.
        with pytest.raises(BanRefused):
            await moderation.ban(PROXY_IP, reason="harassment", actor="admin")
        # On one machine the patron's address is a loopback one, which refdesk refuses to
        # ban for the same reason; so the ban goes straight into the store, as if it had
        # been made for a patron on the Internet, and refdesk reloads its bans.
        now = desk.clock()
        ban = Ban(
            id=0,
            network=ipaddress.ip_network(PATRON_IP),
            offence=1,
            reason="harassment",
            starts_at=now,
            ends_at=now + dt.timedelta(days=30),
            permanent=False,
            created_by="admin",
        )
        await desk.refdesk.store.bans.add(ban, now)
        await moderation.load()
        # The patron's own X-Forwarded-For (or Forwarded) cannot move them elsewhere:
        # nginx overwrites it with the address that connected.
        for headers in (
            {},
            {"X-Forwarded-For": "198.51.100.7"},
            {"X-Forwarded-For": "198.51.100.7, 127.0.0.5"},
            {"Forwarded": "for=198.51.100.7"},
        ):
            async with http.get(f"{proxied.url}/chat/ask", headers=headers) as r:
                assert r.status == 403, (headers, r.status)
            async with http.post(
                f"{proxied.url}/api/queues/ask/questions",
                json={"email": "p@example.org", "question": "Hello?"},
                headers=headers,
            ) as r:
                assert r.status == 403, (headers, r.status)
    async with browsing(browser, ignore_https_errors=True) as s:
        await s.page.goto(f"{proxied.url}/chat/ask")
        await expect(s.page.get_by_text("Chat not available")).to_be_visible()


async def test_admin_cookies_are_secure_behind_https(
    proxied: ProxiedDesk, browser: Browser
) -> None:
    username, password = await admin_account(proxied.desk)
    async with browsing(browser, ignore_https_errors=True) as s:
        await s.page.goto(f"{proxied.url}/admin/")
        await s.page.get_by_label("Username").fill(username)
        await s.page.get_by_label("Password").fill(password)
        await s.page.get_by_role("button", name="Log in").click()
        await expect(s.page.get_by_role("button", name="Log out")).to_be_visible()
        cookies = await s.context.cookies()
        assert cookies, "no admin cookie set"
        for cookie in cookies:
            assert cookie["secure"], cookie
            assert cookie["httpOnly"] or cookie["name"].lower().startswith("csrf"), cookie
