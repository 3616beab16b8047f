"""The capacity benchmark's per-opening and per-line costs, and its ratio over repeated
floors (pure logic)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from bench.capacity import crossing, kinds_text, per_unit, ratio_over_floors, stanzas_since
from bench.common import archive_limit_state
from bench.stack import ARCHIVE_ITEM_LIMIT, PROSODY_BENCH_CONFIG
from bench.xmpp_clients import stanza_kind


def phase(*points: tuple[int, float]) -> dict[str, object]:
    steps = [{"sessions": n, "rtt_ms": {"p99": p99}} for n, p99 in points]
    return {"steps": steps, "crossing": crossing(steps)}


def test_stanza_kinds() -> None:
    assert stanza_kind("{jabber:client}message", "chat", True) == "message/chat body"
    assert stanza_kind("{jabber:client}message", "chat", False) == "message/chat no body"
    assert stanza_kind("{jabber:client}message", None, True) == "message/normal body"
    assert stanza_kind("{jabber:client}presence", None, False) == "presence/available"
    assert stanza_kind("presence", "unavailable", False) == "presence/unavailable"
    assert stanza_kind("{jabber:client}iq", "get", False) == "iq/get"


def test_stanzas_since_counts_only_what_came_in_between() -> None:
    before = (Counter({"message/chat body": 5}), Counter({"iq/result": 1}))
    after = (
        Counter({"message/chat body": 25, "presence/available": 20}),
        Counter({"iq/result": 1, "message/chat body": 1}),
    )
    assert stanzas_since(before, after) == {
        "in": {"message/chat body": 20, "presence/available": 20},
        "out": {"message/chat body": 1},
    }


def test_cpu_per_unit_from_shares_of_a_core() -> None:
    cpu = {"refdesk": 0.5, "prosody": 0.25, "others": 0.1, "steal": 0.0, "wall_s": 10.0}
    got = per_unit(cpu, 1000)
    assert got == {"refdesk": 5.0, "prosody": 2.5, "others": 1.0}
    assert math.isnan(per_unit(cpu, 0)["refdesk"])


def test_kinds_text_biggest_first_per_unit() -> None:
    counts = {"presence/unavailable": 90, "message/chat body": 200, "presence/available": 200}
    assert kinds_text(counts, 10) == (
        "20.00 message/chat body, 20.00 presence/available, 9.00 presence/unavailable"
    )
    assert kinds_text({}, 10) == "–"
    assert kinds_text(counts, 0) == "–"


def test_ratio_over_repeated_floors_reports_their_spread() -> None:
    chat = phase((2000, 40.0), (3000, 80.0), (4000, 120.0))  # crosses at 3500
    floors = [
        phase((3000, 50.0), (5000, 150.0)),  # crosses at 4000
        phase((3000, 50.0), (5000, 150.0)),
        phase((4000, 50.0), (6000, 150.0)),  # crosses at 5000
    ]
    got = ratio_over_floors(chat, floors)
    assert got["floor_sessions"] == [4000.0, 4000.0, 5000.0]
    assert got["floor_kinds"] == ["exact", "exact", "exact"]
    assert math.isclose(got["floor_mean"], 13000 / 3)
    assert math.isclose(got["floor_spread"], 1000 / (13000 / 3))
    assert math.isclose(got["ratio_mean"], 3500 / (13000 / 3))
    assert math.isclose(got["ratio_low"], 0.7) and math.isclose(got["ratio_high"], 0.875)
    assert got["hows"] == ["both crossed the threshold"]


def test_one_floor_has_no_spread() -> None:
    chat = phase((2000, 40.0), (3000, 80.0), (4000, 120.0))
    got = ratio_over_floors(chat, [phase((3000, 20.0), (5000, 180.0))])
    assert math.isnan(got["floor_spread"])
    assert math.isclose(got["ratio_mean"], 3500 / 4000)


def test_no_ratio_over_floors_when_a_run_gives_none() -> None:
    # refdesk and the floor both over the threshold at their first step: two upper bounds.
    chat = phase((3000, 150.0))
    got = ratio_over_floors(chat, [phase((3000, 120.0)), phase((3000, 130.0))])
    assert math.isnan(got["ratio_mean"])
    assert got["floor_kinds"] == ["at most", "at most"] and math.isnan(got["floor_spread"])
    assert got["hows"] == ["refdesk at most, floor at most: no ratio can be read"]


def test_the_archive_quota_a_run_used_is_in_its_facts(tmp_path: Path) -> None:
    config = tmp_path / "prosody.cfg.lua"
    config.write_text('storage = "internal"\n')
    assert "default quota (10,000 per account)" in archive_limit_state(config)
    config.write_text(f'storage = "internal"\n{PROSODY_BENCH_CONFIG[0]}\n')
    assert archive_limit_state(config).endswith(f"at most {ARCHIVE_ITEM_LIMIT} per account")
    assert archive_limit_state(None) == "no Prosody in this benchmark"
