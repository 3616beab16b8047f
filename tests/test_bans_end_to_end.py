"""Bans, rate limits, incidents and privacy modes through the real entry points.

Patrons' addresses are set with X-Forwarded-For from loopback, which these tests' config
lists as a trusted proxy (and which can never be banned itself)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from component.config import LimitsConfig
from component.core.changes import GroupUpdate
from tests.conftest import Desk, wait_for
from tests.patron_client import ProxiedPatron

TRUSTED = pytest.mark.desk_config(trusted_proxies=("127.0.0.1",))
PATRON_IP = "203.0.113.45"


async def _patron(desk: Desk, ip: str = PATRON_IP) -> ProxiedPatron:
    patron = ProxiedPatron(desk.url, "ask", ip)
    desk.patrons.append(patron)
    await patron.connect()
    return patron


async def _entry_points(desk: Desk, ip: str) -> dict[str, Any]:
    """What each patron entry point answers to `ip`."""
    out: dict[str, Any] = {}
    headers = {"X-Forwarded-For": ip}
    async with aiohttp.ClientSession(headers=headers) as s:
        async with s.get(f"{desk.url}/chat/ask") as resp:
            out["page"] = (resp.status, await resp.text())
        async with s.post(f"{desk.url}/lp/ask", data=b'{"type": "hello"}') as resp:
            out["longpoll"] = (resp.status, await resp.json())
        async with s.post(
            f"{desk.url}/api/queues/ask/questions", json={"email": "a@b.org", "question": "Hello"}
        ) as resp:
            out["form"] = (resp.status, await resp.json())
        ws = await s.ws_connect(desk.url.replace("http", "ws") + "/ws/ask")
        await ws.send_str('{"type": "hello"}')
        msg = await ws.receive(timeout=5)
        out["ws"] = json.loads(msg.data)
        closing = await ws.receive(timeout=5)
        out["ws_close"] = ws.close_code if closing.type != aiohttp.WSMsgType.TEXT else None
        await ws.close()
    return out


@TRUSTED
async def test_operator_ban_ends_the_chat_and_bars_every_entry(
    desk: Desk,
) -> None:
    await desk.set_queue("ask", followup_email="followup@library.example")
    op = await desk.add_operator(name="Ana")
    patron = await _patron(desk)
    bystander = await _patron(desk, "198.51.100.7")
    await patron.say("something nasty")
    offer = await op.next_message()
    guest = offer["from"].bare
    op.send_message(guest, "!accept")
    await op.next_message(guest)
    op.send_message(guest, "!tag incident")
    assert "Incident report" in (await op.next_message(guest))["body"]

    op.send_message(guest, "!ban")
    assert "Give a reason" in (await op.next_message(guest))["body"]
    op.send_message(guest, "!ban 30d harassment after two warnings")
    reply = (await op.next_message(guest))["body"]
    assert f"Banned {PATRON_IP}/32" in reply and "offence 1" in reply
    goodbye = await patron.seen("message", lambda f: "not one" in f.get("text", ""))
    assert goodbye["from"] == "operator"
    await patron.seen("ended")
    banned = await patron.seen("banned")
    assert "appeals@library.example" in banned["text"]

    answers = await _entry_points(desk, PATRON_IP)
    assert answers["page"][0] == 403 and "appeals@library.example" in answers["page"][1]
    assert answers["longpoll"][0] == 403
    assert answers["longpoll"][1]["frames"][0]["type"] == "banned"
    assert answers["form"][0] == 403 and "blocked" in answers["form"][1]["error"]
    assert answers["ws"]["type"] == "banned" and answers["ws_close"] == 4403
    # Everyone else is unaffected.
    assert (await bystander.say("I'm fine"))["seq"] == 1
    others = await _entry_points(desk, "198.51.100.8")
    assert others["page"][0] == 200 and others["ws"]["type"] == "welcome"

    store = desk.refdesk.store
    incidents = await store.incidents.all()
    kinds = {i.kind for i in incidents}
    assert {"ban", "tagged"} <= kinds
    ban = (await store.bans.all())[0]
    assert [a.action for a in await store.bans.audit(ban.id)] == ["create"]

    # Lifted: the address is let in at once.
    await desk.service.moderation.lift(PATRON_IP, actor="admin")
    assert (await _entry_points(desk, PATRON_IP))["ws"]["type"] == "welcome"
    assert [a.action for a in await store.bans.audit(ban.id)] == ["create", "lift"]


@TRUSTED
async def test_ladder_expiry_and_ipv6(offline_desk: Desk) -> None:
    desk = offline_desk
    moderation = desk.service.moderation
    first = await moderation.ban("2001:db8:5:6::1", reason="spam", actor="admin")
    assert str(first.network) == "2001:db8:5:6::/64" and first.offence == 1
    assert first.ends_at is not None
    assert first.ends_at - first.starts_at == timedelta(days=30)
    # Another address of the same /64 is banned too; mapped IPv4 is matched as IPv4.
    assert (await _entry_points(desk, "2001:db8:5:6::99"))["ws"]["type"] == "banned"
    assert (await _entry_points(desk, "2001:db8:5:7::1"))["ws"]["type"] == "welcome"
    ipv4 = await moderation.ban("::ffff:192.0.2.9", reason="spam", actor="admin")
    assert str(ipv4.network) == "192.0.2.9/32"
    assert (await _entry_points(desk, "192.0.2.9"))["ws"]["type"] == "banned"

    # Time passes (injected clock): the ban runs out by itself, audited as an expiry.
    desk.clock.set(datetime.now(UTC) + timedelta(days=31))
    await desk.service.tick()
    assert (await _entry_points(desk, "2001:db8:5:6::99"))["ws"]["type"] == "welcome"
    audit = await desk.refdesk.store.bans.audit(first.id)
    assert [a.action for a in audit] == ["create", "expire"]
    # The next ban on the same network is the second offence: 90 days.
    second = await moderation.ban("2001:db8:5:6::2", reason="again", actor="admin")
    assert second.offence == 2 and second.ends_at is not None
    assert second.ends_at - second.starts_at == timedelta(days=90)


async def test_forged_forwarded_for_from_an_untrusted_peer_is_ignored(offline_desk: Desk) -> None:
    # No trusted proxies here: the header is anyone's to write, so the peer address counts.
    await offline_desk.service.moderation.ban("203.0.113.99", reason="x", actor="admin")
    assert (await _entry_points(offline_desk, "203.0.113.99"))["ws"]["type"] == "welcome"


@TRUSTED
async def test_refusals(desk: Desk) -> None:
    moderation = desk.service.moderation
    from component.moderation import BanRefused

    for target in ("0.0.0.0/0", "::/0", "10.0.0.0/8", "127.0.0.1", "not an address"):
        with pytest.raises(BanRefused):
            await moderation.ban(target, reason="x", actor="admin")
    with pytest.raises(BanRefused):
        await moderation.ban("203.0.113.1", reason="   ", actor="admin")

    # An exempt network (a school's computers) cannot be banned from an operator's client.
    store = desk.refdesk.store
    group = await store.groups.by_name("library")
    assert group is not None
    await store.exempt.add(group.id, "198.51.100.0/24")
    await desk.service.moderation.load()
    op = await desk.add_operator(name="Ana")
    patron = await _patron(desk, "198.51.100.20")
    await patron.say("hi")
    offer = await op.next_message()
    guest = offer["from"].bare
    op.send_message(guest, "!accept")
    await op.next_message(guest)
    op.send_message(guest, "!ban 1y rude")
    reply = (await op.next_message(guest))["body"]
    assert "exempt network" in reply and "incident" in reply
    assert await store.bans.all() == []
    assert (await store.incidents.all())[0].kind == "exempt-network"
    # ... but an admin can, and the override is recorded.
    ban = await moderation.ban("198.51.100.20", reason="threats", actor="admin")
    assert "override" in (await store.bans.audit(ban.id))[0].detail


@TRUSTED
async def test_operators_only_report_where_the_group_says_so(desk: Desk) -> None:
    store = desk.refdesk.store
    group = await store.groups.by_name("library")
    assert group is not None
    await store.groups.update(group.id, GroupUpdate(operators_may_ban=False))
    await desk.service.reload_directory()
    op = await desk.add_operator(name="Ana")
    patron = await _patron(desk)
    await patron.say("hi")
    guest = (await op.next_message())["from"].bare
    op.send_message(guest, "!accept")
    await op.next_message(guest)
    op.send_message(guest, "!ban rude")
    assert "Reported for admin review" in (await op.next_message(guest))["body"]
    await patron.seen("ended")
    assert await store.bans.all() == []
    assert (await store.incidents.all())[0].kind == "ban-request"


@pytest.mark.desk_config(
    trusted_proxies=("127.0.0.1",),
    limits=LimitsConfig(chats_per_address=2, chats_per_network=3, chat_window=600.0),
)
async def test_rate_limits_trip_and_record_an_incident(offline_desk: Desk) -> None:
    desk = offline_desk
    for _ in range(2):
        assert (await _entry_points_ws(desk, "203.0.113.10"))["type"] == "welcome"
    refused = await _entry_points_ws(desk, "203.0.113.10")
    assert refused["type"] == "error" and refused["code"] == "rate_limited"
    # Same /24 network: one more is allowed (3 per network), then the network is refused.
    assert (await _entry_points_ws(desk, "203.0.113.11"))["type"] == "welcome"
    assert (await _entry_points_ws(desk, "203.0.113.12"))["code"] == "rate_limited"
    # Another network is unaffected.
    assert (await _entry_points_ws(desk, "198.51.100.1"))["type"] == "welcome"
    incidents = await desk.refdesk.store.incidents.all()
    assert incidents and all(i.kind == "rate-limit" for i in incidents)
    assert "excessive-chat-requests" in incidents[0].tags

    # Messages: a burst is fine, a flood is refused politely.
    patron = await _patron(desk, "198.51.100.2")
    for i in range(25):
        await patron.send({"type": "message", "id": f"f{i}", "text": "flood"})

    def answered() -> list[dict[str, Any]]:
        return [f for f in patron.frames if f["type"] in ("ack", "error")]

    await wait_for(lambda: len(answered()) == 25, what="an answer to every message")
    acks = [f for f in answered() if f["type"] == "ack"]
    refusals = [f for f in answered() if f["type"] == "error"]
    assert 10 <= len(acks) < 25
    assert refusals and all(f["code"] == "rate_limited" for f in refusals)


async def _entry_points_ws(desk: Desk, ip: str) -> dict[str, Any]:
    async with aiohttp.ClientSession(headers={"X-Forwarded-For": ip}) as s:
        ws = await s.ws_connect(desk.url.replace("http", "ws") + "/ws/ask")
        await ws.send_str('{"type": "hello"}')
        frame: dict[str, Any] = json.loads((await ws.receive(timeout=5)).data)
        await ws.close()
        return frame


@TRUSTED
async def test_privacy_modes_and_purge(offline_desk: Desk) -> None:
    desk = offline_desk
    store = desk.refdesk.store
    await desk.set_queue("ask", privacy="network")
    patron = await _patron(desk, "203.0.113.77")
    await patron.say("network mode")
    chat = await store.chats.by_id(patron.chat_id or 0)
    assert chat is not None and chat.origin_ip == "203.0.113.0/24"

    await desk.set_queue("ask", privacy="none")
    hidden = await _patron(desk, "203.0.113.78")
    await hidden.say("none mode")
    chat = await store.chats.by_id(hidden.chat_id or 0)
    assert chat is not None and chat.origin_ip is None
    # Bans still bite on the live connection.
    await desk.service.moderation.ban("203.0.113.78", reason="x", actor="admin")
    await hidden.seen("banned")

    await desk.set_queue("ask", privacy="full", retention_days=30, purge_transcripts=1)
    marker = "MARKER-" + "q7x" * 5
    kept = await _patron(desk, "192.0.2.201")
    await kept.say(f"my secret {marker}")
    await kept.send({"type": "end"})
    await kept.seen("ended")
    path = desk.refdesk.config.storage.path
    desk.clock.set(datetime.now(UTC) + timedelta(days=31))
    assert await desk.service.purge_expired() >= 1
    for suffix in ("", "-wal"):
        file = path.with_name(path.name + suffix)
        if file.exists():
            data = file.read_bytes()
            assert marker.encode() not in data, f"marker left in {file.name}"
            assert b"192.0.2.201" not in data, f"address left in {file.name}"
