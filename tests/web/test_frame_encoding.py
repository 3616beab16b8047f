"""`encode_frame`, the JSON encoder of every frame sent to a patron: the same document
as the standard encoder, and a frame orjson refuses still goes out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from web.frames import encode_frame

FRAMES: list[dict[str, Any]] = [
    {"type": "message", "seq": 3, "sender": "operator", "text": "Bonjour, ça va ? 👋"},
    {"type": "message", "text": '</script><script>alert(1)</script> " \\ \u2028 \x00 \x1b'},
    {"type": "status", "waiting": 0, "open": True, "eta": None, "ratio": 0.5, "list": [1, "a"]},
    # orjson refuses these two; the standard encoder writes them (escaped) instead.
    {"type": "message", "text": "a lone surrogate \ud800 from elsewhere\n"},
    {"type": "message", "seq": 2**70},
]


@pytest.mark.parametrize("frame", FRAMES)
def test_a_frame_reads_back_as_the_standard_encoder_wrote_it(frame: dict[str, Any]) -> None:
    text = encode_frame(frame)
    assert json.loads(text) == json.loads(json.dumps(frame)) == frame
    text.encode("utf-8")  # sendable: no lone surrogate left unescaped
    assert "\n" not in text  # one line: control characters are escaped
