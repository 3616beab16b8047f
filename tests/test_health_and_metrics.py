"""`/healthz` and `/metrics` on the running service, against real XMPP servers."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from component.config import LimitsConfig
from component.runner import Refdesk
from tests.conftest import COMPONENT_DOMAIN, SECRET, Desk, make_config, seed, wait_for
from tests.mail_sink import MailSink
from tests.xmpp_servers import XmppServer, start_server


async def _get(url: str, **headers: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status, await response.text()


async def _health(desk_url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(desk_url + "/healthz") as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
async def own_prosody(tmp_path: Path) -> AsyncIterator[XmppServer]:
    """A Prosody of this test's own, which the test may stop and start."""
    server = await start_server("prosody", tmp_path, COMPONENT_DOMAIN, SECRET)
    yield server
    await server.stop()


async def test_healthz_follows_the_component_stream(
    own_prosody: XmppServer, tmp_path: Path, mail_sink: MailSink
) -> None:
    config = make_config(tmp_path, xmpp_port=own_prosody.component_port, smtp_port=mail_sink.port)
    await seed(config.storage.path)
    refdesk = Refdesk(config)
    await refdesk.start()
    url = f"http://127.0.0.1:{refdesk.port}"
    try:
        await wait_for(lambda: refdesk.adapter.online.is_set(), what="component online")
        status, body = await _health(url)
        assert status == 200, body
        assert body["status"] == "ok"
        assert body["xmpp"] == {"connected": True}
        assert body["database"] == {"writable": True}
        assert body["outbox"] == {"pending": 0, "failed": 0, "oldest_pending_seconds": None}

        await own_prosody.stop()
        await wait_for(lambda: not refdesk.adapter.online.is_set(), what="stream down")
        status, body = await _health(url)
        assert status == 503, body
        samples = _samples((await _get(url + "/metrics"))[1])
        assert _value(samples, "refdesk_xmpp_connected") == 0
        assert body["status"] == "failing"
        assert body["xmpp"] == {"connected": False}
        assert body["database"] == {"writable": True}

        await own_prosody.start()
        await wait_for(lambda: refdesk.adapter.online.is_set(), timeout=30, what="back online")
        status, body = await _health(url)
        assert status == 200, body
        samples = _samples((await _get(url + "/metrics"))[1])
        assert _value(samples, "refdesk_xmpp_reconnects_total") == 1
        assert _value(samples, "refdesk_xmpp_connected") == 1
    finally:
        await refdesk.stop()


async def _health_until(desk_url: str, status: int) -> dict[str, Any]:
    """Poll /healthz until it answers `status` (answers are reused for a moment)."""
    for _ in range(200):
        got, body = await _health(desk_url)
        if got == status:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"/healthz never answered {status}; last: {got} {body}")


async def test_healthz_503_while_the_database_cannot_be_written(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    """Public, so it says only that the database cannot be written: why (which can name
    files, hosts and users) goes to the log."""
    await _health_until(desk.url, 200)
    # Another process holds the write lock (a stuck maintenance job, say).
    other = sqlite3.connect(desk.refdesk.config.storage.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        body = await _health_until(desk.url, 503)
        assert body["status"] == "failing"
        assert body["database"] == {"writable": False}
        assert any("locked" in r.getMessage() for r in caplog.records), caplog.text
        assert body["xmpp"] == {"connected": True}
    finally:
        other.execute("ROLLBACK")
        other.close()
    body = await _health_until(desk.url, 200)
    assert body["database"] == {"writable": True}


async def test_metrics_move_when_a_chat_happens(desk: Desk) -> None:
    status, before_text = await _get(desk.url + "/metrics")
    assert status == 200
    before = _samples(before_text)
    assert _value(before, "refdesk_operators_available", queue="ask") == 0
    assert _value(before, "refdesk_xmpp_connected") == 1

    op = await desk.add_operator(name="Ana")
    patron = await desk.patron()
    secret_text = "my library card is 2938475"
    await patron.say(secret_text)
    offer = await op.next_message()
    guest = offer["from"].bare
    waiting = _samples((await _get(desk.url + "/metrics"))[1])
    assert _value(waiting, "refdesk_waiting", queue="ask") == 1
    assert _value(waiting, "refdesk_chats", state="offered") == 1
    assert _value(waiting, "refdesk_operators_available", queue="ask") == 1

    op.send_message(guest, "Happy to help.")
    await patron.next("message", lambda f: f["from"] == "operator")
    await patron.say("thanks")
    await op.next_message(guest)
    # A round trip is complete when the XMPP server confirms the line (its answer to the
    # confirmation ping), which may come just after the operator has the line.
    adapter = desk.refdesk.adapter
    await wait_for(lambda: adapter.unconfirmed == 0, what="the server's confirmation")

    text = (await _get(desk.url + "/metrics"))[1]
    after = _samples(text)
    assert _value(after, "refdesk_chats", state="active") == 1
    assert _value(after, "refdesk_waiting", queue="ask") == 0
    relayed = "refdesk_lines_relayed_total"
    patron_lines = _value(after, relayed, direction="patron_to_operator")
    assert patron_lines - _value(before, relayed, direction="patron_to_operator") == 2
    operator_lines = _value(after, relayed, direction="operator_to_patron")
    assert operator_lines - _value(before, relayed, direction="operator_to_patron") == 1
    assert _value(after, "refdesk_wait_seconds_count", queue="ask") == 1
    assert _value(after, "refdesk_relay_round_trip_seconds_count") >= 2
    assert _value(after, "refdesk_outbox_mail", status="pending") == 0
    assert _value(after, "refdesk_bans_active") == 0
    assert _value(after, "refdesk_rate_limit_refusals_total", limit="messages") == 0
    # Never a patron's words nor address in a label or anywhere in the exposition.
    assert secret_text not in text and "thanks" not in text and "127.0.0.1" not in text

    op.send_message(guest, "!end")
    await patron.next("ended")
    ended = _samples((await _get(desk.url + "/metrics"))[1])
    assert _value(ended, "refdesk_chats", state="active") == 0
    assert _value(ended, "refdesk_chats_ended_total", by="operator") == 1


@pytest.mark.desk_config(metrics_networks=("192.0.2.0/24",), trusted_proxies=("127.0.0.1",))
async def test_metrics_only_for_configured_networks(offline_desk: Desk) -> None:
    # Loopback is not in the configured networks here, and a forwarded header naming an
    # allowed address changes nothing: only the connection's peer counts.
    status, _ = await _get(offline_desk.url + "/metrics")
    assert status == 404
    status, _ = await _get(offline_desk.url + "/metrics", **{"X-Forwarded-For": "192.0.2.7"})
    assert status == 404
    status, _ = await _get(offline_desk.url + "/metrics", Forwarded="for=192.0.2.7")
    assert status == 404
    # Health stays public: load balancers poll it from anywhere.
    status, _ = await _get(offline_desk.url + "/healthz")
    assert status == 503


async def test_metrics_from_loopback_by_default_and_one_registry_per_app(
    offline_desk: Desk,
) -> None:
    status, text = await _get(offline_desk.url + "/metrics")
    assert status == 200
    samples = _samples(text)
    assert _value(samples, "refdesk_xmpp_connected") == 0
    names = {name for name, _ in samples}
    assert all(name.startswith("refdesk_") for name in names), names
    # A second app in the same process has its own registry (no duplicate-series error).
    from web.app import make_app

    make_app(offline_desk.service, offline_desk.refdesk.config)


@pytest.mark.desk_config(limits=LimitsConfig(messages_per_second=0.01, message_burst=1))
async def test_rate_limit_refusals_are_counted(offline_desk: Desk) -> None:
    patron = await offline_desk.patron()
    await patron.say("one")
    await patron.send({"type": "message", "id": "m-2", "text": "two"})
    error = await patron.next("error")
    assert error["code"] == "rate_limited"
    samples = _samples((await _get(offline_desk.url + "/metrics"))[1])
    assert _value(samples, "refdesk_rate_limit_refusals_total", limit="messages") == 1
    assert _value(samples, "refdesk_rate_limit_refusals_total", limit="chats") == 0
