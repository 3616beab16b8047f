"""Loading the configuration: TOML text in, a checked `Config` out, or one clear error.

Called by the CLI at start-up (`load_config`) and by tests and tools holding text
(`parse_config`). Every value is converted to its setting's declared type and passed
through the setting's check (`component.config_checks`); whatever is wrong is reported as a
`ConfigError` naming the file, the line and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import Any, get_args, get_origin

from component.config import Config, config_sections, is_required
from component.config_checks import ConfigError, Invalid, mixed_content, show_value


def load_config(path: Path) -> Config:
    """Read and validate the configuration file at `path`.

    Called once at start-up by the CLI (for every subcommand, `check-config` included).
    Relative paths inside the file are resolved against the file's directory. Raises
    ConfigError for a missing or unreadable file as for a bad one.
    """
    source = str(path)
    try:
        # utf-8-sig: editors on Windows like to start the file with a BOM, which TOML forbids.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError("config file not found", source=source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file is not valid UTF-8 ({exc.reason})", source=source) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot read config file: {reason}", source=source) from None
    except ValueError:  # a NUL in the path: no file can have that name
        raise ConfigError(
            "cannot read config file: the path contains a NUL", source=source
        ) from None
    absolute = path.absolute()
    return _build(text, source, absolute.parent, absolute)


def parse_config(text: str, source: str = "<config>", base_dir: Path | None = None) -> Config:
    """Validate configuration given as TOML text; `source` names it in error messages.

    Used by tests and by tools that hold the text rather than a file. Relative paths are
    resolved against `base_dir`; without one they are kept relative (to the working
    directory of whoever opens them). The result's `source` is None.
    """
    return _build(text, source, base_dir, None)


def _build(text: str, source: str, base_dir: Path | None, source_path: Path | None) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"invalid TOML: {exc}", source=source, line=_decode_error_line(exc)
        ) from None
    except ValueError as exc:
        # Another ValueError from tomllib: an integer beyond Python's digit limit.
        raise ConfigError(f"invalid TOML: {exc}".split(";")[0], source=source) from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise ConfigError(
            "invalid TOML: arrays or tables nested too deeply", source=source
        ) from None

    def fail(reason: str, section: str, key: str | None = None, suffix: str = "") -> ConfigError:
        dotted = section if key is None else f"{section}.{key}"
        line = _find_line(text, section, key)
        return ConfigError(reason, source=source, line=line, key=dotted + suffix)

    sections = dict(config_sections())
    for name, value in data.items():
        if name not in sections:
            hint = _did_you_mean(name, sections)
            raise fail(f"unknown section{hint}", name)
        if not isinstance(value, dict):
            raise fail(f"expected a [{name}] section, got {show_value(value)}", name)

    built: dict[str, Any] = {}
    for name, cls in sections.items():
        raw: dict[str, Any] = data.get(name, {})
        fields = {field.name: field for field in dataclasses.fields(cls)}
        for key in raw:
            if key not in fields:
                hint = _did_you_mean(key, fields, prefix=f"{name}.")
                raise fail(f"unknown key{hint}", name, key)
        values: dict[str, Any] = {}
        for key, field in fields.items():
            if key in raw:
                try:
                    value = _convert(raw[key], field)
                    check = field.metadata["check"]
                    if check is not None:
                        value = check(value)
                except Invalid as exc:
                    raise fail(exc.reason, name, key, exc.suffix) from None
            elif is_required(field):
                raise ConfigError("missing required key", source=source, key=f"{name}.{key}")
            elif field.default_factory is not dataclasses.MISSING:
                value = field.default_factory()
            else:
                value = field.default
            # Defaults too: the database belongs next to the config file, not wherever the
            # service happens to be started from.
            if isinstance(value, Path) and base_dir is not None and not value.is_absolute():
                value = base_dir / value
            values[key] = value
        built[name] = cls(**values)
    # Checks across sections, once each value is known to be well-formed on its own.
    mixed = mixed_content(built["web"].public_url, built["operator_web"].websocket_url)
    if mixed is not None:
        raise fail(mixed, "operator_web", "websocket_url")
    return Config(**built, source=source_path)


def _convert(value: object, field: dataclasses.Field[Any]) -> Any:
    """Check a TOML value against the field's declared type and convert it to that type."""
    kind = field.type
    shown = _type_name(value) if field.metadata["secret"] else show_value(value)
    # bool is a subclass of int in Python, but `port = true` is a mistake, not port 1.
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise Invalid(f"expected true or false, got {shown}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise Invalid(f"expected an integer, got {shown}")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                raise Invalid(f"number too large: {shown}") from None
            if not math.isfinite(number):
                raise Invalid(f"expected a finite number, got {shown}")
            return number
        raise Invalid(f"expected a number, got {shown}")
    if kind is str:
        if not isinstance(value, str):
            raise Invalid(f"expected a string, got {shown}")
        if not value.strip() and not field.metadata.get("allow_empty"):
            raise Invalid("must not be empty")
        return value
    if kind is Path:
        if not isinstance(value, str):
            raise Invalid(f"expected a path (a string), got {shown}")
        if not value.strip():
            raise Invalid("must not be empty")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            # A NUL cannot be opened at all; other controls are surely a mistake.
            raise Invalid(f"must not contain control characters, got {shown}")
        return Path(value).expanduser()
    if get_origin(kind) is tuple and get_args(kind) == (str, ...):
        if not isinstance(value, list):
            raise Invalid(f"expected a list of strings, got {shown}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise Invalid(f"expected a string, got {show_value(item)}", f"[{index}]")
        return tuple(value)
    raise TypeError(f"setting {field.name} has an unsupported type {kind!r}")


def _type_name(value: object) -> str:
    """Describe a value by its TOML type alone, for settings whose value must not be shown."""
    names = {bool: "a boolean", int: "an integer", float: "a number", list: "a list"}
    return names.get(type(value), "a table" if isinstance(value, dict) else "a date or time")


def _did_you_mean(name: str, known: Collection[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f" (did you mean {prefix}{close[0]}?)"
    return " (known: " + ", ".join(prefix + item for item in known) + ")"


# --- line numbers --------------------------------------------------------------------------

_TOML_DECODE_LINE = re.compile(r"\(at line (\d+), column \d+\)")
_HEADER = re.compile(r"^\s*\[(?P<array>\[)?\s*(?P<name>[^\]]*?)\s*\]")


def _decode_error_line(exc: tomllib.TOMLDecodeError) -> int | None:
    # Python 3.14 gives TOMLDecodeError a lineno; before that it is only in the message.
    lineno = getattr(exc, "lineno", None)
    if isinstance(lineno, int):
        return lineno
    match = _TOML_DECODE_LINE.search(str(exc))
    return int(match.group(1)) if match else None


def _key_pattern(key: str) -> str:
    escaped = re.escape(key)
    return rf"""(?:{escaped}|"{escaped}"|'{escaped}')"""


def _header_name(raw: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in raw.split("."))


def _find_line(text: str, section: str, key: str | None) -> int | None:
    """Best-effort line number of `[section]` or of `key` inside it, for error messages.

    tomllib reports no positions for the values it returns, so this scans the text again
    with simple patterns. It understands `[section]` headers, `key = ...` lines under them,
    and top-level `section.key = ...`. It can be fooled by lines inside multi-line strings
    or arrays that look like headers or keys, and does not look into inline tables; then
    the line is wrong or missing, while the key in the message is always right.
    """
    # Patterns for lines that define the wanted name, keyed by the table they must be in.
    section_re = _key_pattern(section)
    if key is None:
        wanted = {"": re.compile(rf"\s*{section_re}\s*[=.]")}
    else:
        key_re = _key_pattern(key)
        wanted = {
            section: re.compile(rf"\s*{key_re}\s*[=.]"),
            "": re.compile(rf"\s*{section_re}\s*\.\s*{key_re}\s*="),
        }
    full_name = section if key is None else f"{section}.{key}"
    current: str | None = ""  # "" is the root table; None is an array-of-tables element
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            name = _header_name(header["name"])
            current = None if header["array"] else name
            if name == full_name:
                return number
            continue
        pattern = wanted.get(current) if current is not None else None
        if pattern is not None and pattern.match(line):
            return number
    return None
