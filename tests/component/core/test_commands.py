"""Tests for component.core.commands: splitting operators' `!` lines."""

from __future__ import annotations

import pytest

from component.core.commands import (
    CHAT_COMMANDS,
    PREFIX,
    QUEUE_COMMANDS,
    Command,
    Say,
    help_text,
    parse_line,
)


def test_prefix_is_bang_not_slash() -> None:
    assert PREFIX == "!"


@pytest.mark.parametrize(
    "line",
    ["hello", "Could you look at page 3?", "", "  ", "/end", "end!", " !end", "a ! b"],
)
def test_plain_text_is_said_as_is(line: str) -> None:
    assert parse_line(line) == Say(line)


def test_command_without_argument() -> None:
    assert parse_line("!accept") == Command("accept", "")


def test_command_with_argument() -> None:
    assert parse_line("!transfer science") == Command("transfer", "science")


def test_argument_keeps_inner_spaces_and_case() -> None:
    assert parse_line("!note Patron  Wants MAPS") == Command("note", "Patron  Wants MAPS")


def test_argument_is_trimmed() -> None:
    assert parse_line("!tag   maps   ") == Command("tag", "maps")


def test_argument_may_span_lines() -> None:
    assert parse_line("!note first line\nsecond line") == Command("note", "first line\nsecond line")


@pytest.mark.parametrize("line", ["!END", "!End", "!eNd"])
def test_command_name_is_case_folded(line: str) -> None:
    assert parse_line(line) == Command("end", "")


def test_case_folding_leaves_argument_alone() -> None:
    assert parse_line("!TAG Maps") == Command("tag", "Maps")


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("!!end", "!end"),
        ("!!", "!"),
        ("!!!", "!!"),
        ("!! spaced", "! spaced"),
        ("!!Important: read this", "!Important: read this"),
    ],
)
def test_double_bang_sends_text_literally(line: str, text: str) -> None:
    assert parse_line(line) == Say(text)


@pytest.mark.parametrize("line", ["!", "! ", "!\t", "!\n", "!\u00a0", "!   \u3000 "])
def test_bang_alone_is_an_empty_command(line: str) -> None:
    assert parse_line(line) == Command("", "")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("!end\n", Command("end", "")),
        ("!end\r\n", Command("end", "")),
        ("!tag\u00a0maps", Command("tag", "maps")),  # non-breaking space from a client
        ("!tag\tmaps", Command("tag", "maps")),
        ("!tag\u2003maps", Command("tag", "maps")),  # em space
        ("!tag\u3000maps", Command("tag", "maps")),  # ideographic space
        ("!transfer \u00a0 science\u00a0", Command("transfer", "science")),
        ("! end", Command("end", "")),
    ],
)
def test_odd_whitespace(line: str, expected: Command) -> None:
    assert parse_line(line) == expected


def test_parsed_values_are_immutable() -> None:
    cmd = parse_line("!end")
    assert isinstance(cmd, Command)
    with pytest.raises(AttributeError):
        cmd.name = "accept"  # type: ignore[misc]


@pytest.mark.parametrize("table", [CHAT_COMMANDS, QUEUE_COMMANDS], ids=["chat", "queue"])
def test_help_text_lists_every_command(table: dict[str, str]) -> None:
    text = help_text(table)
    lines = text.splitlines()
    assert lines[0] == "Commands:"
    for name, line in table.items():
        assert line in lines
        assert line.startswith(f"!{name}")
    assert "!!text" in text


@pytest.mark.parametrize("table", [CHAT_COMMANDS, QUEUE_COMMANDS], ids=["chat", "queue"])
def test_every_table_offers_help(table: dict[str, str]) -> None:
    assert "help" in table


def test_help_texts_differ_between_chat_and_queue() -> None:
    chat = help_text(CHAT_COMMANDS)
    queue = help_text(QUEUE_COMMANDS)
    assert "!accept" in chat and "!accept" not in queue
    assert "!who" in queue and "!who" not in chat


def test_table_names_parse_back_to_themselves() -> None:
    for name in (*CHAT_COMMANDS, *QUEUE_COMMANDS):
        assert parse_line(f"!{name}") == Command(name, "")
        assert parse_line(f"!{name.upper()} x") == Command(name, "x")
