"""Patron lines (component.core.patron_text) and the widget's catalog of them: every line
the server may write to a patron, and every error the widget names, has a Spanish text
with the same fields, and the English texts agree on both sides."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from component.core.patron_text import (
    ENGLISH,
    SPANISH,
    TRANSCRIPT_MAIL,
    PatronText,
    language,
    line,
    placeholders,
    rendered,
)

ROOT = Path(__file__).resolve().parents[3]
STRINGS = ROOT / "widget" / "strings.js"
LANGUAGES = ("es",)  # besides English


def widget_strings() -> dict[str, Any]:
    """The widget's catalog as the browser sees it: strings.js run by Node."""
    node = shutil.which("node")
    assert node is not None, "Node.js is needed to read widget/strings.js"
    script = (
        "global.window = {};"
        f"require({json.dumps(str(STRINGS))});"
        "process.stdout.write(JSON.stringify(window.REFDESK_STRINGS));"
    )
    out = subprocess.run([node, "-e", script], check=True, capture_output=True, text=True)
    strings: dict[str, Any] = json.loads(out.stdout)
    return strings


def codes_used_in_source() -> set[str]:
    """Every code passed to `line(...)` or `PatronText(...)` anywhere in the product."""
    codes: set[str] = set()
    for path in [*ROOT.glob("component/**/*.py"), *ROOT.glob("web/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("line", "PatronText")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                codes.add(node.args[0].value)
    return codes


def test_every_code_the_server_writes_is_in_the_catalog() -> None:
    used = codes_used_in_source()
    assert used, "no patron lines found: the scan is broken"
    assert used <= set(ENGLISH), used - set(ENGLISH)


def test_widget_english_matches_the_server_and_spanish_is_complete() -> None:
    strings = widget_strings()
    assert strings["en"]["sys"] == dict(ENGLISH)
    for lang in LANGUAGES:
        sys_lines = strings[lang]["sys"]
        for code, english in ENGLISH.items():
            text = sys_lines.get(code)
            assert isinstance(text, str) and text.strip(), f"{lang}: no text for {code}"
            assert text != english, f"{lang}: {code} is still English"
            assert placeholders(text) == placeholders(english), f"{lang}: fields of {code}"
        assert set(sys_lines) == set(ENGLISH), set(sys_lines) ^ set(ENGLISH)


def test_every_error_and_ui_string_has_a_spanish_text() -> None:
    strings = widget_strings()

    def walk(en: Any, other: Any, path: str) -> list[str]:
        missing = []
        for key, value in en.items():
            if isinstance(value, dict):
                missing += walk(value, other.get(key) or {}, f"{path}{key}.")
            elif not isinstance(other.get(key), str) or not other[key].strip():
                missing.append(path + key)
            elif placeholders(other[key]) != placeholders(value):
                missing.append(f"{path}{key} (fields)")
        return missing

    for lang in LANGUAGES:
        assert walk(strings["en"], strings[lang], "") == []
        assert walk(strings[lang], strings["en"], f"{lang}-only:") == []


def test_a_line_renders_its_fields_as_given() -> None:
    joined = line("joined", name="Ana {to} }{")
    assert joined.english == "Ana {to} }{ joined the chat."
    assert joined.params == {"name": "Ana {to} }{"}
    assert line("followed_up", ticket=42).english.endswith(
        "(ticket #42); we will answer you there."
    )


def test_a_line_with_a_wrong_code_or_fields_is_refused() -> None:
    with pytest.raises(KeyError):
        PatronText("no_such_line")
    with pytest.raises(ValueError):
        line("joined")
    with pytest.raises(ValueError):
        line("joined", name="Ana", extra="x")


def test_the_servers_spanish_lines_are_the_widgets() -> None:
    """The transcript copy renders the service's lines from the same catalogue as the
    widget: the Spanish texts agree on both sides, like the English ones."""
    strings = widget_strings()
    assert strings["es"]["sys"] == dict(SPANISH)
    assert set(TRANSCRIPT_MAIL) == set(LANGUAGES) | {"en"}
    for words in TRANSCRIPT_MAIL.values():
        assert set(words) == set(TRANSCRIPT_MAIL["en"])
        for key, text in words.items():
            assert placeholders(text) == placeholders(TRANSCRIPT_MAIL["en"][key]), key


@pytest.mark.parametrize(
    ("said", "lang"),
    [
        ("es", "es"),
        ("es-MX", "es"),
        (" ES ", "es"),
        ("en-GB", "en"),
        ("fr", "en"),
        ("", "en"),
        (None, "en"),
        (3, "en"),
        (["es"], "en"),
        ("es" + "-x" * 40, "en"),
    ],
)
def test_the_widgets_language_is_read_safely(said: object, lang: str) -> None:
    assert language(said) == lang


def test_service_lines_render_in_the_language_and_others_stay_as_written() -> None:
    joined = line("joined", name="Ana {to}")
    assert rendered(joined.code, joined.params, "es", joined.english) == "Ana {to} se unió al chat."
    assert rendered(joined.code, joined.params, "en", joined.english) == joined.english
    assert rendered(None, None, "es", "Hello there") == "Hello there"
    # A stored line whose fields no longer fit the template keeps its stored text.
    assert rendered("joined", {"who": "Ana"}, "es", "Ana joined the chat.") == (
        "Ana joined the chat."
    )
