"""A small TOML writer for configuration files.

Used by the demo command and by tests to write a configuration that `load_config` then
reads; it does not check keys against the settings (the loader does).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import PurePath

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_STRING_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n"}
_STRING_ESCAPES |= {"\f": "\\f", "\r": "\\r"}


def write_config_toml(values: Mapping[str, Mapping[str, object]]) -> str:
    """Render `{section: {key: value}}` as TOML text, sections and keys in the given order.

    Used by the demo command to write a config file it then loads with `load_config`.
    Values may be strings (paths are written as strings), ints, floats, bools and lists of
    those. It does not check keys against the settings: `load_config` does that.
    """
    chunks = []
    for section, keys in values.items():
        lines = [f"[{_toml_key(section)}]"]
        lines.extend(f"{_toml_key(key)} = {_toml_value(value)}" for key, value in keys.items())
        chunks.append("\n".join(lines) + "\n")
    return "\n".join(chunks)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_string(key)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, PurePath):
        return _toml_string(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write a {type(value).__name__} as a TOML value")


def _toml_string(text: str) -> str:
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _STRING_ESCAPES:
            out.append(_STRING_ESCAPES[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:
            # TOML (and UTF-8) cannot carry a lone surrogate; writing it would fail later.
            raise ValueError(f"cannot write a lone surrogate (U+{code:04X}) in a TOML string")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)
