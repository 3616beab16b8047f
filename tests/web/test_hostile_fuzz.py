"""The standing hostile-input suite for the web side: property-based fuzzing (hypothesis)
of WebSocket frames, long-poll frames and the offline question form against the running
server. Every example must get an answer (an `error` frame, a 4xx, or an ordinary answer
when the input happens to be valid), never a 5xx or a dropped connection, and another
patron's chat must keep being served meanwhile.

Example counts are modest so that the suite stays fast in CI; the strategies lean on the
shapes that broke things before (deep nesting, lone surrogates, huge strings, wrong types,
garbage bytes)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from component.config import LimitsConfig
from tests.conftest import Desk
from tests.patron_client import ProxiedPatron

FRAME_LIMIT = 16384  # chat.max_frame_bytes by default
# One desk serves every example of a test; patrons come from addresses behind the
# trusted proxy (loopback), with rate limits out of the way of the fuzzer and bystander.
DESK = pytest.mark.desk_config(
    trusted_proxies=("127.0.0.1",),
    limits=LimitsConfig(
        chats_per_address=100_000,
        chats_per_network=100_000,
        messages_per_second=100_000.0,
        message_burst=100_000,
    ),
)
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FUZZER_IP = "203.0.113.200"
BYSTANDER_IP = "198.51.100.200"
_networks = itertools.count(1)
FIELDS = ("type", "id", "text", "state", "email", "resume", "last_seq", "name", "question")
TYPES = ("hello", "message", "typing", "end", "transcript", "launch", "", "HELLO")

# Text with everything JSON can carry, lone surrogates included (json.dumps escapes them).
any_text = st.text(st.characters(codec=None, categories=None), max_size=60)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
frames_with_wrong_types = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6).map(
    lambda d: {"type": d.get("type", "message"), **d}
)
typed_frames = st.builds(
    lambda kind, rest: {**rest, "type": kind}, st.sampled_from(TYPES), frames_with_wrong_types
)


def _nested(depth: int, opener: str) -> str:
    if opener == "[":
        return "[" * depth + "]" * depth
    return '{"type": ' * depth + "1" + "}" * depth


deep = st.builds(_nested, st.integers(9, 6000), st.sampled_from(["[", "{"])) | st.builds(
    lambda depth: "[" * depth, st.integers(100, 6000)
)


def _huge(size: int, char: str) -> str:
    """A message frame of about `size` bytes of UTF-8 made of `char`."""
    width = len(json.dumps(char, ensure_ascii=False).encode()) - 2
    text = char * (size // width)
    return json.dumps({"type": "message", "id": "big", "text": text}, ensure_ascii=False)


# Up to just under the hard limit (4 x FRAME_LIMIT), over which the socket is closed with
# 1009 by design (tests/web/test_patron_socket.py); below it, an error frame is due.
huge = st.builds(
    _huge,
    st.integers(FRAME_LIMIT - 200, 4 * FRAME_LIMIT - 200),
    st.sampled_from(["a", "é", "\U0001f600", "\\", "\n"]),
)
surrogates = st.builds(
    lambda field, code: json.dumps({"type": "message", field: chr(code), "text": "x"}),
    st.sampled_from(["id", "text", "type", "email"]),
    st.integers(0xD800, 0xDFFF),
)
garbage_text = st.text(max_size=200)
hostile_text = (
    st.builds(json.dumps, json_values)
    | st.builds(json.dumps, typed_frames)
    | deep
    | huge
    | surrogates
    | garbage_text
)
# What a WebSocket may carry: text frames, or binary frames of garbage.
hostile_ws = hostile_text.map(lambda t: ("text", t)) | st.binary(max_size=300).map(
    lambda b: ("binary", b)
)
# What an HTTP body may be: any of the above as UTF-8, or raw garbage bytes.
hostile_body = hostile_text.map(lambda t: t.encode("utf-8", "surrogatepass")) | st.binary(
    max_size=300
)


async def _patron(desk: Desk, ip: str) -> ProxiedPatron:
    patron = ProxiedPatron(desk.url, "ask", ip)
    desk.patrons.append(patron)
    await patron.connect()
    return patron


async def _bystander_is_served(bystander: ProxiedPatron) -> None:
    await bystander.say("still served?")


@DESK
@FUZZ
@given(data=st.data())
async def test_websocket_frames(offline_desk: Desk, data: st.DataObject) -> None:
    if not offline_desk.patrons:
        await _patron(offline_desk, FUZZER_IP)
        await _patron(offline_desk, BYSTANDER_IP)
    fuzzer, bystander = offline_desk.patrons[0], offline_desk.patrons[1]
    assert isinstance(fuzzer, ProxiedPatron) and isinstance(bystander, ProxiedPatron)
    assert fuzzer.ws is not None
    kind, payload = data.draw(hostile_ws)
    if kind == "binary":
        assert isinstance(payload, bytes)
        await fuzzer.ws.send_bytes(payload)
    else:
        assert isinstance(payload, str)
        await fuzzer.ws.send_str(payload)
    # The socket still answers: a probe gets its error frame (after whatever the hostile
    # frame caused), and nothing closed it.
    await fuzzer.send({"type": "probe"})
    error = await fuzzer.next("error", lambda f: f["code"] == "unknown_type")
    assert error["text"]
    await _bystander_is_served(bystander)


async def _lp_post(s: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, Any]:
    async with s.post(url, data=body) as resp:
        assert resp.status < 500, (resp.status, await resp.text())
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.text()


@DESK
@FUZZ
@given(body=hostile_body)
async def test_long_poll_frames(offline_desk: Desk, body: bytes) -> None:
    if not offline_desk.patrons:
        await _patron(offline_desk, BYSTANDER_IP)
    bystander = offline_desk.patrons[0]
    assert isinstance(bystander, ProxiedPatron)
    base = offline_desk.url + "/lp/ask"
    # Sessions stay open until they expire: a fresh network per example keeps the
    # per-address session cap out of the way.
    fuzzer = f"2001:db8:{next(_networks):x}::1"
    async with aiohttp.ClientSession(headers={"X-Forwarded-For": fuzzer}) as s:
        # As the opening hello: refused with a 4xx and frames, or (if it is one) welcomed.
        status, answer = await _lp_post(s, base, body)
        if status == 200:
            assert answer["frames"][0]["type"] == "welcome"
        elif status != 413:
            assert answer["frames"][0]["type"] in ("error", "banned")
        # Inside a session: accepted for processing (or 413), and the poll answers.
        status, answer = await _lp_post(s, base, b'{"type": "hello"}')
        assert status == 200
        url = f"{base}/{answer['session']}"
        status, answer = await _lp_post(s, url, body)
        assert status in (200, 413), (status, answer)
        await _lp_post(s, url, b'{"type": "probe"}')
        seen: list[dict[str, Any]] = []
        for _ in range(10):
            async with s.get(url) as resp:
                assert resp.status == 200
                seen += (await resp.json())["frames"]
            if any(f.get("code") == "unknown_type" for f in seen):
                break
        else:
            raise AssertionError(f"the session stopped answering: {seen}")
    await _bystander_is_served(bystander)


form_fields = st.dictionaries(
    st.sampled_from(("email", "name", "question", "resume", "extra")), json_values, max_size=5
)
valid_looking = st.fixed_dictionaries(
    {"email": st.sampled_from(["a@b.org", "x@example.org"]), "question": any_text},
    optional={"name": any_text, "resume": any_text},
)
hostile_form = (
    st.builds(json.dumps, form_fields | valid_looking | json_values).map(
        lambda t: t.encode("utf-8", "surrogatepass")
    )
    | hostile_body
)


@DESK
@FUZZ
@given(body=hostile_form, as_json=st.booleans())
async def test_offline_question_form(offline_desk: Desk, body: bytes, as_json: bool) -> None:
    if not offline_desk.patrons:
        await offline_desk.set_queue("ask", followup_email="followup@library.example")
        await _patron(offline_desk, BYSTANDER_IP)
    bystander = offline_desk.patrons[0]
    assert isinstance(bystander, ProxiedPatron)
    content_type = "application/json" if as_json else "application/x-www-form-urlencoded"
    headers = {"X-Forwarded-For": FUZZER_IP, "Content-Type": content_type}
    async with (
        aiohttp.ClientSession() as s,
        s.post(offline_desk.url + "/api/queues/ask/questions", data=body, headers=headers) as r,
    ):
        assert r.status in (201, 400, 413, 429), (r.status, await r.text())
        answer = await r.json()
        if r.status != 201:
            assert isinstance(answer["error"], str) and answer["error"]
    await _bystander_is_served(bystander)
