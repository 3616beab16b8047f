"""The long-poll fallback: the same protocol over plain HTTP."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.conftest import Desk, wait_for
from web.keys import LONGPOLL


async def _post(session: aiohttp.ClientSession, url: str, data: str) -> tuple[int, Any]:
    async with session.post(url, data=data.encode()) as resp:
        return resp.status, await resp.json()


async def _poll(session: aiohttp.ClientSession, url: str, want: str) -> list[dict[str, Any]]:
    """Poll until a frame of type `want` arrives; returns all frames seen."""
    seen: list[dict[str, Any]] = []
    for _ in range(10):
        async with session.get(url) as resp:
            assert resp.status == 200
            seen += (await resp.json())["frames"]
        if any(f["type"] == want for f in seen):
            return seen
    raise AssertionError(f"no {want} frame; got {seen}")


async def test_long_poll_chat(offline_desk: Desk) -> None:
    base = offline_desk.url + "/lp/ask"
    async with aiohttp.ClientSession() as s:
        status, body = await _post(s, base, '{"type": "hello"}')
        assert status == 200
        sid = body["session"]
        assert body["frames"][0]["type"] == "welcome"
        resume = body["frames"][0]["resume"]
        url = f"{base}/{sid}"

        status, body = await _post(s, url, json.dumps({"type": "message", "id": "a", "text": "Hi"}))
        assert (status, body) == (200, {"ok": True})
        frames = await _poll(s, url, "ack")
        assert {"type": "ack", "id": "a", "seq": 1} in frames

        await _post(s, url, "{broken")
        frames = await _poll(s, url, "error")
        assert frames[-1]["code"] == "bad_json"

        # Too big a body is refused before it is read whole.
        async with s.post(url, data=b"x" * 100_000) as resp:
            assert resp.status == 413

        # A session that is gone: 404, and the patron resumes with the token.
        async with s.get(f"{base}/nonexistent") as resp:
            assert resp.status == 404
            assert (await resp.json())["frames"][0]["code"] == "unknown_session"
        status, body = await _post(s, base, json.dumps({"type": "hello", "resume": resume}))
        assert status == 200 and body["frames"][0]["resumed"] is True
        texts = [f.get("text") for f in body["frames"] if f["type"] == "message"]
        assert texts == ["Hi"]

        status, body = await _post(s, base, '{"type": "message"}')
        assert status == 400 and body["frames"][0]["code"] == "hello_expected"
        status, body = await _post(s, offline_desk.url + "/lp/nope", '{"type": "hello"}')
        assert status == 404 and body["frames"][0]["code"] == "unknown_queue"


async def test_long_poll_patron_reaches_an_operator(desk: Desk) -> None:
    op = await desk.add_operator(name="Ana")
    base = desk.url + "/lp/ask"
    async with aiohttp.ClientSession() as s:
        _, body = await _post(s, base, '{"type": "hello"}')
        url = f"{base}/{body['session']}"
        await _post(s, url, json.dumps({"type": "message", "id": "q", "text": "Via HTTP"}))
        offer = await op.next_message()
        assert "Via HTTP" in offer["body"]
        op.send_message(offer["from"].bare, "Hello over long-poll")
        frames = await _poll(s, url, "message")
        for _ in range(5):
            if any(f.get("text") == "Hello over long-poll" for f in frames):
                break
            frames += await _poll(s, url, "message")
        assert any(f.get("text") == "Hello over long-poll" for f in frames)


async def test_a_waiting_poll_is_answered_when_the_server_shuts_down(offline_desk: Desk) -> None:
    """A poll that is waiting for frames when refdesk stops gets its usual empty answer at
    once (the widget polls again and finds the server gone), instead of holding the
    shutdown until the server gives up on it and cuts the connection."""
    import asyncio

    base = offline_desk.url + "/lp/ask"
    async with aiohttp.ClientSession() as s:
        status, body = await _post(s, base, '{"type": "hello"}')
        assert status == 200
        url = f"{base}/{body['session']}"
        entry = offline_desk.refdesk.web_app[LONGPOLL].get(body["session"], "ask")
        assert entry is not None

        async def waiting_poll() -> tuple[int, Any]:
            async with s.get(url) as resp:
                return resp.status, await resp.json()

        polling = asyncio.ensure_future(waiting_poll())
        await wait_for(lambda: entry.polling == 1, what="the poll to wait")
        await offline_desk.refdesk.stop()
        status, body = await polling
    assert status == 200
    assert body == {"frames": [], "closed": False}
