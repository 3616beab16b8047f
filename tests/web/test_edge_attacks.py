"""Attacks on the patron entry points, each reproduced against the running server: input
that used to crash a handler, bans that did not close open connections, forged proxy
headers, typing floods and replayed message ids."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from typing import Any

import aiohttp
import pytest

from tests.conftest import Desk, wait_for
from tests.patron_client import PatronClient, ProxiedPatron
from web.keys import PATRON_SLOTS

TRUSTED = pytest.mark.desk_config(trusted_proxies=("127.0.0.1",))
DEEP = "[" * 5000
SURROGATE_ID = '{"type": "message", "id": "\\udc00", "text": "hi"}'


async def _proxied(desk: Desk, ip: str) -> ProxiedPatron:
    patron = ProxiedPatron(desk.url, "ask", ip)
    desk.patrons.append(patron)
    await patron.connect()
    return patron


async def _post(
    s: aiohttp.ClientSession, url: str, data: bytes | str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    body = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    async with s.post(url, data=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def _poll_until(s: aiohttp.ClientSession, url: str, want: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for _ in range(10):
        async with s.get(url) as resp:
            assert resp.status == 200, await resp.text()
            seen += (await resp.json())["frames"]
        if any(f["type"] == want for f in seen):
            return seen
    raise AssertionError(f"no {want} frame; got {seen}")


# Item: unhandled input ------------------------------------------------------------------


async def test_deep_nesting_and_lone_surrogates_on_the_websocket(offline_desk: Desk) -> None:
    patron = await offline_desk.patron()
    bystander = await offline_desk.patron()
    await patron.send_raw(DEEP)
    assert (await patron.next("error"))["code"] == "too_deep"
    await patron.send_raw('{"type": "message", "id": "x", "text": ' + "[" * 900 + "]" * 900 + "}")
    assert (await patron.next("error"))["code"] == "too_deep"
    await patron.send_raw(SURROGATE_ID)
    assert (await patron.next("error"))["code"] == "illegal_characters"
    await patron.send_raw('{"type": "transcript", "email": "\\ud800@example.org"}')
    assert (await patron.next("error"))["code"] == "illegal_characters"
    await patron.send_raw('{"type": "message", "id": "n", "text": NaN}')
    assert (await patron.next("error"))["code"] == "bad_json"
    # The same socket and everyone else keep being served.
    assert (await patron.say("still here"))["seq"] == 1
    assert (await bystander.say("me too"))["seq"] == 1


async def test_deep_nesting_and_lone_surrogates_over_long_poll(offline_desk: Desk) -> None:
    base = offline_desk.url + "/lp/ask"
    async with aiohttp.ClientSession() as s:
        status, body = await _post(s, base, DEEP)
        assert status == 400 and body["frames"][0]["code"] == "too_deep"
        status, body = await _post(s, base, '{"type": "hello", "resume": "\\udfff"}')
        assert status == 400 and body["frames"][0]["code"] == "illegal_characters"
        status, body = await _post(s, base, b'{"type": "hello", "resume": "\xff\xfe"}')
        assert status == 400 and body["frames"][0]["code"] == "bad_json"
        status, body = await _post(s, base, '{"type": "hello"}')
        assert status == 200
        url = f"{base}/{body['session']}"
        for raw, code in ((DEEP, "too_deep"), (SURROGATE_ID, "illegal_characters")):
            assert await _post(s, url, raw) == (200, {"ok": True})
            frames = await _poll_until(s, url, "error")
            assert [f["code"] for f in frames if f["type"] == "error"] == [code]
        await _post(s, url, json.dumps({"type": "message", "id": "a", "text": "fine"}))
        assert {"type": "ack", "id": "a", "seq": 1} in await _poll_until(s, url, "ack")


async def test_deep_nesting_and_lone_surrogates_in_the_question_form(offline_desk: Desk) -> None:
    await offline_desk.set_queue("ask", followup_email="followup@library.example")
    url = offline_desk.url + "/api/queues/ask/questions"
    json_type = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as s:
        status, body = await _post(s, url, DEEP, json_type)
        assert status == 400 and body["field"] is None and "deep" in body["error"]
        status, body = await _post(
            s, url, '{"email": "a@b.org", "name": "\\udc00", "question": "Hi"}', json_type
        )
        assert status == 400 and "character" in body["error"]
        status, body = await _post(s, url, b"\xff\xfe{", json_type)
        assert status == 400
        status, body = await _post(
            s, url, json.dumps({"email": "a@b.org", "question": "Real question"}), json_type
        )
        assert status == 201, body


# Item: a banned connection stays open --------------------------------------------------


@TRUSTED
async def test_a_ban_closes_the_open_websocket(offline_desk: Desk) -> None:
    victim = await _proxied(offline_desk, "203.0.113.66")
    bystander = await _proxied(offline_desk, "198.51.100.7")
    await victim.say("rude words")
    await offline_desk.service.moderation.ban("203.0.113.66", reason="abuse", actor="admin")
    assert "blocked" in (await victim.next("banned"))["text"]
    closed = await victim.next("_closed")
    assert closed["code"] == 4403
    assert (await bystander.say("still served"))["seq"] == 1


@TRUSTED
async def test_a_ban_closes_the_open_long_poll_session(offline_desk: Desk) -> None:
    base = offline_desk.url + "/lp/ask"
    headers = {"X-Forwarded-For": "203.0.113.67"}
    async with aiohttp.ClientSession(headers=headers) as s:
        _, body = await _post(s, base, '{"type": "hello"}')
        url = f"{base}/{body['session']}"
        await offline_desk.service.moderation.ban("203.0.113.67", reason="abuse", actor="admin")
        # Whatever the patron sends now is refused, before or after they poll.
        msg = json.dumps({"type": "message", "id": "late", "text": "after the ban"})
        status, body = await _post(s, url, msg)
        assert status == 403 and body["frames"][0]["type"] == "banned"
        # The poll delivers the ban and the end of the session; then it is gone.
        async with s.get(url) as resp:
            body = await resp.json()
            assert [f["type"] for f in body["frames"]] == ["banned"] and body["closed"]
        async with s.get(url) as resp:
            assert resp.status == 404
    chat_texts = [e.text for e in await offline_desk.refdesk.store.chats.events_after(1, 0)]
    assert "after the ban" not in chat_texts


@TRUSTED
async def test_a_ban_made_elsewhere_closes_the_socket(offline_desk: Desk) -> None:
    """A ban written to the store by the command line reaches open sockets when the
    service reloads its ban list."""
    from datetime import UTC, datetime

    from component.moderation import create_ban

    victim = await _proxied(offline_desk, "203.0.113.68")
    service = offline_desk.service
    await create_ban(
        offline_desk.refdesk.store,
        service.moderation.policy,
        "203.0.113.0/24",
        reason="from the command line",
        actor="cli",
        now=datetime.now(UTC),
    )
    await service.moderation.load()
    await victim.next("banned")
    assert (await victim.next("_closed"))["code"] == 4403


# Item: typing floods and replayed ids ---------------------------------------------------


async def test_typing_is_throttled_per_chat(desk: Desk) -> None:
    from component.core.events import Event, TypingChanged
    from component.service import TYPING_INTERVAL

    service = desk.service
    op = await desk.add_operator(name="Ana")
    patron = await desk.patron()
    await patron.say("a question")
    await op.next_message()  # the offer: typing now fans out to this operator
    seen: list[TypingChanged] = []

    def on_event(event: Event) -> None:
        if isinstance(event, TypingChanged) and event.by_patron:
            seen.append(event)

    unsubscribe = service.bus.subscribe(on_event)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        for i in range(200):
            state = "composing" if i % 2 == 0 else "paused"
            await patron.send({"type": "typing", "state": state})
        await patron.say("marker")
        # One at once, then at most one per interval while the flood lasted, plus the last.
        allowed = 2 + (loop.time() - started) / TYPING_INTERVAL
        assert 1 <= len(seen) <= allowed, (len(seen), allowed)
        # The last state typed ("paused") gets through in the end.
        await wait_for(lambda: not seen[-1].composing, what="the trailing typing state")
    finally:
        unsubscribe()


async def test_a_replayed_id_with_other_text_is_refused(offline_desk: Desk) -> None:
    patron = await offline_desk.patron()
    first = await patron.say("the original", client_id="dup")
    assert (await patron.say("the original", client_id="dup"))["seq"] == first["seq"]
    await patron.send({"type": "message", "id": "dup", "text": "something else"})
    error = await patron.next("error")
    assert error["code"] == "duplicate_id" and error["text"]
    assert (await patron.say("next"))["seq"] == first["seq"] + 1


async def test_lone_surrogate_id_does_not_break_the_store(offline_desk: Desk) -> None:
    patron = await offline_desk.patron()
    await patron.send_raw(SURROGATE_ID)
    await patron.next("error")
    # The chat's store is fine afterwards (resending works, replay works).
    await patron.say("after")
    await patron.drop()
    again = PatronClient(offline_desk.url, "ask")
    offline_desk.patrons.append(again)
    await again.connect(resume=patron.resume, last_seq=0)
    await again.next("message", lambda f: f.get("text") == "after")


# Item: proxy headers ----------------------------------------------------------------------


async def _hello_answer(desk: Desk, headers: dict[str, str]) -> str:
    """The type of the server's first frame to a hello sent with `headers`."""
    async with aiohttp.ClientSession(headers=headers) as s:
        ws = await s.ws_connect(desk.url.replace("http", "ws") + "/ws/ask")
        await ws.send_str('{"type": "hello"}')
        frame = json.loads((await ws.receive(timeout=5)).data)
        await ws.close()
    return str(frame["type"])


@pytest.mark.desk_config(trusted_proxies=("127.0.0.1",), forwarded_header="Forwarded")
async def test_a_forwarded_deployment_ignores_the_clients_x_forwarded_for(
    offline_desk: Desk,
) -> None:
    await offline_desk.service.moderation.ban("203.0.113.66", reason="abuse", actor="admin")
    forged = {"Forwarded": "for=203.0.113.66", "X-Forwarded-For": "198.51.100.1"}
    assert await _hello_answer(offline_desk, forged) == "banned"
    quoted = {"Forwarded": 'for="203.0.113.66:4711";proto=https'}
    assert await _hello_answer(offline_desk, quoted) == "banned"
    assert await _hello_answer(offline_desk, {"Forwarded": "for=198.51.100.2"}) == "welcome"


@TRUSTED
async def test_x_forwarded_for_hops_with_ports_are_the_client(offline_desk: Desk) -> None:
    moderation = offline_desk.service.moderation
    await moderation.ban("203.0.113.66", reason="abuse", actor="admin")
    await moderation.ban("2001:db8:66::1", reason="abuse", actor="admin")
    assert await _hello_answer(offline_desk, {"X-Forwarded-For": "203.0.113.66:4711"}) == "banned"
    v6 = {"X-Forwarded-For": "198.51.100.3, [2001:db8:66::1]:4711"}
    assert await _hello_answer(offline_desk, v6) == "banned"
    # The default deployment reads X-Forwarded-For only: a Forwarded header is the client's.
    both = {"Forwarded": "for=203.0.113.66", "X-Forwarded-For": "198.51.100.4"}
    assert await _hello_answer(offline_desk, both) == "welcome"


# Item: connection exhaustion behind a proxy --------------------------------------------


@pytest.mark.desk_config(trusted_proxies=("127.0.0.1",), web={"connections_per_address": 3})
async def test_patron_connections_are_capped_per_forwarded_address(offline_desk: Desk) -> None:
    """Behind a proxy every connection comes from the proxy; the patron's own address
    is what the WebSocket and long-poll caps count."""
    for _ in range(3):
        await _proxied(offline_desk, "203.0.113.70")
    refused = ProxiedPatron(offline_desk.url, "ask", "203.0.113.70")
    offline_desk.patrons.append(refused)
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await refused.connect()
    assert caught.value.status == 429
    headers = {"X-Forwarded-For": "203.0.113.70"}
    async with aiohttp.ClientSession(headers=headers) as s:
        status, body = await _post(s, offline_desk.url + "/lp/ask", '{"type": "hello"}')
        assert status == 429 and body["frames"][0]["code"] == "too_many_connections"
    # Others behind the same proxy are served; a closed socket gives its slot back.
    assert (await (await _proxied(offline_desk, "198.51.100.70")).say("hi"))["seq"] == 1
    await offline_desk.patrons[0].close()
    runner = offline_desk.refdesk._runner
    assert runner is not None
    slots = runner.app[PATRON_SLOTS]
    address = ipaddress.ip_address("203.0.113.70")
    await wait_for(lambda: slots.held(address) < 3, what="the closed socket's slot")
    again = await _proxied(offline_desk, "203.0.113.70")
    assert again.welcome is not None


async def test_a_form_encoded_question_that_is_not_utf8(offline_desk: Desk) -> None:
    """Found by the hostile suite: the form-encoded variant of the question form."""
    await offline_desk.set_queue("ask", followup_email="followup@library.example")
    url = offline_desk.url + "/api/queues/ask/questions"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession() as s:
        for body in (b"\x80", b"email=%ED%A0%80&question=hi", b"question=\xff"):
            status, answer = await _post(s, url, body, form)
            assert status == 400 and answer["error"], (body, status, answer)
