"""Where the files the web app serves live, found through the installed packages.

Templates and the admin stylesheet are package data of `web`; the patron widget is the
repository's top-level `widget/` directory, installed as the package `web.widget`. Looking
them up with importlib.resources (never relative to a source file) makes an installed wheel
serve exactly what an editable checkout serves.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

# The widget files patrons' browsers may fetch: scripts and styles, nothing else in the
# package directory (not its __init__.py, not a __pycache__).
_SERVED_SUFFIXES = {".js": "text/javascript", ".css": "text/css"}


def package_dir(package: str, *parts: str) -> Path:
    """The directory of an installed package (or of a directory inside it). Called once
    when the app is built; fails at start, with the path, if the files are missing."""
    found = resources.files(package).joinpath(*parts)
    if not isinstance(found, Path):
        raise RuntimeError(f"refdesk must be installed as files, not inside an archive: {found}")
    if not found.is_dir():
        raise RuntimeError(f"refdesk is incompletely installed: {found} is missing")
    return found


def widget_dir() -> Path:
    """The installed widget directory (the repository's top-level `widget/`)."""
    return package_dir("web.widget")


def widget_files() -> dict[str, Path]:
    """The servable widget files by name; built once by the app factory."""
    return served_files(widget_dir())


def served_files(directory: Path) -> dict[str, Path]:
    """The scripts and styles directly in `directory`, by name (nothing else is served
    from it). Built once, when the routes that serve them are added."""
    return {
        path.name: path
        for path in sorted(directory.iterdir())
        if path.suffix in _SERVED_SUFFIXES and path.is_file()
    }


def file_response(path: Path) -> web.FileResponse:
    """A widget file with its script or style type (browsers refuse a script served with
    another type under `X-Content-Type-Options: nosniff`)."""
    response = web.FileResponse(path)
    response.headers["Content-Type"] = f"{_SERVED_SUFFIXES[path.suffix]}; charset=utf-8"
    return response
