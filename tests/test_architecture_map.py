"""docs/architecture.md is the map of the code, and stays true: every module of `component/`
and `web/` is placed on it, and every module and folder it names exists.

A module is placed when the map writes its path in backticks (`component/store/mail.py`),
or, on a line (a table row, a bullet) that names its folder in backticks
(`component/core/`), its file name (`email_input` or `email_input.py`).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAP = ROOT / "docs" / "architecture.md"
PACKAGES = ("component", "web")

CODE = re.compile(r"`([^`\n]+)`")
FOLDER = re.compile(r"^(?:component|web)(?:/\w+)*/$")
MODULE_PATH = re.compile(r"^(?:component|web)(?:/\w+)+\.py$")
FILE_NAME = re.compile(r"^\w+(?:\.py)?$")


def modules() -> list[str]:
    """Every module of the two packages, as a path from the repository root; package
    `__init__` files and schema migrations are placed with their folder."""
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT)
            if path.name == "__init__.py" or "migrations" in rel.parts:
                continue
            found.append(rel.as_posix())
    return sorted(found)


def placed(text: str) -> tuple[set[str], list[str]]:
    """The module paths the map names, and the paths and folders it names that do not
    exist."""
    named: set[str] = set()
    missing: list[str] = []
    for line in text.splitlines():
        spans = CODE.findall(line)
        folders = [s for s in spans if FOLDER.match(s)]
        for span in spans:
            if MODULE_PATH.match(span):
                named.add(span)
                if not (ROOT / span).is_file():
                    missing.append(span)
            elif FOLDER.match(span) and not (ROOT / span).is_dir():
                missing.append(span)
            elif FILE_NAME.match(span):
                stem = span.removesuffix(".py")
                homes = [f for f in folders if (ROOT / f / f"{stem}.py").is_file()]
                named.update(f"{folder}{stem}.py" for folder in homes)
                if span.endswith(".py") and folders and not homes:
                    missing.append(f"{folders[0]}{span}")
    return named, missing


def test_every_module_is_on_the_map() -> None:
    named, _ = placed(MAP.read_text(encoding="utf-8"))
    absent = [m for m in modules() if m not in named]
    assert not absent, "docs/architecture.md does not place: " + ", ".join(absent)


def test_everything_the_map_names_exists() -> None:
    _, missing = placed(MAP.read_text(encoding="utf-8"))
    assert not missing, "docs/architecture.md names what does not exist: " + ", ".join(missing)


def test_the_check_reads_both_forms() -> None:
    # Without this, a parser that found nothing would make the tests above pass vacuously
    # for the second one and fail for the wrong reason for the first.
    named, missing = placed(
        "| `component/core/` | `text`, `validators.py` and `nothing.py` |\n"
        "Then `component/service.py` and `web/nowhere/`.\n"
    )
    assert named == {
        "component/core/text.py",
        "component/core/validators.py",
        "component/service.py",
    }
    assert missing == ["component/core/nothing.py", "web/nowhere/"]
