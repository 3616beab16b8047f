"""A banned patron is told the address refdesk saw for them, labelled, next to the appeal
address: on the chat page, the WebSocket, the long-poll and the offline form alike. The
address is all an appeal can quote, and the patron has no other way to learn it."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.conftest import Desk
from tests.patron_client import ProxiedPatron

TRUSTED = pytest.mark.desk_config(trusted_proxies=("127.0.0.1",))
LABEL = "Your address as this service saw it: "


async def _ban(desk: Desk, ip: str) -> None:
    await desk.service.moderation.ban(ip, reason="abuse", actor="admin")


async def _page(desk: Desk, forwarded: str) -> tuple[int, str]:
    """The chat page as a patron behind the trusted proxy at `forwarded` gets it."""
    headers = {"X-Forwarded-For": forwarded}
    async with (
        aiohttp.ClientSession(headers=headers) as s,
        s.get(desk.url + "/chat/ask") as resp,
    ):
        return resp.status, await resp.text()


@TRUSTED
async def test_the_ban_page_names_the_address_seen(offline_desk: Desk) -> None:
    await _ban(offline_desk, "203.0.113.80")
    status, page = await _page(offline_desk, "203.0.113.80")
    assert status == 403
    assert LABEL + "203.0.113.80" in page
    assert offline_desk.service.moderation.policy.appeal_address in page


@TRUSTED
async def test_the_websocket_ban_frame_names_the_address_and_the_appeal(offline_desk: Desk) -> None:
    await _ban(offline_desk, "2001:db8:81::5")
    refused = ProxiedPatron(offline_desk.url, "ask", "2001:db8:81::5")
    offline_desk.patrons.append(refused)
    with pytest.raises(AssertionError):
        await refused.connect()
    frame = next(f for f in refused.frames if f["type"] == "banned")
    assert frame["address"] == "2001:db8:81::5"
    assert frame["appeal"] == offline_desk.service.moderation.policy.appeal_address
    assert LABEL + "2001:db8:81::5" in frame["text"]


@TRUSTED
async def test_a_ban_mid_chat_tells_each_patron_their_own_address(offline_desk: Desk) -> None:
    """A /24 ban reaches two patrons of it: each is shown the address seen for them."""
    one = ProxiedPatron(offline_desk.url, "ask", "203.0.113.82")
    two = ProxiedPatron(offline_desk.url, "ask", "203.0.113.83")
    for patron in (one, two):
        offline_desk.patrons.append(patron)
        await patron.connect()
    await _ban(offline_desk, "203.0.113.0/24")
    assert (await one.next("banned"))["address"] == "203.0.113.82"
    frame = await two.next("banned")
    assert frame["address"] == "203.0.113.83" and LABEL + "203.0.113.83" in frame["text"]
    # The transcript keeps no address: the ended line is the plain ban message.
    history = await offline_desk.service.history(one.chat_id or 0, 0)
    assert all("203.0.113.82" not in (e.text or "") for e in history)


async def _post(s: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    async with s.post(url, data=json.dumps(body), headers=headers) as r:
        return r.status, await r.json()


@TRUSTED
async def test_long_poll_and_offline_form_name_the_address(offline_desk: Desk) -> None:
    await _ban(offline_desk, "198.51.100.84")
    async with aiohttp.ClientSession(headers={"X-Forwarded-For": "198.51.100.84"}) as s:
        status, body = await _post(s, offline_desk.url + "/lp/ask", {"type": "hello"})
        assert status == 403
        frame = body["frames"][0]
        assert frame["type"] == "banned" and frame["address"] == "198.51.100.84"
        assert LABEL + "198.51.100.84" in frame["text"]
        question = {"email": "a@example.org", "question": "Hello?"}
        status, body = await _post(s, offline_desk.url + "/api/queues/ask/questions", question)
        assert status == 403
        assert body["address"] == "198.51.100.84" and LABEL + "198.51.100.84" in body["error"]
        assert body["appeal"] == offline_desk.service.moderation.policy.appeal_address


@TRUSTED
async def test_a_hostile_forwarded_header_is_never_echoed(offline_desk: Desk) -> None:
    """Only a parsed address is ever shown: markup in the header is not the client's
    address, so the request is judged (and shown) as the proxy's."""
    await _ban(offline_desk, "203.0.113.85")
    _, page = await _page(offline_desk, "203.0.113.85")
    assert "<script" not in page.split("<main", 1)[1]
    _, page = await _page(offline_desk, "<script>alert(1)</script>")
    assert "<script>alert" not in page
