"""No module of `component` or `web` grows past 600 lines: a module a newcomer reads at
one sitting holds one concept. When this fails, split the module by concept (as the ban
rules and the ban index were split) rather than raising the limit."""

from __future__ import annotations

from tests.test_import_cycles import project_modules

MAX_LINES = 600


def test_no_module_is_over_the_limit() -> None:
    modules = project_modules()
    assert len(modules) > 100  # the walk found the packages
    sizes = {
        name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules.items()
    }
    over = {name: lines for name, lines in sizes.items() if lines > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: {over}"
