"""The one JSON decoder for everything a patron sends: WebSocket and long-poll frames and
the offline question form.

The standard library's decoder recurses in C and raises RecursionError on a few thousand
nested brackets, accepts NaN and lone surrogate escapes (`"\\udc00"`, which later break
SQLite and the XMPP stream), and is given no size bound. orjson parses without Python
recursion, refuses NaN, Infinity, invalid UTF-8 and lone surrogates; this module adds the
size and depth bounds and turns every refusal into a `FrameError` with a stable code.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# Our frames are flat objects; a little room for future nesting, none for abuse.
MAX_DEPTH = 8


class FrameError(Exception):
    """Input the protocol cannot accept. Transports turn it into an `error` frame (or a
    400 answer) and keep the connection."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def decode_json(data: str | bytes, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Decode one JSON document of at most `max_bytes` bytes (UTF-8) and `max_depth`
    levels of arrays and objects. Called by `decode_object`; raises FrameError."""
    if _size(data, max_bytes) > max_bytes:
        raise FrameError("frame_too_large", f"Frames are limited to {max_bytes} bytes.")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("bad_json", "The frame is not valid UTF-8.") from None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        message = str(exc)
        if "surrogate" in message:
            raise FrameError(
                "illegal_characters", "The frame contains a character that cannot be sent."
            ) from None
        if "depth" in message:
            raise _too_deep(max_depth) from None
        raise FrameError("bad_json", "The frame is not valid JSON.") from None
    if _depth_exceeds(value, max_depth):
        raise _too_deep(max_depth)
    return value


def decode_object(
    data: str | bytes, *, max_bytes: int, max_depth: int = MAX_DEPTH
) -> dict[str, Any]:
    """A JSON object, as every patron frame and the question form must be. Called by the
    patron session for each frame and by the question form handler."""
    value = decode_json(data, max_bytes=max_bytes, max_depth=max_depth)
    if not isinstance(value, dict):
        raise FrameError("bad_frame", "A frame must be a JSON object.")
    return value


def encode_frame(frame: dict[str, Any]) -> str:
    """A frame to a patron as JSON text. Called by the patron's WebSocket writer for every
    frame it sends: orjson costs a tenth of the standard encoder, which stays as the
    fallback for what orjson refuses (a lone surrogate in text that came from elsewhere,
    an integer past 64 bits), so every frame still goes out, escaped as before."""
    try:
        return orjson.dumps(frame).decode("utf-8")
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(frame)


def _size(data: str | bytes, max_bytes: int) -> int:
    if isinstance(data, bytes):
        return len(data)
    if len(data) * 4 <= max_bytes:
        return len(data)  # even all 4-byte characters would fit: skip the encoding
    # "surrogatepass": a str from elsewhere may hold lone surrogates; orjson refuses them.
    return len(data.encode("utf-8", "surrogatepass"))


def _too_deep(max_depth: int) -> FrameError:
    return FrameError("too_deep", f"The frame is nested more than {max_depth} levels deep.")


def _depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether `value` nests arrays and objects more than `max_depth` deep; iterative, so
    that checking depth cannot itself overflow the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
