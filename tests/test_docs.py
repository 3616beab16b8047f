"""The documentation is self-contained: everything the README, docs/ and the code's comments
refer to is a file in this repository, and every relative link works."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent

# Notes that live outside the repository: a reader of the project cannot open them.
OUTSIDE_NOTES = re.compile(r"DESIGN\.md|POLICIES\.md|shared notes", re.IGNORECASE)
# [text](target) and <a href="target">, skipping images' sizes and code spans well enough
# for our own Markdown.
MD_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"""href=["']([^"']+)["']""")


def tracked_files() -> list[Path]:
    """Every file git knows in the working tree (committed or staged), tests excluded."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    files = [ROOT / line for line in out.splitlines() if line]
    return [f for f in files if f.exists() and f.relative_to(ROOT).parts[0] != "tests"]


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_nothing_refers_to_notes_outside_the_repository() -> None:
    offenders = []
    for path in tracked_files():
        try:
            text = path.read_text("utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE_NOTES.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_every_relative_link_in_the_docs_points_at_a_file() -> None:
    broken = []
    for doc in doc_files():
        text = doc.read_text("utf-8")
        for target in [*MD_LINK.findall(text), *HTML_LINK.findall(text)]:
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or target.startswith("#"):
                continue  # a web address or an anchor on the same page
            path = (doc.parent / unquote(parts.path)).resolve()
            if not path.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
            elif not path.is_relative_to(ROOT):
                broken.append(f"{doc.relative_to(ROOT)}: {target} leaves the repository")
    assert not broken, "\n".join(broken)


def test_the_docs_exist_and_are_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    for name in (
        "architecture.md",
        "widget-protocol.md",
        "operators.md",
        "admins.md",
        "configuration.md",
        "cli.md",
        "deploy.md",
    ):
        assert (ROOT / "docs" / name).is_file(), name
        assert f"docs/{name}" in readme, f"README.md does not link docs/{name}"
