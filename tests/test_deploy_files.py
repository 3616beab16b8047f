"""The files in docs/deploy/ work as shipped: the systemd unit passes `systemd-analyze`, the
Prosody config passes `prosodyctl check config` and loads only modules Debian's Prosody
has, and ejabberd runs with the documented modules and listeners, where a real client
enables message carbons."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from slixmpp.exceptions import IqError

from tests.conftest import COMPONENT_DOMAIN, SECRET
from tests.operator_client import OperatorClient
from tests.xmpp_servers import EjabberdServer

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "docs" / "deploy"
PROSODY_MODULES = Path("/usr/lib/prosody/modules")
EJABBERD_BEAMS = Path("/usr/lib/x86_64-linux-gnu")


def _tool(name: str) -> str:
    found = shutil.which(name, path="/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin")
    if found is None:
        raise RuntimeError(f"{name} is missing: run scripts/install-system-packages --all")
    return found


# --- systemd ---------------------------------------------------------------------------------


def _unit_with_real_binary(tmp_path: Path) -> Path:
    """The shipped unit with ExecStart pointing at this environment's refdesk (verify
    insists that the program exists); nothing else changes."""
    text = (DEPLOY / "refdesk.service").read_text("utf-8")
    shipped = "/opt/refdesk/bin/refdesk"
    assert text.count(shipped) == 1, "ExecStart names the installed binary"
    refdesk = Path(sys.executable).parent / "refdesk"
    assert refdesk.exists(), refdesk
    unit = tmp_path / "refdesk.service"
    unit.write_text(text.replace(shipped, str(refdesk)), "utf-8")
    return unit


def _directives(unit: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.read_text("utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_systemd_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    unit = _unit_with_real_binary(tmp_path)
    analyze = _tool("systemd-analyze")
    verify = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    d = _directives(unit)
    assert d["User"] == ["refdesk"] and d["Restart"] == ["on-failure"]
    assert d["ExecStart"][0].endswith("refdesk --config /etc/refdesk/refdesk.toml run")
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "UMask": "0077",
        "ReadWritePaths": "/var/lib/refdesk",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    }.items():
        assert d.get(key) == [value], (key, d.get(key))
    assert "@system-service" in d["SystemCallFilter"]
    # systemd's own exposure score (0 = fully locked down, 10 = none): 2.0 or better.
    security = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert security.returncode == 0, security.stdout[-2000:]


def test_systemd_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt directive is reported."""
    unit = _unit_with_real_binary(tmp_path)
    unit.write_text(unit.read_text().replace("Restart=", "Restrat="))
    verify = subprocess.run(
        [_tool("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True
    )
    assert "Restrat" in verify.stderr


# --- Prosody ---------------------------------------------------------------------------------


def _prosody_modules(config: str) -> list[str]:
    block = re.search(r"modules_enabled\s*=\s*\{(.*?)\n\}", config, re.DOTALL)
    assert block is not None
    body = re.sub(r"--[^\n]*", "", block.group(1))
    return re.findall(r'"([a-z0-9_]+)"', body)


def test_prosody_snippet_passes_prosodyctl_check(tmp_path: Path) -> None:
    text = (DEPLOY / "prosody.cfg.lua").read_text("utf-8")
    # Only the machine's paths change (and root may run it, as the tests do).
    for old, new in {
        '"/run/prosody/prosody.pid"': f'"{tmp_path}/prosody.pid"',
        '"/var/lib/prosody"': f'"{tmp_path}/data"',
        'certificates = "certs"': f'certificates = "{tmp_path}/certs"',
        '"/var/log/prosody/prosody.log"': f'"{tmp_path}/prosody.log"',
        '"/var/log/prosody/prosody.err"': f'"{tmp_path}/prosody.err"',
    }.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (tmp_path / "data").mkdir()
    (tmp_path / "certs").mkdir()
    config = tmp_path / "prosody.cfg.lua"
    config.write_text("run_as_root = true\n" + text)
    check = subprocess.run(
        [_tool("prosodyctl"), "--config", str(config), "check", "config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0 and "All checks passed" in check.stdout, check.stdout
    modules = _prosody_modules(text)
    for wanted in ("carbons", "mam", "smacks", "pep", "offline"):
        assert wanted in modules, wanted
    missing = [
        m
        for m in modules
        if not (PROSODY_MODULES / f"mod_{m}.lua").exists()
        and not (PROSODY_MODULES / f"mod_{m}").is_dir()
    ]
    assert not missing, f"not in Debian's Prosody: {missing}"
    assert "network_settings = { nagle = false }" in text
    assert 'component_interfaces = { "127.0.0.1" }' in text
    assert "c2s_require_encryption = true" in text


# --- ejabberd --------------------------------------------------------------------------------


def _snippet() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "ejabberd.yml").read_text("utf-8"))
    return data


def test_ejabberd_snippet_parses_and_names_real_modules() -> None:
    snippet = _snippet()
    modules = snippet["modules"]
    for wanted in ("mod_carboncopy", "mod_mam", "mod_stream_mgmt", "mod_offline", "mod_pubsub"):
        assert wanted in modules, wanted
    beams = {p.stem for p in EJABBERD_BEAMS.glob("ejabberd-*/ebin/mod_*.beam")}
    assert beams, "Debian's ejabberd is not installed"
    assert not [m for m in modules if m not in beams]
    service = [item for item in snippet["listen"] if item["module"] == "ejabberd_service"]
    assert len(service) == 1 and service[0]["ip"] == "127.0.0.1"
    c2s = [item for item in snippet["listen"] if item["module"] == "ejabberd_c2s"]
    assert c2s and all(item["starttls_required"] is True for item in c2s)
    # The operators' browser client (/operator/) logs in over WebSocket, with TLS.
    http = [item for item in snippet["listen"] if item["module"] == "ejabberd_http"]
    assert [item["request_handlers"] for item in http] == [{"/xmpp-websocket": "ejabberd_http_ws"}]
    assert http[0]["tls"] is True


class SnippetEjabberd(EjabberdServer):
    """The tests' throwaway ejabberd running the documented modules and rules. Only what
    needs a certificate (STARTTLS on c2s) is left out, since the test client connects in
    plain text on loopback."""

    def config_text(self) -> str:
        base: dict[str, Any] = yaml.safe_load(super().config_text())
        snippet = _snippet()
        modules = dict(snippet["modules"])
        modules["mod_admin_extra"] = {}  # `register` uses the change_password command
        base["modules"] = modules
        base["shaper"] = {"normal": 1000, "fast": 50000}
        base["shaper_rules"] = {
            **base["shaper_rules"],
            "c2s_shaper": {"none": "admin", "normal": "all"},
        }
        base["access_rules"] = {**base["access_rules"], "pubsub_createnode": {"allow": "local"}}
        base["acl"] = {**base["acl"], "admin": {"user": []}}
        for item in base["listen"]:
            documented = next((x for x in snippet["listen"] if x["module"] == item["module"]), None)
            if documented is None:
                continue
            if item["module"] == "ejabberd_http":
                # The harness's admin API listener, which `register` uses: it gets the
                # documented WebSocket handler too, in plain HTTP (no certificate here).
                item["request_handlers"] = {
                    **item["request_handlers"],
                    **documented["request_handlers"],
                }
                continue
            for key, value in documented.items():
                if key not in ("port", "ip", "hosts", "starttls_required"):
                    item[key] = value
        return str(yaml.safe_dump(base, sort_keys=False))


async def test_ejabberd_snippet_runs_and_carbons_work(tmp_path: Path) -> None:
    server = SnippetEjabberd(tmp_path, component_domain=COMPONENT_DOMAIN, component_secret=SECRET)
    try:
        await server.start()
        user, password = f"snip{secrets.token_hex(3)}", secrets.token_hex(8)
        await server.register(user, password)
        client = OperatorClient(
            f"{user}@{server.domain}/phone", password, server.host, server.c2s_port
        )
        await client.connect()
        try:
            client.xmpp.register_plugin("xep_0280")
            try:
                await client.xmpp.plugin["xep_0280"].enable()
            except IqError as exc:
                raise AssertionError(exc.iq["error"]["condition"]) from None
            info = await client.xmpp.plugin["xep_0030"].get_info(
                jid=f"{user}@{server.domain}", timeout=10
            )
            assert "urn:xmpp:mam:2" in info["disco_info"]["features"]
        finally:
            await client.disconnect()
        # The documented WebSocket handler opens an XMPP stream (RFC 7395 framing).
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(server.websocket_url, protocols=("xmpp",)) as ws,
        ):
            await ws.send_str(
                f'<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="{server.domain}"'
                ' version="1.0"/>'
            )
            assert (await ws.receive_str(timeout=10)).startswith("<open")
        assert "[error]" not in server.log_tail(400), server.log_tail()
    finally:
        await server.stop()


def test_backup_service_and_timer_verify(tmp_path: Path) -> None:
    refdesk = Path(sys.executable).parent / "refdesk"
    units = []
    for name in ("refdesk-backup.service", "refdesk-backup.timer"):
        text = (DEPLOY / name).read_text("utf-8")
        unit = tmp_path / name
        unit.write_text(text.replace("/opt/refdesk/bin/refdesk", str(refdesk)), "utf-8")
        units.append(str(unit))
    verify = subprocess.run(
        [_tool("systemd-analyze"), "verify", *units], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    service = _directives(tmp_path / "refdesk-backup.service")
    commands = " ".join(service["ExecStart"])
    assert " backup --force /var/backups/refdesk/" in commands and commands.endswith(" purge")
    assert service["ReadWritePaths"] == ["/var/lib/refdesk /var/backups/refdesk"]


async def test_prosody_snippet_runs_with_tls_and_carbons(tmp_path: Path) -> None:
    """The documented Prosody config, started for real with a self-signed certificate for
    its VirtualHost: a client logs in over STARTTLS (required by the file) and enables
    carbons; the archive is there; the component port answers on loopback."""
    from slixmpp import ClientXMPP

    from component.prosody import free_port, port_accepts, read_tail
    from tests.test_nginx_proxy import self_signed_for

    c2s, component = free_port(), free_port()
    text = (DEPLOY / "prosody.cfg.lua").read_text("utf-8")
    for old, new in {
        '"/run/prosody/prosody.pid"': f'"{tmp_path}/prosody.pid"',
        '"/var/lib/prosody"': f'"{tmp_path}/data"',
        'certificates = "certs"': f'certificates = "{tmp_path}/certs"',
        '"/var/log/prosody/prosody.log"': f'"{tmp_path}/prosody.log"',
        '"/var/log/prosody/prosody.err"': f'"{tmp_path}/prosody.err"',
        "component_ports = { 5347 }": f"component_ports = {{ {component} }}",
    }.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (tmp_path / "data").mkdir()
    (tmp_path / "certs").mkdir()
    self_signed_for(tmp_path / "certs", "example.org")
    config = tmp_path / "prosody.cfg.lua"
    # Only where it listens and that the test may run it as root, in the foreground.
    config.write_text(
        "run_as_root = true\ndaemonize = false\n"
        f'interfaces = {{ "127.0.0.1" }}\nc2s_ports = {{ {c2s} }}\n'
        "c2s_direct_tls_ports = { }\ns2s_ports = { }\nlegacy_ssl_ports = { }\n" + text
    )
    prosody = await asyncio.create_subprocess_exec(
        _tool("prosody"),
        "--config",
        str(config),
        "-F",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(400):
            if await port_accepts("127.0.0.1", c2s) and await port_accepts("127.0.0.1", component):
                break
            assert prosody.returncode is None, read_tail(tmp_path / "prosody.log")
            await asyncio.sleep(0.05)
        register = await asyncio.create_subprocess_exec(
            _tool("prosodyctl"), "--config", str(config), "register", "ana", "example.org", "pw-1"
        )
        assert await register.wait() == 0

        client = ClientXMPP("ana@example.org/phone", "pw-1")
        client.enable_direct_tls = False
        client.ssl_context.check_hostname = False
        client.ssl_context.verify_mode = ssl.CERT_NONE
        client.register_plugin("xep_0030")
        client.register_plugin("xep_0280")
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        client.add_event_handler("session_start", lambda _e: ready.done() or ready.set_result(None))
        client.add_event_handler(
            "failed_all_auth",
            lambda _e: ready.done() or ready.set_exception(AssertionError("login failed")),
        )
        client.connect("127.0.0.1", c2s)
        try:
            await asyncio.wait_for(ready, 20)
            assert client.is_connected() and "starttls" in client.features, client.features
            try:
                await client.plugin["xep_0280"].enable()
            except IqError as exc:
                raise AssertionError(exc.iq["error"]["condition"]) from None
            info = await client.plugin["xep_0030"].get_info(jid="ana@example.org", timeout=10)
            assert "urn:xmpp:mam:2" in info["disco_info"]["features"]
        finally:
            client.abort()
        log = read_tail(tmp_path / "prosody.log", 400)
        assert "Failed to load" not in log and "Unable to load" not in log, log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(prosody.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(prosody.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(prosody.pid, signal.SIGKILL)
            await prosody.wait()


def test_backup_service_commands_run_night_after_night(tmp_path: Path) -> None:
    """The backup unit's ExecStart lines, run as systemd runs them (`%%` unescaped to `%`,
    each line in order), against a real database: on the first night and again when the
    same weekday comes round and its file already exists. Without overwriting, the unit
    failed from the eighth night on and no backup was ever written again."""
    refdesk = Path(sys.executable).parent / "refdesk"
    backups = tmp_path / "backups"
    backups.mkdir()
    config = tmp_path / "refdesk.toml"
    config.write_text(
        '[xmpp]\ndomain = "desk.example.org"\nsecret = "s3cret-s3cret"\n'
        f'[storage]\npath = "{tmp_path / "refdesk.sqlite3"}"\n',
        "utf-8",
    )
    created = subprocess.run(
        [str(refdesk), "--config", str(config), "group", "add", "central"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    service = _directives(DEPLOY / "refdesk-backup.service")
    commands = [
        line.replace("%%", "%")
        .replace("/opt/refdesk/bin/refdesk", str(refdesk))
        .replace("/etc/refdesk/refdesk.toml", str(config))
        .replace("/var/backups/refdesk", str(backups))
        for line in service["ExecStart"]
    ]
    for night in (1, 8):
        for command in commands:
            # systemd splits the line into words much as the shell does.
            ran = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=60)
            assert ran.returncode == 0, (night, command, ran.stderr)
    assert len(list(backups.glob("refdesk-*.sqlite3"))) == 1
