"""`refdesk check-config --connect` against a real XMPP server and a real SMTP server
(aiosmtpd), and against closed ports, a wrong secret, a wrong password and bad URLs."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from component.config import write_config_toml
from component.prosody import free_port
from tests.component.test_mailer import Cert, Collector, authenticator, cert, smtp_server
from tests.conftest import COMPONENT_DOMAIN, SECRET, Desk
from tests.mail_sink import MailSink
from tests.xmpp_servers import XmppServer

__all__ = ["cert"]  # the fixture, imported to be used here


def _config(tmp: Path, *, xmpp_port: int, smtp_port: int, **sections: dict[str, Any]) -> Path:
    values: dict[str, dict[str, Any]] = {
        "xmpp": {"domain": COMPONENT_DOMAIN, "secret": SECRET, "port": xmpp_port},
        "web": {"port": free_port(), "public_url": "http://127.0.0.1:8080"},
        "storage": {"path": "db.sqlite3"},
        "mail": {"smtp_port": smtp_port},
    }
    for name, changes in sections.items():
        values[name] = values.get(name, {}) | changes
    path = tmp / "refdesk.toml"
    path.write_text(write_config_toml(values), "utf-8")
    return path


async def _check(config: Path) -> tuple[int, dict[str, str]]:
    """Run the command; returns the exit status and each check's line by its name."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "component.cli",
        "--config",
        str(config),
        "check-config",
        "--connect",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert "Traceback" not in out.decode() + err.decode(), err.decode()
    lines = out.decode().splitlines()
    assert lines[0] == f"{config}: OK"
    checks = {line[5:].split(":")[0]: line for line in lines[1:]}
    assert set(checks) - {"xmpp fallback"} == {"xmpp", "smtp", "database", "public_url"}, lines
    assert proc.returncode is not None
    return proc.returncode, checks


async def test_everything_reachable(
    xmpp_server: XmppServer, mail_sink: MailSink, tmp_path: Path
) -> None:
    config = _config(tmp_path, xmpp_port=xmpp_server.component_port, smtp_port=mail_sink.port)
    status, checks = await _check(config)
    assert status == 0, checks
    assert all(line.startswith("ok ") for line in checks.values()), checks
    assert "handshake" in checks["xmpp"]
    assert "EHLO ok" in checks["smtp"]
    assert "will be created" in checks["database"]
    assert mail_sink.received == []  # nothing is sent
    # The handshake left nothing connected: refdesk can connect right after.
    status, checks = await _check(config)
    assert status == 0, checks


async def test_each_fallback_node_is_tried_too(
    xmpp_server: XmppServer, mail_sink: MailSink, tmp_path: Path
) -> None:
    """`[xmpp] fallback_hosts`: a node that does not answer is a FAIL line of its own,
    while the main host's handshake is ok."""
    dead = free_port()
    config = _config(
        tmp_path,
        xmpp_port=xmpp_server.component_port,
        smtp_port=mail_sink.port,
        xmpp={"fallback_hosts": [f"127.0.0.1:{dead}"]},
    )
    status, checks = await _check(config)
    assert status != 0
    assert checks["xmpp"].startswith("ok ") and "handshake" in checks["xmpp"], checks
    assert checks["xmpp fallback"] == (
        f"FAIL xmpp fallback: cannot connect to 127.0.0.1:{dead}: connection refused"
    )
    # The same node as host and as fallback: both handshakes succeed, one after the other.
    config = _config(
        tmp_path,
        xmpp_port=xmpp_server.component_port,
        smtp_port=mail_sink.port,
        xmpp={"fallback_hosts": [f"127.0.0.1:{xmpp_server.component_port}"]},
    )
    status, checks = await _check(config)
    assert status == 0, checks
    assert checks["xmpp fallback"].startswith("ok   xmpp fallback: component handshake with")


async def test_wrong_secret(xmpp_server: XmppServer, mail_sink: MailSink, tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        xmpp_port=xmpp_server.component_port,
        smtp_port=mail_sink.port,
        xmpp={"secret": "not-the-secret"},
    )
    status, checks = await _check(config)
    assert status == 1
    assert checks["xmpp"].startswith("FAIL xmpp:"), checks
    assert "secret" in checks["xmpp"] or "not-authorized" in checks["xmpp"], checks
    assert checks["smtp"].startswith("ok ")


async def test_closed_ports_and_bad_places(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        xmpp_port=free_port(),
        smtp_port=free_port(),
        storage={"path": str(tmp_path / "missing-dir" / "db.sqlite3")},
        web={"public_url": "https://chat.invalid"},
    )
    status, checks = await _check(config)
    assert status == 1
    assert all(line.startswith("FAIL ") for line in checks.values()), checks
    assert "cannot connect" in checks["xmpp"]
    assert "Could not connect to the SMTP server" in checks["smtp"]
    assert "does not exist" in checks["database"]
    assert "does not resolve" in checks["public_url"]


async def test_plain_http_on_a_public_host_fails(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        xmpp_port=free_port(),
        smtp_port=free_port(),
        web={"public_url": "http://192.0.2.10"},
    )
    _, checks = await _check(config)
    assert checks["public_url"].startswith("FAIL ") and "https" in checks["public_url"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_smtp_starttls_and_login(xmpp_server: XmppServer, tmp_path: Path, cert: Cert) -> None:
    async with smtp_server(
        Collector(),
        tls_context=cert.server_context(),
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    ) as port:
        mail = {
            "smtp_security": "starttls",
            "smtp_verify_tls": False,
            "smtp_username": "desk",
            "smtp_password": "s3cret",
        }
        config = _config(tmp_path, xmpp_port=xmpp_server.component_port, smtp_port=port, mail=mail)
        status, checks = await _check(config)
        assert status == 0, checks
        assert "STARTTLS" in checks["smtp"] and "login as desk" in checks["smtp"]

        config = _config(
            tmp_path,
            xmpp_port=xmpp_server.component_port,
            smtp_port=port,
            mail=mail | {"smtp_password": "wrong"},
        )
        status, checks = await _check(config)
        assert status == 1
        assert checks["smtp"].startswith("FAIL ") and "username or password" in checks["smtp"]


async def test_a_running_refdesk_is_asked_instead_of_a_second_handshake(
    desk: Desk, tmp_path: Path
) -> None:
    running = desk.refdesk.config
    config = _config(
        tmp_path,
        xmpp_port=running.xmpp.port,
        smtp_port=running.mail.smtp_port,
        web={"port": desk.refdesk.port},
        storage={"path": str(running.storage.path)},
    )
    sessions = desk.refdesk.adapter.sessions
    status, checks = await _check(config)
    assert status == 0, checks
    assert "refdesk is running" in checks["xmpp"] and "stream up" in checks["xmpp"]
    assert "is writable" in checks["database"]
    # The running service's component stream was left alone.
    assert desk.refdesk.adapter.online.is_set()
    assert desk.refdesk.adapter.sessions == sessions
