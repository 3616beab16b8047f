"""The patron WebSocket and pages with hostile and malformed input. No XMPP server is
needed: refdesk keeps serving patrons while it tries to reach one."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.conftest import Desk
from tests.patron_client import PatronClient


async def _raw_socket(
    desk: Desk, queue: str = "ask", **kw: object
) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(desk.url.replace("http", "ws") + f"/ws/{queue}", **kw)  # type: ignore[arg-type]
    return session, ws


async def _next_json(ws: aiohttp.ClientWebSocketResponse) -> dict[str, object]:
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    frame = json.loads(msg.data)
    assert isinstance(frame, dict)
    return frame


async def test_bad_frames_get_clear_errors_and_the_chat_goes_on(offline_desk: Desk) -> None:
    patron = await offline_desk.patron()
    cases = [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_frame"),
        ('"just a string"', "bad_frame"),
        ('{"no": "type"}', "bad_frame"),
        ('{"type": 7}', "bad_frame"),
        ('{"type": "launch_missiles"}', "unknown_type"),
        ('{"type": "hello"}', "already_greeted"),
        ('{"type": "typing", "state": "dancing"}', "bad_typing"),
        ('{"type": "message", "text": "no id"}', "bad_id"),
        ('{"type": "message", "id": 5, "text": "numeric id"}', "bad_id"),
        ('{"type": "message", "id": "' + "x" * 65 + '", "text": "long id"}', "bad_id"),
        ('{"type": "message", "id": "a", "text": null}', "bad_text"),
        ('{"type": "message", "id": "b", "text": "   "}', "empty_message"),
        ('{"type": "message", "id": "c", "text": "\\u0001"}', "illegal_characters"),
        ('{"type": "message", "id": "d", "text": "\\ud83d"}', "illegal_characters"),
        ('{"type": "message", "id": "e", "text": "\\uffff"}', "illegal_characters"),
        ('{"type": "transcript", "email": "not an address"}', "bad_email"),
        ('{"type": "transcript", "email": "a@b.org\\r\\nBcc: x@y.org"}', "bad_email"),
    ]
    for raw, code in cases:
        await patron.send_raw(raw)
        error = await patron.next("error")
        assert error["code"] == code, (raw, error)
        assert isinstance(error["text"], str) and error["text"]
    # Oversized text (over chat.max_message_chars) and oversized frames.
    await patron.send({"type": "message", "id": "big", "text": "a" * 4001})
    assert (await patron.next("error"))["code"] == "message_too_long"
    await patron.send({"type": "message", "id": "huge", "text": "a" * 20000})
    assert (await patron.next("error"))["code"] == "frame_too_large"
    assert patron.ws is not None
    await patron.ws.send_bytes(b"\x00\x01")
    assert (await patron.next("error"))["code"] == "binary_frame"
    # None of that was stored, and the chat still works.
    ack = await patron.say("A real question")
    assert ack["seq"] == 1


async def test_a_frame_far_over_the_limit_closes_only_that_socket(offline_desk: Desk) -> None:
    victim = await offline_desk.patron()
    bystander = await offline_desk.patron()
    assert victim.ws is not None
    await victim.ws.send_str("x" * 200_000)
    closed = await victim.next("_closed")
    assert closed["code"] == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    assert (await bystander.say("Still served"))["seq"] == 1


async def test_the_first_frame_must_be_hello(offline_desk: Desk) -> None:
    session, ws = await _raw_socket(offline_desk)
    try:
        await ws.send_str('{"type": "message", "id": "1", "text": "hi"}')
        assert (await _next_json(ws))["code"] == "hello_expected"
        await ws.send_str('{"type": "hello", "last_seq": -1}')
        assert (await _next_json(ws))["code"] == "bad_last_seq"
        await ws.send_str('{"type": "hello", "last_seq": true}')
        assert (await _next_json(ws))["code"] == "bad_last_seq"
        await ws.send_str('{"type": "hello", "resume": ["x"]}')
        assert (await _next_json(ws))["code"] == "bad_resume"
        await ws.send_str('{"type": "hello"}')
        assert (await _next_json(ws))["type"] == "welcome"
    finally:
        await ws.close()
        await session.close()


async def test_unknown_queue(offline_desk: Desk) -> None:
    session, ws = await _raw_socket(offline_desk, queue="nope")
    try:
        error = await _next_json(ws)
        assert error == {
            "type": "error",
            "code": "unknown_queue",
            "text": "There is no queue called 'nope'.",
        }
        closing = await ws.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        async with session.get(offline_desk.url + "/api/queues/nope/status") as resp:
            assert resp.status == 404
            assert (await resp.json())["error"] == "unknown_queue"
        async with session.get(offline_desk.url + "/chat/nope") as resp:
            assert resp.status == 404
            assert "There is no chat service at this address" in await resp.text()
        async with session.get(offline_desk.url + "/chat/%3Cscript%3E") as resp:
            assert resp.status == 404
            assert "<script>" not in await resp.text()
    finally:
        await session.close()


async def test_websocket_origin_is_checked(offline_desk: Desk) -> None:
    session = aiohttp.ClientSession()
    url = offline_desk.url.replace("http", "ws") + "/ws/ask"
    try:
        try:
            await session.ws_connect(url, origin="https://evil.example")
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 403
        else:
            raise AssertionError("a foreign Origin was let in")
        ws = await session.ws_connect(url, origin=offline_desk.url)
        await ws.send_str('{"type": "hello"}')
        assert (await _next_json(ws))["type"] == "welcome"
        await ws.close()
    finally:
        await session.close()


async def test_status_endpoint_and_page(offline_desk: Desk) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(offline_desk.url + "/api/queues/ask/status") as resp:
            assert resp.status == 200
            body = await resp.json()
            assert body["queue"] == "ask" and body["status"] == "offline"
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
        async with session.get(offline_desk.url + "/chat/ask") as resp:
            assert resp.status == 200
            html = await resp.text()
            csp = resp.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert 'data-ws-path="/ws/ask"' in html or "/ws/ask" in html
        async with session.get(offline_desk.url + "/widget/chat.js") as resp:
            assert resp.status == 200


async def test_waiting_patron_resumes_and_sees_own_messages(offline_desk: Desk) -> None:
    patron = await offline_desk.patron()
    await patron.say("one", client_id="c1")
    await patron.say("two", client_id="c2")
    await patron.drop()
    again = PatronClient(offline_desk.url, "ask")
    offline_desk.patrons.append(again)
    welcome = await again.connect(resume=patron.resume, last_seq=0)
    assert welcome["resumed"] is True and welcome["chat"] == patron.chat_id
    await again.next("message", lambda f: f.get("id") == "c2")
    assert [(f["seq"], f["id"], f["from"]) for f in again.messages()] == [
        (1, "c1", "patron"),
        (2, "c2", "patron"),
    ]
    await again.send({"type": "end"})
    assert (await again.next("ended"))["seq"] == 3
    # Writing after the end is refused clearly.
    await again.send({"type": "message", "id": "c3", "text": "hello?"})
    assert (await again.next("error"))["code"] == "chat_ended"


@pytest.mark.parametrize("last_seq", [2**63, 2**64 - 1])
async def test_a_resume_claiming_a_seq_beyond_sqlite_is_answered(
    offline_desk: Desk, last_seq: int
) -> None:
    """An ended chat resumed (as a page does to ask for the rating) with a last_seq JSON
    can carry but SQLite cannot: the history query failed in the database and the socket
    was dropped. Now a clear error, and the same socket can still say a proper hello."""
    patron = await offline_desk.patron()
    await patron.say("one", client_id="c1")
    await patron.send({"type": "end"})
    await patron.next("ended")
    await patron.drop()
    session, ws = await _raw_socket(offline_desk)
    try:
        hello = {"type": "hello", "resume": patron.resume, "last_seq": last_seq}
        await ws.send_str(json.dumps(hello))
        assert (await _next_json(ws))["code"] == "bad_last_seq"
        await ws.send_str(json.dumps({**hello, "last_seq": 0}))
        welcome = await _next_json(ws)
        assert welcome["type"] == "welcome" and welcome["resumed"] is True
    finally:
        await ws.close()
        await session.close()
    bystander = await offline_desk.patron()
    assert (await bystander.say("Still served"))["seq"] == 1
