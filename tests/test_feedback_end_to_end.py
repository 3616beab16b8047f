"""End-of-chat ratings over the real protocol (patron WebSocket and long-poll, operators
on Prosody and ejabberd): asked for only where the queue says so, stored once per chat,
and every hostile rating frame refused with an error while the connection goes on."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from component.config import LimitsConfig
from tests.conftest import Desk
from tests.operator_client import OperatorClient
from tests.patron_client import PatronClient


async def _answered_and_ended(desk: Desk, op: OperatorClient) -> PatronClient:
    """A patron asks, the operator answers and ends the chat; returns the patron."""
    patron = await desk.patron()
    await patron.say("Do you have the 1901 census?")
    offer = await op.next_message()
    guest = str(offer["from"].bare)
    op.send_message(guest, "Yes, on microfilm.")
    await patron.next("message", lambda f: f["from"] == "operator")
    op.send_message(guest, "!end")
    return patron


async def _error(patron: PatronClient, frame: dict[str, Any]) -> str:
    await patron.send(frame)
    return str((await patron.next("error"))["code"])


# Rating frames count against the message rate limit; these tests send many on purpose.
FAST = LimitsConfig(messages_per_second=1000.0, message_burst=1000)


@pytest.mark.desk_config(limits=FAST)
async def test_rating_once_after_the_end(desk: Desk) -> None:
    await desk.set_queue("ask", feedback=True)
    op = await desk.add_operator(name="Ana")
    patron = await _answered_and_ended(desk, op)
    ended = await patron.next("ended")
    assert ended["feedback"] is True
    chat_id = patron.chat_id
    assert chat_id is not None
    ratings = desk.refdesk.store.ratings

    # Hostile values: each refused, nothing stored, the connection still answers.
    for bad in (0, 6, -1, 4.5, "5", True, None, [5], {"n": 5}, 10**30):
        assert await _error(patron, {"type": "rating", "rating": bad}) == "bad_rating", bad
    assert (
        await _error(patron, {"type": "rating", "rating": 5, "comment": "x" * 1001})
        == "comment_too_long"
    )
    assert (
        await _error(patron, {"type": "rating", "rating": 5, "comment": "bad \u0001 char"})
        == "bad_comment"
    )
    assert await _error(patron, {"type": "rating", "rating": 5, "comment": 7}) == "bad_comment"
    # Another chat's id: only the chat this token opened may be rated.
    for other in (chat_id + 1, chat_id - 1, str(chat_id), True, None):
        assert await _error(patron, {"type": "rating", "rating": 1, "chat": other}) == (
            "wrong_chat"
        ), other
    assert await ratings.comment(chat_id) is None

    await patron.send({"type": "rating", "rating": 4, "comment": "  Very quick, thanks!  "})
    await patron.next("rating_ok")
    assert await ratings.comment(chat_id) == (4, "Very quick, thanks!")

    # Replay of the same frame, and a second opinion: refused, the first one stands.
    assert await _error(patron, {"type": "rating", "rating": 4}) == "already_rated"
    assert await _error(patron, {"type": "rating", "rating": 1, "comment": "x"}) == (
        "already_rated"
    )
    assert await ratings.comment(chat_id) == (4, "Very quick, thanks!")

    # A reloaded page learns the chat is rated (no form again).
    again = PatronClient(desk.url, "ask")
    await again.connect(resume=patron.resume, last_seq=0)
    replayed = await again.next("ended")
    assert replayed["feedback"] is False
    assert await _error(again, {"type": "rating", "rating": 2}) == "already_rated"
    await again.close()
    await patron.close()


@pytest.mark.desk_config(limits=FAST)
async def test_no_rating_before_the_end_or_where_the_queue_does_not_ask(desk: Desk) -> None:
    op = await desk.add_operator(name="Ana")
    patron = await desk.patron()
    await patron.say("Hello?")
    guest = str((await op.next_message())["from"].bare)
    assert await _error(patron, {"type": "rating", "rating": 5}) == "not_ended"
    op.send_message(guest, "Hi!")
    await patron.next("message", lambda f: f["from"] == "operator")
    op.send_message(guest, "!end")
    ended = await patron.next("ended")
    # The queue does not ask for ratings: none offered, none taken.
    assert "feedback" not in ended
    assert await _error(patron, {"type": "rating", "rating": 5}) == "feedback_off"
    assert await desk.refdesk.store.ratings.comment(patron.chat_id or 0) is None
    await patron.close()

    # A chat nobody answered is not rated either, even where the queue asks.
    await desk.set_queue("ask", feedback=True)
    alone = await desk.patron()
    await alone.say("Anyone?")
    await op.next_message()
    await alone.send({"type": "end"})
    ended = await alone.next("ended")
    assert "feedback" not in ended
    assert await _error(alone, {"type": "rating", "rating": 3}) == "feedback_off"
    await alone.close()


@pytest.mark.desk_config(limits=LimitsConfig(messages_per_second=0.01, message_burst=3))
async def test_rating_frames_are_rate_limited(desk: Desk) -> None:
    """A flood of rating frames is cut off like a flood of messages."""
    patron = await desk.patron()
    codes = [await _error(patron, {"type": "rating", "rating": 5}) for _ in range(4)]
    assert codes == ["not_ended", "not_ended", "not_ended", "rate_limited"]
    await patron.close()


async def test_rating_over_long_poll(desk: Desk) -> None:
    await desk.set_queue("ask", feedback=True)
    op = await desk.add_operator(name="Ana")
    patron = await _answered_and_ended(desk, op)
    await patron.next("ended")
    resume = patron.resume
    await patron.close()
    base = desk.url + "/lp/ask"
    async with aiohttp.ClientSession() as s:

        async def post(url: str, frame: object) -> Any:
            async with s.post(url, data=json.dumps(frame).encode()) as resp:
                assert resp.status == 200
                return await resp.json()

        async def frames_until(url: str, kind: str) -> list[dict[str, Any]]:
            seen: list[dict[str, Any]] = []
            for _ in range(10):
                async with s.get(url) as resp:
                    seen += (await resp.json())["frames"]
                if any(f["type"] == kind for f in seen):
                    return seen
            raise AssertionError(f"no {kind}: {seen}")

        body = await post(base, {"type": "hello", "resume": resume, "last_seq": 0})
        url = f"{base}/{body['session']}"
        ended = [f for f in body["frames"] if f["type"] == "ended"]
        assert ended and ended[0]["feedback"] is True
        await post(url, {"type": "rating", "rating": 9})
        assert (await frames_until(url, "error"))[-1]["code"] == "bad_rating"
        await post(url, {"type": "rating", "rating": 5})
        await frames_until(url, "rating_ok")
        await post(url, {"type": "rating", "rating": 5})
        assert (await frames_until(url, "error"))[-1]["code"] == "already_rated"
    assert await desk.refdesk.store.ratings.comment(patron.chat_id or 0) == (5, None)
